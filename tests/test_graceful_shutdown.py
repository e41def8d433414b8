"""SIGTERM to gunicorn mid-stream: short answers finish, long ones that would outlive the
graceful time are ended and stored as incomplete (interrupted); nothing the user wrote or the
model said is lost."""
import signal
import threading
import time

import pytest
import requests
from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import Message

from .conftest import gunicorn_env
from .servers import gunicorn_process
from .sse_client import events

pytestmark = pytest.mark.slow


def converse(base, headers, content, timeline, started):
    conversation_id = requests.post(f"{base}/api/conversations/", json={}, headers=headers,
                                    timeout=30).json()["data"]["id"]
    timeline["conversation_id"] = conversation_id
    try:
        with requests.post(f"{base}/api/messages/stream", stream=True, timeout=30,
                           headers=headers, json={"conversation_id": conversation_id,
                                                  "content": content}) as response:
            for kind, data, _ in events(response):
                timeline.setdefault("events", []).append((kind, data))
                if len(timeline["events"]) == 3:
                    started.release()
    except requests.RequestException as error:
        timeline["cut"] = type(error).__name__


def messages_of(conversation_id):
    db.session.expire_all()
    return db.session.scalars(select(Message).where(Message.conversation_id == conversation_id)
                              .order_by(Message.created_at)).all()


def test_sigterm_lets_short_streams_finish_and_stores_long_ones_incomplete(
        app, auth_headers, database_url, glm_simulator):
    env = gunicorn_env(database_url, glm_simulator, GRACEFUL_TIMEOUT="5")
    short, long = {}, {}
    started = threading.Semaphore(0)
    with gunicorn_process(env, workers=1) as (base, master):
        clients = [threading.Thread(target=converse, args=(base, auth_headers, content,
                                                           timeline, started))
                   for content, timeline in (("[[chunks:8]][[delay:250]]", short),
                                             ("[[chunks:100]][[delay:100]]", long))]
        for client in clients:
            client.start()
        assert started.acquire(timeout=10) and started.acquire(timeout=10)
        master.send_signal(signal.SIGTERM)
        assert master.wait(timeout=15) == 0
        for client in clients:
            client.join(timeout=10)

    assert short["events"][-1][0] == "done"
    short_answer = messages_of(short["conversation_id"])[-1]
    assert short_answer.status == "completed"
    assert short_answer.content == short["events"][-1][1]["assistant_message"]["content"]

    # The long answer is ended before the master's deadline: interrupted, its stream told so.
    last_kind, last = long["events"][-1]
    assert last_kind == "error" and last["code"] == "answer_interrupted"
    assert last["assistant_message"]["status"] == "incomplete"
    user, answer = messages_of(long["conversation_id"])
    assert user.role == "user" and user.content == "[[chunks:100]][[delay:100]]"
    assert (answer.status, answer.finish_reason, answer.error_code) == (
        "incomplete", "interrupted", "answer_interrupted")
    received = "".join(data["delta"] for kind, data in long["events"] if kind == "text")
    assert received and answer.content == received == last["assistant_message"]["content"]
    assert len(received) < len("w99 ") * 100


def test_idle_keep_alive_connections_do_not_hold_up_a_stop(app, database_url):
    """nginx keeps connections to every worker open between requests; on SIGTERM the worker
    closes those at once instead of waiting the whole graceful time for them."""
    env = gunicorn_env(database_url, REDIS_URL=None, GRACEFUL_TIMEOUT="20")
    with gunicorn_process(env, workers=2) as (base, master):
        sessions = [requests.Session() for _ in range(4)]
        for session in sessions:
            assert session.get(f"{base}/api/health", timeout=30).status_code == 200
        started = time.monotonic()
        master.send_signal(signal.SIGTERM)
        master.wait(timeout=25)
        stopped_in = time.monotonic() - started
        for session in sessions:
            session.close()
    assert master.returncode == 0
    # Far below the 20 s a stop waiting for the idle connections would take.
    assert stopped_in < 12, f"gunicorn took {stopped_in:.1f} s to stop"
