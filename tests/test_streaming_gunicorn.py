"""Streaming on the deployment operators run: one gunicorn gevent worker, the real SDK, the
GLM simulator; the database pool holds only two connections."""
import threading
from concurrent.futures import ThreadPoolExecutor
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


@pytest.fixture(scope="module")
def shared_service(database_url, glm_simulator):
    # These tests load one worker with one user's answers. One gunicorn for the module: each
    # test waits for its answers' stored ends, and its rows go after it as usual.
    env = gunicorn_env(database_url, glm_simulator, DB_POOL_SIZE="2", MAX_CONCURRENT_ANSWERS="0",
                       MESSAGE_RATE_LIMIT="off")
    with gunicorn(env, workers=1) as base:
        yield base


@pytest.fixture
def service(app, shared_service, glm_simulator):
    glm_simulator.reset()
    return shared_service


@pytest.fixture
def conversation_id(service, auth_headers):
    response = requests.post(f"{service}/api/conversations/", json={}, headers=auth_headers,
                             timeout=30)
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


def answer_ended(conversation_id):
    answer = stored_answer(conversation_id)
    return answer if answer is not None and answer.status != "in_progress" else None


def hang_up_after_three_events(base, headers, conversation_id, content):
    """Read three events, then go away; what text arrived."""
    received = []
    with open_stream(base, headers, conversation_id, content) as response:
        for kind, data, _ in events(response):
            received.append((kind, data))
            if len(received) == 3:
                break
    return "".join(data["delta"] for kind, data in received if kind == "text")


def test_a_client_hanging_up_leaves_the_answer_to_run_to_its_end(
        service, auth_headers, conversation_id, glm_simulator):
    got = hang_up_after_three_events(service, auth_headers, conversation_id,
                                     "[[chunks:20]][[delay:50]]")
    answer = wait_for(lambda: answer_ended(conversation_id), timeout=60.0)
    assert answer is not None and answer.status == "completed"
    assert answer.content == "".join(f"w{i} " for i in range(20)) and answer.content.startswith(got)
    assert glm_simulator.hangups() == []


@pytest.fixture
def stopping_service(app, database_url, glm_simulator):
    """The first version's rule: an answer nobody listens to stops at once."""
    glm_simulator.reset()
    env = gunicorn_env(database_url, glm_simulator, MESSAGE_RATE_LIMIT="off",
                       STOP_AFTER_DISCONNECT_SECONDS="0")
    with gunicorn(env, workers=1) as base:
        yield base


def test_with_stop_after_disconnect_zero_a_hang_up_stops_the_upstream_at_once(
        stopping_service, auth_headers, glm_simulator):
    conversation_id = requests.post(f"{stopping_service}/api/conversations/", json={},
                                    headers=auth_headers, timeout=30).json()["data"]["id"]
    got = hang_up_after_three_events(stopping_service, auth_headers, conversation_id,
                                     "[[chunks:100]][[delay:100]]")
    hung_up_at = time.monotonic()
    hangups = wait_for(glm_simulator.hangups, timeout=30.0)
    assert hangups, "the simulator never saw the hang-up"
    assert hangups[0]["chunks_sent"] < 100
    print(f"hang-up seen upstream {time.monotonic() - hung_up_at:.2f} s after the client's")
    answer = wait_for(lambda: answer_ended(conversation_id), timeout=30.0)
    assert answer is not None
    assert (answer.status, answer.finish_reason, answer.error_code) == (
        "incomplete", "disconnected", None)
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
    # A ping every 15 s (SSE_PING_SECONDS); without them the gap would be the whole 20 s.
    assert max(gaps) <= 18.0, gaps
    assert timeline[-1][0] == "done"


def test_20_concurrent_streams_on_one_worker_with_a_pool_of_2(service, auth_headers,
                                                              glm_simulator):
    conversations = [requests.post(f"{service}/api/conversations/", json={},
                                   headers=auth_headers, timeout=30).json()["data"]["id"]
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
    wait_for(lambda: glm_simulator.stats()["active_streams"] >= 20)
    latencies = []
    for _ in range(10):
        started = time.perf_counter()
        listed = requests.get(f"{service}/api/conversations/", headers=auth_headers, timeout=30)
        latencies.append(time.perf_counter() - started)
        assert listed.status_code == 200
    for thread in streams:
        thread.join(timeout=30)
    assert len(outcomes) == 20
    assert all(kind == "done" and text == content for kind, text, content in outcomes.values())
    assert max(latencies) < 1.0, latencies


def test_concurrent_answers_in_one_conversation_count_every_message(
        service, auth_headers, conversation_id):
    """Ten answers at once in one conversation: every message is counted and stored, each
    answer follows its own question, and the questions sent while others were being answered
    are siblings (docs/API.md §4, "Branches")."""
    def send():
        response = requests.post(f"{service}/api/messages/", headers=auth_headers, timeout=60,
                                 json={"conversation_id": conversation_id,
                                       "content": "[[chunks:5]][[delay:50]]"})
        assert response.status_code == 201

    senders = [threading.Thread(target=send) for _ in range(10)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=60)
    conversation = requests.get(f"{service}/api/conversations/{conversation_id}",
                                headers=auth_headers, timeout=30).json()["data"]
    tree = requests.get(f"{service}/api/messages/{conversation_id}", headers=auth_headers,
                        params={"view": "tree"}, timeout=30).json()["data"]
    assert conversation["message_count"] == tree["total"] == 20
    by_id = {m["id"]: m for m in tree["items"]}
    questions = [m for m in tree["items"] if m["role"] == "user"]
    answers = [m for m in tree["items"] if m["role"] == "assistant"]
    assert sorted(by_id[a["parent_id"]]["id"] for a in answers) == sorted(
        q["id"] for q in questions)
    # A question follows nothing or a finished answer, never another question.
    assert all(q["parent_id"] is None or by_id[q["parent_id"]]["role"] == "assistant"
               for q in questions)
    assert by_id[conversation["current_message_id"]]["role"] == "assistant"


def test_two_tabs_answering_at_once_end_up_as_siblings(service, auth_headers, conversation_id):
    """Tab one's answer is under way (its first text has arrived) when tab two sends: tab two's
    message becomes a sibling of tab one's, both answers are stored under their own questions,
    and the active branch is tab two's."""
    first = requests.post(f"{service}/api/messages/", headers=auth_headers, timeout=30,
                          json={"conversation_id": conversation_id, "content": "q1"})
    first_answer = first.json()["data"]["assistant_message"]["id"]
    tab_one = open_stream(service, auth_headers, conversation_id,
                          "[[chunks:2]][[stall_after:1]][[stall:600]]")
    timeline = events(tab_one)
    start = next(data for kind, data, _ in timeline if kind == "start")
    next(kind for kind, _, _ in timeline if kind == "text")
    tab_two = requests.post(f"{service}/api/messages/", headers=auth_headers, timeout=30,
                            json={"conversation_id": conversation_id, "content": "from tab two"})
    assert tab_two.status_code == 201
    second = tab_two.json()["data"]
    stop = requests.post(f"{service}/api/messages/{start['assistant_message_id']}/stop",
                         headers=auth_headers, timeout=30)
    assert stop.status_code == 200
    tab_one.close()

    # Tab one's answer was stopped: stored as incomplete, under its own question.
    def tree():
        return requests.get(f"{service}/api/messages/{conversation_id}", headers=auth_headers,
                            params={"view": "tree"}, timeout=30).json()["data"]

    assert wait_for(lambda: tree()["total"] == 6, timeout=60.0)
    by_id = {m["id"]: m for m in tree()["items"]}
    tab_one_answer = by_id[start["assistant_message_id"]]
    assert tab_one_answer["parent_id"] == start["user_message"]["id"]
    assert tab_one_answer["status"] == "incomplete"
    assert second["user_message"]["parent_id"] == first_answer
    assert by_id[second["user_message"]["id"]]["sibling_ids"] == [
        start["user_message"]["id"], second["user_message"]["id"]]
    conversation = requests.get(f"{service}/api/conversations/{conversation_id}",
                                headers=auth_headers, timeout=30).json()["data"]
    assert conversation["current_message_id"] == second["assistant_message"]["id"]


def test_stops_at_once_outnumbering_the_pool_each_wait_for_their_stored_end(
        service, auth_headers):
    """Four stops at once on a worker whose pool holds two connections: a stop must not wait
    for its answer's end while holding a connection that end needs."""
    conversations = [requests.post(f"{service}/api/conversations/", json={},
                                   headers=auth_headers, timeout=30).json()["data"]["id"]
                     for _ in range(4)]
    streams, answer_ids = [], []
    for conversation_id in conversations:
        response = open_stream(service, auth_headers, conversation_id,
                               "[[chunks:4]][[stall_after:2]][[stall:600]]")
        timeline = events(response)
        texts = 0
        for kind, data, _ in timeline:
            if kind == "start":
                answer_ids.append(data["assistant_message_id"])
            texts += kind == "text"
            if texts == 2:
                break
        streams.append(response)

    def stop(answer_id):
        return requests.post(f"{service}/api/messages/{answer_id}/stop", headers=auth_headers,
                             timeout=60)

    with ThreadPoolExecutor(4) as pool:
        stopped = list(pool.map(stop, answer_ids))
    for response in stopped:
        assert response.status_code == 200, response.text
        message = response.json()["data"]["message"]
        assert (message["status"], message["finish_reason"]) == ("incomplete", "stopped")
    for response in streams:
        response.close()
