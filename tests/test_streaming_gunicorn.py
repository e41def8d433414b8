"""Streaming on the deployment operators run: one gunicorn gevent worker, the real SDK, the
GLM simulator; the database pool holds only two connections."""
import threading
import time

import pytest
import requests
from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import Message

from .conftest import gunicorn_env
from .servers import gunicorn
from .simulator_client import wait_for
from .sse_client import events, open_stream, text_arriving_as_written

pytestmark = pytest.mark.slow


@pytest.fixture
def service(app, database_url, glm_simulator):
    glm_simulator.reset()
    # These tests load one worker with one user's answers.
    env = gunicorn_env(database_url, glm_simulator, DB_POOL_SIZE="2", MAX_CONCURRENT_ANSWERS="0",
                       MESSAGE_RATE_LIMIT="off")
    with gunicorn(env, workers=1) as base:
        yield base


@pytest.fixture
def conversation_id(service, auth_headers):
    response = requests.post(f"{service}/api/conversations/", json={}, headers=auth_headers,
                             timeout=5)
    return response.json()["data"]["id"]


def stored_answer(conversation_id):
    db.session.expire_all()
    return db.session.scalar(select(Message).where(Message.conversation_id == conversation_id,
                                                   Message.role == "assistant"))


def test_text_arrives_while_the_model_is_still_writing(service, auth_headers, conversation_id):
    with open_stream(service, auth_headers, conversation_id,
                     "[[chunks:10]][[delay:300]]") as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        timeline = [(kind, data, t) for kind, data, t in events(response)]
    assert stored_answer(conversation_id).content == text_arriving_as_written(timeline)


def test_a_client_hanging_up_stops_the_upstream_and_keeps_an_incomplete_answer(
        service, auth_headers, conversation_id, glm_simulator):
    received = []
    with open_stream(service, auth_headers, conversation_id,
                     "[[chunks:100]][[delay:100]]") as response:
        for kind, data, _ in events(response):
            received.append((kind, data))
            if len(received) == 3:
                break
        hung_up_at = time.monotonic()
    hangups = wait_for(glm_simulator.hangups, timeout=2.0)
    assert hangups, "the simulator never saw the hang-up"
    assert time.monotonic() - hung_up_at < 2.0
    assert hangups[0]["chunks_sent"] < 100
    answer = wait_for(lambda: stored_answer(conversation_id), timeout=5.0)
    assert answer is not None and answer.status == "incomplete"
    got = "".join(data["delta"] for kind, data in received if kind == "text")
    assert answer.content.startswith(got)
    user_messages = db.session.scalars(select(Message).where(
        Message.conversation_id == conversation_id, Message.role == "user")).all()
    assert len(user_messages) == 1


def test_a_20_second_silence_carries_pings(service, auth_headers, conversation_id):
    with open_stream(service, auth_headers, conversation_id,
                     "[[stall:20]][[reply:finally]]") as response:
        timeline = list(events(response))
    pings = [t for kind, text, t in timeline if kind == "comment" and text == "ping"]
    first_text = next(t for kind, _, t in timeline if kind == "text")
    assert pings and all(t < first_text for t in pings)
    gaps = [later - earlier for earlier, later in zip([0.0] + pings, pings + [first_text])]
    assert max(gaps) <= 16.0, gaps
    assert timeline[-1][0] == "done"


def test_20_concurrent_streams_on_one_worker_with_a_pool_of_2(service, auth_headers,
                                                              glm_simulator):
    conversations = [requests.post(f"{service}/api/conversations/", json={},
                                   headers=auth_headers, timeout=5).json()["data"]["id"]
                     for _ in range(20)]
    outcomes = {}

    def converse(conversation_id):
        with open_stream(service, auth_headers, conversation_id,
                         "[[chunks:20]][[delay:100]]") as response:
            timeline = list(events(response))
        text = "".join(data["delta"] for kind, data, _ in timeline if kind == "text")
        outcomes[conversation_id] = (timeline[-1][0], text,
                                     timeline[-1][1]["assistant_message"]["content"])

    streams = [threading.Thread(target=converse, args=(cid,)) for cid in conversations]
    for thread in streams:
        thread.start()
    wait_for(lambda: glm_simulator.stats()["active_streams"] >= 20, timeout=5.0)
    latencies = []
    for _ in range(10):
        started = time.perf_counter()
        listed = requests.get(f"{service}/api/conversations/", headers=auth_headers, timeout=5)
        latencies.append(time.perf_counter() - started)
        assert listed.status_code == 200
    for thread in streams:
        thread.join(timeout=30)
    assert len(outcomes) == 20
    assert all(kind == "done" and text == content for kind, text, content in outcomes.values())
    assert max(latencies) < 1.0, latencies


def test_concurrent_answers_in_one_conversation_count_every_message(
        service, auth_headers, conversation_id):
    def send():
        response = requests.post(f"{service}/api/messages/", headers=auth_headers, timeout=30,
                                 json={"conversation_id": conversation_id,
                                       "content": "[[chunks:5]][[delay:50]]"})
        assert response.status_code == 201

    senders = [threading.Thread(target=send) for _ in range(10)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=30)
    conversation = requests.get(f"{service}/api/conversations/{conversation_id}",
                                headers=auth_headers, timeout=5).json()["data"]
    listed = requests.get(f"{service}/api/messages/{conversation_id}", headers=auth_headers,
                          timeout=5).json()["data"]
    assert conversation["message_count"] == listed["total"] == 20
