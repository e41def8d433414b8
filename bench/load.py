"""Concurrent SSE streams: each records time to first token, the text it got, and how it
ended. The same schedule runs against the service, the bare relay and the simulator itself."""
import asyncio
import json
import time
from dataclasses import dataclass, field

from .http import build_request, connect

SIMULATOR_PATH = "/api/paas/v4/chat/completions"


def expected_text(chunks):
    """What the simulator answers to `[[chunks:N]]` without `[[reply]]`."""
    return "".join(f"w{i} " for i in range(chunks))


@dataclass
class Stream:
    sent_at: float = 0.0
    ttft: float = None
    deltas: list = field(default_factory=list)
    final: str = None
    error: str = None

    @property
    def text(self):
        return "".join(self.deltas)


class EventReader:
    """Splits a body into SSE events. `service` events are ChatAPI's (`event: text` ...,
    ending with `done`); `glm` events are the provider's `data:` chunks ending with [DONE]."""

    def __init__(self, stream, kind, connection):
        self.stream = stream
        self.kind = kind
        self.connection = connection
        self.buffer = b""

    def feed(self, data):
        self.buffer += data
        *blocks, self.buffer = self.buffer.split(b"\n\n")
        for block in blocks:
            if self.stream.final is None and self.stream.error is None:
                self._event(block.decode())

    def _event(self, block):
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is None:
            return
        if self.kind == "glm":
            if data == "[DONE]":
                self._finish(self.stream.text)
                return
            delta = json.loads(data)["choices"][0]["delta"].get("content")
            if delta:
                self._text(delta)
        elif name == "text":
            self._text(json.loads(data)["delta"])
        elif name == "done":
            self._finish(json.loads(data)["assistant_message"]["content"])
        elif name == "error":
            self.stream.error = "error event: " + json.loads(data).get("code", "?")
            self.connection.close()

    def _text(self, delta):
        if self.stream.ttft is None:
            self.stream.ttft = time.perf_counter() - self.stream.sent_at
        self.stream.deltas.append(delta)

    def _finish(self, content):
        self.stream.final = content
        # Nothing follows the last event that matters here; closing now frees the socket.
        self.connection.close()


async def one_stream(port, request, kind, start_at, timeout):
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - loop.time()))
    stream = Stream()
    connection = None
    try:
        connection = await asyncio.wait_for(connect(port), timeout)
        reader = EventReader(stream, kind, connection)
        waiter = connection.send(request, on_body=reader.feed)
        stream.sent_at = connection.sent_at
        parser = await asyncio.wait_for(waiter, timeout)
        if parser.status != 200:
            stream.error = f"HTTP {parser.status}"
        elif stream.final is None and stream.error is None:
            stream.error = "ended without a final event"
    except (OSError, asyncio.TimeoutError) as error:
        stream.error = stream.error or f"{type(error).__name__}: {error}"
    finally:
        if connection is not None:
            connection.close()
    return stream


async def run_streams(port, requests, kind, ramp, timeout):
    """Start one stream per request, evenly spread over `ramp` seconds; wait for all."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    spacing = ramp / len(requests)
    return await asyncio.gather(*(one_stream(port, request, kind, began + i * spacing, timeout)
                                  for i, request in enumerate(requests)))


def simulator_requests(port, content, count):
    body = {"model": "glm-4.6", "stream": True,
            "messages": [{"role": "user", "content": content}]}
    return [build_request("POST", SIMULATOR_PATH, port, body, token="bench", keep_alive=False)
            ] * count


def service_requests(port, content, conversations, token):
    return [build_request("POST", "/api/messages/stream", port,
                          {"conversation_id": conversation, "content": content}, token=token,
                          keep_alive=False)
            for conversation in conversations]


def relay_requests(port, content, count):
    return [build_request("POST", "/stream", port, {"content": content}, keep_alive=False)
            ] * count
