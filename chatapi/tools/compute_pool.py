"""A few worker processes (compute_worker.py) for tool work that can cost seconds of CPU on
untrusted input: parsing a CSV, a JSON document, a web page, running a regular expression.

In a gevent worker nothing CPU-heavy may run on the event loop, and the usual ways out do not
work: `threading` is patched (a thread pool runs on the same loop), multiprocessing does not
mix with gevent, and an OS thread cannot be stopped at a deadline. So each call goes to a
process started ahead, over pipes read with `select` (gevent's cooperative one once the worker
is patched, the blocking one under the test client or the `flask` CLI); past the deadline the
process is killed and replaced. Calls beyond the workers wait in a bounded queue; past it the
pool answers 503 at once. One pool per process and settings, shared by every app in it."""
import atexit
import contextlib
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from queue import Queue

from .. import strict_json
from ..errors import (ApiError, RateLimited, UpstreamTimeout, UpstreamUnavailable,
                      ValidationFailed)
from ..texts import TEXTS

# Frames on the pipes: a 4-byte big-endian length, then the bytes (compute_worker.py).
HEADER = struct.Struct(">I")
# What a worker may answer, at most; its own cap (the result's JSON) is a little lower.
RESULT_MAX_BYTES = 4 * 1024 * 1024
FRAME_SLACK_BYTES = 64 * 1024
# A worker imports the app's modules before it is ready: slow on a loaded host, and not
# counted in any call's deadline.
START_SECONDS = 60.0
READ_CHUNK = 1024 * 1024
ERRORS_BY_STATUS = {ValidationFailed.status: ValidationFailed}


class WorkerLost(Exception):
    """The worker closed its pipe or wrote something that is not an answer."""


@dataclass(eq=False)
class Worker:
    process: subprocess.Popen
    ready: bool = False
    reader: int = field(init=False)
    writer: int = field(init=False)

    def __post_init__(self):
        self.writer = self.process.stdin.fileno()
        self.reader = self.process.stdout.fileno()
        os.set_blocking(self.writer, False)
        os.set_blocking(self.reader, False)

    def send(self, body, deadline):
        pending = memoryview(HEADER.pack(len(body)) + body)
        while pending:
            wait_until(deadline, writable=self.writer)
            try:
                pending = pending[os.write(self.writer, pending):]
            except BrokenPipeError:
                raise WorkerLost("the worker closed its input") from None

    def receive(self, deadline):
        (length,) = HEADER.unpack(self.read_exactly(HEADER.size, deadline))
        if length > RESULT_MAX_BYTES + FRAME_SLACK_BYTES:
            raise WorkerLost(f"an answer of {length} bytes")
        return self.read_exactly(length, deadline)

    def read_exactly(self, size, deadline):
        chunks, missing = [], size
        while missing:
            wait_until(deadline, readable=self.reader)
            try:
                chunk = os.read(self.reader, min(missing, READ_CHUNK))
            except BlockingIOError:
                continue
            if not chunk:
                raise WorkerLost("the worker closed its output")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


class DeadlinePassed(Exception):
    pass


def wait_until(deadline, readable=None, writable=None):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlinePassed()
    ready = select.select([readable] if readable is not None else [],
                          [writable] if writable is not None else [], [], remaining)
    if not any(ready):
        raise DeadlinePassed()


class ComputePool:
    def __init__(self, workers, deadline_seconds, queue_size, memory_megabytes, per_owner=1):
        self.size = workers
        self.deadline_seconds = deadline_seconds
        self.memory_megabytes = memory_megabytes
        # Calls running or waiting for a worker; one more is refused.
        self.admitted = threading.BoundedSemaphore(workers + queue_size)
        self.idle = Queue()
        self.started = False
        self.start_lock = threading.Lock()
        self.pid = os.getpid()
        # Calls running or queued per owner (a user): past `per_owner` the owner's next call
        # waits for one of its own to end, so one user's burst cannot hold every worker.
        self.per_owner = per_owner
        self.owners = {}
        self.owners_changed = threading.Condition()

    def for_owner(self, owner):
        """`run` for calls made on behalf of `owner`: at most `per_owner` of them at once; the
        next waits up to the deadline for one to end, then answers 429."""
        def run(function, *arguments):
            with self.owned(owner):
                return self.run(function, *arguments)
        return run

    @contextlib.contextmanager
    def owned(self, owner):
        deadline = time.monotonic() + self.deadline_seconds
        with self.owners_changed:
            while self.owners.get(owner, 0) >= self.per_owner:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.owners_changed.wait(remaining):
                    raise RateLimited("computation_per_user", headers={"Retry-After": "1"})
            self.owners[owner] = self.owners.get(owner, 0) + 1
        try:
            yield
        finally:
            with self.owners_changed:
                self.owners[owner] -= 1
                if not self.owners[owner]:
                    del self.owners[owner]
                self.owners_changed.notify_all()

    def run(self, function, *arguments):
        """function(*arguments) in a worker, within the deadline. `function` must be importable
        by name (a module-level function); its result must be JSON. Raises what it raised as
        an ApiError, UpstreamTimeout (504) past the deadline, UpstreamUnavailable (503) when
        the queue is full."""
        try:
            call = pickle.dumps((function, arguments), protocol=pickle.HIGHEST_PROTOCOL)
        except RecursionError:
            raise ValidationFailed(details={"_schema": ["the input is nested too deeply"]}) \
                from None
        if not self.admitted.acquire(blocking=False):
            raise UpstreamUnavailable("computation_busy", headers={"Retry-After": "1"})
        try:
            self.start()
            worker = self.idle.get()
            try:
                worker = self.ready(worker)
                answer = self.exchange(worker, call)
            except BaseException:
                worker = self.replaced(worker)
                raise
            finally:
                self.idle.put(worker)
        finally:
            self.admitted.release()
        return outcome(answer)

    def start(self):
        """The workers, started ahead on first use (in each process: a forked copy of the pool
        owns none of its parent's)."""
        with self.start_lock:
            if self.started and self.pid == os.getpid():
                return
            self.idle, self.pid, self.started = Queue(), os.getpid(), True
            for _ in range(self.size):
                self.idle.put(self.spawn())

    def spawn(self):
        command = [sys.executable, "-m", "chatapi.tools.compute_worker",
                   str(self.memory_megabytes), str(RESULT_MAX_BYTES)]
        project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        return Worker(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       cwd=project, close_fds=True))

    def ready(self, worker):
        if not worker.ready:
            try:
                greeting = worker.receive(time.monotonic() + START_SECONDS)
            except (DeadlinePassed, WorkerLost):
                raise ApiError() from None
            if greeting != b"ready":
                raise ApiError()
            worker.ready = True
        return worker

    def exchange(self, worker, call):
        deadline = time.monotonic() + self.deadline_seconds
        try:
            worker.send(call, deadline)
            return worker.receive(deadline)
        except DeadlinePassed:
            raise UpstreamTimeout("computation_timeout", details={
                "deadline_seconds": self.deadline_seconds}) from None
        except WorkerLost as lost:
            raise ApiError() from lost

    def replaced(self, worker):
        """A worker that missed its deadline (or failed) is killed; a fresh one takes its
        place at once, so the next call does not wait for its start."""
        worker.kill()
        return self.spawn()

    def close(self):
        if not self.started or self.pid != os.getpid():
            return
        while not self.idle.empty():
            self.idle.get_nowait().kill()
        self.started = False


def outcome(answer):
    """The result, or the error the worker reported raised here; an answer that is not one
    (the worker is not trusted) is a 500."""
    try:
        decoded = strict_json.loads(answer.decode("ascii"))
        error = decoded.get("error")
        result = decoded["result"] if error is None else None
        failure = None if error is None else ERRORS_BY_STATUS.get(error["status"], ApiError)(
            error["text_key"] if error["text_key"] in TEXTS else None, error["details"])
    except (ValueError, KeyError, TypeError, AttributeError) as unreadable:
        raise ApiError() from unreadable
    if failure is not None:
        raise failure
    return result


POOLS = {}
POOLS_LOCK = threading.Lock()


def compute_pool(config):
    """This process's pool for these settings (apps made with the same settings share it)."""
    settings = (config["COMPUTE_WORKERS"], config["COMPUTE_TIMEOUT"], config["COMPUTE_QUEUE"],
                config["COMPUTE_MEMORY_MB"], config["COMPUTE_PER_USER"])
    with POOLS_LOCK:
        if settings not in POOLS:
            POOLS[settings] = ComputePool(*settings)
        return POOLS[settings]


@atexit.register
def close_pools():
    for pool in list(POOLS.values()):
        pool.close()
