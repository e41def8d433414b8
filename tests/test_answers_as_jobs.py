"""Answers as jobs (docs/API.md §4, "Answers as jobs"), through the API in one process: an answer
runs to its end whoever listens, its events are numbered and can be followed again from any
point, it can be stopped (a running tool too), it is listed `in_progress` with its text so far,
and how it ended is stored so that its last event can be rebuilt. Each test runs on both
stores of events and stop signals: the database's, and Redis's when the suite has one
(REDIS_URL); what only Redis does is in tests/test_answer_store_redis.py. Real gunicorn workers,
and a killed one, are in tests/test_streaming_gunicorn.py and tests/faults/test_worker_kill.py."""
import json
import os
import time

import pytest
from sqlalchemy import select, update

from chatapi.extensions import db
from chatapi.models import AnswerEvent, AnswerJob, Message
from chatapi.models.timestamps import utcnow
from chatapi.services.answer_store_redis import RedisAnswerStore


from .simulator_client import wait_for
from .test_chat import parse_events

URL = "/api/messages/"
# Two chunks, then silence for as long as the test lasts (the provider's read timeout is
# raised to match): the answer is under way, its text so far known.
STALLED = "[[chunks:4]][[stall_after:2]][[stall:600]]"


@pytest.fixture(params=["database", "redis"])
def chat_app(chat_app, request):
    """Apps whose answers keep their events and stop signals in the database, or in Redis."""
    redis_url = None
    if request.param == "redis":
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            pytest.skip("the suite has no Redis (REDIS_URL)")
    return lambda **overrides: chat_app(**{"REDIS_URL": redis_url, **overrides})


@pytest.fixture
def patient(chat_app):
    """An app that waits for a silent model (and a silent site) as long as the test lasts."""
    return chat_app(GLM_READ_TIMEOUT=600.0, FETCH_TIMEOUT=600.0)


@pytest.fixture
def conversation_id(chat, auth_headers):
    return chat.post("/api/conversations/", json={}, headers=auth_headers).json["data"]["id"]


def open_stream(chat, headers, conversation_id, content):
    """A stream read as it comes: (the response, an iterator of its pieces)."""
    response = chat.post(URL + "stream", headers=headers, buffered=False, json={
        "conversation_id": conversation_id, "content": content})
    assert response.status_code == 200
    return response, iter(response.response)


def read_until(pieces, kind, count=1):
    """The events read until the `count`-th of `kind` (the rest of its write too), as (kind,
    data, id)."""
    seen = []
    for piece in pieces:
        for block in piece.decode().split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line
                         and not line.startswith(":"))
            if "event" in lines:
                seen.append((lines["event"], json.loads(lines["data"]), int(lines["id"])))
        if sum(1 for event in seen if event[0] == kind) >= count:
            return seen
    return seen


def stalled_answer(chat, headers):
    """An answer under way in a new conversation, its model silent after two pieces of text:
    (conversation id, the stream, its pieces, the events read so far, the answer's id)."""
    conversation_id = chat.post("/api/conversations/", json={},
                                headers=headers).json["data"]["id"]
    response, pieces = open_stream(chat, headers, conversation_id, STALLED)
    seen = read_until(pieces, "text", count=2)
    return conversation_id, response, pieces, seen, seen[0][1]["assistant_message_id"]


def follow(chat, headers, answer_id, last_event_id=None, **query):
    extra = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    return chat.get(f"{URL}{answer_id}/stream", headers={**headers, **extra},
                    query_string=query)


def stored(answer_id):
    db.session.expire_all()
    message = db.session.scalar(select(Message).where(Message.id == answer_id))
    db.session.rollback()
    return message


def test_a_finished_answer_is_followed_again_from_any_event(chat, auth_headers,
                                                            conversation_id):
    first = chat.post(URL + "stream", headers=auth_headers, json={
        "conversation_id": conversation_id, "content": "[[chunks:5]][[think:2]]"})
    body = first.get_data(as_text=True)
    events = parse_events(body)
    answer_id = events[0][1]["assistant_message_id"]

    again = follow(chat, auth_headers, answer_id)
    assert again.status_code == 200 and again.mimetype == "text/event-stream"
    assert again.get_data(as_text=True) == body
    for after in (0, 1, 4, len(events) - 1):
        by_header = follow(chat, auth_headers, answer_id, after).get_data(as_text=True)
        by_query = follow(chat, auth_headers, answer_id, after=after).get_data(as_text=True)
        assert by_header == by_query
        assert parse_events(by_header, first_id=after + 1) == events[after:]
    # Past the end: the last event again, whatever the number.
    for after in (len(events), 10_000):
        last = follow(chat, auth_headers, answer_id, after).get_data(as_text=True)
        assert parse_events(last, first_id=len(events)) == events[-1:]


def test_bad_positions_and_messages_that_are_not_your_answers(
        chat, auth_headers, other_headers, conversation_id):
    sent = chat.post(URL, headers=auth_headers, json={"conversation_id": conversation_id,
                                                      "content": "hi"}).json["data"]
    answer_id, question_id = sent["assistant_message"]["id"], sent["user_message"]["id"]
    for header in ("-1", "x", "1.5", "", " ", "٣", "99999999999999999999"):
        response = follow(chat, auth_headers, answer_id, header)
        assert response.status_code == 422, (header, response.get_data(as_text=True))
        assert "Last-Event-ID" in response.json["error"]["details"]
    for after in ("-1", "x", "1.5"):
        response = follow(chat, auth_headers, answer_id, after=after)
        assert response.status_code == 422 and "after" in response.json["error"]["details"]
    for path in ("stream", "stop"):
        method = chat.get if path == "stream" else chat.post
        mine = method(f"{URL}{question_id}/{path}", headers=auth_headers)
        assert mine.status_code == 422 and "message_id" in mine.json["error"]["details"]
        for message_id in (answer_id, question_id, "msg_nothing", "conv_x"):
            theirs = method(f"{URL}{message_id}/{path}", headers=other_headers)
            assert theirs.status_code == 404, (path, message_id)
    assert stored(answer_id).content == sent["assistant_message"]["content"]


def test_an_answer_runs_to_its_end_when_its_stream_goes_away(chat, auth_headers,
                                                             conversation_id, glm_simulator):
    response, pieces = open_stream(chat, auth_headers, conversation_id,
                                   "[[chunks:6]][[delay:50]]")
    start = read_until(pieces, "start")[0][1]
    response.close()
    answer_id = start["assistant_message_id"]
    answer = wait_for(lambda: (m := stored(answer_id)) and m.status != "in_progress" and m,
                      timeout=60)
    assert answer.status == "completed" and answer.content == "w0 w1 w2 w3 w4 w5 "
    assert glm_simulator.hangups() == []
    # Re-attached afterwards, it tells the whole answer.
    events = parse_events(follow(chat, auth_headers, answer_id).get_data(as_text=True))
    assert "".join(data["delta"] for kind, data in events if kind == "text") == answer.content


def test_stop_keeps_exactly_the_text_sent_and_ends_the_stream_with_done(
        patient, auth_headers, glm_simulator):
    chat = patient.test_client()
    conversation_id, response, pieces, seen, answer_id = stalled_answer(chat, auth_headers)
    # Listed while it runs: in progress, with the text so far (at most a second behind).
    listed = wait_for(lambda: [m for m in chat.get(URL + conversation_id, headers=auth_headers)
                               .json["data"]["items"] if m["content"] == "w0 w1 "], timeout=30)
    assert listed and listed[0]["id"] == answer_id and listed[0]["status"] == "in_progress"

    started = time.monotonic()
    stopped = chat.post(f"{URL}{answer_id}/stop", headers=auth_headers)
    assert stopped.status_code == 200, stopped.json
    message = stopped.json["data"]["message"]
    assert (message["status"], message["finish_reason"], message["error_code"]) == (
        "incomplete", "stopped", None)
    assert message["content"] == "w0 w1 "
    hangups = wait_for(glm_simulator.hangups, timeout=10)
    assert hangups and time.monotonic() - started < 10
    rest = read_until(pieces, "done")
    response.close()
    assert rest[-1][0] == "done" and rest[-1][1]["assistant_message"] == message
    assert [event_id for *_, event_id in seen + rest] == list(range(1, len(seen + rest) + 1))
    # Stopping again, or an answer that ended: returned as it is.
    again = chat.post(f"{URL}{answer_id}/stop", headers=auth_headers)
    assert again.status_code == 200 and again.json["data"]["message"] == message
    assert stored(answer_id).content == "w0 w1 "


def test_stop_gives_up_a_running_tool_and_records_it_stopped(chat_app, auth_headers, site):
    chat = chat_app(FETCH_ALLOWED_HOSTS=[site.host], FETCH_TIMEOUT=600.0).test_client()
    conversation_id = chat.post("/api/conversations/", json={},
                                headers=auth_headers).json["data"]["id"]
    url = site.url("/silent")
    response, pieces = open_stream(chat, auth_headers, conversation_id,
                                   f'[[tool:fetch_webpage {{"url": "{url}"}}]]')
    seen = read_until(pieces, "tool_call")
    wait_for(lambda: "/silent" in site.requests, timeout=30)
    answer_id = seen[0][1]["assistant_message_id"]
    stopped = chat.post(f"{URL}{answer_id}/stop", headers=auth_headers)
    assert stopped.status_code == 200, stopped.json
    message = stopped.json["data"]["message"]
    assert (message["status"], message["finish_reason"]) == ("incomplete", "stopped"), message
    (call,) = message["tool_calls"]
    assert (call["name"], call["status"], call["result"]) == ("fetch_webpage", "error", "stopped")
    rest = read_until(pieces, "done")
    response.close()
    assert [kind for kind, *_ in rest] == ["tool_result", "done"]
    assert rest[0][1]["result"] == "stopped"


def test_stop_after_disconnect_zero_stops_an_answer_nobody_listens_to(
        chat_app, auth_headers, glm_simulator):
    chat = chat_app(STOP_AFTER_DISCONNECT_SECONDS=0, GLM_READ_TIMEOUT=600.0).test_client()
    conversation_id = chat.post("/api/conversations/", json={},
                                headers=auth_headers).json["data"]["id"]
    response, pieces = open_stream(chat, auth_headers, conversation_id,
                                   "[[chunks:4]][[stall_after:1]][[stall:600]]")
    seen = read_until(pieces, "text")
    response.close()
    answer_id = seen[0][1]["assistant_message_id"]
    answer = wait_for(lambda: (m := stored(answer_id)) and m.status != "in_progress" and m,
                      timeout=30)
    assert (answer.status, answer.finish_reason, answer.error_code) == (
        "incomplete", "disconnected", None)
    assert answer.content == "w0 "
    assert wait_for(glm_simulator.hangups, timeout=10)
    # Re-attached: the answer's end, `done`.
    events = parse_events(follow(chat, auth_headers, answer_id).get_data(as_text=True))
    assert events[-1][0] == "done" and events[-1][1]["assistant_message"]["content"] == "w0 "


def test_a_provider_failure_stores_its_code_and_its_error_event(chat, auth_headers,
                                                                conversation_id):
    events = parse_events(chat.post(URL + "stream", headers=auth_headers, json={
        "conversation_id": conversation_id, "content": "[[http:500]]"}).get_data(as_text=True))
    kind, data = events[-1]
    assert kind == "error" and data["code"] == "upstream_error"
    assert data["assistant_message"]["error_code"] == "upstream_error"
    replayed = parse_events(follow(chat, auth_headers, data["assistant_message"]["id"])
                            .get_data(as_text=True))
    assert replayed == events


@pytest.mark.parametrize("stop_requested,ended", [
    (False, ("incomplete", "interrupted", "answer_interrupted", "error")),
    (True, ("incomplete", "stopped", None, "done")),
])
def test_an_answer_whose_worker_died_is_ended_interrupted_with_what_it_sent(
        chat_app, auth_headers, stop_requested, ended):
    """A worker that stops saying it is alive: another one's ticker ends its answers, keeping
    the text their streams were sent; streams re-attached end with `answer_interrupted`. A
    stop asked for before the worker was known gone is kept: `stopped`, ending with `done`."""
    chat = chat_app(ANSWER_REAP_AFTER_SECONDS=1.0).test_client()
    conversation_id = chat.post("/api/conversations/", json={},
                                headers=auth_headers).json["data"]["id"]
    sent = chat.post(URL, headers=auth_headers, json={"conversation_id": conversation_id,
                                                      "content": "[[reply:so far]]"})
    answer_id = sent.json["data"]["assistant_message"]["id"]
    left_by_a_dead_worker(chat.application, answer_id, stop_requested)

    # As a gunicorn worker does from its start (this app's runtime only: the process holds
    # the runtimes of earlier tests' apps too).
    chat.application.extensions["chatapi.answers"].tick_always()
    answer = wait_for(lambda: (m := stored(answer_id)) and m.status != "in_progress" and m,
                      timeout=60)
    assert (answer.status, answer.finish_reason, answer.error_code) == ended[:3]
    assert answer.content == "so far"
    events = parse_events(follow(chat, auth_headers, answer_id).get_data(as_text=True))
    assert events[-1][0] == ended[3]
    assert events[-1][1].get("code") == ended[2]
    assert "".join(d["delta"] for kind, d in events if kind == "text") == "so far"


def left_by_a_dead_worker(app, answer_id, stop_requested=False):
    """Make a finished answer look as a dead worker leaves it: running, its last event the
    text, its worker silent since 2000 (a stop asked for it when `stop_requested`)."""
    db.session.execute(update(Message).where(Message.id == answer_id)
                       .values(status="in_progress", content="", finish_reason=None))
    db.session.commit()
    store = app.extensions["chatapi.answers"].store
    if isinstance(store, RedisAnswerStore):
        unend_in_redis(store, answer_id, "elsewhere:1:dead", stop_requested)
        return
    job = db.session.get(AnswerJob, answer_id)
    job.ended_at, job.worker = None, "elsewhere:1:dead"
    job.stop_requested = stop_requested
    job.heartbeat_at = utcnow().replace(year=2000)
    db.session.execute(AnswerEvent.__table__.delete().where(
        AnswerEvent.answer_id == answer_id, AnswerEvent.event == "done"))
    job.last_event_id -= 1
    db.session.commit()


def unend_in_redis(store, answer_id, worker, stop_requested):
    client, key = store.redis, store.key(answer_id)
    kept = client.xrange(key + ":events")[:-1]
    client.delete(key + ":events")
    for entry_id, fields in kept:
        client.xadd(key + ":events", fields, id=entry_id)
    silent_since = utcnow().replace(year=2000).timestamp()
    client.hdel(key, "ended_at")
    client.hset(key, mapping={"worker": worker, "heartbeat_at": silent_since,
                              "last_event_id": len(kept), "stop_requested": int(stop_requested)})
    client.persist(key)
    client.zadd(store.running, {answer_id: silent_since})
    client.sadd(store.workers + worker, answer_id)


def test_an_answer_ended_by_a_reaper_while_its_worker_lives_keeps_that_end(
        patient, chat_app, auth_headers, glm_simulator):
    """A worker taken for dead (a heartbeat late) whose answer another worker ended: the first
    end stored is the answer's. Its worker stops writing it, hangs up on the model and sends
    its streams that end; nothing is stored twice."""
    chat = patient.test_client()
    conversation_id, response, pieces, seen, answer_id = stalled_answer(chat, auth_headers)
    store = patient.extensions["chatapi.answers"].store
    assert wait_for(lambda: len(store.events_after(answer_id, 0)) >= 3, timeout=60)
    db.session.rollback()

    # Another worker of the same service (the same Redis keys, when in Redis).
    reaper = chat_app(RATELIMIT_KEY_PREFIX=patient.config["RATELIMIT_KEY_PREFIX"])
    with reaper.app_context():
        reaper.extensions["chatapi.answers"].end_abandoned(answer_id, "interrupted", 0)
    rest = read_until(pieces, "error")
    response.close()
    assert rest[-1][0] == "error" and rest[-1][1]["code"] == "answer_interrupted"
    assert rest[-1][1]["assistant_message"]["content"] == "w0 w1 "
    assert wait_for(glm_simulator.hangups, timeout=60)
    answer = wait_for(lambda: (m := stored(answer_id)) and m.status != "in_progress" and m,
                      timeout=60)
    assert (answer.status, answer.finish_reason, answer.content) == (
        "incomplete", "interrupted", "w0 w1 ")
    events = parse_events(follow(chat, auth_headers, answer_id).get_data(as_text=True))
    assert [kind for kind, _ in events] == ["start", "text", "text", "error"]
