"""OWASP API4 (unrestricted resource consumption): answers one user may have in progress at
once (MAX_CONCURRENT_ANSWERS), on real gunicorn workers, since an answer in progress is an open
stream. With REDIS_URL the cap is shared by every worker."""
import os
import time

import pytest
import requests

from ..conftest import gunicorn_env
from ..servers import gunicorn
from ..sse_client import events
from ..test_chat import stored

pytestmark = pytest.mark.slow
# Two seconds of answer: long enough to try more answers while it is being written.
SLOW_ANSWER = "[[chunks:5]][[delay:400]]"


@pytest.fixture
def service_env(app, database_url, glm_simulator):
    glm_simulator.reset()
    return gunicorn_env(database_url, glm_simulator, MESSAGE_RATE_LIMIT="off")


def new_conversation(base, headers):
    return requests.post(f"{base}/api/conversations/", json={}, timeout=30,
                         headers={**headers, "Connection": "close"}).json()["data"]["id"]


def post(base, headers, conversation_id, content, path="/api/messages/", **options):
    # Connection: close, so no idle keep-alive connection makes gunicorn's shutdown wait.
    return requests.post(f"{base}{path}", headers={**headers, "Connection": "close"},
                         timeout=30,
                         json={"conversation_id": conversation_id, "content": content},
                         **options)


def started_stream(base, headers, conversation_id, content):
    """A stream whose `start` event has arrived: its answer is in progress."""
    response = post(base, headers, conversation_id, content, path="/api/messages/stream",
                    stream=True)
    assert response.status_code == 200
    timeline = events(response)
    assert next(timeline)[0] == "start"
    return response, timeline


def finished(timeline):
    return [kind for kind, _, _ in timeline][-1]


def assert_refused(response):
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


def test_a_user_past_the_cap_is_refused_until_an_answer_is_stored(
        service_env, auth_headers, other_headers):
    with gunicorn({**service_env, "MAX_CONCURRENT_ANSWERS": "2"}, workers=1) as base:
        conversation_id = new_conversation(base, auth_headers)
        first, first_events = started_stream(base, auth_headers, conversation_id, SLOW_ANSWER)
        second, second_events = started_stream(base, auth_headers, conversation_id,
                                               SLOW_ANSWER)

        third = post(base, {**auth_headers, "Accept-Language": "en"}, conversation_id, "third",
                     path="/api/messages/stream")
        assert_refused(third)
        assert third.json()["message"] == "Too many answers in progress; wait for one to finish"
        assert_refused(post(base, auth_headers, conversation_id, "fourth"))
        # Another user is not held up by this one.
        theirs = new_conversation(base, other_headers)
        assert post(base, other_headers, theirs, "mine").status_code == 201

        assert finished(first_events) == "done"
        assert post(base, auth_headers, conversation_id, "fifth").status_code == 201
        assert finished(second_events) == "done"
        first.close()
        second.close()
    users_words = [m.content for m in stored(conversation_id) if m.role == "user"]
    assert users_words == [SLOW_ANSWER, SLOW_ANSWER, "fifth"]


def test_a_client_hanging_up_gives_its_slot_back(service_env, auth_headers):
    with gunicorn({**service_env, "MAX_CONCURRENT_ANSWERS": "1"}, workers=1) as base:
        conversation_id = new_conversation(base, auth_headers)
        held, _ = started_stream(base, auth_headers, conversation_id, SLOW_ANSWER)
        assert_refused(post(base, auth_headers, conversation_id, "refused"))
        held.close()
        deadline = time.monotonic() + 10
        while (answer := post(base, auth_headers, conversation_id, "after")).status_code == 429:
            assert time.monotonic() < deadline, "the slot never came back"
            time.sleep(0.2)
        assert answer.status_code == 201


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")
def test_with_redis_the_cap_holds_across_workers(service_env, auth_headers, tmp_path):
    access_log = tmp_path / "access.log"
    args = ["--access-logfile", str(access_log), "--access-logformat", "%(p)s %(U)s %(s)s"]
    env = {**service_env, "MAX_CONCURRENT_ANSWERS": "1"}
    with gunicorn(env, workers=2, extra_args=args) as base:
        conversation_id = new_conversation(base, auth_headers)
        # One long answer, then refusals until both workers have refused at least once.
        held, held_events = started_stream(base, auth_headers, conversation_id,
                                           "[[chunks:15]][[delay:400]]")
        refusing_workers = set()
        deadline = time.monotonic() + 5
        while len(refusing_workers) < 2 and time.monotonic() < deadline:
            refused = post(base, auth_headers, conversation_id, "no")
            assert_refused(refused)
            refusing_workers = {line.split()[0] for line in access_log.read_text().splitlines()
                                if line.split()[1:] == ["/api/messages/", "429"]}
        assert len(refusing_workers) == 2, "both workers must have refused the second answer"
        assert finished(held_events) == "done"
        held.close()
