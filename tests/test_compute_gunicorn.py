"""CPU-heavy tool calls on the deployment operators run (one gunicorn gevent worker): their work
runs in the compute pool, so the worker's event loop keeps answering /api/health quickly and
its memory stays bounded while eight of them run at once."""
import statistics
import threading
import time
from pathlib import Path

import pytest
import requests

from .conftest import gunicorn_env
from .servers import gunicorn_process

pytestmark = pytest.mark.slow

CALLERS = 8
# Each caller sends one heavy CSV and one refused header: eight heavy calls at once, once.
CALLS_EACH = 2
# /api/health's p99 under the load, against one heavy call made alone just before: a loop
# that ran the computations would hold a probe for up to a whole call, back to back, so its
# p99 would be about one call (1.0). With the pool it is 0.02-0.04 of one on an idle machine;
# CI's second suite on the same two cores stretches both. A bound in seconds (0.1) failed
# there at 0.127 s; the ratio follows the machine's load.
HEALTH_P99_OF_ONE_CALL = 0.5
# The worker's resident memory may grow by this much under the load: eight 1 MB bodies, their
# parsed copies and the results (it grew by 730 MB when csv_analyze ran on the loop).
RSS_GROWTH_BYTES = 150 * 1024 * 1024
COLUMNS = 1000
# The CSV: a header of a million columns, all but the first unnamed (refused past
# 1,000 columns), and the heaviest allowed: 1,000 columns of numbers, as many rows as fit in
# the 1 MB body.
MILLION_COLUMNS = "a" + "," * 999_998
WIDEST_ALLOWED = "\n".join([",".join(f"c{i}" for i in range(COLUMNS))]
                           + [",".join("1" * COLUMNS)] * 490)


@pytest.fixture
def service(app, database_url):
    # Eight of one user's calls at once, each given time to finish on a loaded machine: the
    # test is about the event loop and memory, not the per-user cap or the deadline.
    env = gunicorn_env(database_url, TOOL_RATE_LIMIT="off", COMPUTE_PER_USER="8",
                       COMPUTE_TIMEOUT="120")
    with gunicorn_process(env, workers=1) as (base, master):
        yield base, worker_pid(master.pid)


def worker_pid(master):
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def rss_bytes(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_health_stays_fast_and_memory_bounded_while_8_heavy_csv_analyze_calls_run(
        service, auth_headers):
    base, worker = service
    url = f"{base}/api/tools/csv_analyze/execute"
    warm = requests.post(url, json={"csv": "a\n1\n"}, headers=auth_headers, timeout=60)
    assert warm.status_code == 200, warm.text
    baseline = rss_bytes(worker)
    started = time.perf_counter()
    alone = requests.post(url, json={"csv": WIDEST_ALLOWED}, headers=auth_headers, timeout=120)
    one_call = time.perf_counter() - started
    assert alone.status_code == 200, alone.text
    statuses, peak, running = [], [baseline], threading.Event()

    def call_repeatedly(index):
        with requests.Session() as session:
            for call in range(CALLS_EACH):
                text = MILLION_COLUMNS if (index + call) % 2 else WIDEST_ALLOWED
                statuses.append(session.post(url, json={"csv": text}, headers=auth_headers,
                                             timeout=120).status_code)

    def watch_memory():
        while running.is_set():
            peak.append(rss_bytes(worker))
            time.sleep(0.05)

    callers = [threading.Thread(target=call_repeatedly, args=(i,)) for i in range(CALLERS)]
    watcher = threading.Thread(target=watch_memory)
    running.set()
    watcher.start()
    for caller in callers:
        caller.start()
    latencies = []
    with requests.Session() as session:
        while any(caller.is_alive() for caller in callers):
            started = time.perf_counter()
            assert session.get(f"{base}/api/health", timeout=10).status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    for caller in callers:
        caller.join()
    running.clear()
    watcher.join()
    assert sorted(statuses) == [200] * (CALLERS * CALLS_EACH // 2) + [422] * (
        CALLERS * CALLS_EACH // 2)
    p99 = statistics.quantiles(latencies, n=100)[98]
    growth = max(peak) - baseline
    print(f"\n/api/health: {len(latencies)} probes, p50 {statistics.median(latencies) * 1000:.1f}"
          f" ms, p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; one heavy call "
          f"alone {one_call * 1000:.0f} ms; worker RSS {baseline / 2**20:.0f} MB -> peak "
          f"{max(peak) / 2**20:.0f} MB")
    assert len(latencies) >= 20
    assert p99 < HEALTH_P99_OF_ONE_CALL * one_call, (one_call, sorted(latencies)[-5:])
    assert growth < RSS_GROWTH_BYTES
