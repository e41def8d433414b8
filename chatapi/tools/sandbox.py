"""The sandbox `run_python` runs code in: a separate Python in isolated mode with an empty
environment, in a fresh directory, as an unprivileged uid, under rlimits, in its own network
and pid namespaces, killed whole at its deadline. Built from util-linux (`unshare`, `setpriv`,
`prlimit`) so no Python runs in the forked child before exec: safe next to threads and gevent.
Standard library only, so it can be exercised without the app."""
import functools
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

PATH = "/usr/local/bin:/usr/bin:/bin"
MIB = 1024 * 1024
READ_CHUNK = 64 * 1024
# Without namespaces a detached grandchild can hold the pipes open after the run has ended.
DRAIN_GRACE_SECONDS = 2.0
ISOLATION_MODES = ("require", "off")
# util-linux 2.38 `unshare --fork` cannot re-raise SIGKILL when its child died of it: it prints
# this and exits 1 instead, so that pair means "killed by SIGKILL".
UNSHARE_SIGKILL_NOTE = b"unshare: sigprocmask unblock failed: Invalid argument\n"


class IsolationUnavailable(Exception):
    """This host cannot give the child its own network namespace (not root, or no
    CAP_SYS_ADMIN as in a default container)."""


@dataclass(frozen=True)
class Settings:
    python: str
    uid: int = 65534
    gid: int = 65534
    network_isolation: str = "require"
    memory_bytes: int = 512 * MIB
    max_processes: int = 32
    file_size_bytes: int = 10 * MIB
    open_files: int = 64
    output_bytes: int = MIB

    def __post_init__(self):
        if self.network_isolation not in ISOLATION_MODES:
            raise ValueError(f"network_isolation must be one of {ISOLATION_MODES}")


def default_python():
    """The system interpreter rather than the service's own: the service's may live where the
    sandbox uid cannot read it (a pyenv under /root), and its site-packages stay out of reach."""
    return shutil.which("python3", path=PATH)


@functools.cache
def namespaces_available():
    """Tried once per process: can we make network and pid namespaces here?"""
    try:
        probe = subprocess.run(["unshare", "--net", "--pid", "--fork", "true"], env={"PATH": PATH},
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def command(settings, timeout, namespaced):
    limits = ["prlimit", f"--cpu={math.ceil(timeout) + 1}", f"--as={settings.memory_bytes}",
              f"--nproc={settings.max_processes}", f"--fsize={settings.file_size_bytes}",
              f"--nofile={settings.open_files}", "--core=0", "--"]
    python = [settings.python, "-I", "-S", "-B", "main.py"]
    if os.geteuid() != 0:
        return limits + python
    user = ["setpriv", f"--reuid={settings.uid}", f"--regid={settings.gid}", "--clear-groups",
            "--no-new-privs", "--"]
    namespaces = ["unshare", "--net", "--pid", "--fork", "--"] if namespaced else []
    return namespaces + user + limits + python


def run(code, stdin, timeout, settings):
    """Run `code` with `stdin` for at most `timeout` seconds of wall-clock time ->
    {stdout, stderr, exit_code, duration_ms, timed_out, truncated}. exit_code is negative
    (minus the signal number) when the child was killed."""
    namespaced = namespaces_available()
    if not namespaced and settings.network_isolation == "require":
        raise IsolationUnavailable()
    workdir = tempfile.mkdtemp(prefix="chatapi-sandbox-")
    try:
        script = os.path.join(workdir, "main.py")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(code)
        if os.geteuid() == 0:
            os.chown(workdir, settings.uid, settings.gid)
            os.chown(script, settings.uid, settings.gid)
        env = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
        with tempfile.TemporaryFile() as stdin_file:
            stdin_file.write(stdin.encode("utf-8"))
            stdin_file.seek(0)
            return supervise(command(settings, timeout, namespaced), workdir, env, stdin_file,
                             timeout, settings.output_bytes, namespaced)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def supervise(argv, workdir, env, stdin_file, timeout, output_bytes, namespaced):
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=workdir, env=env, stdin=stdin_file,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                               start_new_session=True)
    stopper = Stopper(process, namespaced)
    stdout = CappedReader(process.stdout, output_bytes, stopper.stop)
    stderr = CappedReader(process.stderr, output_bytes, stopper.stop)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stopper.stop(timed_out=True)
        process.wait()
    finally:
        stdout.join()
        stderr.join()
        process.stdout.close()
        process.stderr.close()
    exit_code, stderr_bytes = process.returncode, stderr.content()
    if namespaced and exit_code == 1 and stderr.tail == UNSHARE_SIGKILL_NOTE:
        exit_code = -signal.SIGKILL
        stderr_bytes = stderr_bytes.removesuffix(UNSHARE_SIGKILL_NOTE)
    return {"stdout": decoded(stdout.content()), "stderr": decoded(stderr_bytes),
            "exit_code": exit_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "timed_out": stopper.timed_out, "truncated": stdout.truncated or stderr.truncated}


class Stopper:
    """Kills the whole run. With namespaces it kills the pid namespace's init (unshare's
    child): the kernel then kills every process in the namespace, including any that left the
    process group, and unshare exits only after they are gone. Without namespaces the process
    group is all there is to kill."""

    def __init__(self, process, namespaced):
        self.process = process
        self.namespaced = namespaced
        self.timed_out = False

    def stop(self, timed_out=False):
        self.timed_out = self.timed_out or timed_out
        inits = children_of(self.process.pid) if self.namespaced else []
        for pid in inits:
            signal_quietly(os.kill, pid)
        if not inits:
            signal_quietly(os.killpg, self.process.pid)


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except FileNotFoundError:
        return []


def signal_quietly(kill, pid):
    try:
        kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class CappedReader:
    """Reads a pipe to its end in a thread (a greenlet under gevent), keeping at most `cap`
    bytes; past the cap it calls `on_overflow` to kill the writer and drops the rest. It reads
    on to the end even then: a writer blocked on the full pipe (unshare reporting its child's
    death on stderr) would otherwise hold the run until its deadline."""

    def __init__(self, pipe, cap, on_overflow):
        self.pipe = pipe
        self.cap = cap
        self.on_overflow = on_overflow
        self.chunks = []
        self.size = 0
        self.truncated = False
        self.tail = b""  # the last bytes read, kept or dropped
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        try:
            while chunk := self.pipe.read(READ_CHUNK):
                self.keep(chunk)
        except (OSError, ValueError):
            pass  # closed after DRAIN_GRACE_SECONDS: a detached writer still holds it open

    def keep(self, chunk):
        room = max(self.cap - self.size, 0)
        if room:
            self.chunks.append(chunk[:room])
            self.size += min(len(chunk), room)
        self.tail = (self.tail + chunk)[-len(UNSHARE_SIGKILL_NOTE):]
        if len(chunk) > room and not self.truncated:
            self.truncated = True
            self.on_overflow()

    def join(self):
        self.thread.join(DRAIN_GRACE_SECONDS)

    def content(self):
        return b"".join(self.chunks)


def decoded(output):
    return output.decode("utf-8", "replace")
