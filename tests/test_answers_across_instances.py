"""Answers as jobs across instances (docs/API.md §4, "Answers as jobs"; issue 17): two gunicorn
instances (one gevent worker each) on one database, the GLM simulator behind them. A stream cut
at a random byte on one instance and re-attached on the other with `Last-Event-ID` tells the
stored answer exactly; a stop sent to the other instance ends the answer (its model connection,
its running tool) where it runs; a stop of an answer whose worker was killed ends it at once."""
import json
import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from .conftest import gunicorn_env
from .servers import gunicorn_process
from .simulator_client import wait_for
from .test_nginx import NGINX, nginx

pytestmark = pytest.mark.slow

STREAMS = 200
AT_ONCE = 16
SEED = int(os.environ.get("CUTS_SEED", random.randrange(2**32)))
# Two chunks, then silence for as long as the test lasts.
STALLED = "[[chunks:4]][[stall_after:2]][[stall:600]]"
SETTINGS = {"MESSAGE_RATE_LIMIT": "off", "TOOL_RATE_LIMIT": "off",
            "MAX_CONCURRENT_ANSWERS": "0", "GRACEFUL_TIMEOUT": "3",
            "GLM_READ_TIMEOUT": "600", "FETCH_TIMEOUT": "600"}


def start_instances(stack, env, count=2):
    """`count` gunicorn instances of one worker on the same database: [(base URL, master)]."""
    return [stack.enter_context(gunicorn_process(env, workers=1)) for _ in range(count)]


@pytest.fixture(scope="module", params=["events in the database", "events in Redis"])
def instances(request, database_url, glm_simulator, site):
    """Two instances sharing answers through the database, or through Redis (when the suite
    has one: its PostgreSQL pass runs both)."""
    redis_url = os.environ.get("REDIS_URL")
    if request.param == "events in Redis" and not redis_url:
        pytest.skip("the suite has no Redis (REDIS_URL)")
    env = gunicorn_env(database_url, glm_simulator, FETCH_ALLOWED_HOSTS=site.host, **SETTINGS,
                       REDIS_URL=redis_url if request.param == "events in Redis" else None)
    with ExitStack() as stack:
        yield [base for base, _ in start_instances(stack, env)]


def new_conversation(base, headers, thinking=False):
    response = requests.post(f"{base}/api/conversations/", headers=headers, timeout=30,
                             json={"thinking_enabled": thinking})
    assert response.status_code == 201, response.text
    return response.json()["data"]["id"]


def parse(raw):
    """The complete events of `raw` (bytes): [(id, kind, data)]; a trailing partial event (the
    cut went through it) and `: ping` comments are left out."""
    complete, _, _ = raw.rpartition(b"\n\n")
    parsed = []
    for block in complete.decode().split("\n\n") if complete else []:
        fields = dict(line.split(": ", 1) for line in block.split("\n")
                      if not line.startswith(":"))
        if fields:
            parsed.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return parsed


def read_cut(response, keep_events, extra_bytes):
    """Read a stream until it holds `keep_events` whole events and `extra_bytes` more, then
    hang up there (the bytes past the cut, read in the same piece, were never received)."""
    raw = b""
    for piece in response.iter_content(chunk_size=256):
        raw += piece
        events = raw.split(b"\n\n")
        if len(events) > keep_events:
            end = len(b"\n\n".join(events[:keep_events])) + 2
            raw = raw[:min(len(raw), end + extra_bytes)]
            break
    response.close()
    return parse(raw)


def read_all(response):
    with response:
        return parse(response.content)


def follow(base, headers, answer_id, last_event_id):
    response = requests.get(f"{base}/api/messages/{answer_id}/stream", stream=True, timeout=120,
                            headers={**headers, "Last-Event-ID": str(last_event_id)})
    assert response.status_code == 200, response.text
    return response


def open_stream(base, headers, conversation_id, content):
    response = requests.post(f"{base}/api/messages/stream", stream=True, timeout=120,
                             headers=headers,
                             json={"conversation_id": conversation_id, "content": content})
    assert response.status_code == 200, response.text
    return response


def told(events):
    """What a client rebuilds from an answer's events: text, thinking, tool calls."""
    calls = {}
    for _, kind, data in events:
        if kind == "tool_call":
            calls[data["id"]] = dict(data)
        elif kind == "tool_result":
            calls[data["id"]].update(data)
    return ("".join(d["delta"] for _, kind, d in events if kind == "text"),
            "".join(d["delta"] for _, kind, d in events if kind == "thinking") or None,
            list(calls.values()))


def stored_answer(base, headers, conversation_id, answer_id):
    listed = requests.get(f"{base}/api/messages/{conversation_id}", headers=headers,
                          params={"view": "tree"}, timeout=30)
    assert listed.status_code == 200, listed.text
    return next(m for m in listed.json()["data"]["items"] if m["id"] == answer_id)


def a_stream(rng):
    """(content, thinking, about how many events) of one short answer: plain text, thinking
    first, or a tool round."""
    chunks, delay = rng.randint(2, 5), rng.choice((0, 10, 30))
    shape = rng.choice(("text", "thinking", "tool"))
    timing = f"[[chunks:{chunks}]][[delay:{delay}]]"
    if shape == "thinking":
        thoughts = rng.randint(1, 4)
        return f"[[think:{thoughts}]]{timing}", True, thoughts + chunks + 2
    if shape == "tool":
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return (f'[[tool:calculator {{"expression": "{a}*{b}"}}]]{timing}', False,
                2 * chunks + 4)
    return timing, False, chunks + 2


def cut_and_reattach(first, other, headers, rng, trace=None):
    """One answer started on `first`, its stream cut at a random byte, followed again on
    `other` from the last event received; a list of what went wrong (empty: nothing).
    `trace`: the requests' X-Request-ID are `trace`-post and `trace`-get."""
    content, thinking, about = a_stream(rng)
    keep, extra = rng.randint(1, about - 1), rng.randint(0, 60)
    conversation_id = new_conversation(first, headers, thinking)
    traced = {} if trace is None else {"X-Request-ID": f"{trace}-post"}
    before = read_cut(open_stream(first, {**headers, **traced}, conversation_id, content),
                      keep, extra)
    answer_id = before[0][2]["assistant_message_id"]
    traced = {} if trace is None else {"X-Request-ID": f"{trace}-get"}
    after = read_all(follow(other, {**headers, **traced}, answer_id, before[-1][0]))
    events = before + after
    problems = []
    if [event_id for event_id, *_ in events] != list(range(1, len(events) + 1)):
        problems.append(f"ids {[event_id for event_id, *_ in events]}")
    if events[-1][1] != "done":
        problems.append(f"last event {events[-1][1]}")
        return [f"{content} cut after {keep}+{extra}: {problems}"]
    stored = stored_answer(other, headers, conversation_id, answer_id)
    wanted = (stored["content"], stored["reasoning_content"], stored["tool_calls"])
    if told(events) != wanted or events[-1][2]["assistant_message"] != stored:
        problems.append(f"told {told(events)} stored {wanted}")
    if stored["status"] != "completed" or stored["content"] == "":
        problems.append(f"stored {stored['status']} {stored['content']!r}")
    return [f"{content} cut after {keep}+{extra}: {problems}"] if problems else []


def test_streams_cut_anywhere_and_followed_on_the_other_instance_tell_the_answer_exactly(
        instances, auth_headers):
    rng = random.Random(SEED)
    plans = [(instances[n % 2], instances[1 - n % 2], random.Random(rng.random()))
             for n in range(STREAMS)]
    started = time.monotonic()
    with ThreadPoolExecutor(AT_ONCE) as pool:
        outcomes = list(pool.map(lambda plan: cut_and_reattach(plan[0], plan[1], auth_headers,
                                                               plan[2]), plans))
    took = time.monotonic() - started
    print(f"{STREAMS} streams cut and followed on the other instance in {took:.1f} s "
          f"(seed {SEED})")
    problems = [problem for outcome in outcomes for problem in outcome]
    assert problems == [], f"seed {SEED} (CUTS_SEED={SEED} repeats it): {problems[:5]}"


def test_a_stop_sent_to_the_other_instance_closes_the_model_and_keeps_the_text_sent(
        instances, auth_headers, glm_simulator):
    glm_simulator.reset()
    runs_on, other = instances
    conversation_id = new_conversation(runs_on, auth_headers)
    response = open_stream(runs_on, auth_headers, conversation_id, STALLED)
    lines = response.iter_lines(chunk_size=1)
    seen = read_events_until(lines, "text", count=2)
    answer_id = seen[0][2]["assistant_message_id"]

    asked_at, started = time.time(), time.monotonic()
    stopped = requests.post(f"{other}/api/messages/{answer_id}/stop", headers=auth_headers,
                            timeout=30)
    answered_in = time.monotonic() - started
    assert stopped.status_code == 200, stopped.text
    message = stopped.json()["data"]["message"]
    hangups = wait_for(glm_simulator.hangups, timeout=30)
    assert hangups, "the model's connection was never closed"
    closed_in = hangups[0]["noticed_at"] - asked_at
    print(f"stop on the other instance: answered in {answered_in:.2f} s, "
          f"the model's connection closed {closed_in:.2f} s after it was asked")
    assert closed_in < 10 and answered_in < 10

    rest = read_events_until(lines, "done")
    response.close()
    events = seen + rest
    assert [event_id for event_id, *_ in events] == list(range(1, len(events) + 1))
    assert rest[-1][1] == "done" and rest[-1][2]["assistant_message"] == message
    assert (message["status"], message["finish_reason"], message["error_code"]) == (
        "incomplete", "stopped", None)
    assert message["content"] == told(events)[0] == "w0 w1 "
    assert stored_answer(runs_on, auth_headers, conversation_id, answer_id) == message


def read_events_until(lines, kind, count=1):
    """Events off a live stream's lines until the `count`-th of `kind` (ping comments left out)."""
    seen, block = [], []
    for line in lines:
        line = line.decode()
        if line:
            block.append(line)
            continue
        seen += parse(("\n".join(block) + "\n\n").encode())
        block = []
        if sum(1 for _, found, _ in seen if found == kind) >= count:
            break
    return seen


def test_a_stop_sent_to_the_other_instance_gives_up_the_tool_running(
        instances, auth_headers, site):
    runs_on, other = instances
    conversation_id = new_conversation(runs_on, auth_headers)
    url = site.url("/silent")
    response = open_stream(runs_on, auth_headers, conversation_id,
                           f'[[tool:fetch_webpage {{"url": "{url}"}}]]')
    lines = response.iter_lines(chunk_size=1)
    seen = read_events_until(lines, "tool_call")
    assert wait_for(lambda: "/silent" in site.requests, timeout=60)
    answer_id = seen[0][2]["assistant_message_id"]

    started = time.monotonic()
    stopped = requests.post(f"{other}/api/messages/{answer_id}/stop", headers=auth_headers,
                            timeout=30)
    answered_in = time.monotonic() - started
    print(f"stop of a running tool on the other instance: answered in {answered_in:.2f} s")
    assert stopped.status_code == 200, stopped.text
    message = stopped.json()["data"]["message"]
    assert (message["status"], message["finish_reason"]) == ("incomplete", "stopped"), message
    (call,) = message["tool_calls"]
    assert (call["name"], call["status"], call["result"]) == ("fetch_webpage", "error", "stopped")
    rest = read_events_until(lines, "done")
    response.close()
    assert [kind for _, kind, _ in rest] == ["tool_result", "done"]
    assert rest[0][2] == {key: call[key] for key in
                          ("id", "name", "result", "status", "duration_ms")}
    assert rest[-1][2]["assistant_message"] == message


def worker_of(master):
    [worker] = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    return int(worker)


@pytest.fixture
def instances_that_notice_death(app, database_url, glm_simulator):
    """Two instances with the default heartbeat (a silent worker is taken for gone only after
    11 s) that reap nobody's answers for the test's length: the stop is what ends them."""
    glm_simulator.reset()
    env = gunicorn_env(database_url, glm_simulator, ANSWER_REAP_AFTER_SECONDS="600",
                       **SETTINGS)
    with ExitStack() as stack:
        yield start_instances(stack, env)


def exited(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def stop(base, headers, answer_id):
    """(the stop's answer, how long it took)."""
    started = time.monotonic()
    response = requests.post(f"{base}/api/messages/{answer_id}/stop", headers=headers,
                             timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["data"]["message"], time.monotonic() - started


def test_a_stop_of_an_answer_whose_worker_was_killed_ends_it_at_once(
        instances_that_notice_death, auth_headers, glm_simulator):
    """A worker on this host whose process has exited is known gone at once: the stop sent
    just after the kill ends its answer `stopped` without waiting for its heartbeat to go
    stale (it waits STOP_WAIT_SECONDS, 2 s, for a live one)."""
    (runs_on, master), (other, _) = instances_that_notice_death
    conversation_id = new_conversation(runs_on, auth_headers)
    response = open_stream(runs_on, auth_headers, conversation_id,
                           "[[chunks:100]][[delay:100]]")
    lines = response.iter_lines(chunk_size=1)
    seen = read_events_until(lines, "text", count=3)
    answer_id = seen[0][2]["assistant_message_id"]
    worker = worker_of(master)
    os.kill(worker, signal.SIGKILL)
    response.close()
    assert wait_for(lambda: exited(worker), timeout=60)

    again, answered_in = stop(other, auth_headers, answer_id)
    print(f"stop just after the kill: answered in {answered_in:.2f} s")
    assert answered_in < 10
    assert (again["status"], again["finish_reason"], again["error_code"]) == (
        "incomplete", "stopped", None), again
    # What the killed worker had stored of the events its stream was sent.
    assert told(seen)[0].startswith(again["content"])
    followed = read_all(follow(other, auth_headers, answer_id, 1))
    assert followed[-1][1] == "done" and followed[-1][2]["assistant_message"] == again
    assert told(followed)[0] == again["content"]


def test_a_stream_cut_behind_nginx_is_followed_on_the_other_instance(
        app, database_url, glm_simulator, auth_headers, tmp_path):
    if NGINX is None:
        pytest.skip("the nginx binary is not installed")
    glm_simulator.reset()
    env = gunicorn_env(database_url, glm_simulator, **SETTINGS)
    with ExitStack() as stack:
        ports = [base.rsplit(":", 1)[1] for base, _ in start_instances(stack, env)]
        # Round robin over both instances; the access log says which one answered.
        base = stack.enter_context(nginx(ports[0], tmp_path, {
            "server 127.0.0.1:8000;": " ".join(f"server 127.0.0.1:{port};" for port in ports),
            "request_id=$chatapi_request_id';":
                "request_id=$chatapi_request_id upstream=$upstream_addr';"}))
        rng = random.Random(SEED)
        problems = [problem for n in range(6)
                    for problem in cut_and_reattach(base, base, auth_headers, rng, f"cut{n}")]
        assert problems == [], f"seed {SEED}: {problems}"
        log = tmp_path / "access.log"
        # nginx writes a request's line once it is over: wait for the lines, not for time.
        assert wait_for(lambda: log.read_text().count("request_id=cut") >= 12, timeout=60)
    served_by = {}
    for line in log.read_text().splitlines():
        if "request_id=cut" in line:
            trace = line.rsplit("request_id=", 1)[1].split()[0]
            served_by[trace] = line.rsplit("upstream=", 1)[1]
    assert len(served_by) == 12, served_by
    # Round robin: some stream was followed again on the instance that did not run its answer.
    assert any(served_by[f"cut{n}-post"] != served_by[f"cut{n}-get"] for n in range(6)), \
        served_by
