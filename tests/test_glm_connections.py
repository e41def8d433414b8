"""The GLM client's connections, with either GLM_TRANSPORT, as the app configures them: answers
reuse kept-alive connections, GLM_MAX_CONNECTIONS sizes the pool, certificates are verified.
Through a relay on loopback in front of the GLM simulator that counts the connections made.
(tests/test_glm_transport.py has the project's transport alone against misbehaving servers.)"""
import select
import socket
import threading

import pytest

from chatapi import create_app
from chatapi.errors import UpstreamTimeout, UpstreamUnavailable

from .loopback_server import CountingServer
from .simulator_client import API_PATH

QUESTION = [{"role": "user", "content": "[[chunks:3]]"}]
ANSWER = ["w0 ", "w1 ", "w2 "]


class CountingRelay(CountingServer):
    """Relays each connection (TLS-terminated with `tls`) to the simulator."""

    def __init__(self, upstream_port, tls=None):
        self.upstream_port = upstream_port
        super().__init__(tls)

    def handle(self, client):
        try:
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                peer = {client: upstream, upstream: client}
                while True:
                    # TLS may hold decrypted bytes that select() cannot see.
                    ready = [client] if self.tls and client.pending() else \
                        select.select(list(peer), [], [])[0]
                    for source in ready:
                        data = source.recv(65536)
                        if not data:
                            return
                        peer[source].sendall(data)
        except OSError:
            return

    def base_url(self, scheme="http"):
        return f"{scheme}://127.0.0.1:{self.port}{API_PATH}"


@pytest.fixture
def relay(glm_simulator):
    relays = []

    def start(tls=None):
        port = int(glm_simulator.origin.rsplit(":", 1)[1])
        relays.append(CountingRelay(port, tls))
        return relays[-1]
    yield start
    for started in relays:
        started.close()


@pytest.fixture(params=["httptools", "httpx"])
def glm_through(request, make_app):
    def make(base_url, **settings):
        return make_app(ZHIPUAI_API_KEY="test-key", GLM_BASE_URL=base_url,
                        GLM_TRANSPORT=request.param, **settings).extensions["chatapi.glm"]
    return make


def ask(glm):
    return glm.stream_chat(model="glm-4.6", messages=QUESTION, temperature=0.5,
                           max_tokens=100, thinking=False)


def texts(stream):
    return [event.text for event in stream if hasattr(event, "text")]


def test_answers_one_after_another_reuse_one_connection(relay, glm_through):
    upstream = relay()
    glm = glm_through(upstream.base_url())
    assert [texts(ask(glm)) for _ in range(5)] == [ANSWER] * 5
    assert upstream.connections == 1


def test_as_many_connections_as_glm_max_connections_stay_alive(relay, glm_through):
    """More than httpx's default of 20 kept-alive connections: a second wave of as many
    concurrent answers opens none."""
    upstream = relay()
    glm = glm_through(upstream.base_url(), GLM_MAX_CONNECTIONS=25)
    # One answer first: threads racing to the first use would each make an SDK client (a
    # gevent worker does not switch while making one).
    assert texts(ask(glm)) == ANSWER
    for _ in range(2):
        all_open = threading.Barrier(25)
        answers = []

        def answer():
            stream = ask(glm)
            all_open.wait(timeout=60)
            answers.append(texts(stream))

        threads = [threading.Thread(target=answer) for _ in range(25)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [ANSWER] * 25
    assert upstream.connections == 25


def test_glm_max_connections_caps_the_pool(relay, glm_through):
    """With every connection busy, a new answer waits for one (here past the read timeout,
    which bounds that wait too), then runs on the freed one."""
    upstream = relay()
    glm = glm_through(upstream.base_url(), GLM_MAX_CONNECTIONS=1, GLM_READ_TIMEOUT=1.0)
    held = ask(glm)
    with pytest.raises(UpstreamTimeout):
        ask(glm)
    assert texts(held) == ANSWER
    assert texts(ask(glm)) == ANSWER
    assert upstream.connections == 1


def test_a_certificate_outside_certifi_is_refused(relay, glm_through, certificate,
                                                  monkeypatch):
    _, context = certificate
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    glm = glm_through(relay(tls=context).base_url("https"))
    with pytest.raises(UpstreamUnavailable):
        ask(glm)


def test_ssl_cert_file_names_the_trusted_certificates(relay, glm_through, certificate,
                                                      monkeypatch):
    cert, context = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    upstream = relay(tls=context)
    glm = glm_through(upstream.base_url("https"))
    assert [texts(ask(glm)) for _ in range(2)] == [ANSWER] * 2
    assert upstream.connections == 1


def test_an_unknown_glm_transport_stops_the_app_at_start(monkeypatch):
    monkeypatch.setenv("GLM_TRANSPORT", "h11")
    with pytest.raises(ValueError, match="GLM_TRANSPORT must be one of httptools, httpx"):
        create_app()
