"""OWASP API8:2023 Security Misconfiguration.

Every kind of response — JSON success, each error status, the OpenAPI document, a CORS
preflight and the SSE stream — carries the security headers (chatapi/security_headers.py):
`X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`,
`Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`, and `Cache-Control:
no-store` (the stream keeps the `no-cache` its contract names), and the app adds no
`Server`/`X-Powered-By`; gunicorn's `Server` carries no version. CORS answers only the
configured origins. No response body shows a stack trace, SQL, a secret, a password or a token;
no log line does either. Logged tracebacks are allowed on exactly the `unhandled error` records
of a 500 (the operator needs them) and must not carry any secret or statement value."""
import logging
import os
import stat

import pytest
import requests
from sqlalchemy import text

from chatapi.config import jwt_secret_kept_in
from chatapi.extensions import db

from ..conftest import bearer, JWT_TEST_SECRET, PASSWORD, gunicorn_env
from ..servers import gunicorn
from .conftest import assert_error

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
API_KEY = "zhipu-secret-" + "k" * 24
ORIGIN = "https://chat.example.com"


def assert_secured(response, cache_control="no-store"):
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    assert response.headers.get("Cache-Control") == cache_control
    assert "Server" not in response.headers and "X-Powered-By" not in response.headers


def broken():
    raise RuntimeError("something unexpected")


def failing_statement():
    """A database error whose statement carries secrets, as an INSERT of user data would."""
    db.session.execute(text("SELECT :password, :key FROM no_such_table"),
                       {"password": PASSWORD, "key": API_KEY})


@pytest.fixture
def secured_app(make_app, glm_simulator, user):
    glm_simulator.reset()
    app = make_app(ZHIPUAI_API_KEY=API_KEY, GLM_BASE_URL=glm_simulator.base_url,
                   GLM_READ_TIMEOUT=0.5, LOGIN_FAILURE_LIMIT="2 per minute",
                   CORS_ORIGINS=[ORIGIN])
    app.add_url_rule("/api/broken", view_func=broken)
    app.add_url_rule("/api/broken-statement", view_func=failing_statement)
    return app


def send(client, headers, conversation_id, content):
    return client.post("/api/messages/", headers=headers,
                       json={"conversation_id": conversation_id, "content": content})


RESPONSES = {
    "200 json": (200, lambda c, h, conv: c.get("/api/health")),
    "201 json": (201, lambda c, h, conv: c.post("/api/conversations/", headers=h, json={})),
    "openapi document": (200, lambda c, h, conv: c.get("/api/openapi.json")),
    "400": (400, lambda c, h, conv: c.post("/api/auth/login", data=b"{",
                                           content_type="application/json")),
    "401": (401, lambda c, h, conv: c.get("/api/auth/me")),
    "404 path": (404, lambda c, h, conv: c.get("/api/nowhere")),
    "404 object": (404, lambda c, h, conv: c.get("/api/conversations/conv_missing", headers=h)),
    "405": (405, lambda c, h, conv: c.put("/api/auth/me", headers=h)),
    "405 trace": (405, lambda c, h, conv: c.open("/api/health", method="TRACE")),
    "413": (413, lambda c, h, conv: c.post("/api/conversations/", headers=h,
                                           data=b"x" * (1024 * 1024 + 1))),
    "422": (422, lambda c, h, conv: c.get("/api/conversations/?page_size=0", headers=h)),
    "500": (500, lambda c, h, conv: c.get("/api/broken")),
    "502": (502, lambda c, h, conv: send(c, h, conv, "[[http:500]]")),
    "503": (503, lambda c, h, conv: send(c, h, conv, "[[http:503]]")),
    "504": (504, lambda c, h, conv: send(c, h, conv, "[[stall:2]]")),
    "cors preflight": (200, lambda c, h, conv: c.options("/api/auth/login", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})),
}


@pytest.mark.parametrize("kind", RESPONSES)
def test_every_kind_of_response_carries_the_security_headers(secured_app, auth_headers,
                                                             conversation_id, kind):
    status, make = RESPONSES[kind]
    response = make(secured_app.test_client(), auth_headers, conversation_id)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert_secured(response)
    if status >= 400 and kind != "cors preflight":
        assert_error(response, status, response.get_json()["error"]["code"])


def test_429_carries_the_security_headers(secured_app):
    client = secured_app.test_client()
    for _ in range(2):
        client.post("/api/auth/login", json={"username": "alice", "password": "wrong one"})
    response = client.post("/api/auth/login", json={"username": "alice", "password": "x"})
    assert_error(response, 429, "rate_limited")
    assert_secured(response)


def test_the_event_stream_carries_the_security_headers_and_its_own_cache_control(
        secured_app, auth_headers, conversation_id):
    response = secured_app.test_client().post("/api/messages/stream", headers=auth_headers, json={
        "conversation_id": conversation_id, "content": "[[reply:hi]]"})
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert_secured(response, cache_control="no-cache")
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.get_data(as_text=True).strip().split("\n\n")[-1].split("\n")[1] == "event: done"


@pytest.mark.slow
def test_gunicorn_serves_the_headers_and_names_no_version(app, user, database_url):
    env = gunicorn_env(database_url, GRACEFUL_TIMEOUT="3")
    with gunicorn(env, workers=1) as base:
        responses = [requests.get(f"{base}{path}", headers={"Connection": "close"}, timeout=30)
                     for path in ("/api/health", "/api/nowhere")]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value
        assert response.headers.get("Server") == "gunicorn"
        assert "X-Powered-By" not in response.headers


def test_without_cors_origins_no_origin_is_allowed(client, auth_headers):
    for request in (lambda: client.get("/api/auth/me", headers={**auth_headers, "Origin": ORIGIN}),
                    lambda: client.options("/api/auth/me", headers={
                        "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})):
        response = request()
        assert not [name for name in response.headers.keys() if name.startswith("Access-Control-")]


@pytest.mark.parametrize("origin", [
    "https://evil.example.com", "https://chat.example.com.evil.com", "https://chatXexample.com",
    "https://sub.chat.example.com", "http://chat.example.com", "https://chat.example.com:8443",
    "null",
])
def test_an_origin_not_configured_gets_no_cors_headers(make_app, user, auth_headers, origin):
    client = make_app(CORS_ORIGINS=[ORIGIN]).test_client()
    for response in (client.get("/api/auth/me", headers={**auth_headers, "Origin": origin}),
                     client.options("/api/auth/me", headers={
                         "Origin": origin, "Access-Control-Request-Method": "GET",
                         "Access-Control-Request-Headers": "Authorization"})):
        assert not [name for name in response.headers.keys() if name.startswith("Access-Control-")]


def test_a_configured_origin_may_call_with_a_bearer_token_and_read_errors(make_app, user,
                                                                          auth_headers):
    client = make_app(CORS_ORIGINS=[ORIGIN, "https://admin.example.com"]).test_client()
    preflight = client.options("/api/auth/me", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization"})
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    for headers in (auth_headers, {}):
        response = client.get("/api/auth/me", headers={**headers, "Origin": ORIGIN})
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Origin" in response.headers.get("Vary", "")
        assert "Access-Control-Allow-Credentials" not in response.headers
        assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]


def varied_by(response):
    return [name.strip() for value in response.headers.getlist("Vary")
            for name in value.split(",")]


@pytest.mark.parametrize("origins", [[ORIGIN], [ORIGIN, "https://admin.example.com"]],
                         ids=["one-origin", "two-origins"])
def test_with_cors_on_every_answer_varies_by_origin(make_app, user, auth_headers, origins):
    """A shared cache must not hand one origin's answer (with or without Access-Control-*
    headers) to another: preflights and actual answers, allowed origins or not, errors too."""
    client = make_app(CORS_ORIGINS=origins).test_client()
    for origin in (ORIGIN, "https://evil.example.com", None):
        sent = {"Origin": origin} if origin else {}
        answers = {
            "preflight": client.options("/api/auth/me", headers={
                **sent, "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization"}),
            "answer": client.get("/api/auth/me", headers={**auth_headers, **sent}),
            "error": client.get("/api/auth/me", headers=sent),
        }
        for kind, response in answers.items():
            assert varied_by(response).count("Origin") == 1, (origin, kind, response.headers)
        if origin == ORIGIN:
            assert answers["preflight"].headers["Access-Control-Allow-Origin"] == ORIGIN
            assert answers["answer"].headers["Access-Control-Allow-Origin"] == ORIGIN


LEAK_MARKERS = ["Traceback", 'File "', "SELECT ", "INSERT ", "sqlalchemy", "psycopg",
                "$argon2"]


def test_no_body_or_log_line_shows_a_trace_sql_secret_password_or_token(
        secured_app, glm_simulator, caplog):
    client = secured_app.test_client()
    secrets = [JWT_TEST_SECRET, API_KEY, PASSWORD, "another private passphrase"]
    issuing, bodies = [], []
    with caplog.at_level(logging.DEBUG, logger="chatapi"):
        def keep(response, issues_tokens=False):
            (issuing if issues_tokens else bodies).append(response.get_data(as_text=True))
            return response

        keep(client.post("/api/auth/register", json={
            "username": "carol", "email": "carol@example.com",
            "password": "another private passphrase"}))
        keep(client.post("/api/auth/register", json={
            "username": "carol", "email": "carol@example.com",
            "password": "another private passphrase"}))
        keep(client.post("/api/auth/register", json={
            "username": "c", "email": "nope", "password": "short"}))
        login = keep(client.post("/api/auth/login", json={
            "username": "alice", "password": PASSWORD}), issues_tokens=True).get_json()["data"]
        keep(client.post("/api/auth/login", json={"username": "alice", "password": "wrong one"}))
        keep(client.post("/api/auth/login", json={"username": "nobody", "password": PASSWORD}))
        access, refresh = login["access_token"], login["refresh_token"]
        secrets += [access, refresh]
        headers = bearer(access)
        keep(client.get("/api/auth/me", headers=headers))
        keep(client.post("/api/auth/refresh", headers=bearer(refresh)), issues_tokens=True)
        conversation = keep(client.post("/api/conversations/", headers=headers, json={
            "title": "t"})).get_json()["data"]["id"]
        for content in ("[[reply:hi]]", "[[http:401]]", "[[http:500]]", "[[http:503]]",
                        "[[stall:2]]", '[[tool:fetch_webpage {"url": "http://10.0.0.1/"}]]'):
            keep(send(client, headers, conversation, content))
        keep(client.post("/api/messages/stream", headers=headers, json={
            "conversation_id": conversation, "content": "[[drop:1]]"}))
        keep(client.get("/api/conversations/conv_missing", headers=headers))
        keep(client.get("/api/conversations/?page_size=1000", headers=headers))
        keep(client.post("/api/auth/login", data=b"{", content_type="application/json"))
        keep(client.delete("/api/auth/me", headers=headers))
        keep(client.post("/api/conversations/", headers=headers, data=b"x" * (1024 * 1024 + 1)))
        keep(client.post("/api/tools/fetch_webpage/execute", headers=headers,
                         json={"url": "http://169.254.169.254/"}))
        keep(client.get("/api/broken"))
        keep(client.get("/api/broken-statement"))
        keep(client.post("/api/auth/logout", headers=headers, json={"refresh_token": refresh}))
        keep(client.get("/api/auth/me", headers=headers))
        keep(client.post("/api/auth/refresh", headers=bearer(refresh)))

    for body in bodies:
        found = [marker for marker in LEAK_MARKERS + secrets if marker in body]
        assert found == [], body[:500]
    for body in issuing:
        assert [marker for marker in LEAK_MARKERS + secrets[:4] if marker in body] == []

    traced = []
    for record in caplog.records:
        line = record.getMessage()
        assert [marker for marker in LEAK_MARKERS + secrets if marker in line] == [], line
        if record.exc_info:
            traced.append(line)
            trace = logging.Formatter().formatException(record.exc_info)
            assert [secret for secret in secrets if secret in trace] == [], trace
    # SQLite raises OperationalError for the missing table, PostgreSQL ProgrammingError.
    assert traced[0] == "unhandled error: RuntimeError" and len(traced) == 2
    assert traced[1] in ("unhandled error: OperationalError", "unhandled error: ProgrammingError")
    assert len(caplog.records) > 25


def test_an_unset_jwt_secret_becomes_a_random_key_kept_private(tmp_path):
    first, made = jwt_secret_kept_in(tmp_path / "one")
    assert made and jwt_secret_kept_in(tmp_path / "one") == (first, False)
    assert len(first) >= 64 and first != jwt_secret_kept_in(tmp_path / "two")[0]
    assert sorted(path.name for path in (tmp_path / "one").iterdir()) == ["jwt-secret"]
    mode = stat.S_IMODE(os.stat(tmp_path / "one" / "jwt-secret").st_mode)
    assert mode == 0o600
