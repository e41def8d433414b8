"""A message's JSON columns (tool calls, usage) read back through the listing as they were
stored: an integer beyond 64 bits whole, a NaN an older SQLite row holds as null."""
import pytest
from sqlalchemy import text, update

from chatapi.extensions import db
from chatapi.models import Conversation, Message

TOOL_CALL = {"id": "call_1", "name": "calculate", "status": "ok", "duration_ms": 3.5,
             "arguments": {"zh": "你好", "nested": [1, 2.5, None, True]},
             "result": {"value": "42"}}
USAGE = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}


def stored_answer(app, conversation_id, tool_calls, usage):
    with app.app_context():
        message = Message(conversation_id=conversation_id, role="assistant", content="done",
                          tool_calls=tool_calls, usage=usage)
        db.session.add(message)
        db.session.flush()
        db.session.execute(update(Conversation).where(Conversation.id == conversation_id)
                           .values(current_message_id=message.id, message_count=1))
        db.session.commit()
        return message.id


def listed(client, auth_headers, conversation_id):
    answer = client.get(f"/api/messages/{conversation_id}", headers=auth_headers)
    assert answer.status_code == 200
    return answer.json["data"]["items"]


def test_tool_calls_and_usage_come_back_as_stored(app, client, auth_headers, conversation_id):
    stored_answer(app, conversation_id, [TOOL_CALL], USAGE)
    [message] = listed(client, auth_headers, conversation_id)
    assert message["tool_calls"] == [TOOL_CALL] and message["usage"] == USAGE


def test_an_integer_beyond_64_bits_is_read_whole(app, client, auth_headers, conversation_id):
    # Beyond 64 bits, and no double's value either.
    call = {**TOOL_CALL, "arguments": {"n": 2 ** 70 + 1}}
    stored_answer(app, conversation_id, [call], None)
    answer = client.get(f"/api/messages/{conversation_id}", headers=auth_headers)
    assert b'"n":1180591620717411303425' in answer.get_data()
    [message] = listed(client, auth_headers, conversation_id)
    assert message["tool_calls"][0]["arguments"] == {"n": 2 ** 70 + 1}
    assert message["usage"] is None


def test_a_nan_token_in_an_older_sqlite_row_still_lists(app, client, auth_headers,
                                                        conversation_id):
    """SQLite's JSON is text, which rows written before strict input may hold NaN in
    (PostgreSQL's jsonb never takes it); the listing answers, with null there."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("jsonb refuses NaN")
    message_id = stored_answer(app, conversation_id, [TOOL_CALL], None)
    with app.app_context():
        db.session.execute(text("UPDATE messages SET tool_calls = :calls WHERE id = :id"), {
            "calls": '[{"id": "call_1", "name": "calculate", "arguments": {"x": NaN}}]',
            "id": message_id})
        db.session.commit()
    [message] = listed(client, auth_headers, conversation_id)
    assert message["tool_calls"][0]["arguments"] == {"x": None}
