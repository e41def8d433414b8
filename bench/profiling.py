"""Rank the worker's functions from the cProfile stats that bench/gunicorn_profile.py wrote."""
import os
import pstats
import time
from pathlib import Path

from .gunicorn_profile import START, STOP


def start(pid):
    os.kill(pid, START)


def stop(pid, output, timeout=10.0):
    """Ask the worker to write its stats; wait (bounded) for the file to appear."""
    os.kill(pid, STOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if output.exists() and output.stat().st_size:
            time.sleep(0.2)
            return True
        time.sleep(0.1)
    return False


def _name(key):
    path, line, function = key
    if path == "~":
        return function
    short = path.split("site-packages/")[-1].split(str(Path.cwd()) + "/")[-1]
    return f"{function} ({short}:{line})"


def rank(output, top=15):
    """(total own seconds, [(function, own s, calls)], [(function, cumulative s, calls)])."""
    stats = pstats.Stats(str(output)).stats
    rows = [(_name(key), own, cumulative, calls)
            for key, (_, calls, own, cumulative, _) in stats.items()]
    total = sum(own for _, own, _, _ in rows)
    by_own = sorted(rows, key=lambda row: row[1], reverse=True)[:top]
    by_cumulative = sorted(rows, key=lambda row: row[2], reverse=True)[:top]
    return (total, [(name, own, calls) for name, own, _, calls in by_own],
            [(name, cumulative, calls) for name, _, cumulative, calls in by_cumulative])
