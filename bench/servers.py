"""The processes under test, each started as a subprocess in its own session so that a
`finally` can stop it and everything it spawned."""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .procstat import children

PROJECT = Path(__file__).resolve().parent.parent
JWT_SECRET = "bench-jwt-secret-not-for-production-0123456789abcdef"
STAMP = re.compile(r"\[?\d{4}-\d\d-\d\d[ T][\d:,.]+(?: [+-]\d{4})?\]?|\[\d+\]")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process, grace=15):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_listener(module, *args, timeout=15):
    """A server that prints `listening on http://127.0.0.1:PORT` once ready: (process, port)."""
    process = subprocess.Popen([sys.executable, "-m", module, "--port", "0", *args],
                               cwd=PROJECT, stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        stop(process)
        raise RuntimeError(f"{module} did not start within {timeout}s: {line!r}")
    return process, int(line.rsplit(":", 1)[1])


def service_env(database_url, simulator_port, profile_output):
    return {**os.environ, "BENCH_PROFILE_OUTPUT": str(profile_output),
            "DATABASE_URL": database_url, "JWT_SECRET_KEY": JWT_SECRET,
            "ZHIPUAI_API_KEY": "bench",
            "GLM_BASE_URL": f"http://127.0.0.1:{simulator_port}/api/paas/v4",
            "FLASK_APP": "wsgi.py", "WEB_CONCURRENCY": "1", "WORKER_CONNECTIONS": "4000",
            # One upstream connection per concurrent answer: the pool must hold the 1,000.
            "GLM_MAX_CONNECTIONS": "4000",
            # The load client's users send far more than a person would.
            "MAX_CONCURRENT_ANSWERS": "0", "MESSAGE_RATE_LIMIT": "off",
            "SEARCH_RATE_LIMIT": "off"}


def log_errors(log_path, top=5):
    """The most frequent error lines of the service's log: why streams failed, at a glance."""
    counts = {}
    for line in Path(log_path).read_text(errors="replace").splitlines():
        if "Error" in line or "Exception" in line or "[ERROR]" in line:
            # Drop timestamps and pids so that repeats of one error count together.
            text = STAMP.sub("", line).strip()[:200]
            counts[text] = counts.get(text, 0) + 1
    return [f"{count}× {text}" for text, count in
            sorted(counts.items(), key=lambda item: item[1], reverse=True)[:top]]


def upgrade_database(env):
    subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=PROJECT, env=env,
                   check=True, capture_output=True, timeout=120)


def start_service(env, log_path, timeout=30, project=PROJECT, workers=1, app="wsgi:app"):
    """gunicorn with `workers` gevent workers (of the code in `project`), configured by its
    gunicorn.conf.py through bench/gunicorn_profile.py: (master, first worker's pid, port)."""
    port = free_port()
    log = open(log_path, "w")
    master = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                               "bench/gunicorn_profile.py", app], cwd=project,
                              env={**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers)},
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if master.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {master.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                running = children(master.pid)
                if len(running) == workers:
                    return master, running[0], port
        except OSError:
            pass
        time.sleep(0.2)
    stop(master)
    raise TimeoutError(f"gunicorn did not serve within {timeout}s; see {log_path}")
