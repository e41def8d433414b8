"""Server-Sent Events for one exchange: a reader (a greenlet under gunicorn's gevent worker,
a thread elsewhere) runs the exchange and feeds a queue; the response generator relays it,
sending `: ping` whenever the model has been silent for SSE_PING_SECONDS."""
import json
import queue
import threading

from gevent import GreenletExit

from ..errors import CODE_BY_STATUS, ApiError, api_error_for
from ..schemas.messages import MessageSchema
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


# One encoder for every event: json.dumps with options builds a new one per call. NaN and
# Infinity raise, as in every JSON response (chatapi/strict_json.py).
to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def event(kind, data):
    return f"event: {kind}\ndata: {to_json(data)}\n\n"


def read_into(events, run_exchange):
    try:
        for item in run_exchange():
            events.put(item)
        events.put(_END)
    except Exception as error:  # every failure must reach the client as an event
        events.put(api_error_for(error))


def relay(exchange, run_exchange, finish_exchange, ping_seconds):
    events = queue.Queue()
    reader = threading.Thread(target=read_into, args=(events, run_exchange), daemon=True)
    reader.start()
    ended = False
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
            if last is _END or isinstance(last, ApiError):
                ended = True
                relayed.append(last_event(exchange, last, finish_exchange))
            yield "".join(relayed)
            if ended:
                return
    except (GeneratorExit, GreenletExit):
        # The client went away (GeneratorExit), or the worker is shutting down and its graceful
        # time is over (gunicorn kills the handler with GreenletExit, then exits ~1 s later):
        # either way, keep what the model said.
        if not ended:
            exchange.cancel()
            reader.join(timeout=0.5)
            try:
                finish_exchange(exchange)
            except Exception as error:  # nobody is listening: only log why it was not stored
                api_error_for(error)
        raise


def last_event(exchange, outcome, finish_exchange):
    """`done` with the answer as stored, or `error`: the provider's failure with the partial
    answer stored, or — when the answer could not be stored (the database is gone) — that
    failure, without an assistant message."""
    if isinstance(outcome, ApiError):
        exchange.fail(outcome)
    try:
        stored = message_schema.dump(finish_exchange(exchange))
    except Exception as error:  # the stream is under way: its end must still be an event
        outcome, stored = api_error_for(error), None
    if outcome is _END:
        return event("done", {"assistant_message": stored})
    return event("error", {"code": CODE_BY_STATUS[outcome.status],
                           "message": say(outcome.text_key, exchange.language),
                           "assistant_message": stored})
