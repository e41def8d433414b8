"""Real servers on loopback for tests: gunicorn with gevent workers, started as operators do."""
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import requests

PROJECT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raw_request(base, head, timeout=10):
    """Send `head` (bytes, as is: malformed or oversized on purpose) and read the answer until
    the server closes: (status, {lower-cased header: value}, body bytes)."""
    address = urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(head)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    response_head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = response_head.decode("latin-1").split("\r\n")
    headers = dict((name.lower(), value.strip()) for name, _, value in
                   (line.partition(":") for line in lines))
    return int(status_line.split()[1]), headers, body


def wait_until_serving(url, process, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def gunicorn(env, workers=2, extra_args=(), log_path=None):
    with gunicorn_process(env, workers, extra_args, log_path) as (base, _process):
        yield base


@contextmanager
def gunicorn_process(env, workers=2, extra_args=(), log_path=None):
    """gunicorn's base URL and its master process, for tests that signal it. A variable given
    as None is left out of gunicorn's environment."""
    port = free_port()
    environment = {**os.environ, **env, "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    environment = {name: value for name, value in environment.items() if value is not None}
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *extra_args,
               "wsgi:app"]
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=PROJECT, env=environment, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/api/health", process)
        yield base, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if log_path:
            log.close()
