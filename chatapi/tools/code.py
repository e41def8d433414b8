"""code tools: run_python (in the sandbox) and regex_test (with the `regex` package's timeout)."""
from operator import itemgetter

import regex

from ..errors import UpstreamUnavailable, ValidationFailed
from . import sandbox
from .tool import Tool

MAX_RUN_SECONDS = 30
# Time for killing and tearing down the sandbox on top of the caller's timeout.
TEARDOWN_SECONDS = 5
# The `regex` package's timeout counts CPU time; on a busy host the wall clock runs longer.
REGEX_TIMEOUT_SECONDS = 0.5
# The compiler writes out every counted repeat's minimum (x{5} becomes xxxxx, nested repeats
# multiply) before any timeout applies: x{4294967294} would take gigabytes. ~25 MB at the cap.
MAX_UNROLLED_ITEMS = 100_000
COUNTED_REPEAT = regex.compile(r"\{(\d+)(?:,\d*)?\}")
# Verbose comments and version-1 nested sets hide text from the scan: then assume the worst.
SCAN_DEFEATING_FLAGS = regex.compile(r"\(\?[a-zA-Z0-9-]*[xV]")
REGEX_FLAGS = {"IGNORECASE": regex.IGNORECASE, "MULTILINE": regex.MULTILINE,
               "DOTALL": regex.DOTALL, "VERBOSE": regex.VERBOSE, "ASCII": regex.ASCII}


def sandbox_settings(config):
    return sandbox.Settings(
        python=config["SANDBOX_PYTHON"] or sandbox.default_python(),
        bwrap=config["SANDBOX_BWRAP"] or sandbox.default_bwrap(),
        first_uid=config["SANDBOX_FIRST_UID"], uid_count=config["SANDBOX_UID_COUNT"],
        lock_dir=config["SANDBOX_LOCK_DIR"],
        tmpfs_bytes=config["SANDBOX_TMPFS_MB"] * sandbox.MIB,
        memory_bytes=config["SANDBOX_MEMORY_MB"] * sandbox.MIB,
        max_processes=config["SANDBOX_MAX_PROCESSES"],
        file_size_bytes=config["SANDBOX_FILE_SIZE_MB"] * sandbox.MIB,
        output_bytes=config["SANDBOX_OUTPUT_BYTES"])


def run_python(arguments, context):
    try:
        return sandbox.run(arguments["code"], arguments["stdin"], arguments["timeout"],
                           sandbox_settings(context.config))
    except sandbox.IsolationUnavailable:
        raise UpstreamUnavailable("sandbox_isolation_unavailable") from None
    except sandbox.SandboxBusy:
        raise UpstreamUnavailable("sandbox_busy", headers={"Retry-After": "1"}) from None


RUN_PYTHON = Tool(
    name="run_python",
    category="code",
    description=(
        "Run a Python 3 script in a sandbox without network access and return its stdout, "
        "stderr, exit code, duration and whether it timed out or its output was truncated. "
        "Only the standard library is available; print the results you need."),
    parameters={
        "type": "object",
        "properties": {
            "code": {"type": "string", "maxLength": 100_000,
                     "description": "Python 3 source code, run as a script."},
            "timeout": {"type": "number", "minimum": 1, "maximum": MAX_RUN_SECONDS,
                        "default": 10, "description": "Wall-clock limit in seconds."},
            "stdin": {"type": "string", "maxLength": 100_000, "default": "",
                      "description": "Text the script reads from standard input."},
        },
        "required": ["code"],
    },
    handler=run_python,
    time_limit=lambda _config: MAX_RUN_SECONDS + TEARDOWN_SECONDS,
)


def unrolled_size(pattern):
    """An upper bound of the items the compiler unrolls `pattern` into (its default syntax)."""
    groups = [[0, 0]]  # per open group: [size so far, size of the last item]
    position = 0
    while position < len(pattern):
        repeat = COUNTED_REPEAT.match(pattern, position)
        if repeat:
            group, count = groups[-1], max(int(repeat.group(1)), 1)
            group[0] += group[1] * (count - 1)
            group[1] *= count
            position = repeat.end()
            continue
        if pattern.startswith("(?#", position):
            end = pattern.find(")", position)
            position = len(pattern) if end < 0 else end + 1
            continue
        if pattern[position] == "(":
            groups.append([0, 0])
            position += 1
            continue
        item = 1
        if pattern[position] == ")" and len(groups) > 1:
            item = groups.pop()[0]
            position += 1
        elif pattern[position] == "[":
            position = end_of_set(pattern, position)
        else:
            position += 2 if pattern[position] == "\\" else 1
        groups[-1][0] += item
        groups[-1][1] = item
    return sum(size for size, _ in groups)


def end_of_set(pattern, position):
    """Just past the `]` closing the set that opens at `position`; a `]` right after `[` or
    `[^` is a member."""
    position += 1
    if pattern.startswith("^", position):
        position += 1
    if pattern.startswith("]", position):
        position += 1
    while position < len(pattern) and pattern[position] != "]":
        position += 2 if pattern[position] == "\\" else 1
    return position + 1


def worst_case_size(pattern, flags):
    if flags & regex.VERBOSE or SCAN_DEFEATING_FLAGS.search(pattern):
        size = len(pattern)
        for repeat in COUNTED_REPEAT.finditer(pattern):
            size *= max(int(repeat.group(1)), 1)
        return size
    return unrolled_size(pattern)


def regex_test(arguments, context):
    return context.compute(regex_matches, arguments["pattern"], arguments["text"],
                           arguments["flags"], arguments["max_matches"])


def regex_matches(pattern, text, flag_names, max_matches):
    """Run in the compute pool: the regex timeout bounds the CPU time of a match, but each
    such half second on the event loop would stall every stream of the worker."""
    flags = 0
    for name in flag_names:
        flags |= REGEX_FLAGS[name]
    if worst_case_size(pattern, flags) > MAX_UNROLLED_ITEMS:
        raise ValidationFailed(details={"pattern": [
            f"counted repeats unroll to more than {MAX_UNROLLED_ITEMS} items"]})
    try:
        compiled = regex.compile(pattern, flags)
    except regex.error as error:
        raise ValidationFailed(details={"pattern": [f"invalid pattern: {error}"]}) from None
    matches, truncated = [], False
    try:
        for found in compiled.finditer(text, timeout=REGEX_TIMEOUT_SECONDS):
            if len(matches) == max_matches:
                truncated = True
                break
            matches.append(described(found))
    except TimeoutError:
        raise ValidationFailed(details={"pattern": [
            f"matching took longer than {REGEX_TIMEOUT_SECONDS:g} s of CPU time "
            "(catastrophic backtracking?)"]}) from None
    return {"matches": matches, "count": len(matches), "truncated": truncated}


def described(found):
    return {"match": found.group(), "start": found.start(), "end": found.end(),
            "groups": list(found.groups()), "named_groups": found.groupdict()}


REGEX_TEST = Tool(
    name="regex_test",
    category="code",
    description=(
        "Apply a regular expression (Python `regex` syntax) to a text and return every match "
        "with its span, numbered groups and named groups."),
    parameters={
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "maxLength": 1000,
                        "description": "The regular expression."},
            "text": {"type": "string", "maxLength": 100_000,
                     "description": "The text to search."},
            "flags": {"type": "array", "default": [],
                      "items": {"enum": list(REGEX_FLAGS)},
                      "description": "Matching flags."},
            "max_matches": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100,
                            "description": "Return at most this many matches."},
        },
        "required": ["pattern", "text"],
    },
    handler=regex_test,
    time_limit=itemgetter("COMPUTE_TIMEOUT"),
)

TOOLS = [RUN_PYTHON, REGEX_TEST]
