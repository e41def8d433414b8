"""A PostgreSQL that accepts connections but never answers (a silent port; a proxy in front of
the real server that freezes mid-session): requests answer 503 within a bound set by
DB_CONNECT_TIMEOUT and DB_STATEMENT_TIMEOUT, the connections cut off are thrown away, and the
same app serves again once the server answers."""
import socket
import threading
import time
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import event, text

from chatapi import create_app
from chatapi.extensions import db
from chatapi.postgres import answer_timeout

from ..conftest import PASSWORD, app_config
from .backends import FreezableProxy
from .test_database_faults import ENGLISH, assert_database_unavailable

pytestmark = pytest.mark.slow

STATEMENT_TIMEOUT = 1.0
CONNECT_TIMEOUT = 2  # libpq's smallest
# The longest a request may wait for a server gone silent: a pooled connection's ping (or its
# statement) cut off at the answer timeout, then a new connection given up at the connect one.
BOUND = answer_timeout(STATEMENT_TIMEOUT) + CONNECT_TIMEOUT
# Generous, for a loaded machine; a request that hangs never ends at all.
DEADLINE = 3 * BOUND


def silent_app(database_url):
    return create_app(app_config(
        database_url, REDIS_URL=None,
        DB_CONNECT_TIMEOUT=CONNECT_TIMEOUT, DB_STATEMENT_TIMEOUT=STATEMENT_TIMEOUT))


def answer_within(deadline, call):
    """`call()`'s response and how long it took, failing (not hanging) past `deadline`."""
    outcome = {}

    def run():
        started = time.monotonic()
        outcome["response"] = call()
        outcome["elapsed"] = time.monotonic() - started

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(deadline)
    assert not worker.is_alive(), f"no answer within {deadline:.1f} s"
    return outcome["response"], outcome["elapsed"]


@contextmanager
def proxied(private_postgres):
    proxy = FreezableProxy(private_postgres.port)
    app = silent_app(private_postgres.url.replace(f":{private_postgres.port}/",
                                                  f":{proxy.port}/"))
    discarded = []
    with app.app_context():
        event.listen(db.engine, "invalidate", lambda *_: discarded.append(1))
    try:
        yield app, proxy, discarded
    finally:
        proxy.close()
        with app.app_context():
            db.engine.dispose()


def register(client, name):
    response = client.post("/api/auth/register", json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD})
    assert response.status_code == 201, response.json
    login = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json['data']['access_token']}", **ENGLISH}


def test_a_port_that_accepts_but_never_answers_is_503_within_the_connect_timeout():
    with socket.socket() as silent:
        # The kernel completes the handshakes; no startup message is ever answered.
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        app = silent_app(f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/db")
        client = app.test_client()
        response, elapsed = answer_within(DEADLINE, lambda: client.post(
            "/api/auth/login", headers=ENGLISH, json={"username": "a", "password": PASSWORD}))
        assert_database_unavailable(response)
        health, _ = answer_within(DEADLINE, lambda: client.get("/api/health"))
        assert health.status_code == 503
        assert health.json["data"]["database"] == "unreachable"
        with app.app_context():
            db.engine.dispose()
    assert elapsed < 3 * CONNECT_TIMEOUT


def test_a_server_frozen_between_requests_is_503_within_the_bound_then_serves_again(
        private_postgres):
    with proxied(private_postgres) as (app, proxy, discarded):
        client = app.test_client()
        headers = register(client, f"f{time.monotonic_ns()}")
        conversation = client.post("/api/conversations/", json={}, headers=headers).json["data"]

        proxy.freeze()
        for method, path in (("GET", "/api/conversations/"), ("POST", "/api/conversations/"),
                             ("GET", f"/api/messages/{conversation['id']}")):
            response, elapsed = answer_within(DEADLINE, lambda: client.open(
                path, method=method, json={} if method == "POST" else None, headers=headers))
            assert_database_unavailable(response)
            assert elapsed < DEADLINE
        assert discarded, "the connections cut off must leave the pool"

        proxy.thaw()
        for _ in range(3):
            listed = client.get("/api/conversations/", headers=headers)
            assert listed.status_code == 200
            assert [item["id"] for item in listed.json["data"]["items"]] == [conversation["id"]]
        assert client.get("/api/health").json["data"]["database"] == "ok"


def test_a_statement_whose_answer_never_arrives_is_503_within_the_bound(private_postgres):
    with proxied(private_postgres) as (app, proxy, discarded):
        def slow():
            db.session.execute(text("SELECT pg_sleep(0.3)"))
            return {"slept": True}

        app.add_url_rule("/api/slow", view_func=slow)
        client = app.test_client()
        assert client.get("/api/slow").status_code == 200
        outcome = {}
        request = threading.Thread(target=lambda: outcome.update(zip(
            ("response", "elapsed"),
            answer_within(DEADLINE, lambda: client.get("/api/slow", headers=ENGLISH)))))
        request.start()
        # Frozen while the statement runs: the server answers, the proxy holds the answer.
        with psycopg.connect(private_postgres.url.replace("+psycopg", ""),
                             autocommit=True) as probe:
            deadline = time.monotonic() + 10
            while not probe.execute("SELECT 1 FROM pg_stat_activity WHERE state = 'active' "
                                    "AND query LIKE 'SELECT pg_sleep%'").fetchone():
                assert time.monotonic() < deadline
            proxy.freeze()
        request.join()
        assert_database_unavailable(outcome["response"])
        assert outcome["elapsed"] < DEADLINE
        assert discarded

        proxy.thaw()
        assert client.get("/api/slow").json == {"slept": True}


def test_a_statement_past_the_statement_timeout_is_canceled_by_the_server_as_503(
        private_postgres):
    """A live server cancels it itself; its connection stays in the pool."""
    with proxied(private_postgres) as (app, _proxy, discarded):
        def slower():
            db.session.execute(text("SELECT pg_sleep(5)"))

        app.add_url_rule("/api/slower", view_func=slower)
        response, elapsed = answer_within(DEADLINE, lambda: app.test_client().get(
            "/api/slower", headers=ENGLISH))
        assert_database_unavailable(response)
        assert elapsed >= STATEMENT_TIMEOUT
        assert not discarded
