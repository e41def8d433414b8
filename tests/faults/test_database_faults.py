"""PostgreSQL stopped under a running app (a private cluster, `pg_ctl stop -m immediate`):
requests that need it answer 503 with Retry-After, health names the database, and the same
app object serves again once the database is back."""
import logging
import threading
import time

import psycopg

import pytest
from sqlalchemy import select, text

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import Conversation, Message, User
from chatapi.models.user import username_key
from chatapi.services import passwords, tokens

from ..conftest import PASSWORD, app_config, bearer
from ..simulator_client import wait_for
from ..test_chat import parse_events

pytestmark = pytest.mark.slow

ENGLISH = {"Accept-Language": "en"}
PASSWORD_HASH = []


@pytest.fixture
def pg_app(private_postgres, glm_simulator):
    """An app on the private cluster; the cluster runs again after each test."""
    app = create_app(app_config(
        private_postgres.url, REDIS_URL=None,
        ZHIPUAI_API_KEY="test-key", GLM_BASE_URL=glm_simulator.base_url,
        GLM_READ_TIMEOUT=5.0, DB_CONNECT_TIMEOUT=2))
    yield app
    if not (private_postgres.data / "postmaster.pid").exists():
        private_postgres.start()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def account(pg_app):
    """A user in the private database, with English bearer headers."""
    if not PASSWORD_HASH:
        PASSWORD_HASH.append(passwords.hash_password(PASSWORD))
    name = f"u{time.monotonic_ns()}"
    with pg_app.app_context():
        user = User(username=name, username_key=username_key(name), email=f"{name}@example.com",
                    password_hash=PASSWORD_HASH[0])
        db.session.add(user)
        db.session.commit()
        headers = {**bearer(tokens.issue_tokens(user, pg_app.config)["access_token"]), **ENGLISH}
    return {"username": name, "headers": headers}


def assert_database_unavailable(response):
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.json
    assert body["success"] is False
    assert body["error"]["code"] == "upstream_unavailable"
    assert body["message"] == "The database is unavailable"
    assert response.headers["Retry-After"] == "5"
    raw = response.get_data(as_text=True)
    for leak in ("Traceback", "psycopg", "127.0.0.1", "SELECT", "connection"):
        assert leak not in raw


def stored_rows(app, conversation_id):
    with app.app_context():
        conversation = db.session.get(Conversation, conversation_id)
        rows = db.session.scalars(select(Message).where(
            Message.conversation_id == conversation_id)
            .order_by(Message.created_at, Message.id)).all()
        return conversation.message_count, [(m.role, m.status, m.content) for m in rows]


def test_requests_answer_503_while_postgres_is_down_and_the_same_app_recovers(
        pg_app, account, private_postgres, caplog):
    client = pg_app.test_client()
    headers = account["headers"]
    conversation = client.post("/api/conversations/", json={}, headers=headers).json["data"]

    private_postgres.stop()
    needing_the_database = [
        ("GET", "/api/conversations/", None),
        ("GET", "/api/auth/me", None),
        ("POST", "/api/conversations/", {}),
        ("GET", f"/api/messages/{conversation['id']}", None),
        ("POST", "/api/messages/", {"conversation_id": conversation["id"], "content": "hi"}),
        ("POST", "/api/messages/stream", {"conversation_id": conversation["id"],
                                          "content": "hi"}),
        ("POST", "/api/auth/login", {"username": account["username"], "password": PASSWORD}),
    ]
    latencies = []
    with caplog.at_level(logging.WARNING):
        for method, path, body in needing_the_database:
            started = time.perf_counter()
            response = client.open(path, method=method, json=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            assert_database_unavailable(response)
    # Refused at once: below the 2 s connect timeout a silent server would take, with room
    # for a loaded machine.
    assert max(latencies) < 1.8, latencies
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    health = client.get("/api/health", headers=ENGLISH)
    assert health.status_code == 503
    assert health.json["error"]["code"] == "upstream_unavailable"
    assert health.json["data"]["status"] == "degraded"
    assert health.json["data"]["database"] == "unreachable"

    private_postgres.start()
    assert client.get("/api/health").json["data"]["database"] == "ok"
    listed = client.get("/api/conversations/", headers=headers)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json["data"]["items"]] == [conversation["id"]]
    sent = client.post("/api/messages/", json={"conversation_id": conversation["id"],
                                               "content": "back"}, headers=headers)
    assert sent.status_code == 201
    assert stored_rows(pg_app, conversation["id"])[0] == 2


def test_an_app_started_while_postgres_is_down_serves_once_it_is_up(private_postgres,
                                                                    glm_simulator):
    private_postgres.stop()
    try:
        app = create_app(app_config(private_postgres.url, REDIS_URL=None,
                                    DB_CONNECT_TIMEOUT=2))
        client = app.test_client()
        assert client.get("/api/health").status_code == 503
        assert_database_unavailable(client.post("/api/auth/register", headers=ENGLISH, json={
            "username": "latecomer", "email": "late@example.com", "password": PASSWORD}))
    finally:
        private_postgres.start()
    assert client.get("/api/health").status_code == 200
    assert client.post("/api/auth/register", json={
        "username": "latecomer", "email": "late@example.com",
        "password": PASSWORD}).status_code == 201
    with app.app_context():
        db.engine.dispose()


def answer_stored_once_back(app, conversation_id):
    """The rows once the worker has stored the answer's end it held (waited for, not slept)."""
    def stored():
        try:
            count, rows = stored_rows(app, conversation_id)
        except Exception:  # the database may still be starting
            return None
        return (count, rows) if rows[-1][1] != "in_progress" else None
    return wait_for(stored, timeout=120.0)


def test_a_stream_whose_final_write_meets_a_stopped_database_ends_with_an_error_event(
        pg_app, account, private_postgres):
    """The user message and the answer's row were committed before GLM was asked; the answer's
    end meets the database gone: the client gets a well-formed `error` event (nothing stored,
    so no assistant message). The worker holds the answer and stores it whole once the
    database is back, and the next exchange works."""
    client = pg_app.test_client()
    headers = account["headers"]
    conversation = client.post("/api/conversations/", json={}, headers=headers).json["data"]
    response = client.post("/api/messages/stream", headers=headers, buffered=False, json={
        "conversation_id": conversation["id"], "content": "[[chunks:6]][[delay:150]]"})
    assert response.status_code == 200
    body = []
    for piece in response.response:
        body.append(piece.decode() if isinstance(piece, bytes) else piece)
        if len(body) == 1:
            assert "\nevent: start\n" in body[0]
            private_postgres.stop()
    response.close()
    events = parse_events("".join(body))
    assert [kind for kind, _ in events] == ["start"] + ["text"] * 6 + ["error"]
    error = events[-1][1]
    assert error == {"code": "upstream_unavailable", "message": "The database is unavailable",
                     "assistant_message": None}

    private_postgres.start()
    text = "".join(data["delta"] for kind, data in events if kind == "text")
    count, rows = answer_stored_once_back(pg_app, conversation["id"])
    assert rows == [("user", "completed", "[[chunks:6]][[delay:150]]"),
                    ("assistant", "completed", text)]
    assert count == len(rows)
    sent = client.post("/api/messages/", json={"conversation_id": conversation["id"],
                                               "content": "again"}, headers=headers)
    assert sent.status_code == 201
    count, rows = stored_rows(pg_app, conversation["id"])
    assert count == len(rows) == 4


def test_a_send_whose_final_write_meets_a_stopped_database_is_503(
        pg_app, account, private_postgres, glm_simulator):
    """The same on POST /api/messages/: the database goes while GLM is answering; the client
    gets the 503 envelope (no `data`: the answer's end was not stored); the user message stays
    and the answer is stored whole once the database is back."""
    glm_simulator.reset()
    client = pg_app.test_client()
    headers = account["headers"]
    conversation = client.post("/api/conversations/", json={}, headers=headers).json["data"]
    outcome = {}
    sender = threading.Thread(target=lambda: outcome.update(response=client.post(
        "/api/messages/", headers=headers, json={"conversation_id": conversation["id"],
                                                 "content": "[[chunks:4]][[delay:200]]"})))
    sender.start()
    assert wait_for(glm_simulator.requests)
    private_postgres.stop()
    sender.join(timeout=60)
    assert_database_unavailable(outcome["response"])
    assert "data" not in outcome["response"].json

    private_postgres.start()
    count, rows = answer_stored_once_back(pg_app, conversation["id"])
    assert [row[:2] for row in rows] == [("user", "completed"), ("assistant", "completed")]
    assert rows[0][2] == "[[chunks:4]][[delay:200]]" and rows[1][2]
    assert count == len(rows)


def test_a_query_cut_off_by_the_shutdown_is_503(pg_app, private_postgres):
    def slow():
        db.session.execute(text("SELECT pg_sleep(5)"))

    pg_app.add_url_rule("/api/slow", view_func=slow)
    outcome = {}
    request = threading.Thread(target=lambda: outcome.update(
        response=pg_app.test_client().get("/api/slow", headers=ENGLISH)))
    request.start()
    with psycopg.connect(private_postgres.url.replace("+psycopg", ""), autocommit=True) as probe:
        assert wait_for(lambda: probe.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'").fetchone())
    private_postgres.stop()
    request.join(timeout=10)
    assert_database_unavailable(outcome["response"])


def test_sql_errors_are_still_500_and_logged(pg_app, caplog):
    def broken():
        db.session.execute(text("SELECT no_such_column FROM no_such_table"))

    pg_app.add_url_rule("/api/broken", view_func=broken)
    with caplog.at_level(logging.ERROR):
        response = pg_app.test_client().get("/api/broken")
    assert response.status_code == 500
    assert response.json["error"]["code"] == "internal_error"
    assert "no_such_table" not in response.get_data(as_text=True)
    assert any("ProgrammingError" in record.getMessage() for record in caplog.records)
