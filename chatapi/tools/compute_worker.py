"""One process of the compute pool (compute_pool.py): reads calls from stdin, answers on
stdout, one at a time, until stdin closes or its parent is gone.

A call is a frame (4-byte big-endian length, then the bytes) holding a pickle of (function,
arguments), from the parent, which is trusted. The answer is a frame of strict JSON,
{"result": ...} or {"error": {"status", "text_key", "details"}}, which the parent reads without
trusting this process: code that parses hostile input runs here."""
import logging
import os
import pickle
import resource
import sys
import threading
import time

from .. import strict_json
from ..errors import ApiError
from .compute_pool import HEADER

log = logging.getLogger("chatapi.compute")

PARENT_CHECK_SECONDS = 1.0
# Computations yield the CPU to the web worker that serves every other request and stream.
NICENESS = 10


def read_frame(stream):
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (length,) = HEADER.unpack(header)
    body = stream.read(length)
    return body if len(body) == length else None


def write_frame(stream, body):
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def error_answer(status, text_key=None, details=None):
    return {"error": {"status": status, "text_key": text_key, "details": details}}


OUT_OF_MEMORY = error_answer(422, details={"_schema": [
    "the computation needs more memory than this service allows"]})


def answer_to(function, arguments, result_max_bytes):
    """The encoded answer to one call: every failure is an answer, never an exit."""
    try:
        answer = {"result": function(*arguments)}
        if strict_json.nested_deeper_than(answer["result"]):
            answer = error_answer(422, details={"_schema": [
                f"the result is nested more than {strict_json.MAX_DEPTH} levels deep"]})
    except ApiError as error:
        answer = error_answer(error.status, error.text_key, error.details)
    except MemoryError:
        answer = OUT_OF_MEMORY
    except RecursionError:
        answer = error_answer(422, details={"_schema": ["the input is nested too deeply"]})
    except Exception:
        log.exception("computation %s failed", getattr(function, "__qualname__", function))
        answer = error_answer(500)
    try:
        encoded = strict_json.dumps(answer).encode("ascii")
    except ValueError:  # NaN or Infinity in a result: a defect of the tool
        log.error("computation %s made a result that is not strict JSON",
                  getattr(function, "__qualname__", function))
        return strict_json.dumps(error_answer(500)).encode("ascii")
    except MemoryError:  # a result that fits in memory, but not its JSON text as well
        return strict_json.dumps(OUT_OF_MEMORY).encode("ascii")
    if len(encoded) > result_max_bytes:
        return strict_json.dumps(error_answer(422, details={"_schema": [
            f"the result is {len(encoded):,} bytes of JSON, over the {result_max_bytes:,}-byte "
            "cap: ask for less"]})).encode("ascii")
    return encoded


def limit_memory(megabytes):
    """Address space for the computations on top of what the interpreter and the tools'
    libraries already map: an input built to exhaust memory ends in MemoryError here."""
    with open("/proc/self/status") as status:
        mapped_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = mapped_kib * 1024 + megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def exit_with_parent(parent):
    """A parent killed with SIGKILL closes no pipe this process is waiting on mid-call."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def load_tools():
    """What the calls use, imported before the first one and before the memory cap."""
    from . import code, crawler, csv_summary, data  # noqa: F401


def main(memory_megabytes, result_max_bytes):
    calls, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not break the framing
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    os.nice(NICENESS)
    load_tools()
    limit_memory(memory_megabytes)
    write_frame(answers, b"ready")
    while (call := read_frame(calls)) is not None:
        function, arguments = pickle.loads(call)
        write_frame(answers, answer_to(function, arguments, result_max_bytes))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
