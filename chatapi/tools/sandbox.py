"""The sandbox `run_python` runs code in, built on bubblewrap. A chain of exec'd tools, so no
Python runs in the forked child before exec (safe next to threads and gevent):
`setpriv` switches to a uid of this run's own (a slot of a range, held with flock so that no
other worker's run has it), without groups, with no-new-privs; `prlimit` sets the rlimits;
`bwrap`, unprivileged, makes user, mount, pid, network, ipc, uts and cgroup namespaces around a
root holding only the Python runtime read-only (`/usr`, package folders masked), its own `/proc`
and `/dev`, and a size-capped tmpfs `/tmp` with the work dir; user namespaces are disabled
inside; the interpreter is the pid namespace's init. The whole run is killed at its deadline.
SECURITY.md says what each layer stops. Standard library only: usable without the app."""
import contextlib
import fcntl
import functools
import json
import logging
import math
import os
import shutil
import signal
import site
import subprocess
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

PATH = "/usr/local/bin:/usr/bin:/bin"
MIB = 1024 * 1024
READ_CHUNK = 64 * 1024
WORKDIR = "/tmp/work"
RUNTIME = "/usr"
# Merged-/usr links (or, on older layouts, folders) the runtime is reached through.
RUNTIME_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The service's code and instance folder (its SQLite database) must not be reachable either.
PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# bwrap itself runs under the run's uid and counts in its RLIMIT_NPROC: the code gets
# SANDBOX_MAX_PROCESSES on top of it.
BWRAP_PROCESSES = 1
# bwrap reports its command's death by signal n as the exit code 128 + n.
SIGNAL_EXIT_BASE = 128
MAX_SIGNAL = 64
PROBE_TIMEOUT_SECONDS = 30


class IsolationUnavailable(Exception):
    """This host cannot build the sandbox: no bwrap, not root, or namespaces refused."""


class SandboxBusy(Exception):
    """Every uid of the range is running code."""


@dataclass(frozen=True)
class Settings:
    python: str
    bwrap: str | None
    first_uid: int = 1879048192
    uid_count: int = 256
    lock_dir: str = "/run/chatapi-sandbox"
    tmpfs_bytes: int = 64 * MIB
    memory_bytes: int = 512 * MIB
    max_processes: int = 32
    file_size_bytes: int = 10 * MIB
    open_files: int = 64
    output_bytes: int = MIB


def default_python():
    """The system interpreter rather than the service's own: only /usr is in the sandbox."""
    return shutil.which("python3", path=PATH)


def default_bwrap():
    return shutil.which("bwrap", path=PATH)


def run(code, stdin, timeout, settings):
    """Run `code` with `stdin` for at most `timeout` seconds of wall-clock time ->
    {stdout, stderr, exit_code, duration_ms, timed_out, truncated}. exit_code is negative
    (minus the signal number) when the child was killed."""
    if not isolation_works(settings):
        raise IsolationUnavailable()
    return sandboxed(code, stdin, timeout, settings)


@functools.cache
def isolation_works(settings):
    """Tried once per process and settings: an empty script through the very same command."""
    if not settings.bwrap:
        log.warning("run_python unavailable: no bwrap on %s (Debian package bubblewrap)", PATH)
        return False
    try:
        result = sandboxed("", "", PROBE_TIMEOUT_SECONDS, settings)
    except OSError as error:
        log.warning("run_python unavailable: %s", error)
        return False
    if result["exit_code"] != 0:
        log.warning("run_python unavailable: the sandbox exited with %s: %s",
                    result["exit_code"], result["stderr"].strip())
    return result["exit_code"] == 0


def sandboxed(code, stdin, timeout, settings):
    with uid_slot(settings) as uid, memory_file("main.py", code) as script, \
            memory_file("stdin", stdin) as stdin_file:
        return supervise(settings, uid, script, stdin_file, timeout)


@contextlib.contextmanager
def uid_slot(settings):
    """A uid of the range that no run on this host is using: the first whose lock file we can
    flock. The lock lives as long as the run (or the worker: the kernel drops it with them)."""
    os.makedirs(settings.lock_dir, mode=0o700, exist_ok=True)
    for uid in range(settings.first_uid, settings.first_uid + settings.uid_count):
        lock = open(os.path.join(settings.lock_dir, str(uid)), "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        with lock:
            yield uid
        return
    raise SandboxBusy()


@contextlib.contextmanager
def memory_file(name, text):
    """A file without a path (memfd): reachable whatever TMPDIR is, gone with its last fd."""
    fd = os.memfd_create(name)
    try:
        os.write(fd, text.encode("utf-8", "surrogatepass"))
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)


def command(settings, timeout, uid, script_fd):
    user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--"]
    limits = ["prlimit", f"--cpu={math.ceil(timeout) + 1}", f"--as={settings.memory_bytes}",
              f"--nproc={settings.max_processes + BWRAP_PROCESSES}",
              f"--fsize={settings.file_size_bytes}", f"--nofile={settings.open_files}",
              "--core=0", "--"]
    namespaces = [settings.bwrap, "--unshare-user", "--disable-userns", "--unshare-pid",
                  "--unshare-net", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox",
                  "--unshare-cgroup", "--die-with-parent", "--as-pid-1"]
    root = [*runtime_mounts(settings.python), "--proc", "/proc", "--dev", "/dev",
            "--size", str(settings.tmpfs_bytes), "--tmpfs", "/tmp", "--dir", WORKDIR,
            "--file", str(script_fd), f"{WORKDIR}/main.py",
            "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORKDIR]
    python = ["--", settings.python, "-I", "-S", "-B", "main.py"]
    return user + limits + namespaces + root + python


@functools.cache
def runtime_mounts(python):
    mounts = ["--ro-bind", RUNTIME, RUNTIME]
    for path in RUNTIME_LINKS:
        if os.path.islink(path):
            mounts += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            mounts += ["--ro-bind", path, path]
    for path in hidden_paths(python):
        mounts += ["--tmpfs", path, "--remount-ro", path]
    return tuple(mounts)


def hidden_paths(python):
    """Folders under the runtime to mask with an empty read-only tmpfs: package folders of the
    sandbox's interpreter and of the service's (where the service's own packages may live),
    and the project itself when it sits under /usr."""
    asked = subprocess.run([python, "-I", "-c", "import json, site\n"
                            "print(json.dumps(site.getsitepackages()))"],
                           env={"PATH": PATH}, capture_output=True, text=True, timeout=30)
    candidates = json.loads(asked.stdout or "[]") + site.getsitepackages() + [PROJECT]
    return sorted({os.path.realpath(path) for path in candidates
                   if os.path.realpath(path).startswith(RUNTIME + "/")
                   and os.path.isdir(path)})


def supervise(settings, uid, script_fd, stdin_file, timeout):
    started = time.perf_counter()
    process = subprocess.Popen(
        command(settings, timeout, uid, script_fd), cwd="/",
        env={"PATH": PATH, "LANG": "C.UTF-8", "HOME": WORKDIR, "TMPDIR": "/tmp"},
        stdin=stdin_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
        pass_fds=(script_fd,), start_new_session=True)
    stopper = Stopper(process)
    stdout = CappedReader(process.stdout, settings.output_bytes, stopper.stop)
    stderr = CappedReader(process.stderr, settings.output_bytes, stopper.stop)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stopper.stop(timed_out=True)
        process.wait()
    finally:
        # The interpreter is the pid namespace's init: when it ends, the kernel kills and reaps
        # every other process of the namespace before bwrap can reap it and exit. So nothing
        # is left that could hold the pipes open or the uid.
        stdout.join()
        stderr.join()
        process.stdout.close()
        process.stderr.close()
    return {"stdout": decoded(stdout.content()), "stderr": decoded(stderr.content()),
            "exit_code": exit_code(process.returncode),
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "timed_out": stopper.timed_out, "truncated": stdout.truncated or stderr.truncated}


def exit_code(returncode):
    if SIGNAL_EXIT_BASE < returncode <= SIGNAL_EXIT_BASE + MAX_SIGNAL:
        return SIGNAL_EXIT_BASE - returncode
    return returncode


class Stopper:
    """Kills the whole run: the pid namespace's init (bwrap's child, the interpreter), whose
    death makes the kernel kill every process in the namespace, even those that left the
    process group; bwrap then exits with 128 + SIGKILL. Before bwrap has forked, the process
    group is all there is."""

    def __init__(self, process):
        self.process = process
        self.timed_out = False

    def stop(self, timed_out=False):
        self.timed_out = self.timed_out or timed_out
        inits = children_of(self.process.pid)
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
    on to the end even then, so that no writer blocks on a full pipe."""

    def __init__(self, pipe, cap, on_overflow):
        self.pipe = pipe
        self.cap = cap
        self.on_overflow = on_overflow
        self.chunks = []
        self.size = 0
        self.truncated = False
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        while chunk := self.pipe.read(READ_CHUNK):
            self.keep(chunk)

    def keep(self, chunk):
        room = max(self.cap - self.size, 0)
        if room:
            self.chunks.append(chunk[:room])
            self.size += min(len(chunk), room)
        if len(chunk) > room and not self.truncated:
            self.truncated = True
            self.on_overflow()

    def join(self):
        self.thread.join()

    def content(self):
        return b"".join(self.chunks)


def decoded(output):
    return output.decode("utf-8", "replace")
