"""Every row of docs/API.md §1's status table, in the envelope, in both languages."""
import json
import logging
import time

import jwt as pyjwt
import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from chatapi import errors
from chatapi.extensions import db
from chatapi.services import chat
from chatapi.texts import TEXTS

from .conftest import JWT_TEST_SECRET, PASSWORD, bearer, expired_access_token


def assert_envelope(response, status, code):
    assert response.status_code == status
    body = response.json
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["details"], dict)
    assert body["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


@pytest.mark.parametrize("body,content_type", [
    (b"{not json", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"text"', "application/json"),
    (b"username=a&password=b", "application/x-www-form-urlencoded"),
    (b"\xff\xfe", "application/json"),
])
def test_a_body_that_is_not_a_json_object_is_400(client, body, content_type):
    response = client.post("/api/auth/login", data=body, content_type=content_type)
    assert_envelope(response, 400, "bad_request")


def test_json_without_a_json_content_type_is_still_read(client, user):
    response = client.post("/api/auth/login", content_type="text/plain",
                           data=b'{"username": "alice", "password": "%s"}' % PASSWORD.encode())
    assert response.status_code == 200


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer not.a.jwt"},
    {"Authorization": "Basic YWxpY2U6cHc="},
])
def test_missing_or_malformed_token_is_401(client, headers):
    assert_envelope(client.get("/api/auth/me", headers=headers), 401, "unauthorized")


def forged_token(user, key, algorithm="HS256"):
    now = int(time.time())
    claims = {"sub": str(user.id), "jti": "forged", "type": "access", "fresh": False,
              "iat": now, "nbf": now, "exp": now + 3600, "token_key": user.token_key}
    return pyjwt.encode(claims, key, algorithm=algorithm)


def test_token_signed_with_another_key_is_401(client, user):
    forged = forged_token(user, "another-secret-" + "y" * 40)
    assert_envelope(client.get("/api/auth/me", headers=bearer(forged)), 401, "unauthorized")
    genuine = forged_token(user, JWT_TEST_SECRET)
    assert client.get("/api/auth/me", headers=bearer(genuine)).status_code == 200


def test_unsigned_alg_none_token_is_401(client, user):
    unsigned = forged_token(user, None, algorithm="none")
    assert_envelope(client.get("/api/auth/me", headers=bearer(unsigned)), 401, "unauthorized")


def test_expired_token_is_401(client, user):
    assert_envelope(client.get("/api/auth/me", headers=bearer(expired_access_token(user))),
                    401, "unauthorized")


def test_deactivated_login_is_403(client, make_user):
    make_user("frank", is_active=False)
    response = client.post("/api/auth/login", json={"username": "frank", "password": PASSWORD})
    assert_envelope(response, 403, "forbidden")


def test_unknown_path_is_404(client):
    assert_envelope(client.get("/api/does-not-exist"), 404, "not_found")


def test_wrong_method_is_405_with_allow(client):
    response = client.delete("/api/auth/login")
    assert_envelope(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_duplicate_is_409(client, user):
    response = client.post("/api/auth/register", json={
        "username": "alice", "email": "new@example.com", "password": "password123"})
    assert_envelope(response, 409, "conflict")


def test_body_over_one_mebibyte_is_413(client):
    response = client.post("/api/auth/register", data=b"{" + b" " * (1024 * 1024) + b"}",
                           content_type="application/json")
    assert_envelope(response, 413, "payload_too_large")


def test_a_url_over_max_url_length_is_414(client):
    assert client.get("/api/conversations/?q=" + "x" * 4000).status_code == 401
    response = client.get("/api/conversations/?q=" + "x" * 4100, headers={"Accept-Language": "en"})
    assert assert_envelope(response, 414, "uri_too_long")["message"] == "Request URL too long"
    assert response.headers["X-Request-ID"]


def test_request_headers_over_max_headers_length_are_431(client):
    fields = {f"X-Padding-{n}": "x" * 1000 for n in range(17)}
    response = client.get("/api/health", headers={**fields, "Accept-Language": "en"})
    body = assert_envelope(response, 431, "header_fields_too_large")
    assert body["message"] == "Request header fields too large"
    assert client.get("/api/health", headers=dict(list(fields.items())[:14])).status_code == 200


def test_invalid_fields_are_422_with_details_per_field(client):
    response = client.post("/api/auth/register", json={"username": 5, "email": None})
    body = assert_envelope(response, 422, "validation_error")
    assert set(body["error"]["details"]) == {"username", "email", "password"}
    assert all(isinstance(messages, list) for messages in body["error"]["details"].values())


def test_rate_limit_is_429_with_retry_after(client, user):
    for _ in range(10):
        client.post("/api/auth/login", json={"username": "alice", "password": "nope-nope"})
    response = client.post("/api/auth/login", json={"username": "alice", "password": "x"})
    assert_envelope(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0


def test_unexpected_exception_is_500_without_details_and_is_logged(make_app, caplog):
    app = make_app()

    def broken():
        raise RuntimeError("SELECT secret FROM users -- should never reach the client")

    app.add_url_rule("/api/broken", view_func=broken)
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/api/broken")
    body = assert_envelope(response, 500, "internal_error")
    assert "SELECT" not in response.get_data(as_text=True)
    assert body["error"]["details"] == {}
    assert any("RuntimeError" in record.getMessage() for record in caplog.records)


def failing_answer(exchange, error):
    """What chat.run does with a first piece of text, then a failure."""
    def run_exchange():
        exchange.text.append("partial ")
        yield "text", {"delta": "partial "}
        raise error
    return run_exchange


@pytest.mark.parametrize("error,status,text_key,code", [
    (KeyError("a bug of ours"), 500, "internal_error", "internal_error"),
    (PoolTimeout("the pool stayed taken"), 503, "database_unavailable", "upstream_unavailable"),
    (errors.UpstreamTimeout(), 504, "upstream_timeout", "upstream_timeout"),
])
def test_an_answer_fails_with_what_a_request_would_answer(
        app, client, user, auth_headers, conversation_id, error, status, text_key, code):
    """One mapping from exceptions to API errors: an answer that fails unexpectedly ends with
    the error the envelope gives any request failing so, in its last event and its stored row,
    with what it had written kept."""
    answers = app.extensions["chatapi.answers"]
    with app.app_context():
        exchange = chat.begin(
            user.id, conversation_id, "hello", False, config=app.config,
            registry=app.extensions["chatapi.tools"],
            limiter=app.extensions["chatapi.rate_limiter"],
            slots=app.extensions["chatapi.answer_slots"], language="en",
            opening=answers.opening("en"), quota=None,
            meter=app.extensions["chatapi.token_meter"])
        job = answers.start(exchange, failing_answer(exchange, error), {})
    assert job.wait(timeout=120)
    assert (job.failure.status, job.failure.text_key) == (status, text_key)
    _, kind, data = job.events[-1]
    assert kind == "error"
    assert json.loads(data)["code"] == code
    assert json.loads(data)["message"] == TEXTS[text_key][1]
    stored = client.get(f"/api/messages/{conversation_id}", headers=auth_headers).json
    answer = stored["data"]["items"][-1]
    assert (answer["id"], answer["status"], answer["error_code"], answer["content"]) == (
        job.id, "error", code, "partial ")


@pytest.mark.parametrize("error_class,status,code", [
    (errors.UpstreamError, 502, "upstream_error"),
    (errors.UpstreamUnavailable, 503, "upstream_unavailable"),
    (errors.UpstreamTimeout, 504, "upstream_timeout"),
])
def test_upstream_failures_map_to_their_status(make_app, error_class, status, code):
    app = make_app()

    def failing():
        raise error_class()

    app.add_url_rule("/api/failing", view_func=failing)
    assert_envelope(app.test_client().get("/api/failing"), status, code)


def test_english_texts_with_accept_language_en(client):
    response = client.get("/api/nowhere", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert response.json["message"] == "Not found"
    chinese = client.get("/api/nowhere", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert chinese.json["message"] == "资源不存在"
    assert client.get("/api/nowhere").json["message"] == "资源不存在"


def test_trailing_slash_answers_directly_without_redirect(client, auth_headers):
    for path in ("/api/auth/me", "/api/auth/me/"):
        assert client.get(path, headers=auth_headers).status_code == 200
    assert client.get("/api/health/").status_code == 200


def test_request_id_is_echoed_or_generated(client):
    given = client.get("/api/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = client.get("/api/health")
    assert len(made.headers["X-Request-ID"]) == 32
    hostile = client.get("/api/health", headers={"X-Request-ID": "bad\u2028value" * 30})
    assert hostile.headers["X-Request-ID"] != "bad\u2028value" * 30
    # Not echoed with a final newline (a regex's `$` matches before one): the middleware hands
    # the header list to the server as it is.
    newline = client.get("/api/health", environ_overrides={"HTTP_X_REQUEST_ID": "abc\n"})
    assert len(newline.headers["X-Request-ID"]) == 32


def test_cors_allows_only_configured_origins(make_app):
    client = make_app(CORS_ORIGINS=["https://chat.example.com"]).test_client()
    preflight = client.options("/api/auth/login", headers={
        "Origin": "https://chat.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type, Authorization"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://chat.example.com"
    refused = client.get("/api/health", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_no_cors_headers_when_no_origins_are_configured(client):
    response = client.get("/api/health", headers={"Origin": "https://chat.example.com"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_one_log_line_per_request_without_password_or_token(client, user, caplog):
    with caplog.at_level(logging.INFO, logger="chatapi.access"):
        login = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD},
                            headers={"X-Request-ID": "req-42"})
        token = login.json["data"]["access_token"]
        client.get("/api/auth/me", headers=bearer(token))
    lines = [record.getMessage() for record in caplog.records if record.name == "chatapi.access"]
    assert len(lines) == 2
    assert lines[0].startswith("POST /api/auth/login 200 ") and "request_id=req-42" in lines[0]
    assert lines[1].startswith("GET /api/auth/me 200 ")
    everything = "\n".join(record.getMessage() for record in caplog.records)
    assert PASSWORD not in everything and token not in everything


def test_session_survives_a_failed_request(client, user, auth_headers):
    client.post("/api/auth/register", json={
        "username": "alice", "email": "alice@example.com", "password": "password123"})
    assert client.get("/api/auth/me", headers=auth_headers).status_code == 200
    assert db.session.is_active
