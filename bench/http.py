"""A minimal HTTP/1.1 client on asyncio protocols: cheap enough per byte that thousands of
streams on one core leave the servers, not the client, as what is measured."""
import asyncio
import json
import time

HOST = "127.0.0.1"


def build_request(method, path, port, body=None, token=None, keep_alive=True):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Accept-Language: en"]
    if not keep_alive:
        lines.append("Connection: close")
    if token:
        lines.append(f"Authorization: Bearer {token}")
    payload = b""
    if body is not None:
        payload = json.dumps(body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class ResponseParser:
    """Status, headers and the body of one response, decoded from Content-Length, chunked
    framing, or read-until-close; `feed` returns the body bytes that arrived."""

    def __init__(self):
        self.head = b""
        self.status = None
        self.mode = None
        self.remaining = 0
        self.pending = b""
        self.between_chunks = False
        self.complete = False

    def feed(self, data):
        if self.status is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return b""
            data = self.head[end + 4:]
            self._read_head(self.head[:end].decode("latin-1"))
        if self.mode == "length":
            data = data[:self.remaining]
            self.remaining -= len(data)
            self.complete = self.remaining == 0
            return data
        if self.mode == "chunked":
            return self._dechunk(data)
        return data

    def _read_head(self, head):
        status_line, *header_lines = head.split("\r\n")
        self.status = int(status_line.split()[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.mode = "chunked"
        elif "content-length" in headers:
            self.mode = "length"
            self.remaining = int(headers["content-length"])
            self.complete = self.remaining == 0
        else:
            self.mode = "close"

    def _dechunk(self, data):
        buffer = self.pending + data
        out = []
        while buffer and not self.complete:
            if self.remaining:
                piece = buffer[:self.remaining]
                out.append(piece)
                self.remaining -= len(piece)
                buffer = buffer[len(piece):]
                self.between_chunks = self.remaining == 0
                continue
            if self.between_chunks:
                if len(buffer) < 2:
                    break
                buffer = buffer[2:]
                self.between_chunks = False
                continue
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(buffer[:line_end].split(b";")[0], 16)
            buffer = buffer[line_end + 2:]
            self.remaining = size
            self.complete = size == 0
        self.pending = buffer
        return b"".join(out)


class HttpConnection(asyncio.Protocol):
    """One connection, one request at a time; `on_body` receives a streamed body as it comes."""

    def __init__(self):
        self.transport = None
        self.parser = None
        self.waiter = None
        self.on_body = None
        self.body = []
        self.sent_at = 0.0

    def connection_made(self, transport):
        self.transport = transport

    def send(self, request, on_body=None):
        self.parser = ResponseParser()
        self.on_body = on_body
        self.body = []
        self.waiter = asyncio.get_running_loop().create_future()
        self.sent_at = time.perf_counter()
        self.transport.write(request)
        return self.waiter

    def data_received(self, data):
        if self.parser is None:
            return
        body = self.parser.feed(data)
        if body:
            if self.on_body:
                self.on_body(body)
            else:
                self.body.append(body)
        if self.parser.complete and not self.waiter.done():
            self.waiter.set_result(self.parser)

    def connection_lost(self, exc):
        if self.waiter is not None and not self.waiter.done():
            # A read-until-close body is complete here; for any other the caller sees
            # `complete` still False.
            self.parser.complete = self.parser.mode == "close"
            self.waiter.set_result(self.parser)

    def json(self):
        return json.loads(b"".join(self.body))

    def close(self):
        if self.transport is not None:
            self.transport.close()


async def connect(port):
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(HttpConnection, HOST, port)
    return connection


async def call(connection, port, method, path, body=None, token=None, timeout=30):
    """One JSON request on a kept-alive connection: (status, decoded envelope)."""
    parser = await asyncio.wait_for(
        connection.send(build_request(method, path, port, body, token)), timeout)
    if not parser.complete:
        raise ConnectionError(f"{method} {path}: connection closed mid-response")
    return parser.status, connection.json()
