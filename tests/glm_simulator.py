"""A local GLM server for tests and benchmarks: real HTTP on 127.0.0.1, GLM's wire format.

Run it with ``python -m tests.glm_simulator --port 9100`` (``--port 0`` picks a free port); it
prints ``listening on http://127.0.0.1:PORT`` once ready. Give the SDK any base URL on that
origin, e.g. ``http://127.0.0.1:PORT/api/paas/v4``: every POST path ending in
``/chat/completions`` or ``/web_search`` is served. ``--api-key KEY`` makes other keys 401
(code 1000); otherwise any non-empty ``Authorization: Bearer`` key is accepted, and a missing
one is 401 (code 1001). One gevent process holds thousands of concurrent slow streams.

Chat behaviour is chosen by markers in the content of the LAST user message (they combine):

- no marker: the reply ``DEFAULT_REPLY`` in three chunks.
- ``[[reply:TEXT]]``: reply TEXT (TEXT must not contain ``]]``).
- ``[[chunks:N]]``: N answer chunks. With ``[[reply]]`` the reply is split into N pieces
  (padded with filler chunks when shorter than N); without it, chunk i is ``"w{i} "``.
- ``[[delay:MS]]``: wait MS milliseconds before every chunk, the first one included.
- ``[[think:N]]``: N ``reasoning_content`` chunks (``"t{i} "``) before the answer, only when the
  request has ``thinking: {"type": "enabled"}``.
- ``[[tool:NAME {json args}]]``: call tool NAME with these arguments (JSON without ``]]``).
  Several markers give several calls (indexes 0..n-1, ids ``call_<hex>``), all in the LAST
  chunk with ``finish_reason: "tool_calls"``; non-streaming: ``message.tool_calls`` and
  ``content: null``. Text from ``[[reply]]``/``[[echo]]`` comes in chunks before the calls.
  Once the request's last message is ``role: tool``, the answer is instead plain text
  ``"结果：" + " | ".join(contents of the trailing tool messages)``.
- ``[[tool_every_round:NAME {json}]]``: like ``[[tool]]``, but called after tool results too.
- ``[[bad_args:NAME]]``: a call of NAME whose ``arguments`` string is invalid JSON.
- ``[[tool_stream]]`` (or ``"tool_stream": true`` in the body): each call's arguments arrive in
  fragments over several chunks (id, type and name in the first one); merge by ``index``.
- ``[[http:STATUS]]``, optionally ``[[code:CODE]]``: answer HTTP STATUS with body
  ``{"error": {"code": "...", "message": "..."}}`` before any stream (codes by default: 400→1214,
  401→1000, 429→1302, 500→500, 503→1305).
- ``[[drop:N]]``: after N chunks, close the connection abruptly (no ``[DONE]``, no final
  zero-length chunk); non-streaming: close without an answer.
- ``[[stall:SECONDS]]``: send nothing for SECONDS before the first chunk, keeping the connection
  open; with ``[[stall_after:N]]`` the stall comes after N chunks instead.
- ``[[finish:REASON]]``: the final finish_reason (stop, length, sensitive, network_error ...).
- ``[[stream_error:N]]``: after N chunks, an error object inside the stream
  (``data: {"error": {"code": "1301", ...}}``) and the end of the stream.
- ``[[malformed_chunk]]``: the stream opens with a chunk of valid JSON shaped otherwise than
  GLM's (``"choices": ["not an object"]``), as a broken provider or proxy might send;
  non-streaming: the answer's body is that object.
- ``[[bad_chunk:FIELD]]``: the stream opens with a chunk whose FIELD is no text where GLM sends
  text: ``content``, ``reasoning_content`` (a list), ``finish_reason`` or ``tool_call_id`` (an
  object).
- ``[[usage_total:NUMBER]]``: the usage's ``total_tokens`` is NUMBER as written in the JSON
  (``1e400``, which Python reads as Infinity; ``99999999999``; ``"12"``, a string).
- ``[[no_finish]]``: the stream ends with ``[DONE]`` but no chunk has a finish_reason or usage
  (non-streaming: ``finish_reason: null``).
- ``[[echo]]``: the reply text is the request body received, as one line of JSON.
- ``[[lone_surrogate]]``: the reply text ends with a lone UTF-16 surrogate (U+D800), which the
  JSON on the wire carries as the escape ``\ud800`` (valid JSON syntax, not Unicode text).
- ``[[title_NAME:VALUE]]``: the marker NAME for non-streaming requests only (the service asks
  for titles that way, and streams its answers), where it wins over a plain NAME; streaming
  requests ignore it. E.g. ``[[title_reply:Rust 所有权]]``, ``[[title_http:500]]``,
  ``[[title_stall:30]]``.

A request's ``max_tokens`` cuts a longer reply after that many chunks (each chunk is a token),
with ``finish_reason: "length"``, as GLM does (not when the reply calls tools).

Streams send their headers at once, then ``data: <chunk>\\n\\n`` lines and ``data: [DONE]``. Every
delta has ``role: "assistant"``; only the last chunk has ``finish_reason`` and ``usage``
(``prompt_tokens`` = characters of all message contents / 4, ``completion_tokens`` = number of
chunks). Non-streaming answers wait as long as the stream would (stall and delays) and carry the
same text, reasoning, calls and usage.

``POST .../web_search`` answers ``count`` (default 10, at most 50) results derived from
``search_query``, which may hold ``[[http:STATUS]]`` and ``[[stall:SECONDS]]``.

For tests: ``GET /_sim/requests`` (every API request in order, a chat request with the
``usage`` it reported once the chunk carrying it was written), ``GET /_sim/hangups`` (answers
the client abandoned before the simulator finished, with ``chunks_sent`` and ``noticed_at``),
``POST /_sim/reset`` (clears both, and the stream counters), ``GET /_sim/stats`` (active, peak
and total streams, requests received). A hang-up is noticed at once while the simulator waits
(a delay, a stall, or before a non-streaming answer): it watches the socket for the client's
close (``noticed_by: "poll"``). Without waits it is noticed when a write fails
(``noticed_by: "write"``), which can take a few chunks; a stream whose every chunk fitted in the
socket buffers counts as delivered.
"""
import argparse
import errno
import hashlib
import json
import math
import re
import resource
import secrets
import signal
import socket
import time
from datetime import date, timedelta
from http import HTTPStatus

import gevent
from gevent import pywsgi
from gevent.socket import wait_read

DEFAULT_REPLY = "你好！我是模拟的 GLM。"
DEFAULT_MODEL = "glm-4.6"
MARKER = re.compile(r"\[\[(\w+)(?::(.*?))?\]\]", re.S)
TOOL_MARKERS = ("tool", "tool_every_round", "bad_args")
# The prefix of markers only a non-streaming request obeys (the service's title calls).
WHOLE_ONLY = "title_"
BAD_ARGUMENTS = '{"expression": "2+'
ERROR_CODES = {
    400: ("1214", "messages 参数非法。请检查文档。"),
    401: ("1000", "身份验证失败。"),
    429: ("1302", "您当前使用该API的并发数过高，请降低并发，或联系客服增加限额。"),
    500: ("500", "服务内部错误，请稍后重试。"),
    503: ("1305", "当前API请求过多，请稍后重试。"),
}


STREAM_ERROR = ('data: {"error": {"code": "1301", "message": "系统检测到输入或生成内容可能包含'
                '不安全或敏感内容"}}\n\n').encode()


# [[bad_chunk:FIELD]]: a choice whose FIELD is no text.
BAD_CHOICES = {
    "content": {"index": 0, "delta": {"content": ["not", "text"]}},
    "reasoning_content": {"index": 0, "delta": {"reasoning_content": ["not", "text"]}},
    "finish_reason": {"index": 0, "delta": {}, "finish_reason": {"not": "text"}},
    "tool_call_id": {"index": 0, "delta": {"tool_calls": [{
        "index": 0, "id": {"not": "text"}, "type": "function",
        "function": {"name": "calculator", "arguments": "{}"}}]}},
}


class Markers:
    """The ``[[name:value]]`` markers of one text, in order of appearance; for a whole
    (non-streaming) answer, ``title_NAME`` markers are read as NAME (and come after the others,
    so they win)."""

    def __init__(self, text, whole=False):
        found = [(m.group(1), m.group(2)) for m in MARKER.finditer(text)]
        prefixed = [(name[len(WHOLE_ONLY):], value) for name, value in found
                    if name.startswith(WHOLE_ONLY)]
        self.found = [(name, value) for name, value in found
                      if not name.startswith(WHOLE_ONLY)] + (prefixed if whole else [])

    def has(self, name):
        return any(found == name for found, _ in self.found)

    def value(self, name, default=None, convert=str):
        values = [value for found, value in self.found if found == name and value is not None]
        return convert(values[-1].strip()) if values else default

    def all(self, names):
        return [(found, value or "") for found, value in self.found if found in names]


class ClientGone(BrokenPipeError):
    """Ends a response early; pywsgi treats EPIPE as a client that went away and stays quiet."""

    def __init__(self, reason):
        super().__init__(errno.EPIPE, reason)


class Connection:
    """The client socket of one request: waits that notice a hang-up, and abrupt closes."""

    def __init__(self, sock):
        self.sock = sock

    def wait(self, seconds):
        """Sleep for `seconds`; False as soon as the client closes its side."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                wait_read(self.sock.fileno(), remaining)
            except socket.timeout:
                return True
            try:
                if not self.sock.recv(1, socket.MSG_PEEK):
                    return False
            except OSError:
                return False
            # The client sent bytes it should not have; stop watching rather than spin on them.
            gevent.sleep(max(0.0, deadline - time.monotonic()))
        return True

    def drop(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        raise ClientGone("simulated drop")


class RawNumber:
    """A number written into the JSON as given (json.dumps cannot write 1e400)."""

    def __init__(self, text):
        self.text = text


# Where json.dumps met a RawNumber: its text, in hex (quotes inside stay out of the escaping).
RAW_NUMBER = re.compile(rb'"\\u0000raw:([0-9a-f]*)"')


def wire_json(value):
    """UTF-8 JSON; text UTF-8 cannot carry (a lone surrogate) written as its \\u escape."""
    text = json.dumps(value, ensure_ascii=False,
                      default=lambda raw: "\0raw:" + raw.text.encode().hex())
    return RAW_NUMBER.sub(lambda found: bytes.fromhex(found.group(1).decode()),
                          text.encode("utf-8", "backslashreplace"))


def json_response(start_response, status, payload):
    body = wire_json(payload)
    start_response(status_line(status), [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Length", str(len(body)))])
    return [body]


def status_line(status):
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Simulated"


def error_response(start_response, status, code=None, message=None):
    default_code, default_message = ERROR_CODES.get(status, (str(status), "模拟错误。"))
    error = {"code": code or default_code, "message": message or default_message}
    return json_response(start_response, status, {"error": error})


def valid_chat_body(body):
    messages = body.get("messages") if isinstance(body, dict) else None
    return isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages)


def message_text(message):
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    return json.dumps(content, ensure_ascii=False)


def last_user_text(messages):
    users = [m for m in messages if m.get("role") == "user"]
    return message_text(users[-1]) if users else ""


def trailing_tool_results(messages):
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, message_text(message))
    return results


def split_reply(text, count):
    """`count` pieces of `text` (three by default), padded with filler pieces when it is short."""
    if count is None:
        count = min(3, len(text))
    if count == 0:
        return []
    if len(text) < count:
        return list(text) + [f"w{i} " for i in range(len(text), count)]
    bounds = [round(i * len(text) / count) for i in range(count + 1)]
    return [text[bounds[i]:bounds[i + 1]] for i in range(count)]


def fragments(text, count=3):
    size = max(1, math.ceil(len(text) / count))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def tool_calls(markers, after_tool_results):
    calls = []
    for kind, value in markers.all(TOOL_MARKERS):
        if after_tool_results and kind != "tool_every_round":
            continue
        name, _, arguments = value.strip().partition(" ")
        arguments = BAD_ARGUMENTS if kind == "bad_args" else (arguments.strip() or "{}")
        calls.append({"index": len(calls), "id": f"call_{secrets.token_hex(8)}",
                      "type": "function", "function": {"name": name, "arguments": arguments}})
    return calls


def streamed_tool_deltas(calls):
    deltas = []
    for call in calls:
        first, *rest = fragments(call["function"]["arguments"])
        opening = {**call, "function": {**call["function"], "arguments": first}}
        deltas.append({"tool_calls": [opening]})
        deltas += [{"tool_calls": [{"index": call["index"], "function": {"arguments": piece}}]}
                   for piece in rest]
    return deltas


def reply_text(body, markers, calls, tool_results):
    if markers.has("echo"):
        return json.dumps(body, ensure_ascii=False)
    if tool_results and not calls:
        return "结果：" + " | ".join(tool_results)
    if markers.has("reply"):
        return markers.value("reply", "")
    if calls or markers.has("chunks"):
        return ""
    return DEFAULT_REPLY


class Answer:
    """What one chat request gets: the deltas of its chunks and how the last one ends."""

    def __init__(self, body, markers):
        messages = body["messages"]
        tool_results = trailing_tool_results(messages)
        self.calls = tool_calls(markers, after_tool_results=bool(tool_results))
        thinking = (body.get("thinking") or {}).get("type") == "enabled"
        thoughts = markers.value("think", 0, int) if thinking else 0
        text = reply_text(body, markers, self.calls, tool_results)
        if markers.has("lone_surrogate"):
            text += "\ud800"
        pieces = split_reply(text, markers.value("chunks", None, int))
        self.deltas = ([{"reasoning_content": f"t{i} "} for i in range(thoughts)]
                       + [{"content": piece} for piece in pieces])
        if self.calls and (markers.has("tool_stream") or body.get("tool_stream")):
            self.deltas += streamed_tool_deltas(self.calls)
        elif self.calls:
            self.deltas.append({"tool_calls": self.calls})
        self.deltas = self.deltas or [{"content": ""}]
        default_finish = "tool_calls" if self.calls else "stop"
        # Each chunk is a token: a reply longer than max_tokens stops there, as GLM's does.
        limit = body.get("max_tokens")
        if isinstance(limit, int) and not self.calls and 0 < limit < len(self.deltas):
            self.deltas, default_finish = self.deltas[:limit], "length"
        self.finish_reason = (None if markers.has("no_finish")
                              else markers.value("finish", default_finish))
        prompt_tokens = math.ceil(sum(len(message_text(m)) for m in messages) / 4)
        self.usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(self.deltas),
                      "total_tokens": prompt_tokens + len(self.deltas)}
        if markers.value("usage_total") is not None:
            self.usage["total_tokens"] = RawNumber(markers.value("usage_total"))

    def joined(self, field):
        return "".join(delta.get(field, "") for delta in self.deltas) or None

    def chunks(self, header):
        chunks = [{**header, "choices": [{"index": 0, "delta": {"role": "assistant", **delta}}]}
                  for delta in self.deltas]
        if self.finish_reason:
            chunks[-1]["choices"][0]["finish_reason"] = self.finish_reason
            chunks[-1]["usage"] = self.usage
        return chunks

    def message(self):
        content = self.joined("content")
        message = {"role": "assistant", "content": content if content or self.calls else ""}
        if self.joined("reasoning_content"):
            message["reasoning_content"] = self.joined("reasoning_content")
        if self.calls:
            message["tool_calls"] = self.calls
        return message


class Simulator:
    """The WSGI application, and the record of what it received and who hung up."""

    def __init__(self, api_key=None):
        self.api_key = api_key
        self.requests = []
        self.hangups = []
        self.active_streams = 0
        self.peak_streams = 0
        self.total_streams = 0

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if path.startswith("/_sim/"):
            return self.observe(method, path, start_response)
        if method == "POST" and path.endswith(("/chat/completions", "/web_search")):
            return self.api(environ, start_response)
        return error_response(start_response, 404, "404", f"no route for {method} {path}")

    def observe(self, method, path, start_response):
        if method == "POST" and path == "/_sim/reset":
            self.requests.clear()
            self.hangups.clear()
            self.total_streams = self.peak_streams = self.active_streams
            return json_response(start_response, 200, {"reset": True})
        views = {"/_sim/requests": lambda: self.requests, "/_sim/hangups": lambda: self.hangups,
                 "/_sim/stats": self.stats}
        if method == "GET" and path in views:
            return json_response(start_response, 200, views[path]())
        return error_response(start_response, 404, "404", f"no route for {method} {path}")

    def stats(self):
        return {"active_streams": self.active_streams, "peak_streams": self.peak_streams,
                "total_streams": self.total_streams, "requests": len(self.requests)}

    def api(self, environ, start_response):
        raw = environ["wsgi.input"].read()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        record = {"index": len(self.requests), "method": "POST", "path": environ["PATH_INFO"],
                  "headers": request_headers(environ), "body": body, "time": time.time()}
        self.requests.append(record)
        key_problem = self.key_problem(environ.get("HTTP_AUTHORIZATION", ""))
        if key_problem:
            return error_response(start_response, 401, *key_problem)
        connection = Connection(environ["simulator.socket"])
        if environ["PATH_INFO"].endswith("/web_search"):
            return self.web_search(body, record, connection, start_response)
        return self.chat(body, record, connection, start_response)

    def key_problem(self, authorization):
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return "1001", "Header中未收到Authorization参数，无法进行身份验证。"
        if self.api_key is not None and key.strip() != self.api_key:
            return "1000", "身份验证失败。"
        return None

    def hung_up(self, record, chunks_sent, noticed_by):
        self.hangups.append({"request_index": record["index"], "path": record["path"],
                             "chunks_sent": chunks_sent, "noticed_by": noticed_by,
                             "noticed_at": time.time()})

    def chat(self, body, record, connection, start_response):
        if not valid_chat_body(body):
            return error_response(start_response, 400, "1214", "messages 参数非法。请检查文档。")
        markers = Markers(last_user_text(body["messages"]), whole=not body.get("stream"))
        status = markers.value("http", None, int)
        if status:
            return error_response(start_response, status, markers.value("code"))
        answer = Answer(body, markers)
        header = {"id": f"sim-{secrets.token_hex(8)}", "created": int(time.time()),
                  "model": body.get("model") or DEFAULT_MODEL}
        if body.get("stream"):
            write = start_response("200 OK", [("Content-Type", "text/event-stream"),
                                              ("Cache-Control", "no-cache")])
            return self.stream(answer.chunks(header), markers, record, connection, write)
        wait = (markers.value("stall", 0, float)
                + markers.value("delay", 0, float) / 1000 * len(answer.deltas))
        if not connection.wait(wait):
            self.hung_up(record, 0, "poll")
            raise ClientGone("client hung up")
        if markers.value("drop", None, int) is not None:
            connection.drop()
        if markers.has("malformed_chunk"):
            return json_response(start_response, 200, {"choices": ["not an object"]})
        choice = {"index": 0, "finish_reason": answer.finish_reason, "message": answer.message()}
        record["usage"] = answer.usage
        return json_response(start_response, 200, {**header, "request_id": header["id"],
                                                   "choices": [choice], "usage": answer.usage})

    def stream(self, chunks, markers, record, connection, write):
        events = [b"data: " + wire_json(c) + b"\n\n" for c in chunks]
        events.append(b"data: [DONE]\n\n")
        if markers.has("malformed_chunk"):
            events.insert(0, b"data: " + wire_json({"choices": ["not an object"]}) + b"\n\n")
        bad = markers.value("bad_chunk")
        if bad is not None:
            events.insert(0, b"data: " + wire_json({"choices": [BAD_CHOICES[bad]]}) + b"\n\n")
        error_at = markers.value("stream_error", None, int)
        if error_at is not None:
            events[min(error_at, len(chunks)):] = [STREAM_ERROR]
        delay = markers.value("delay", 0, float) / 1000
        stall = markers.value("stall", 0, float)
        # Past the last chunk, a drop or stall happens before [DONE].
        stall_at = min(markers.value("stall_after", 0, int), len(chunks))
        drop_at = markers.value("drop", None, int)
        drop_at = None if drop_at is None else min(drop_at, len(chunks))
        sent = 0
        self.active_streams += 1
        self.total_streams += 1
        self.peak_streams = max(self.peak_streams, self.active_streams)
        try:
            # Headers go out at once: a stall is then a slow body, seen while iterating.
            write(b"")
            # Chunks keep to a schedule, so a busy simulator does not stretch its streams.
            due = time.monotonic()
            for index, event in enumerate(events):
                if index == drop_at:
                    connection.drop()
                due += (stall if index == stall_at else 0) + (delay if index < len(chunks) else 0)
                if not connection.wait(due - time.monotonic()):
                    self.hung_up(record, sent, "poll")
                    raise ClientGone("client hung up")
                yield event
                sent += 1
                if index == len(chunks) - 1 and chunks[-1].get("usage") and b'"usage"' in event:
                    record["usage"] = chunks[-1]["usage"]
        except GeneratorExit:
            # pywsgi closes the generator when a write failed: the client is gone.
            self.hung_up(record, sent, "write")
            raise
        finally:
            self.active_streams -= 1

    def web_search(self, body, record, connection, start_response):
        query = (body or {}).get("search_query") or ""
        markers = Markers(query)
        status = markers.value("http", None, int)
        if status:
            return error_response(start_response, status, markers.value("code"))
        if not connection.wait(markers.value("stall", 0, float)):
            self.hung_up(record, 0, "poll")
            raise ClientGone("client hung up")
        topic = MARKER.sub("", query).strip()
        count = (body or {}).get("count")
        count = 10 if count is None else min(max(int(count), 1), 50)
        return json_response(start_response, 200, {
            "id": f"sim-{secrets.token_hex(8)}", "created": int(time.time()),
            "request_id": f"sim-{secrets.token_hex(8)}",
            "search_intent": [{"query": topic, "intent": "SEARCH_ALL", "keywords": topic}],
            "search_result": search_results(topic, count)})


def search_results(topic, count):
    digest = hashlib.sha256(topic.encode()).hexdigest()[:12]
    return [{"title": f"{topic} — 结果 {i}", "content": f"关于「{topic}」的第 {i} 条摘要。",
             "link": f"https://example.com/{digest}/{i}", "media": "模拟媒体",
             "icon": "https://example.com/favicon.ico", "refer": f"ref_{i}",
             "publish_date": (date(2025, 1, 1) + timedelta(days=i)).isoformat()}
            for i in range(1, count + 1)]


def request_headers(environ):
    headers = {key[5:].replace("_", "-").title(): value
               for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").title()] = environ[key]
    if "Authorization" in headers:
        headers["Authorization"] = "present"
    return headers


class SocketHandler(pywsgi.WSGIHandler):
    """Hands the application its client socket, to watch for hang-ups and to drop it."""

    def get_environ(self):
        environ = super().get_environ()
        environ["simulator.socket"] = self.socket
        return environ


def make_server(port, api_key=None):
    return pywsgi.WSGIServer(("127.0.0.1", port), Simulator(api_key),
                             handler_class=SocketHandler, log=None, backlog=4096)


def raise_open_files_limit(wanted=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv=None):
    from gevent import monkey
    monkey.patch_all()

    parser = argparse.ArgumentParser(description="A local GLM server for tests and benchmarks.")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--api-key", help="the only key accepted (default: any non-empty key)")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    server = make_server(args.port, args.api_key)
    server.start()
    gevent.signal_handler(signal.SIGTERM, server.stop)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
