"""Server-Sent Events for one exchange: a reader (a greenlet under gunicorn's gevent worker,
a thread elsewhere) runs the exchange and feeds a queue; the response generator relays it,
sending `: ping` whenever the model has been silent for SSE_PING_SECONDS."""
import json
import queue
import threading

from gevent import GreenletExit

from ..errors import CODE_BY_STATUS, ApiError
from ..schemas.messages import MessageSchema
from ..services.chat import as_api_error
from ..texts import say

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
EVENTS = ("start", "thinking", "text", "tool_call", "tool_result", "done", "error")
# One event of the stream, for the OpenAPI document (Open API 3.0 has `schema` of
# text/event-stream describe each event; `: ping` comments are not events).
EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": list(EVENTS)},
        "data": {"type": "string", "description": (
            "one line of JSON: start {user_message, assistant_message_id}; thinking and text "
            "{delta}; tool_call {id, name, arguments}; tool_result {id, name, result, status, "
            "duration_ms}; done {assistant_message}; error {code, message, "
            "assistant_message}")},
    },
}
PING = ": ping\n\n"
message_schema = MessageSchema()
_END = object()


def event(kind, data):
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def read_into(events, run_exchange):
    try:
        for item in run_exchange():
            events.put(item)
        events.put(_END)
    except Exception as error:  # every failure must reach the client as an event
        events.put(as_api_error(error))


def relay(exchange, run_exchange, finish_exchange, ping_seconds):
    events = queue.Queue()
    reader = threading.Thread(target=read_into, args=(events, run_exchange), daemon=True)
    reader.start()
    stored = None
    try:
        yield event("start", {"user_message": message_schema.dump(exchange.user_message),
                              "assistant_message_id": exchange.assistant_message_id})
        while True:
            try:
                arrived = [events.get(timeout=ping_seconds)]
            except queue.Empty:
                yield PING
                continue
            # Events that queued up while the worker was busy go out in one write.
            while not events.empty():
                arrived.append(events.get_nowait())
            relayed = [event(*item) for item in arrived if isinstance(item, tuple)]
            last = arrived[-1]
            if last is _END:
                stored = finish_exchange(exchange)
                relayed.append(event("done", {"assistant_message": message_schema.dump(stored)}))
            elif isinstance(last, ApiError):
                exchange.fail(last)
                stored = finish_exchange(exchange)
                relayed.append(event("error", {"code": CODE_BY_STATUS[last.status],
                                               "message": say(last.text_key),
                                               "assistant_message": message_schema.dump(stored)}))
            yield "".join(relayed)
            if stored is not None:
                return
    except (GeneratorExit, GreenletExit):
        # The client went away (GeneratorExit), or the worker is shutting down and its graceful
        # time is over (gunicorn kills the handler with GreenletExit, then exits ~1 s later):
        # either way, keep what the model said.
        if stored is None:
            exchange.cancel()
            reader.join(timeout=0.5)
            finish_exchange(exchange)
        raise
