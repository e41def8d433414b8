"""Redis (REDIS_URL: revocations, the login throttle, answers' events and stop signals)
unreachable under a running app: everything that needs it fails closed with 503, fast, and
recovers by itself; an answer's end is stored in the database whatever Redis does."""
import time

import pytest

from ..conftest import PASSWORD, bearer
from ..simulator_client import wait_for
from ..test_answers_as_jobs import follow, read_until, stalled_answer, stored
from ..test_chat import parse_events
from .backends import PrivateRedis

pytestmark = pytest.mark.slow

ENGLISH = {"Accept-Language": "en"}


@pytest.fixture
def redis_app(make_app, private_redis):
    return make_app(REDIS_URL=private_redis.url)


def log_in(client, username="alice", password=PASSWORD):
    return client.post("/api/auth/login", json={"username": username, "password": password},
                       headers=ENGLISH)


def tokens_one_revoked(client):
    """Two sessions of one user; the first has logged out."""
    revoked, live = (bearer(log_in(client).json["data"]["access_token"]) for _ in range(2))
    assert client.post("/api/auth/logout", headers=revoked).status_code == 200
    return {**revoked, **ENGLISH}, {**live, **ENGLISH}


def timed(call):
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def assert_fails_closed(response):
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.json["success"] is False
    assert response.json["error"]["code"] == "upstream_unavailable"
    assert "redis" not in response.get_data(as_text=True).lower()


def test_a_revoked_token_never_works_while_redis_hangs_and_all_recovers_by_itself(
        redis_app, user, private_redis):
    client = redis_app.test_client()
    revoked, live = tokens_one_revoked(client)
    assert client.get("/api/auth/me", headers=revoked).json["error"]["code"] == "unauthorized"

    private_redis.pause()
    # One wait of REDIS_TIMEOUT (1 s) each, never two, with room for a loaded machine.
    try:
        for headers in (revoked, live, revoked):
            response, seconds = timed(lambda: client.get("/api/auth/me", headers=headers))
            assert_fails_closed(response)
            assert seconds < 1.9, seconds
        response, seconds = timed(lambda: log_in(client))
        assert_fails_closed(response)
        assert seconds < 1.9, seconds
        assert_fails_closed(client.post("/api/auth/logout", headers=live))
        assert client.get("/api/health").status_code == 200
    finally:
        private_redis.resume()

    assert client.get("/api/auth/me", headers=revoked).status_code == 401
    assert client.get("/api/auth/me", headers=live).status_code == 200
    assert log_in(client).status_code == 200


def test_a_stopped_redis_fails_closed_at_once(redis_app, user, private_redis):
    client = redis_app.test_client()
    revoked, live = tokens_one_revoked(client)
    private_redis.kill()
    for headers in (revoked, live):
        response, seconds = timed(lambda: client.get("/api/conversations/", headers=headers))
        assert_fails_closed(response)
        assert seconds < 0.9, seconds  # refused: less than one REDIS_TIMEOUT (1 s)
    assert_fails_closed(log_in(client))


def test_the_login_throttle_fails_closed_even_for_wrong_passwords(redis_app, user,
                                                                  private_redis):
    client = redis_app.test_client()
    assert log_in(client, password="wrong password").status_code == 401
    private_redis.pause()
    try:
        assert_fails_closed(log_in(client, password="wrong password"))
        assert_fails_closed(log_in(client))
    finally:
        private_redis.resume()
    assert log_in(client, password="wrong password").status_code == 401


def test_revocations_survive_a_restart_of_a_persistent_redis(make_app, user,
                                                             persistent_redis):
    """Restarting on the same port: the app's pooled connections are dead, the next requests
    reconnect; an append-only Redis remembers the revocation (one without persistence would
    forget it, and the revoked token would work again until it expires)."""
    client = make_app(REDIS_URL=persistent_redis.url).test_client()
    revoked, live = tokens_one_revoked(client)
    persistent_redis.kill()
    assert_fails_closed(client.get("/api/auth/me", headers=revoked))
    persistent_redis.start()
    assert client.get("/api/auth/me", headers=revoked).status_code == 401
    assert client.get("/api/auth/me", headers=live).status_code == 200
    assert log_in(client).status_code == 200


def test_an_app_started_while_redis_is_down_serves_once_it_is_up(make_app, user):
    redis_server = PrivateRedis()
    try:
        client = make_app(REDIS_URL=redis_server.url).test_client()
        assert_fails_closed(log_in(client))
        redis_server.start()
        token = log_in(client).json["data"]["access_token"]
        assert client.get("/api/auth/me", headers=bearer(token)).status_code == 200
    finally:
        redis_server.destroy()


def test_an_answer_ending_while_redis_hangs_is_stored_and_its_end_reaches_redis_after(
        chat_app, auth_headers, private_redis):
    """The stored row is the truth: the answer's end is committed to the database while Redis
    hangs, its stream here gets `done`, and a stream on another instance gets the same end once
    Redis answers again."""
    shared = {"REDIS_URL": private_redis.url, "REDIS_TIMEOUT": 0.3, "GLM_READ_TIMEOUT": 600.0,
              "RATELIMIT_KEY_PREFIX": "chatapi-fault-answers"}
    first, second = chat_app(**shared), chat_app(**shared)
    client = first.test_client()
    conversation_id, response, pieces, seen, answer_id = stalled_answer(client, auth_headers)

    private_redis.pause()
    try:
        with first.app_context():
            first.extensions["chatapi.answers"].stop(answer_id)
        rest = read_until(pieces, "done")
        response.close()
        answer = stored(answer_id)
        assert (answer.status, answer.finish_reason, answer.content) == (
            "incomplete", "stopped", "w0 w1 ")
    finally:
        private_redis.resume()

    store = second.extensions["chatapi.answers"].store
    wait_for(lambda: (job := store.job(answer_id)) and job.ended_at, timeout=60)
    again = parse_events(follow(second.test_client(), auth_headers, answer_id)
                         .get_data(as_text=True))
    assert again == [(kind, data) for kind, data, _ in seen + rest]
    assert again[-1][0] == "done" and again[-1][1]["assistant_message"]["content"] == "w0 w1 "
