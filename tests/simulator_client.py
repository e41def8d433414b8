"""Start the GLM simulator (tests/glm_simulator.py) as a subprocess and read what it saw.

In a conftest::

    @pytest.fixture(scope="session")
    def glm_simulator():
        with running_simulator() as simulator:
            yield simulator
"""
import select
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

PROJECT = Path(__file__).resolve().parent.parent
API_PATH = "/api/paas/v4"


class Simulator:
    """A running simulator: `base_url` for the SDK, and its `/_sim/*` endpoints as methods."""

    def __init__(self, process, origin):
        self.process = process
        self.origin = origin
        self.base_url = origin + API_PATH

    def requests(self):
        return self._get("/_sim/requests")

    def hangups(self):
        return self._get("/_sim/hangups")

    def stats(self):
        return self._get("/_sim/stats")

    def reset(self):
        httpx.post(self.origin + "/_sim/reset", timeout=30).raise_for_status()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()

    def _get(self, path):
        response = httpx.get(self.origin + path, timeout=30)
        response.raise_for_status()
        return response.json()


def start_simulator(api_key=None, timeout=15):
    """Launch `python -m tests.glm_simulator --port 0` and wait for its "listening" line."""
    command = [sys.executable, "-m", "tests.glm_simulator", "--port", "0"]
    if api_key is not None:
        command += ["--api-key", api_key]
    process = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        process.kill()
        process.wait()
        process.stdout.close()
        raise RuntimeError(f"GLM simulator did not start within {timeout}s: {line!r}")
    return Simulator(process, line.split()[-1])


@contextmanager
def running_simulator(api_key=None):
    simulator = start_simulator(api_key)
    try:
        yield simulator
    finally:
        simulator.stop()


def wait_for(probe, timeout=30.0, interval=0.05):
    """Poll `probe()` until it returns something truthy; that value, or None after `timeout`
    (sized for a loaded machine: a probe that comes true returns at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(interval)
    return None
