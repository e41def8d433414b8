"""Server-Sent Events of one answer: each event with its `id:` (its number in the answer), a
`: ping` comment whenever nothing was sent for SSE_PING_SECONDS. Events that arrived together
go out in one write."""
from flask import Response, stream_with_context

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
EVENTS = ("start", "thinking", "text", "tool_call", "tool_result", "title", "done", "error")
# One event of the stream, for the OpenAPI document (Open API 3.0 has `schema` of
# text/event-stream describe each event; `: ping` comments are not events).
EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[1-9][0-9]*$", "description": (
            "the event's number in its answer: 1, 2, ... (absent only on an answer's last "
            "event rebuilt from its row once its events are no longer kept)")},
        "event": {"type": "string", "enum": list(EVENTS)},
        "data": {"type": "string", "description": (
            "one line of JSON: start {user_message, assistant_message_id}; thinking and text "
            "{delta}; tool_call {id, name, arguments}; tool_result {id, name, result, status, "
            "duration_ms}; title {conversation_id, title} (a conversation's first answer); "
            "done {assistant_message}; error {code, message, assistant_message}")},
    },
}
STREAM_RESPONSE = {"description": "Server-Sent Events: start, thinking, text, tool_call, "
                                  "tool_result, title, then done or error; each with its "
                                  "`id:`",
                   "content": {"text/event-stream": {"schema": EVENT_SCHEMA}}}
PING = ": ping\n\n"


def event(seq, kind, data):
    head = "" if seq is None else f"id: {seq}\n"
    return f"{head}event: {kind}\ndata: {data}\n\n"


def written(batches):
    for batch in batches:
        yield PING if batch is None else "".join(event(*item) for item in batch)


def response(batches):
    return Response(stream_with_context(written(batches)), mimetype="text/event-stream",
                    headers=HEADERS)
