"""The GLM client's transport (chatapi/glm_transport.py) against small HTTP servers on
loopback: keep-alive reuse, servers that close or misbehave, TLS verification, the pool's cap.
Every chat test also goes through it, against the GLM simulator."""
import gzip
import socket
import threading

import httpx
import pytest

from chatapi.glm_transport import GLMTransport

from .loopback_server import CountingServer

# How long a scripted server or a test waits for the other side's event before giving up.
EVENT_DEADLINE = 30


class ScriptedServer(CountingServer):
    """Answers each request with the next scripted reply: bytes to send, or a callable given
    the socket."""

    def __init__(self, replies, tls=None):
        self.replies = list(replies)
        super().__init__(tls)

    def handle(self, sock):
        while self.replies:
            request = b""
            while b"\r\n\r\n" not in request:
                data = sock.recv(65536)
                if not data:
                    return
                request += data
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0))
            while len(body) < length:
                body += sock.recv(65536)
            reply = self.replies.pop(0)
            if callable(reply):
                if reply(sock) == "close":
                    return
            else:
                sock.sendall(reply)

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"


def ok(body=b"hello", extra=b""):
    return (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra
            + b"\r\n" + body)


def client(**options):
    return httpx.Client(transport=GLMTransport(options.pop("max_connections", 10)),
                        timeout=options.pop("timeout", 5), **options)


@pytest.fixture
def serve():
    servers = []

    def start(replies, tls=None):
        servers.append(ScriptedServer(replies, tls))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


def test_keep_alive_connections_are_reused(serve):
    server = serve([ok(b"one"), ok(b"two"), ok(b"three")])
    with client() as http:
        assert [http.post(server.url, json={"n": n}).text for n in range(3)] == [
            "one", "two", "three"]
    assert server.connections == 1


def test_a_chunked_gzip_stream_arrives_piece_by_piece(serve):
    first_arrived = threading.Event()

    def chunked(sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: text/event-stream\r\n\r\n")
        sock.sendall(b"9\r\ndata: a\n\n\r\n")
        # The second piece is written only once the client holds the first; a client that
        # waited for more before handing it over gets the stream cut instead.
        if not first_arrived.wait(EVENT_DEADLINE):
            return "close"
        sock.sendall(b"9\r\ndata: b\n\n\r\n0\r\n\r\n")

    server = serve([chunked, ok(gzip.compress(b"data: 1\n\n"), b"Content-Encoding: gzip\r\n")])
    with client() as http:
        arrivals = []
        with http.stream("POST", server.url, json={}) as response:
            for piece in response.iter_bytes():
                arrivals.append(piece)
                first_arrived.set()
        assert arrivals == [b"data: a\n\n", b"data: b\n\n"]
        assert http.post(server.url, json={}).content == b"data: 1\n\n"
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_not_reused(serve):
    closed = threading.Event()

    def answer_and_close(sock):
        sock.sendall(ok(b"first"))
        sock.shutdown(socket.SHUT_RDWR)
        closed.set()
        return "close"

    server = serve([answer_and_close, ok(b"second")])
    with client() as http:
        assert http.post(server.url, json={}).text == "first"
        assert closed.wait(EVENT_DEADLINE)
        assert http.post(server.url, json={}).text == "second"
    assert server.connections == 2


def test_a_body_cut_short_is_a_protocol_error(serve):
    def cut(sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        return "close"

    server = serve([cut])
    with client() as http, pytest.raises(httpx.RemoteProtocolError):
        http.post(server.url, json={})


def test_garbage_instead_of_http_is_a_protocol_error(serve):
    server = serve([b"SSH-2.0-OpenSSH_9.2\r\n\r\n"])
    with client() as http, pytest.raises(httpx.RemoteProtocolError):
        http.post(server.url, json={})


def test_silence_past_the_read_timeout_is_a_read_timeout(serve):
    timed_out = threading.Event()
    server = serve([lambda sock: timed_out.wait(EVENT_DEADLINE)])
    with client(timeout=httpx.Timeout(0.3)) as http, pytest.raises(httpx.ReadTimeout):
        try:
            http.post(server.url, json={})
        finally:
            timed_out.set()


def test_nobody_listening_is_a_connect_error():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with client() as http, pytest.raises(httpx.ConnectError):
        http.post(f"http://127.0.0.1:{port}/", json={})


def test_the_pool_cap_makes_a_request_wait_then_time_out(serve):
    holding, release = threading.Event(), threading.Event()

    def slow_reply(sock):
        holding.set()
        release.wait(EVENT_DEADLINE)
        sock.sendall(ok(b"slow"))

    server = serve([slow_reply, ok(b"fast")])
    with client(max_connections=1, timeout=httpx.Timeout(5, pool=0.2)) as http:
        slow = threading.Thread(target=http.post, args=(server.url,), kwargs={"json": {}})
        slow.start()
        try:
            assert holding.wait(EVENT_DEADLINE), "the first request never reached the server"
            with pytest.raises(httpx.PoolTimeout):
                http.post(server.url, json={})
        finally:
            release.set()
            slow.join()
        assert http.post(server.url, json={}).text == "fast"


def test_tls_certificates_are_verified(serve, certificate, monkeypatch):
    cert, context = certificate
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    server = serve([ok(b"never")], tls=context)
    with client() as http, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        http.post(server.url, json={})

    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server = serve([ok(b"secret"), ok(b"again")], tls=context)
    with client() as http:
        assert http.post(server.url, json={}).text == "secret"
        assert http.post(server.url, json={}).text == "again"
    assert server.connections == 1
