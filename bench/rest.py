"""Plain JSON endpoints under load: N keep-alive clients in a closed loop, and a slow probe
(`GET /api/health` every 100 ms) that shows whether streaming starves everything else."""
import asyncio
import time

from .http import build_request, connect


def percentile(values, fraction):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def _client(port, request, deadline, max_requests, latencies, failures):
    connection = await connect(port)
    try:
        for _ in range(max_requests):
            if time.monotonic() >= deadline:
                break
            started = time.perf_counter()
            parser = await asyncio.wait_for(connection.send(request), 30)
            if parser.status == 200 and parser.complete:
                latencies.append(time.perf_counter() - started)
            else:
                failures.append(parser.status)
                # The server closed the connection: carry on with a fresh one.
                connection.close()
                connection = await connect(port)
    finally:
        connection.close()


async def hammer(port, path, token, clients, seconds, max_requests=100_000):
    """`clients` connections, each sending the next request as soon as the last is answered."""
    request = build_request("GET", path, port, token=token)
    latencies, failures = [], []
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client(port, request, deadline, max_requests, latencies, failures)
                           for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "failures": len(failures),
            "rps": len(latencies) / elapsed, "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99)}


class HealthProbe:
    """GET /api/health every `interval` seconds until stopped; latencies and failures."""

    def __init__(self, port, interval=0.1, max_probes=10_000):
        self.port = port
        self.interval = interval
        self.max_probes = max_probes
        self.latencies = []
        self.failures = 0
        self.stopped = asyncio.Event()

    async def run(self):
        request = build_request("GET", "/api/health", self.port)
        connection = None
        for _ in range(self.max_probes):
            if self.stopped.is_set():
                break
            started = time.perf_counter()
            try:
                connection = connection or await connect(self.port)
                parser = await asyncio.wait_for(connection.send(request), 10)
                if parser.status == 200 and parser.complete:
                    self.latencies.append(time.perf_counter() - started)
                else:
                    raise ConnectionError(parser.status)
            except (OSError, asyncio.TimeoutError):
                self.failures += 1
                if connection is not None:
                    connection.close()
                connection = None
            try:
                await asyncio.wait_for(self.stopped.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
        if connection is not None:
            connection.close()

    def summary(self):
        return {"probes": len(self.latencies), "failures": self.failures,
                "p50": percentile(self.latencies, 0.50), "p99": percentile(self.latencies, 0.99)}
