"""The deployment operators run: gunicorn with gevent workers and one database: auth across
workers, its access log, and the limits on a request's head."""
import json
import time
from urllib.parse import quote

import pytest
import requests

from .conftest import PASSWORD, gunicorn_env
from .servers import gunicorn, raw_request

pytestmark = pytest.mark.slow


def test_a_logged_out_token_is_refused_by_every_worker(app, user, database_url, tmp_path):
    env = gunicorn_env(database_url)
    access_log = tmp_path / "access.log"
    args = ["--access-logfile", str(access_log), "--access-logformat", "%(p)s %(U)s %(s)s"]
    with gunicorn(env, workers=2, extra_args=args) as base:
        login = requests.post(f"{base}/api/auth/login",
                              json={"username": "alice", "password": PASSWORD}, timeout=10)
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}",
                   "Connection": "close"}
        assert requests.get(f"{base}/api/auth/me", headers=headers, timeout=30).status_code == 200
        assert requests.post(f"{base}/api/auth/logout", headers=headers,
                             timeout=30).status_code == 200

        # Which worker accepts a connection is up to the kernel: ask until both have answered.
        refusing_workers, statuses = set(), []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = requests.get(f"{base}/api/auth/me", headers=headers, timeout=30)
            statuses.append(response.status_code)
            refusing_workers = {line.split()[0] for line in access_log.read_text().splitlines()
                                if line.split()[1:] == ["/api/auth/me", "401"]}
            if len(refusing_workers) >= 2 and len(statuses) >= 20:
                break
    assert set(statuses) == {401}
    assert len(refusing_workers) == 2, "both workers must have refused the revoked token"


@pytest.fixture(scope="module")
def served(database_url, tmp_path_factory):
    """One gunicorn gevent worker logging at INFO to a file: (base URL, path of its log),
    shared by the module's tests of what it answers to raw requests (they store nothing)."""
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = gunicorn_env(database_url, LOG_LEVEL="INFO")
    with gunicorn(env, workers=1, log_path=log) as base:
        yield base, log


def test_control_characters_in_a_path_give_one_escaped_access_log_line(served):
    base, log = served
    # A newline that would start a forged line, then CR, ESC, DEL, a C1 control (NEL), U+2028,
    # a bidirectional override and a backslash.
    forged = quote("/api/x\n2026-01-01 00:00:00,000 INFO chatapi.access: GET /api/admin 200 1.0ms"
                   "\r\x1b[2J\x7f\x85\u2028\u202e\\")
    status, _, _ = raw_request(base, f"GET {forged} HTTP/1.1\r\nHost: t\r\n"
                                     "Connection: close\r\n\r\n".encode())
    assert status == 404
    lines = log.read_text(encoding="utf-8").splitlines()
    mentioning = [line for line in lines if "/api/admin" in line]
    assert len(mentioning) == 1, lines
    assert " INFO chatapi.access: GET /api/x\\n2026-01-01 00:00:00,000 INFO chatapi.access: " \
           "GET /api/admin 200 1.0ms\\r\\x1b[2J\\x7f\\x85\\u2028\\u202e\\\\ 404 " in mentioning[0]


def assert_envelope(status, headers, body, expected_status, code, message):
    assert status == expected_status
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert json.loads(body) == {"success": False, "message": message,
                                "error": {"code": code, "details": {}}}


def test_heads_over_the_apps_limits_are_refused_by_the_app_with_the_envelope(served):
    base, _ = served
    english = "Accept-Language: en\r\nConnection: close\r\n"
    too_long = raw_request(base, f"GET /api/health?{'x' * 5000} HTTP/1.1\r\nHost: t\r\n"
                                 f"{english}\r\n".encode())
    assert_envelope(*too_long, 414, "uri_too_long", "Request URL too long")
    assert too_long[1]["x-request-id"]
    too_large = raw_request(base, "GET /api/health HTTP/1.1\r\nHost: t\r\n"
                                  f"X-Padding: {'x' * 20000}\r\n{english}\r\n".encode())
    assert_envelope(*too_large, 431, "header_fields_too_large", "Request header fields too large")
    assert too_large[1]["x-request-id"]


@pytest.mark.parametrize("head,status,code,message", [
    (f"GET /{'x' * 9000} HTTP/1.1\r\nHost: t\r\n\r\n", 414, "uri_too_long", "请求的网址过长"),
    (f"GET / HTTP/1.1\r\nHost: t\r\nX-Padding: {'x' * 40000}\r\n\r\n", 431,
     "header_fields_too_large", "请求头过大"),
    ("GET / HTTP/1.1\r\nHost: t\r\n" + "".join(f"X-{n}: 1\r\n" for n in range(300)) + "\r\n",
     431, "header_fields_too_large", "请求头过大"),
    ("NOT HTTP AT ALL\r\n\r\n", 400, "bad_request", "HTTP 请求格式错误"),
    ("GET / HTTP/1.1\r\nHost: t\r\nBad Header: 1\r\n\r\n", 400, "bad_request",
     "HTTP 请求格式错误"),
    ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: br, chunked\r\n\r\n", 501, "not_implemented",
     "服务器不支持该请求"),
], ids=["request-line", "header-field", "header-count", "request-line-garbage",
        "header-name", "transfer-coding"])
def test_what_gunicorn_refuses_itself_is_the_envelope_too(served, head, status, code, message):
    base, _ = served
    assert_envelope(*raw_request(base, head.encode()), status, code, message)


def test_a_malformed_chunked_body_is_400_not_500(served):
    """gunicorn reports a bad chunk while the app reads the body: that was a 500 (and a stack
    in the log) for what is the client's malformed request."""
    base, _ = served
    status, headers, body = raw_request(
        base, b"POST /api/auth/login HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
              b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "bad_request"
