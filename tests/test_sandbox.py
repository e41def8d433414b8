"""The sandbox itself, without the app: teardown of everything a run started, the output cap
on both streams, the tmpfs cap, the uid slots, the non-blocking wait under gevent, and the hosts
it refuses to run on. The attacks through the API are in tests/security/test_sandbox_escapes.py."""
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from chatapi.tools import sandbox

from .sandbox_processes import processes_of
from .servers import PROJECT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox switches user: needs root")

SETTINGS = sandbox.Settings(python=sandbox.default_python(), bwrap=sandbox.default_bwrap())
# Deadlines for runs that end by themselves: generous, so that a busy machine never hits them.
GENEROUS_TIMEOUT = 30


def test_processes_left_behind_by_a_script_that_exits_are_killed_with_it():
    code = textwrap.dedent("""\
        import os, subprocess, sys
        print(os.getuid(), flush=True)
        if os.fork() == 0:
            os.setsid()
            subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])
            print('escaped', flush=True)
            os._exit(0)
        os.wait()
        """)
    result = sandbox.run(code, "", GENEROUS_TIMEOUT, SETTINGS)
    uid, escaped = result["stdout"].split()
    assert (escaped, result["exit_code"], result["timed_out"]) == ("escaped", 0, False)
    assert processes_of(int(uid)) == []


def test_stderr_is_capped_like_stdout():
    settings = sandbox.Settings(python=SETTINGS.python, bwrap=SETTINGS.bwrap, output_bytes=1000)
    result = sandbox.run("import sys\nsys.stderr.write('e' * 5000)\nprint('ok')", "",
                         GENEROUS_TIMEOUT, settings)
    assert result["stderr"] == "e" * 1000
    assert result["truncated"] is True


def test_a_script_ignoring_a_large_stdin_does_not_hang():
    result = sandbox.run("print('ignored')", "x" * 100_000, GENEROUS_TIMEOUT, SETTINGS)
    assert result["stdout"] == "ignored\n"
    assert result["timed_out"] is False


def test_a_death_by_signal_is_a_negative_exit_code():
    result = sandbox.run("import ctypes\nctypes.string_at(0)", "", GENEROUS_TIMEOUT, SETTINGS)
    assert result["exit_code"] == -11


def test_this_host_can_make_the_sandbox():
    assert sandbox.isolation_works(SETTINGS) is True


def test_tmp_holds_at_most_sandbox_tmpfs_mb_whatever_the_file_size_limit():
    settings = sandbox.Settings(python=SETTINGS.python, bwrap=SETTINGS.bwrap,
                                tmpfs_bytes=16 * sandbox.MIB)
    code = ("written = 0\n"
            "try:\n"
            "    for name in 'abc':\n"
            "        with open(f'/tmp/{name}', 'wb') as handle:\n"
            "            handle.write(b'x' * 8 * 1024 * 1024)\n"
            "        written += 8\n"
            "except OSError as error:\n"
            "    print(written, error.strerror)\n")
    result = sandbox.run(code, "", GENEROUS_TIMEOUT, settings)
    assert result["stdout"] == "8 No space left on device\n"


def with_own_lock_dir(tmp_path, **changes):
    """Settings whose uid slots no other test process takes, so which slot a run gets is known."""
    return sandbox.Settings(python=SETTINGS.python, bwrap=SETTINGS.bwrap,
                            lock_dir=str(tmp_path / "locks"), **changes)


def test_a_run_under_the_same_uid_finds_nothing_of_the_run_before_it(tmp_path):
    settings = with_own_lock_dir(tmp_path)
    first = sandbox.run("open('/tmp/left', 'w').write('x')\nopen('left', 'w').write('x')\n"
                        "import os\nprint(os.getuid())", "", GENEROUS_TIMEOUT, settings)
    second = sandbox.run("import os\nprint(os.getuid(), sorted(os.listdir('/tmp')), "
                         "sorted(os.listdir('.')))", "", GENEROUS_TIMEOUT, settings)
    assert second["stdout"] == f"{first['stdout'].strip()} ['work'] ['main.py']\n"


def test_concurrent_runs_get_uids_of_their_own_and_none_is_left_when_all_are_taken(tmp_path):
    settings = with_own_lock_dir(tmp_path, uid_count=2)
    with sandbox.uid_slot(settings) as held:
        result = sandbox.run("import os\nprint(os.getuid())", "", GENEROUS_TIMEOUT, settings)
        assert result["stdout"] == f"{held + 1}\n"
        with sandbox.uid_slot(settings):
            with pytest.raises(sandbox.SandboxBusy):
                sandbox.run("print(1)", "", GENEROUS_TIMEOUT, settings)


def test_without_bwrap_the_sandbox_is_unavailable():
    for bwrap in (None, "/nonexistent/bwrap"):
        settings = sandbox.Settings(python=SETTINGS.python, bwrap=bwrap)
        with pytest.raises(sandbox.IsolationUnavailable):
            sandbox.run("print(1)", "", GENEROUS_TIMEOUT, settings)


def test_with_a_python_outside_the_runtime_the_sandbox_is_unavailable():
    settings = sandbox.Settings(python=os.path.realpath(sys.executable), bwrap=SETTINGS.bwrap)
    with pytest.raises(sandbox.IsolationUnavailable):
        sandbox.run("print(1)", "", GENEROUS_TIMEOUT, settings)


RUN_ONCE = """
import json, sys
from chatapi.tools import sandbox
settings = sandbox.Settings(python=sandbox.default_python(), bwrap=sandbox.default_bwrap())
print(json.dumps(sandbox.run(sys.argv[1], "", float(sys.argv[2]), settings)))
"""


def run_in_a_new_process(code, timeout=GENEROUS_TIMEOUT, preexec=(), env=None):
    completed = subprocess.run([*preexec, sys.executable, "-c", RUN_ONCE, code, str(timeout)],
                               cwd=PROJECT, env=env, capture_output=True, text=True,
                               timeout=timeout + 60, check=True)
    return json.loads(completed.stdout)


@pytest.mark.slow
def test_runs_work_with_tmpdir_under_a_private_folder(tmp_path):
    private = tmp_path / "private"
    (private / "tmp").mkdir(parents=True)
    private.chmod(0o700)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    result = run_in_a_new_process("print('ran')",
                                  env={**os.environ, "TMPDIR": str(private / "tmp")})
    assert (result["stdout"], result["exit_code"]) == ("ran\n", 0)


@pytest.mark.slow
def test_the_capabilities_of_the_systemd_unit_are_enough_to_run_and_to_kill():
    """deploy/chatapi.service keeps CAP_SETUID, CAP_SETGID and CAP_KILL only (no CAP_SYS_ADMIN:
    bwrap makes its namespaces inside a user namespace of the run's uid)."""
    unit_capabilities = ["setpriv", "--bounding-set=-all,+setuid,+setgid,+kill", "--"]
    result = run_in_a_new_process("print('ran', flush=True)\nwhile True: pass", timeout=2,
                                  preexec=unit_capabilities)
    assert (result["stdout"], result["exit_code"], result["timed_out"]) == ("ran\n", -9, True)


IN_A_USER_NAMESPACE_WITHOUT_NESTED_ONES = """
import ctypes, os, sys
CLONE_NEWUSER = 0x10000000
ready_read, ready_write = os.pipe()
go_read, go_write = os.pipe()
pid = os.fork()
if pid == 0:
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER) != 0:
        os._exit(90)
    os.write(ready_write, b"x")
    os.read(go_read, 1)
    with open("/proc/sys/user/max_user_namespaces", "w") as limit:
        limit.write("0")
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
os.read(ready_read, 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as mapping:
        mapping.write("0 0 4294967295")
os.write(go_write, b"x")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""
PROBE = """
from chatapi.tools import sandbox
settings = sandbox.Settings(python=sandbox.default_python(), bwrap=sandbox.default_bwrap())
try:
    sandbox.run("print(1)", "", 30, settings)
except sandbox.IsolationUnavailable:
    print("unavailable")
"""


@pytest.mark.slow
def test_where_user_namespaces_are_refused_the_sandbox_is_unavailable():
    """As on a host with user.max_user_namespaces = 0: the service, still root with every uid
    mapped, in a user namespace where no nested one may be made."""
    completed = subprocess.run(
        [sys.executable, "-c", IN_A_USER_NAMESPACE_WITHOUT_NESTED_ONES, PROBE], cwd=PROJECT,
        capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout == "unavailable\n"
    assert "Creating new namespace failed" in completed.stderr


WAIT_UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import json, time
import gevent
from chatapi.tools import sandbox

settings = sandbox.Settings(python=sandbox.default_python(), bwrap=sandbox.default_bwrap())
sandbox.run("pass", "", 30, settings)
SLEEP_ONE_SECOND = "import time; began = time.time(); time.sleep(1); print(began, time.time())"
ticks = []

def tick():
    while True:
        ticks.append(time.perf_counter())
        gevent.sleep(0.05)

ticker = gevent.spawn(tick)
started = time.perf_counter()
runs = [gevent.spawn(sandbox.run, SLEEP_ONE_SECOND, "", 30, settings) for _ in range(3)]
gevent.joinall(runs, raise_error=True)
ticker.kill()
print(json.dumps({"elapsed": time.perf_counter() - started, "ticks": len(ticks),
                  "stdout": [run.value["stdout"] for run in runs]}))
"""


@pytest.mark.slow
def test_under_gevent_runs_wait_without_blocking_the_event_loop():
    completed = subprocess.run([sys.executable, "-c", WAIT_UNDER_GEVENT], cwd=PROJECT,
                               capture_output=True, text=True, timeout=30, check=True)
    report = json.loads(completed.stdout)
    spans = [[float(clock) for clock in stdout.split()] for stdout in report["stdout"]]
    # Each run's own clock (the host's, in its namespaces): the three slept at the same time,
    # however long a loaded machine took to start them.
    assert max(began for began, _ in spans) < min(ended for _, ended in spans), spans
    assert report["ticks"] >= 15, "the loop must keep running while the runs wait"
