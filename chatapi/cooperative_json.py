"""Strict JSON (chatapi/strict_json.py) parsed a piece at a time, pausing between pieces, so
that a big document (an import of tens of megabytes) never holds a gevent worker's loop for
long. json.loads of a whole 30 MB document runs in C for about half a second without a chance
to switch, and in a thread it would still hold the GIL all that time; parsed value by value
down to `levels` levels, each piece takes a few milliseconds at most."""
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


class Pauses:
    """Called between pieces of work: every SLICE_SECONDS, lets the other greenlets run
    (time.sleep is gevent.sleep once gevent patched the worker; without gevent, a thread
    switch at most)."""

    def __init__(self, every=SLICE_SECONDS):
        self.every = every
        self.since = time.perf_counter()

    def __call__(self):
        if time.perf_counter() - self.since >= self.every:
            time.sleep(0)
            self.since = time.perf_counter()


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
