"""Strict JSON in and out (RFC 8259 as I-JSON, RFC 7493, reads it): no NaN or Infinity, no
number beyond a double, no lone UTF-16 surrogate. Python's json module reads all of these
(1e400 as infinity, "\\ud800" as a string no UTF-8 encoder can write) and writes NaN and
Infinity back as tokens no other parser reads."""
import json
import math
import re

import orjson

from flask.json.provider import DefaultJSONProvider

# A lone surrogate can only enter through an escape: UTF-8 itself cannot encode one, so text
# without such an escape needs no walk.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Integers of 18 digits or fewer fit the 64 bits orjson reads whole; it reads longer ones (some
# of 19 digits, all of 20) as floats.
LONG_DIGITS = re.compile(rb"[0-9]{19}")
# json's parser gives up (RecursionError) at about 1,000 levels less the caller's stack; orjson
# reads 1,024. A chunk with this many brackets in all is left to json, which decides as before.
MANY_BRACKETS = 512
# Documents nested deeper are refused where they enter from a peer (a tool's result, the
# model's tool arguments): the recursive code after parsing (encoders, storing a message, the
# parser again at a deeper stack) breaks somewhere between 400 and 950 levels, depending on
# where it runs.
MAX_DEPTH = 100


class NotStrictJSON(ValueError):
    """Standard JSON syntax that strict JSON refuses."""


class LoneSurrogate(NotStrictJSON):
    """A string (a key or a value) that is not Unicode text; `path` names where."""

    def __init__(self, path):
        super().__init__(f"a lone surrogate at {path_text(path) or 'the top level'}")
        self.path = path


def refuse_constant(name):
    raise NotStrictJSON(f"{name} is not JSON")


def finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise NotStrictJSON(f"{text} is beyond the range of a double")
    return value


def loads(text):
    """The value of strict JSON text. Raises ValueError (NotStrictJSON, or LoneSurrogate for
    text that is not Unicode) and RecursionError (nesting deeper than the parser goes)."""
    value = json.loads(text, parse_constant=refuse_constant, parse_float=finite_float)
    if SURROGATE_ESCAPE.search(text):
        path = lone_surrogate_path(value)
        if path is not None:
            raise LoneSurrogate(path)
    return value


def loads_replacing_surrogates(data):
    """The value of JSON bytes from a peer we cannot refuse (the model's stream), its lone
    surrogates replaced by U+FFFD, so what it said can still be streamed and stored as UTF-8."""
    # A chunk of every answer: orjson reads one in a quarter of json's time, and refuses what
    # needs json below (a lone surrogate, NaN, 1e400); a chunk with a run of 19 digits or more,
    # which orjson might read as a float, or nested deep enough for json to refuse, is left to
    # json too.
    if (not LONG_DIGITS.search(data)
            and data.count(b"[") + data.count(b"{") < MANY_BRACKETS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    value = json.loads(data)
    return surrogates_replaced(value) if SURROGATE_ESCAPE_BYTES.search(data) else value


def is_text(value):
    return value.isascii() or LONE_SURROGATE.search(value) is None


def children(value):
    if isinstance(value, dict):
        return value.items()
    if isinstance(value, list):
        return enumerate(value)
    return ()


def lone_surrogate_path(root):
    """The keys and indexes leading to the first string or key that is not Unicode text."""
    stack = [((), root)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not is_text(value):
                return list(path)
            continue
        for key, child in children(value):
            if isinstance(key, str) and not is_text(key):
                return [*path, key]
            stack.append(((*path, key), child))
    return None


def nested_deeper_than(root, depth=MAX_DEPTH):
    """True when root has more than `depth` levels of arrays and objects."""
    stack = [(root, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (list, dict)):
            if level == depth:
                return True
            stack.extend((child, level + 1) for _key, child in children(value))
    return False


def values_in(root, most):
    """How many values root holds (arrays, objects and what is in them, at every level), or
    a number past `most`: counting stops there, so a huge document costs no more than that."""
    stack, held = [root], 1
    while stack:
        value = stack.pop()
        if isinstance(value, (list, dict)):
            held += len(value)
            if held > most:
                break
            stack.extend(value.values() if isinstance(value, dict) else value)
    return held


def path_text(path):
    """`data.items.0`, with any lone surrogate of a key written as its escape."""
    return ".".join(str(part).encode("utf-8", "backslashreplace").decode() for part in path)


def surrogates_replaced(value):
    if isinstance(value, str):
        return value if is_text(value) else LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [surrogates_replaced(item) for item in value]
    if isinstance(value, dict):
        return {surrogates_replaced(key): surrogates_replaced(item)
                for key, item in value.items()}
    return value


def checked(value):
    """`value` as strict JSON out: lone surrogates replaced by U+FFFD; NotStrictJSON when it
    holds NaN or Infinity. Checked by the C encoder, faster than a walk in Python."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError as error:
        raise NotStrictJSON(str(error)) from None
    return surrogates_replaced(value) if SURROGATE_ESCAPE.search(text) else value


def is_finite(root):
    """False when a float anywhere in root is NaN or infinite."""
    stack = [root]
    while stack:
        value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return False
        stack.extend(child for _key, child in children(value))
    return True


# Datetimes go to Flask's default (an HTTP date), as with the json module; keys that are not
# strings are written as strings, as the json module writes them.
ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def dumps(value, **options):
    return json.dumps(value, allow_nan=False, **options)


class StrictJSONProvider(DefaultJSONProvider):
    """Every JSON response, as strict JSON, encoded by orjson: 16 µs for a page of 100
    messages where the json module took 270. NaN and Infinity, which every way in refuses
    (loads, checked), would be written as null, as JavaScript's JSON.stringify writes them;
    a document orjson refuses (a lone surrogate, an integer beyond 64 bits) is written by the
    json module, as before: the surrogate escaped, the integer whole. Keys keep the schema's
    order; a debug app indents. `dumps`, for callers of app.json, still raises on NaN."""

    def dumps(self, obj, **kwargs):
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)

    def response(self, *args, **kwargs):
        if self._app.debug:
            return super().response(*args, **kwargs)
        value = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(value, default=self.default, option=ORJSON_OPTIONS)
        except orjson.JSONEncodeError:
            return super().response(value)
        return self._app.response_class(body + b"\n", mimetype=self.mimetype)
