"""Strict JSON (chatapi/strict_json.py) parsed a piece at a time, pausing between pieces, so
that a big document (an import of tens of megabytes) never holds a gevent worker's loop for
long. json.loads of a whole 30 MB document runs in C for about half a second without a chance
to switch, and in a thread it would still hold the GIL all that time; parsed value by value
down to `levels` levels, each piece takes a few milliseconds at most."""
import codecs
import gc
import json
import re
import time
from json.decoder import scanstring

from . import strict_json

# Parsing gives way to other greenlets after this much time.
SLICE_SECONDS = 0.005
WHITESPACE = re.compile(r"[ \t\n\r]*")
DECODER = json.JSONDecoder(parse_constant=strict_json.refuse_constant,
                           parse_float=strict_json.finite_float)


# How long a pause sleeps: not 0, for gevent.sleep(0) only runs the greenlets already due
# and may not poll the network, so a request waiting for its bytes would wait until the end.
PAUSE_SECONDS = 0.0002


class Pauses:
    """Called between pieces of work: every SLICE_SECONDS, lets the other greenlets run
    (time.sleep is gevent.sleep once gevent patched the worker; without gevent, a thread
    switch at most)."""

    def __init__(self, every=SLICE_SECONDS):
        self.every = every
        self.since = time.perf_counter()

    def __call__(self):
        if time.perf_counter() - self.since >= self.every:
            time.sleep(PAUSE_SECONDS)
            self.since = time.perf_counter()


def decoded(data, pause, piece=1024 * 1024):
    """UTF-8 `data` as text, a piece at a time (UnicodeDecodeError as bytes.decode)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pieces = []
    for start in range(0, len(data), piece):
        pieces.append(decoder.decode(data[start:start + piece]))
        pause()
    pieces.append(decoder.decode(b"", final=True))
    return "".join(pieces)


def loads(text, pause, levels=3):
    """The value of strict JSON `text`, as strict_json.loads gives it (ValueError,
    LoneSurrogate with its path, RecursionError), the arrays and objects of its first `levels`
    levels taken apart item by item with `pause()` between items."""
    value, end = parse(text, skip(text, 0), levels, pause, ())
    if skip(text, end) != len(text):
        raise ValueError(f"Extra data at character {end}")
    return value


def skip(text, at):
    return WHITESPACE.match(text, at).end()


def expect(text, at, characters):
    if at >= len(text) or text[at] not in characters:
        raise ValueError(f"Expected one of {characters!r} at character {at}")
    return text[at]


def parse(text, at, levels, pause, path):
    if levels and at < len(text) and text[at] == "[":
        return parse_array(text, at, levels, pause, path)
    if levels and at < len(text) and text[at] == "{":
        return parse_object(text, at, levels, pause, path)
    try:
        value, end = DECODER.raw_decode(text, at)
    except StopIteration as error:  # the pure-Python scanner's way of saying "no value here"
        raise ValueError(f"Expected a value at character {error.value}") from None
    if strict_json.SURROGATE_ESCAPE.search(text, at, end):
        inner = strict_json.lone_surrogate_path(value)
        if inner is not None:
            raise strict_json.LoneSurrogate([*path, *inner])
    pause()
    return value, end


def parse_array(text, at, levels, pause, path):
    items = []
    at = skip(text, at + 1)
    if at < len(text) and text[at] == "]":
        return items, at + 1
    while True:
        item, at = parse(text, at, levels - 1, pause, (*path, len(items)))
        items.append(item)
        at = skip(text, at)
        if expect(text, at, ",]") == "]":
            return items, at + 1
        at = skip(text, at + 1)


def parse_object(text, at, levels, pause, path):
    members = {}
    at = skip(text, at + 1)
    if at < len(text) and text[at] == "}":
        return members, at + 1
    while True:
        expect(text, at, '"')
        key, at = scanstring(text, at + 1)
        if not strict_json.is_text(key):
            raise strict_json.LoneSurrogate([*path, key])
        at = skip(text, at)
        expect(text, at, ":")
        members[key], at = parse(text, skip(text, at + 1), levels - 1, pause, (*path, key))
        at = skip(text, at)
        if expect(text, at, ",}") == "}":
            return members, at + 1
        at = skip(text, at + 1)


def release(value, pause, levels=3):
    """Drop a big parsed document a piece at a time: freed at once, its millions of objects
    would take as long to free as to parse."""
    if levels and isinstance(value, list):
        while value:
            release(value.pop(), pause, levels - 1)
    elif levels and isinstance(value, dict):
        while value:
            release(value.popitem()[1], pause, levels - 1)
    pause()


class collector_paused:
    """Python's cycle collector off while a big document is parsed and stored: a full
    collection walks every live object, the document's millions too, for hundreds of
    milliseconds at a time. The document holds no cycles (JSON cannot make one); it is freed
    by reference counting. Nested uses (two imports at once) turn it back on with the last."""

    depth = 0
    enabled_before = True

    def __enter__(self):
        if collector_paused.depth == 0:
            collector_paused.enabled_before = gc.isenabled()
            gc.disable()
        collector_paused.depth += 1
        return self

    def __exit__(self, *_exc):
        collector_paused.depth -= 1
        if collector_paused.depth == 0 and collector_paused.enabled_before:
            gc.enable()
