"""The compute pool (chatapi/tools/compute_pool.py): CPU-heavy tool work in worker processes,
each call within a deadline (504, the process killed and replaced), a bounded queue (503), a
memory cap (422), and the pool working on after any of them. Here outside gevent (the test
client); tests/test_compute_gunicorn.py runs it in a gevent worker."""
import math
import operator
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chatapi.errors import (ApiError, RateLimited, UpstreamTimeout, UpstreamUnavailable,
                            ValidationFailed)
from chatapi.tools.compute_pool import ComputePool
from chatapi.tools.csv_summary import MAX_CELLS, MAX_COLUMNS

from .simulator_client import wait_for

PROJECT = Path(__file__).resolve().parent.parent
# 3,000 lists of 100 numbers (under 1 MB of JSON) and a query that keeps json_query busy until
# its own 2-second limit: far past a 1-second deadline on any machine.
SLOW_QUERY = {"data": [[1] * 100] * 3000,
              "expression": "[*][*].to_string(to_string(to_string(@)))"}


@pytest.fixture
def pool():
    made = ComputePool(workers=1, deadline_seconds=1.0, queue_size=0, memory_megabytes=256)
    yield made
    made.close()


def worker_pids(pool):
    return [worker.process.pid for worker in pool.idle.queue]


def is_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_a_call_past_its_deadline_is_504_its_process_killed_and_replaced(pool):
    pool.start()
    [first] = worker_pids(pool)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as timed_out:
        pool.run(time.sleep, 60)
    assert timed_out.value.text_key == "computation_timeout"
    # The deadline counts from the call, not from the worker's start.
    assert time.monotonic() - started < 60
    assert is_gone(first)
    [replacement] = worker_pids(pool)
    assert replacement != first
    assert pool.run(math.factorial, 10) == 3628800


@pytest.mark.slow
def test_a_full_queue_is_503_at_once():
    pool = ComputePool(workers=1, deadline_seconds=30.0, queue_size=0, memory_megabytes=256)
    running = threading.Thread(target=pool.run, args=(time.sleep, 3))
    pool.start()
    running.start()
    try:
        assert wait_for(lambda: pool.idle.empty(), timeout=10.0)
        with pytest.raises(UpstreamUnavailable) as busy:
            pool.run(math.factorial, 3)
        assert busy.value.text_key == "computation_busy"
        assert busy.value.headers == {"Retry-After": "1"}
        running.join()
        assert pool.run(math.factorial, 3) == 6
    finally:
        running.join()
        pool.close()


def test_a_computation_over_its_memory_is_422_and_the_pool_works_on(pool):
    with pytest.raises(ValidationFailed) as refused:
        pool.run(bytearray, 2 * 1024 ** 3)
    assert "memory" in refused.value.details["_schema"][0]
    assert pool.run(math.factorial, 4) == 24


@pytest.mark.slow
def test_a_worker_that_dies_mid_call_is_a_500_and_is_replaced(pool):
    with pytest.raises(ApiError) as failed:
        pool.run(os._exit, 3)
    assert failed.value.status == 500
    assert pool.run(math.factorial, 5) == 120


@pytest.mark.slow
def test_a_tool_computation_past_compute_timeout_is_504_and_the_next_call_works(
        make_app, auth_headers):
    client = make_app(COMPUTE_TIMEOUT=1.0, COMPUTE_WORKERS=1).test_client()
    response = client.post("/api/tools/json_query/execute", headers=auth_headers,
                           json=SLOW_QUERY)
    body = response.get_json()
    assert response.status_code == 504, body
    assert body["error"] == {"code": "upstream_timeout", "details": {"deadline_seconds": 1.0}}
    small = client.post("/api/tools/csv_analyze/execute", headers=auth_headers,
                        json={"csv": "a\n1\n"})
    assert small.status_code == 200 and small.get_json()["data"]["result"]["rows"] == 1


def test_a_csv_over_max_columns_is_422_naming_csv(client, auth_headers):
    header = ",".join(f"c{i}" for i in range(MAX_COLUMNS + 1))
    response = client.post("/api/tools/csv_analyze/execute", headers=auth_headers,
                           json={"csv": f"{header}\n"})
    assert response.status_code == 422
    assert "1,001 columns" in response.get_json()["error"]["details"]["csv"][0]


def test_a_one_row_csv_of_a_million_columns_is_refused_quickly(client, auth_headers):
    started = time.perf_counter()
    response = client.post("/api/tools/csv_analyze/execute", headers=auth_headers,
                           json={"csv": "a" + "," * 999_998})
    assert response.status_code == 422
    assert "999,999 columns" in response.get_json()["error"]["details"]["csv"][0]
    assert time.perf_counter() - started < 10


def test_a_csv_of_max_columns_is_summarized(client, auth_headers):
    header = ",".join(f"c{i}" for i in range(MAX_COLUMNS))
    response = client.post("/api/tools/csv_analyze/execute", headers=auth_headers,
                           json={"csv": f"{header}\n" + ",".join("1" * MAX_COLUMNS) + "\n"})
    assert response.status_code == 200
    assert len(response.get_json()["data"]["result"]["columns"]) == MAX_COLUMNS


def test_rows_past_max_cells_are_left_out_and_flagged_truncated(client, auth_headers):
    rows = MAX_CELLS // MAX_COLUMNS
    header = ",".join(f"c{i}" for i in range(MAX_COLUMNS))
    text = f"{header}\n" + ("1" + "," * (MAX_COLUMNS - 1) + "\n") * (rows + 5)
    response = client.post("/api/tools/csv_analyze/execute", headers=auth_headers,
                           json={"csv": text})
    result = response.get_json()["data"]["result"]
    assert result["rows"] == rows and result["truncated"] is True


def test_a_result_over_the_cap_is_422(pool):
    with pytest.raises(ValidationFailed) as refused:
        pool.run(str.__mul__, "x", 5 * 1024 * 1024)
    assert "cap" in refused.value.details["_schema"][0]


def test_a_result_too_big_to_encode_in_memory_is_422_and_its_worker_lives_on():
    """A result small in memory whose JSON is not: a regex_test whose 1,000 matches each
    captured the rest of 100,000 CJK characters gave 600 MB of ASCII JSON; encoding it ran out
    of memory and killed the worker (a 500, and a worker start, seconds of CPU, for every such
    call). Here the same shape without the matching, whose own time and memory on a loaded
    host could end the call first (with another 422): 1,000 times one such string."""
    pool = ComputePool(workers=1, deadline_seconds=60.0, queue_size=0, memory_megabytes=256)
    try:
        pool.start()
        [worker] = worker_pids(pool)
        with pytest.raises(ValidationFailed) as refused:
            pool.run(operator.mul, ["中" * 100_000], 1000)
        assert "memory" in refused.value.details["_schema"][0]
        assert worker_pids(pool) == [worker]
        assert pool.run(math.factorial, 5) == 120
    finally:
        pool.close()


@pytest.mark.slow
def test_one_owner_waits_for_its_own_calls_while_another_owner_gets_a_worker():
    pool = ComputePool(workers=2, deadline_seconds=30.0, queue_size=8, memory_megabytes=256,
                       per_owner=1)
    alice, bob = pool.for_owner("alice"), pool.for_owner("bob")
    second_done = threading.Event()
    second = threading.Thread(target=lambda: (alice(math.factorial, 3), second_done.set()))
    try:
        with pool.owned("alice"):  # alice's first call, running
            second.start()
            assert wait_for(lambda: pool.owners_changed._waiters, timeout=10.0)
            assert bob(math.factorial, 4) == 24
            assert not second_done.is_set()
        second.join()
        assert second_done.is_set()
        assert pool.owners == {}
    finally:
        second.join()
        pool.close()


@pytest.mark.slow
def test_an_owner_past_its_cap_until_the_deadline_is_429():
    pool = ComputePool(workers=2, deadline_seconds=0.5, queue_size=8, memory_megabytes=256,
                       per_owner=1)
    try:
        with pool.owned("alice"):
            with pytest.raises(RateLimited) as refused:
                pool.for_owner("alice")(math.factorial, 3)
        assert refused.value.text_key == "computation_per_user"
        assert refused.value.headers == {"Retry-After": "1"}
        assert pool.owners == {}
        assert pool.for_owner("alice")(math.factorial, 3) == 6
    finally:
        pool.close()


WEB_STACK = ["chatapi.factory", "chatapi.models", "flask_smorest", "flask_sqlalchemy",
             "marshmallow", "zhipuai"]
LOADED_BY_A_COMPUTE_PROCESS = f"""
import sys
from chatapi.tools import compute_worker
compute_worker.load_tools()
print(sorted(name for name in {WEB_STACK!r} if name in sys.modules))
"""


def test_a_compute_process_loads_the_tools_without_the_web_stack():
    # What a compute process imports before its first call: each held the whole app (128 MB
    # resident once ready here, 65 MB without it).
    completed = subprocess.run([sys.executable, "-c", LOADED_BY_A_COMPUTE_PROCESS],
                               cwd=PROJECT, capture_output=True, text=True, timeout=60,
                               check=True)
    assert completed.stdout == "[]\n", completed.stdout
