"""Bench-only gunicorn config: the project's gunicorn.conf.py, plus a cProfile in the worker
that the bench switches on (SIGRTMIN+1) and off (SIGRTMIN+2, which writes the stats to
$BENCH_PROFILE_OUTPUT). py-spy cannot attach on this machine, hence the in-process profiler.
Off, it costs nothing: two signal handlers. BENCH_PROFILE_CLOCK=cpu times it by the process's
CPU (time.process_time) instead of the wall clock, so that waits on a database or a socket count
for nothing."""
import cProfile
import os
import runpy
import signal
import time
from pathlib import Path

START, STOP = signal.SIGRTMIN + 1, signal.SIGRTMIN + 2

_project = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
# gunicorn ignores names that are not settings, so copying every public name is safe.
globals().update({name: value for name, value in _project.items()
                  if not name.startswith("_") and name != "post_fork"})


def post_fork(server, worker):
    if "post_fork" in _project:
        _project["post_fork"](server, worker)
    cpu = os.environ.get("BENCH_PROFILE_CLOCK") == "cpu"
    profile = cProfile.Profile(time.process_time) if cpu else cProfile.Profile()

    def start(signum, frame):
        profile.enable()

    def stop(signum, frame):
        profile.disable()
        profile.dump_stats(os.environ["BENCH_PROFILE_OUTPUT"])

    # Installed before the worker's gevent patching: plain handlers that run on the main
    # thread, where every greenlet of the worker runs too, so the profile sees all requests.
    signal.signal(START, start)
    signal.signal(STOP, stop)
