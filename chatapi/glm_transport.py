"""The GLM client's HTTP/1.1 transport: keep-alive connections whose responses httptools
(llhttp, in C) parses. httpx's default transport (httpcore + h11, in Python) cost a fifth of a
worker's CPU per relayed chunk, through four layers per received segment (bench/RESULTS.md).

httpx keeps everything above the wire: timeouts come from each request, content decoding,
redirect and proxy settings stay httpx's (a proxied URL goes through httpx's own transport,
mounted by the client). Failures raise httpx's exceptions, which the SDK maps as it always does.
"""
import os
import select
import socket
import ssl
import threading

import certifi
import httptools
import httpx

KEEP_IDLE = 100
CHUNK_BYTES = 65536


class ResponseHead:
    """httptools' callbacks: the status line and headers, then body pieces as they parse."""

    def __init__(self):
        self.headers = []
        self.header_done = False
        self.complete = False
        self.keep_alive = False
        self.body = []
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name, value):
        self.headers.append((name, value))

    def on_headers_complete(self):
        self.header_done = True

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        # Asked here: once the parser has moved past the message it no longer knows.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


class Connection:
    def __init__(self, sock, origin):
        self.sock = sock
        self.origin = origin

    def is_reusable(self):
        """An idle connection the server has closed reads as ready (EOF): don't send on it."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self):
        # shutdown first: a read blocked on this socket in another thread (not only another
        # greenlet) ends now; close alone would leave it waiting for the server.
        for end in (lambda: self.sock.shutdown(socket.SHUT_RDWR), self.sock.close):
            try:
                end()
            except OSError:
                pass


class BodyStream(httpx.SyncByteStream):
    """The response body as it arrives; a complete keep-alive response returns the connection
    to the pool when closed, anything else closes it."""

    def __init__(self, transport, connection, head, read_timeout):
        self.transport = transport
        self.connection = connection
        self.head = head
        self.read_timeout = read_timeout

    def __iter__(self):
        head = self.head
        while True:
            if head.body:
                pieces, head.body = head.body, []
                yield b"".join(pieces)
            if head.complete:
                return
            data = self.transport.receive(self.connection, self.read_timeout)
            if not data:
                raise httpx.RemoteProtocolError("the server closed the connection mid-response")
            feed(head.parser, data)

    def close(self):
        connection, self.connection = self.connection, None
        if connection is None:
            return
        if self.head.complete and self.head.keep_alive:
            self.transport.keep(connection)
        else:
            self.transport.discard(connection)


def feed(parser, data):
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        raise httpx.RemoteProtocolError("unexpected protocol upgrade") from None
    except httptools.HttpParserError as error:
        raise httpx.RemoteProtocolError(f"malformed response: {error}") from None


class GLMTransport(httpx.BaseTransport):
    def __init__(self, max_connections):
        self.slots = threading.BoundedSemaphore(max_connections)
        self.idle = {}
        self.lock = threading.Lock()
        self.ssl_context = None

    def handle_request(self, request):
        timeouts = request.extensions.get("timeout", {})
        if not self.slots.acquire(timeout=timeouts.get("pool")):
            raise httpx.PoolTimeout("no free connection to the GLM API", request=request)
        connection = None
        try:
            connection = self.connection_for(request.url, timeouts.get("connect"), request)
            self.send(connection, request, timeouts.get("write"))
            head = self.read_head(connection, timeouts.get("read"), request)
        except BaseException:
            if connection is not None:
                self.discard(connection)
            else:
                self.slots.release()
            raise
        return httpx.Response(
            head.parser.get_status_code(), headers=head.headers,
            stream=BodyStream(self, connection, head, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1"})

    def connection_for(self, url, connect_timeout, request):
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        with self.lock:
            idle = self.idle.get(origin, [])
            while idle:
                connection = idle.pop()
                if connection.is_reusable():
                    return connection
                connection.close()
        try:
            sock = socket.create_connection(origin[1:], timeout=connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if url.scheme == "https":
                sock = self.tls().wrap_socket(sock, server_hostname=url.host)
        except socket.timeout as error:
            raise httpx.ConnectTimeout(str(error), request=request) from error
        except OSError as error:
            raise httpx.ConnectError(str(error), request=request) from error
        return Connection(sock, origin)

    def tls(self):
        """Certificates checked against certifi's bundle, or the SSL_CERT_FILE httpx honours."""
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context(
                cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())
        return self.ssl_context

    def send(self, connection, request, write_timeout):
        target = request.url.raw_path
        lines = [request.method.encode() + b" " + target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in request.headers.raw]
        payload = b"\r\n".join(lines) + b"\r\n\r\n" + b"".join(request.stream)
        try:
            connection.sock.settimeout(write_timeout)
            connection.sock.sendall(payload)
        except socket.timeout as error:
            raise httpx.WriteTimeout(str(error), request=request) from error
        except OSError as error:
            raise httpx.WriteError(str(error), request=request) from error

    def read_head(self, connection, read_timeout, request):
        head = ResponseHead()
        while not head.header_done:
            try:
                data = self.receive(connection, read_timeout)
            except httpx.TransportError as error:
                error.request = request
                raise
            if not data:
                raise httpx.RemoteProtocolError("the server closed the connection before "
                                                "answering", request=request)
            feed(head.parser, data)
        return head

    @staticmethod
    def receive(connection, read_timeout):
        try:
            connection.sock.settimeout(read_timeout)
            return connection.sock.recv(CHUNK_BYTES)
        except socket.timeout as error:
            raise httpx.ReadTimeout(str(error)) from error
        except OSError as error:
            raise httpx.ReadError(str(error)) from error

    def keep(self, connection):
        with self.lock:
            idle = self.idle.setdefault(connection.origin, [])
            if len(idle) < KEEP_IDLE:
                idle.append(connection)
                connection = None
        if connection is not None:
            connection.close()
        self.slots.release()

    def discard(self, connection):
        connection.close()
        self.slots.release()

    def close(self):
        with self.lock:
            idle, self.idle = self.idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
