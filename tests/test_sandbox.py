"""The sandbox itself, without the app: teardown of everything a run started, the output cap
on both streams, the non-blocking wait under gevent and the host without namespaces."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from chatapi.tools import sandbox

from .servers import PROJECT
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox switches user: needs root")

SETTINGS = sandbox.Settings(python=sandbox.default_python())


def sandbox_processes(workdir):
    """Live processes whose working directory is (or was) the sandbox's."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd").startswith(workdir):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def test_processes_left_behind_by_a_script_that_exits_are_killed_with_it():
    code = textwrap.dedent("""\
        import os, subprocess
        print(os.getcwd(), flush=True)
        if os.fork() == 0:
            os.setsid()
            subprocess.Popen(['sleep', '3600'])
            print('escaped', flush=True)
            os._exit(0)
        os.wait()
        """)
    result = sandbox.run(code, "", 10, SETTINGS)
    workdir, escaped = result["stdout"].split()
    assert (escaped, result["exit_code"], result["timed_out"]) == ("escaped", 0, False)
    assert sandbox_processes(workdir) == []


def test_stderr_is_capped_like_stdout():
    settings = sandbox.Settings(python=SETTINGS.python, output_bytes=1000)
    result = sandbox.run("import sys\nsys.stderr.write('e' * 5000)\nprint('ok')", "", 10,
                         settings)
    assert result["stderr"] == "e" * 1000
    assert result["truncated"] is True


def test_a_script_ignoring_a_large_stdin_does_not_hang():
    result = sandbox.run("print('ignored')", "x" * 100_000, 5, SETTINGS)
    assert result["stdout"] == "ignored\n"
    assert result["timed_out"] is False


def test_an_unknown_isolation_mode_is_refused():
    with pytest.raises(ValueError):
        sandbox.Settings(python=SETTINGS.python, network_isolation="maybe")


def test_this_host_can_make_namespaces():
    assert sandbox.namespaces_available() is True


WAIT_UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import json, time
import gevent
from chatapi.tools import sandbox

settings = sandbox.Settings(python=sandbox.default_python())
ticks = []

def tick():
    while True:
        ticks.append(time.perf_counter())
        gevent.sleep(0.05)

ticker = gevent.spawn(tick)
started = time.perf_counter()
runs = [gevent.spawn(sandbox.run, "import time; time.sleep(1); print('done')", "", 10, settings)
        for _ in range(3)]
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
    assert report["stdout"] == ["done\n"] * 3
    assert report["elapsed"] < 2.0, "three 1 s runs must overlap"
    assert report["ticks"] >= 15, "the loop must keep running while the runs wait"


WITHOUT_CAP_SYS_ADMIN = """
import json, sys
from chatapi.tools import sandbox
python = sandbox.default_python()
try:
    sandbox.run("print(1)", "", 5, sandbox.Settings(python=python))
    refused = False
except sandbox.IsolationUnavailable:
    refused = True
result = sandbox.run("import os; print(os.getuid(), sorted(os.environ))", "", 5,
                     sandbox.Settings(python=python, network_isolation="off"))
print(json.dumps({"available": sandbox.namespaces_available(), "refused": refused,
                  "result": result}))
"""


def test_without_cap_sys_admin_require_refuses_and_off_runs_with_the_other_limits():
    completed = subprocess.run(
        ["setpriv", "--bounding-set=-sys_admin", "--", sys.executable, "-c",
         WITHOUT_CAP_SYS_ADMIN], cwd=PROJECT, capture_output=True, text=True, timeout=30,
        check=True)
    report = json.loads(completed.stdout)
    assert report["available"] is False
    assert report["refused"] is True
    assert report["result"]["stdout"] == "65534 ['HOME', 'LANG', 'PATH', 'TMPDIR']\n"


def test_no_sandbox_directory_is_left_in_the_temp_folder():
    before = set(Path(tempfile.gettempdir()).glob("chatapi-sandbox-*"))
    sandbox.run("open('file', 'w').write('data')", "", 5, SETTINGS)
    after = set(Path(tempfile.gettempdir()).glob("chatapi-sandbox-*"))
    assert after <= before
