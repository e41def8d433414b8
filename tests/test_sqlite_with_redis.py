"""SQLite with REDIS_URL: answers' events, stop signals and limits in Redis, rows in SQLite, one
gevent worker. SQLite lets one writer in at a time and waits for its lock in C, where no other
greenlet runs: a greenlet that held the lock across a Redis round trip froze the worker until
SQLite's busy timeout and the waiting request failed with "database is locked". Writes from many
answers, their ticker and new requests at once must all get through."""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .conftest import gunicorn_env, migrated
from .servers import gunicorn
from .simulator_client import wait_for
from .sse_client import events, open_stream

pytestmark = pytest.mark.slow

STREAMS = 20
SENDS = 30


@pytest.fixture
def sqlite_url(tmp_path, database_url):
    """The session's SQLite database, or one of this test's own in the PostgreSQL pass."""
    if database_url.startswith("sqlite"):
        return database_url
    return migrated(f"sqlite:///{tmp_path / 'chatapi.db'}")


@pytest.fixture
def service(sqlite_url, glm_simulator, redis_url):
    glm_simulator.reset()
    env = gunicorn_env(sqlite_url, glm_simulator, REDIS_URL=redis_url, MESSAGE_RATE_LIMIT="off",
                       MAX_CONCURRENT_ANSWERS="0", REGISTER_LIMIT="off")
    with gunicorn(env, workers=1) as base:
        yield base


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("the suite has no Redis (REDIS_URL)")
    return url


def signed_up(base):
    account = {"username": "writer", "password": "correct horse battery",
               "email": "writer@example.com"}
    assert requests.post(f"{base}/api/auth/register", json=account, timeout=30).status_code == 201
    login = requests.post(f"{base}/api/auth/login", timeout=30, json={
        "username": account["username"], "password": account["password"]})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['data']['access_token']}"}


def test_answers_streaming_with_events_in_redis_leave_sqlite_writable(service, glm_simulator):
    headers = signed_up(service)

    def new_conversation():
        response = requests.post(f"{service}/api/conversations/", json={}, headers=headers,
                                 timeout=60)
        assert response.status_code == 201, response.text
        return response.json()["data"]["id"]

    streamed = {}

    def stream(conversation_id):
        with open_stream(service, headers, conversation_id,
                         "[[chunks:40]][[delay:50]]") as response:
            timeline = list(events(response))
        streamed[conversation_id] = timeline

    threads = [threading.Thread(target=stream, args=(new_conversation(),))
               for _ in range(STREAMS)]
    for thread in threads:
        thread.start()
    wait_for(lambda: glm_simulator.stats()["active_streams"] >= STREAMS, timeout=60.0)

    def send(_):
        conversation_id = new_conversation()
        response = requests.post(f"{service}/api/messages/", headers=headers, timeout=60, json={
            "conversation_id": conversation_id, "content": "[[chunks:3]][[delay:20]]"})
        return response.status_code, response.text

    with ThreadPoolExecutor(10) as pool:
        sent = list(pool.map(send, range(SENDS)))
    for thread in threads:
        thread.join(timeout=120)

    assert [status for status, _ in sent] == [201] * SENDS, [
        text for status, text in sent if status != 201][:3]
    assert len(streamed) == STREAMS
    for timeline in streamed.values():
        kind, last, _ = timeline[-1]
        assert kind == "done", last
        told = "".join(data["delta"] for kind, data, _ in timeline if kind == "text")
        assert told == last["assistant_message"]["content"] != ""
