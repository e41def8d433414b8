"""Plain JSON endpoints under load: N keep-alive clients in a closed loop, and a slow probe
(`GET /api/health` every 100 ms) that shows whether streaming starves everything else."""
import asyncio
import secrets
import time

from . import seed
from .http import build_request, call, connect


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
    each = [[] for _ in range(clients)]
    failures = []
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client(port, request, deadline, max_requests, latencies, failures)
                           for latencies in each))
    elapsed = time.perf_counter() - started
    latencies = [latency for answered in each for latency in answered]
    counts = sorted(map(len, each))
    # How evenly the worker served its connections: answers of the least and most served.
    return {"requests": len(latencies), "failures": len(failures),
            "rps": len(latencies) / elapsed, "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99), "fewest": counts[0], "most": counts[-1]}


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


async def health_while(port, busy, seconds):
    """/api/health every 50 ms for `seconds`, while `busy` (an awaitable or None) runs."""
    probe = HealthProbe(port, interval=0.05)
    probing = asyncio.create_task(probe.run())
    work = asyncio.ensure_future(busy) if busy is not None else None
    await asyncio.sleep(seconds)
    probe.stopped.set()
    await probing
    return probe.summary(), (await work if work is not None else None)


async def login_storm(bench, seconds, clients=8):
    """Each login hashes with argon2 (~0.1 s of CPU): health must not queue behind them."""
    name = f"bench_login_{secrets.token_hex(4)}"
    connection = await connect(bench.port)
    try:
        status, _ = await call(connection, bench.port, "POST", "/api/auth/register",
                               {"username": name, "email": f"{name}@example.com",
                                "password": seed.PASSWORD})
        assert status == 201, status
    finally:
        connection.close()
    login = build_request("POST", "/api/auth/login", bench.port,
                          {"username": name, "password": seed.PASSWORD})
    quiet, _ = await health_while(bench.port, None, seconds)
    latencies, failures = [], []
    deadline = time.monotonic() + seconds
    storm = asyncio.gather(*(_client(bench.port, login, deadline, 10_000, latencies, failures)
                             for _ in range(clients)))
    busy, _ = await health_while(bench.port, storm, seconds)
    return {"quiet": quiet, "busy": busy, "logins": len(latencies), "failures": len(failures),
            "logins_per_s": len(latencies) / seconds, "clients": clients}
