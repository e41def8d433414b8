"""Finding sandboxed processes from the host, for tests that check what a run leaves behind or
that need a run to have reached a point before acting: such a run execs into a sleeper whose
command line carries a marker, the one sign of progress visible from outside the sandbox."""
import os
import signal
import time
import uuid
from pathlib import Path

# A generous bound on a busy 2-core machine: the wait ends as soon as the marker appears.
MARKER_DEADLINE_SECONDS = 60


def processes_of(uid):
    """Live host processes whose real uid is `uid` (a sandbox run's own)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"\nUid:\t{uid}\t" in (entry / "status").read_text():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def new_marker():
    return f"chatapi-test-marker-{uuid.uuid4().hex}"


def exec_into_marked_sleeper(marker):
    """Python source ending a script: replace the interpreter by a sleeper showing `marker`
    (the working directory and any open files stay as they were)."""
    return ("import os, sys\n"
            f"os.execv(sys.executable, [sys.executable, '-c', "
            f"'import time; time.sleep(3600)', {marker!r}])\n")


def marked_process(marker):
    """The host pid of the process showing `marker`, once it exists."""
    deadline = time.monotonic() + MARKER_DEADLINE_SECONDS
    needle = marker.encode()
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and needle in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                pass
        time.sleep(0.02)
    raise AssertionError(f"no process showed {marker} within {MARKER_DEADLINE_SECONDS} s")


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
