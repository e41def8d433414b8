"""The deployment behind nginx: deploy/nginx.conf itself, run by a real nginx on loopback in
front of a real gunicorn (one gevent worker) and the GLM simulator."""
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import uuid
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import pytest
import requests

from chatapi.apidocs import POLICY as DOCS_POLICY
from chatapi.errors import code_for
from chatapi.security_headers import HEADERS
from chatapi.texts import TEXTS
from chatapi.web import POLICY as WEB_POLICY

from .conftest import PASSWORD, gunicorn_env
from .servers import PROJECT, free_port, gunicorn, raw_request, wait_until_serving
from .simulator_client import wait_for
from .sse_client import events, open_stream, text_arriving_as_written

NGINX = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
DEPLOYED_CONF = PROJECT / "deploy" / "nginx.conf"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(NGINX is None, reason="the nginx binary is not installed "
                                                       "(.ci/run installs Debian's nginx)")]

# What an operator's `http {}` may already say; deploy/nginx.conf must stream in spite of it.
# The app's `X-Accel-Buffering: no` is ignored so the stream location's own settings are what
# is tested, and the default read timeout is shorter than the silence one test sits through.
WRAPPER = """\
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log notice;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    gzip on;
    gzip_types text/event-stream application/json;
    gzip_min_length 1;
    proxy_ignore_headers X-Accel-Buffering;
    proxy_read_timeout 1s;
    include {tmp}/chatapi.conf;
}}
"""


def deployed_conf(upstream_port, listen_port, access_log, changes=None):
    """deploy/nginx.conf with this test's addresses (and `changes`, {written: wanted}); each
    replaced line must be there once."""
    text = DEPLOYED_CONF.read_text()
    for written, wanted in {"server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
                            "listen 80;": f"listen 127.0.0.1:{listen_port};",
                            "/var/log/nginx/chatapi.access.log": str(access_log),
                            **(changes or {})}.items():
        assert text.count(written) == 1, f"deploy/nginx.conf should say {written!r} once"
        text = text.replace(written, wanted)
    return text


@contextmanager
def nginx(upstream_port, tmp, changes=None):
    """A real nginx (master + one worker, not daemonized) proxying to `upstream_port`."""
    port = free_port()
    (tmp / "chatapi.conf").write_text(
        deployed_conf(upstream_port, port, tmp / "access.log", changes))
    # Run by root, the workers would switch to `nobody` and could not write the temp dirs.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(WRAPPER.format(user=user, tmp=tmp))
    process = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
                                "-e", str(tmp / "error.log"), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        # nginx's own 404 for its internal location: up, whether or not anything listens
        # upstream.
        wait_until_serving(f"{base}/_chatapi_error", process)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture
def make_stack(app, database_url, glm_simulator, tmp_path):
    """nginx in front of one gunicorn worker that trusts `proxy_fix_x_for` proxies."""
    stacks = []

    def make(proxy_fix_x_for=1, changes=None, **settings):
        glm_simulator.reset()
        env = gunicorn_env(database_url, glm_simulator, PROXY_FIX_X_FOR=str(proxy_fix_x_for),
                           **settings)
        tmp = tmp_path / f"nginx-{len(stacks)}"
        tmp.mkdir()
        stack = gunicorn(env, workers=1)
        proxy = nginx(urlsplit(stack.__enter__()).port, tmp, changes)
        stacks.append(stack)
        stacks.append(proxy)
        return proxy.__enter__()

    yield make
    for context in reversed(stacks):
        context.__exit__(None, None, None)


@pytest.fixture(scope="module")
def default_stack(database_url, glm_simulator, tmp_path_factory):
    """nginx in front of one gunicorn worker with the default settings, shared by the tests
    that change none (each one's rows still go after it): (base URL, nginx's folder)."""
    tmp = tmp_path_factory.mktemp("nginx")
    env = gunicorn_env(database_url, glm_simulator, PROXY_FIX_X_FOR="1")
    with gunicorn(env, workers=1) as upstream, nginx(urlsplit(upstream).port, tmp) as base:
        yield base, tmp


@pytest.fixture
def through_nginx(app, default_stack, glm_simulator):
    glm_simulator.reset()
    return default_stack[0]


@pytest.fixture
def conversation_id(through_nginx, auth_headers):
    response = requests.post(f"{through_nginx}/api/conversations/", json={},
                             headers=auth_headers, timeout=30)
    return response.json()["data"]["id"]


def test_a_stream_reaches_the_client_through_nginx_as_the_model_writes(
        through_nginx, auth_headers, conversation_id):
    with open_stream(through_nginx, auth_headers, conversation_id,
                     "[[chunks:10]][[delay:300]]") as response:
        headers = response.headers
        timeline = list(events(response))
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache"
    assert "Content-Encoding" not in headers and "Content-Length" not in headers
    text_arriving_as_written(timeline)


def send_through(base, headers, conversation_id, content):
    response = requests.post(f"{base}/api/messages/", headers=headers, timeout=120,
                             json={"conversation_id": conversation_id, "content": content})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def test_a_regeneration_streams_through_nginx_as_the_model_writes(
        through_nginx, auth_headers, conversation_id):
    sent = send_through(through_nginx, auth_headers, conversation_id,
                        "[[chunks:10]][[delay:300]]")
    answer_id = sent["assistant_message"]["id"]
    with requests.post(f"{through_nginx}/api/messages/{answer_id}/regenerate/stream",
                       headers=auth_headers, json={}, stream=True, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        timeline = list(events(response))
    text_arriving_as_written(timeline)
    assert timeline[-1][1]["assistant_message"]["parent_id"] == sent["user_message"]["id"]


def test_an_answer_followed_again_streams_through_nginx_as_the_model_writes(
        through_nginx, auth_headers, conversation_id):
    """A second stream of a running answer (GET .../stream after the first events) gets the
    rest as it is written, not in one piece at the end."""
    with open_stream(through_nginx, auth_headers, conversation_id,
                     "[[chunks:10]][[delay:300]]") as first:
        seen = events(first)
        start = next(data for kind, data, _ in seen if kind == "start")
        with requests.get(f"{through_nginx}/api/messages/{start['assistant_message_id']}/stream",
                          headers={**auth_headers, "Last-Event-ID": "1"}, stream=True,
                          timeout=60) as again:
            assert again.headers["Content-Type"].startswith("text/event-stream")
            timeline = list(events(again))
    text_arriving_as_written(timeline)


def test_whole_answers_outlast_the_read_timeout_of_the_rest_of_the_api(
        make_stack, auth_headers):
    """With /api/'s read timeout at 1 s, a send and a regeneration whose model is silent for
    3 s still answer 201: their own locations wait for the whole exchange."""
    base = make_stack(changes={"proxy_read_timeout 60s;": "proxy_read_timeout 1s;"})
    conversation_id = requests.post(f"{base}/api/conversations/", json={},
                                    headers=auth_headers, timeout=30).json()["data"]["id"]
    sent = send_through(base, auth_headers, conversation_id, "[[stall:3]][[reply:slow]]")
    again = requests.post(f"{base}/api/messages/{sent['assistant_message']['id']}/regenerate",
                          headers=auth_headers, json={}, timeout=120)
    assert again.status_code == 201, again.text
    assert again.json()["data"]["assistant_message"]["content"] == "slow"


def test_a_silent_model_does_not_trip_nginx_read_timeout(through_nginx, auth_headers,
                                                         conversation_id):
    with open_stream(through_nginx, auth_headers, conversation_id,
                     "[[stall:2]][[reply:after the silence]]") as response:
        timeline = list(events(response))
    assert timeline[-1][0] == "done", timeline
    assert timeline[-1][1]["assistant_message"]["content"] == "after the silence"


def test_a_client_hanging_up_at_nginx_stops_the_upstream_when_asked_to(
        make_stack, auth_headers, glm_simulator):
    """nginx passes the hang-up on: with STOP_AFTER_DISCONNECT_SECONDS=0 the answer stops as
    soon as its only stream goes."""
    through_nginx = make_stack(STOP_AFTER_DISCONNECT_SECONDS="0")
    conversation_id = requests.post(f"{through_nginx}/api/conversations/", json={},
                                    headers=auth_headers, timeout=30).json()["data"]["id"]
    with open_stream(through_nginx, auth_headers, conversation_id,
                     "[[chunks:100]][[delay:100]]") as response:
        for count, _ in enumerate(events(response), start=1):
            if count == 3:
                break
    hangups = wait_for(glm_simulator.hangups, timeout=60.0)
    assert hangups and hangups[0]["chunks_sent"] < 100


def test_request_ids_are_kept_or_made_and_logged_by_nginx(through_nginx, default_stack):
    given = requests.get(f"{through_nginx}/api/health", headers={"X-Request-ID": "trace-42"},
                         timeout=30)
    made = requests.get(f"{through_nginx}/api/health", headers={"X-Request-ID": "bad id!"},
                        timeout=30)
    assert given.headers["X-Request-ID"] == "trace-42"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    # nginx writes a request's log line after its answer: wait for the lines, not for time.
    log = default_stack[1] / "access.log"
    logged = [f"request_id={given.headers['X-Request-ID']}",
              f"request_id={made.headers['X-Request-ID']}"]
    assert wait_for(lambda: all(line in log.read_text() for line in logged), timeout=10.0), \
        log.read_text()


def test_the_docs_page_and_its_files_pass_through_nginx_with_their_headers(through_nginx):
    page = requests.get(f"{through_nginx}/api/docs", timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Content-Security-Policy"] == DOCS_POLICY
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(url.endswith("/swagger-ui-bundle.js") for url in urls), urls
    for url in urls:
        response = requests.get(f"{through_nginx}{url}", timeout=10)
        assert response.status_code == 200, url
        assert response.headers["Content-Security-Policy"] == DOCS_POLICY
        assert response.headers["Cache-Control"] in ("public, max-age=31536000, immutable",
                                                     "no-cache"), url
        assert int(response.headers["Content-Length"]) == len(response.content) > 0
        again = requests.get(f"{through_nginx}{url}", timeout=10,
                             headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304, url


def test_the_web_client_passes_through_nginx_with_its_headers(through_nginx):
    page = requests.get(f"{through_nginx}/", timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Content-Security-Policy"] == WEB_POLICY
    assert page.headers["Cache-Control"] == "no-cache"
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/web/js/main.js" in urls, urls
    scripts = ["/web/vendor/marked-18.3.0/marked.esm.js",
               "/web/vendor/dompurify-3.5.0/purify.es.js"]
    for url in urls + scripts:
        response = requests.get(f"{through_nginx}{url}", timeout=10)
        assert response.status_code == 200, url
        assert response.headers["Content-Security-Policy"] == WEB_POLICY
        assert response.headers["Cache-Control"] == (
            "public, max-age=31536000, immutable" if "/vendor/" in url else "no-cache"), url
        assert int(response.headers["Content-Length"]) == len(response.content) > 0
        again = requests.get(f"{through_nginx}{url}", timeout=10,
                             headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304, url


ENGLISH = {"Accept-Language": "en"}


def assert_envelope(response, status, english=True):
    """The app's error envelope and headers, whether the app or nginx itself answered."""
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    code = code_for(status)
    assert response.json() == {"success": False, "message": TEXTS[code][english],
                               "error": {"code": code, "details": {}}}
    for name, value in HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["X-Request-ID"]


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/messages/stream"])
def test_a_body_over_1_mib_is_refused_by_nginx_with_the_envelope(through_nginx, path):
    response = requests.post(f"{through_nginx}{path}", data=b"x" * (2 * 1024 * 1024),
                             headers={"Content-Type": "application/json", **ENGLISH}, timeout=10)
    assert_envelope(response, 413)


def test_an_import_of_2_mib_passes_nginx_while_2_mib_elsewhere_is_413(through_nginx,
                                                                      auth_headers):
    # A message holds at most 1,000,000 characters: the rest of the 2 MiB is whitespace.
    document = {"version": 1, "conversation": {"title": "big"}, "messages": [
        {"id": "m1", "parent_id": None, "role": "user", "content": "x" * 1_000_000,
         "created_at": "2026-01-02T03:04:05.678Z"}]}
    body = json.dumps(document).encode()
    body += b" " * (2 * 1024 * 1024 - len(body))
    response = requests.post(f"{through_nginx}/api/conversations/import", data=body,
                             headers={"Content-Type": "application/json", **auth_headers},
                             timeout=30)
    assert response.status_code == 201, response.text
    [conversation_id] = response.json()["data"]["conversations"]
    exported = requests.get(f"{through_nginx}/api/conversations/{conversation_id}/export",
                            headers=auth_headers, timeout=30)
    assert exported.json()["messages"][0]["content"] == "x" * 1_000_000
    elsewhere = requests.post(f"{through_nginx}/api/conversations/", data=body,
                              headers={"Content-Type": "application/json", **auth_headers,
                                       **ENGLISH}, timeout=30)
    assert_envelope(elsewhere, 413)


def test_an_import_past_50_mib_is_refused_by_nginx_with_the_envelope(through_nginx,
                                                                     auth_headers):
    response = requests.post(f"{through_nginx}/api/conversations/import",
                             data=b" " * (50 * 1024 * 1024 + 1),
                             headers={"Content-Type": "application/json", **auth_headers,
                                      **ENGLISH}, timeout=60)
    assert_envelope(response, 413)


@pytest.fixture
def nginx_in_front_of(tmp_path):
    """nginx alone in front of `upstream_port`, with /api/'s read timeout set to `read_timeout`."""
    with ExitStack() as stack:
        def start(upstream_port, read_timeout="60s"):
            return stack.enter_context(nginx(upstream_port, tmp_path, {
                "proxy_read_timeout 60s;": f"proxy_read_timeout {read_timeout};"}))

        yield start


def test_with_the_app_gone_nginx_answers_502_in_the_envelope(nginx_in_front_of):
    base = nginx_in_front_of(free_port())  # nothing listens there
    assert_envelope(requests.get(f"{base}/api/health", headers=ENGLISH, timeout=10), 502)


def test_with_the_app_silent_nginx_answers_504_in_the_envelope(nginx_in_front_of):
    with socket.socket() as silent:
        # The kernel completes the handshakes on a listening socket; nothing ever reads or answers.
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        base = nginx_in_front_of(silent.getsockname()[1], read_timeout="1s")
        assert_envelope(requests.get(f"{base}/api/health", headers=ENGLISH, timeout=30), 504)


@pytest.mark.parametrize("path,headers,status,english", [
    ("/api/health?" + "x" * 5000, {}, 414, True),  # past MAX_URL_LENGTH: the app
    # Past nginx's 8k buffers: refused before any header (Accept-Language too) is read.
    ("/api/health?" + "x" * 9000, {}, 414, False),
    ("/api/health", {f"X-Padding-{n}": "x" * 1000 for n in range(20)}, 431, True),  # the app
    ("/api/health", {"X-Padding": "x" * 9000}, 431, True),  # one field past 8k: nginx's 494
    ("/nothing-here", {}, 404, True),  # outside /api/ too, the app's 404
], ids=["url-app", "url-nginx", "head-app", "head-nginx", "outside-api"])
def test_heads_too_large_for_the_app_or_nginx_answer_the_envelope(
        through_nginx, path, headers, status, english):
    # Accept-Language first: nginx reads no header after the one too large.
    response = requests.get(f"{through_nginx}{path}", headers={**ENGLISH, **headers}, timeout=10)
    assert_envelope(response, status, english)


def test_a_malformed_request_gets_nginxs_400_in_the_envelope(through_nginx):
    status, headers, body = raw_request(through_nginx, b"GET /api/health HTTP/1.1\r\n"
                                                       b"Host: t\r\nHost: t\r\n\r\n")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body) == {"success": False, "message": TEXTS["malformed_request"][0],
                                "error": {"code": "bad_request", "details": {}}}


def log_in(base, username, password, source, forwarded_for=None):
    """POST /api/auth/login from the loopback address `source` (all of 127/8 is ours)."""
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10,
                                            source_address=(source, 0))
    headers = {"Content-Type": "application/json"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    try:
        connection.request("POST", "/api/auth/login", headers=headers,
                           body=json.dumps({"username": username, "password": password}))
        return connection.getresponse().status
    finally:
        connection.close()


# (PROXY_FIX_X_FOR, where the 11 failures come from, where the right password comes from,
#  what the right password then gets). nginx appends the address it saw to X-Forwarded-For.
THROTTLE_CASES = {
    # nginx faces the clients: only the address nginx saw counts, a forged header changes nothing.
    "one-proxy": (1, [("127.0.0.2", f"203.0.113.{i}") for i in range(11)],
                  ("127.0.0.3", "203.0.113.0"), 200),
    # A trusted load balancer in front of nginx wrote the client into X-Forwarded-For.
    "load-balancer-and-nginx": (2, [("127.0.0.1", "203.0.113.7")] * 11,
                                ("127.0.0.1", "198.51.100.9"), 200),
    # Without ProxyFix every request comes from nginx, 127.0.0.1: one client for the app.
    "no-proxy-fix": (0, [("127.0.0.2", None)] * 11, ("127.0.0.3", None), 429),
}


@pytest.mark.parametrize("case", THROTTLE_CASES.values(), ids=THROTTLE_CASES.keys())
def test_the_login_throttle_keys_on_the_client_behind_nginx(case, make_stack, make_user):
    proxy_fix_x_for, failures, right_from, right_gets = case
    base = make_stack(proxy_fix_x_for)
    # A fresh name: counters in a shared Redis outlive the test by minutes.
    username = f"nx{uuid.uuid4().hex[:12]}"
    make_user(username)
    statuses = [log_in(base, username, "wrong password", *sent_from) for sent_from in failures]
    assert statuses == [401] * 10 + [429]
    assert log_in(base, username, PASSWORD, *right_from) == right_gets
