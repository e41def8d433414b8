"""Chat through the real zhipuai SDK against the GLM simulator (tests/glm_simulator.py)."""
import json

import pytest
from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import Conversation, Message

URL = "/api/messages/"
DEFAULT_REPLY = "你好！我是模拟的 GLM。"


@pytest.fixture
def chat(chat_app):
    return chat_app(GLM_READ_TIMEOUT=2.0).test_client()


@pytest.fixture
def conversation(client, auth_headers):
    def create(**fields):
        return client.post("/api/conversations/", json=fields, headers=auth_headers).json["data"]
    return create


def send(chat, headers, conversation_id, content, **extra):
    return chat.post(URL, json={"conversation_id": conversation_id, "content": content, **extra},
                     headers=headers)


def stream(chat, headers, conversation_id, content, **extra):
    response = chat.post(URL + "stream", json={"conversation_id": conversation_id,
                                               "content": content, **extra}, headers=headers)
    assert response.status_code == 200
    return parse_events(response.get_data(as_text=True))


def parse_events(body, first_id=1):
    """(kind, data) per event; their `id:` lines must count up from `first_id`, one by one."""
    events, ids = [], []
    for block in body.split("\n\n"):
        if not block.strip() or block.startswith(":"):
            continue
        id_line, kind_line, data_line = block.split("\n")
        ids.append(int(id_line.removeprefix("id: ")))
        events.append((kind_line.removeprefix("event: "),
                       json.loads(data_line.removeprefix("data: "))))
    assert ids == list(range(first_id, first_id + len(ids))), ids
    return events


def kinds(events):
    return [kind for kind, _ in events]


def chat_requests(glm_simulator):
    return [r for r in glm_simulator.requests() if r["path"].endswith("/chat/completions")]


def stored(conversation_id):
    db.session.expire_all()
    return db.session.scalars(select(Message).where(Message.conversation_id == conversation_id)
                              .order_by(Message.created_at, Message.id)).all()


def test_send_answers_201_with_both_messages(chat, auth_headers, conversation):
    conv = conversation()
    response = send(chat, auth_headers, conv["id"], "你好")
    assert response.status_code == 201, response.json
    data = response.json["data"]
    assert data["user_message"]["content"] == "你好" and data["user_message"]["role"] == "user"
    answer = data["assistant_message"]
    assert answer["role"] == "assistant" and answer["content"] == DEFAULT_REPLY
    assert answer["status"] == "completed" and answer["finish_reason"] == "stop"
    assert answer["model"] == "glm-5" and answer["tool_calls"] == []
    assert answer["usage"]["completion_tokens"] > 0
    assert answer["usage"]["total_tokens"] == (answer["usage"]["prompt_tokens"]
                                               + answer["usage"]["completion_tokens"])
    assert [m.id for m in stored(conv["id"])] == [data["user_message"]["id"], answer["id"]]


def test_stream_events_in_order_and_text_equals_stored_content(chat, auth_headers,
                                                               conversation):
    conv = conversation()
    events = stream(chat, auth_headers, conv["id"], "[[chunks:12]]")
    assert kinds(events) == ["start"] + ["text"] * 12 + ["done"]
    start, done = events[0][1], events[-1][1]
    assert start["user_message"]["content"] == "[[chunks:12]]"
    assert done["assistant_message"]["id"] == start["assistant_message_id"]
    text = "".join(data["delta"] for kind, data in events if kind == "text")
    assert text == done["assistant_message"]["content"] == stored(conv["id"])[1].content


def test_the_request_carries_the_conversation_settings(chat, auth_headers, conversation,
                                                       glm_simulator):
    conv = conversation(model="glm-4.5-air", temperature=0.5, max_tokens=2048,
                        system_prompt="Be brief.")
    send(chat, auth_headers, conv["id"], "hi", tools_enabled=False)
    body = chat_requests(glm_simulator)[-1]["body"]
    assert body["model"] == "glm-4.5-air" and body["temperature"] == 0.5
    assert body["max_tokens"] == 2048 and body["stream"] is True
    assert body["thinking"] == {"type": "disabled"}
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "hi"}]
    assert not body.get("tools")


def test_tools_are_offered_by_default(chat, auth_headers, conversation, glm_simulator):
    send(chat, auth_headers, conversation()["id"], "hi")
    body = chat_requests(glm_simulator)[-1]["body"]
    names = {tool["function"]["name"] for tool in body["tools"]}
    assert "calculator" in names and body["tool_choice"] == "auto"
    assert all(tool["type"] == "function" and tool["function"]["parameters"]["type"] == "object"
               for tool in body["tools"])


def test_thinking_streams_and_is_stored(chat, auth_headers, conversation, glm_simulator):
    conv = conversation(thinking_enabled=True)
    events = stream(chat, auth_headers, conv["id"], "[[think:3]][[reply:好]]")
    assert kinds(events) == ["start", "thinking", "thinking", "thinking", "text", "done"]
    reasoning = "".join(data["delta"] for kind, data in events if kind == "thinking")
    assert events[-1][1]["assistant_message"]["reasoning_content"] == reasoning
    assert stored(conv["id"])[1].reasoning_content == reasoning
    assert chat_requests(glm_simulator)[-1]["body"]["thinking"] == {"type": "enabled"}


def test_a_tool_call_runs_and_its_result_goes_back_to_the_model(chat, auth_headers,
                                                                conversation, glm_simulator):
    conv = conversation()
    events = stream(chat, auth_headers, conv["id"],
                    '[[tool:calculator {"expression": "6*7"}]]')
    assert kinds(events)[:3] == ["start", "tool_call", "tool_result"]
    assert kinds(events)[-1] == "done"
    call, result = events[1][1], events[2][1]
    assert call["name"] == "calculator" and call["arguments"] == {"expression": "6*7"}
    assert result["id"] == call["id"] and result["status"] == "ok"
    assert "42" in json.dumps(result["result"])
    answer = events[-1][1]["assistant_message"]
    assert "42" in answer["content"]
    assert answer["tool_calls"][0]["name"] == "calculator"
    assert answer["tool_calls"][0]["status"] == "ok"
    follow_up = chat_requests(glm_simulator)[-1]["body"]["messages"]
    assert follow_up[-2]["role"] == "assistant"
    assert follow_up[-2]["tool_calls"][0]["id"] == call["id"]
    assert follow_up[-1]["role"] == "tool" and follow_up[-1]["tool_call_id"] == call["id"]


def test_several_tool_calls_are_stored_in_order(chat, auth_headers, conversation):
    conv = conversation()
    response = send(chat, auth_headers, conv["id"],
                    '[[tool:calculator {"expression": "1+1"}]]'
                    '[[tool:json_query {"data": {"a": 3}, "expression": "a"}]]'
                    '[[tool:no_such_tool {}]]')
    calls = response.json["data"]["assistant_message"]["tool_calls"]
    assert [call["name"] for call in calls] == ["calculator", "json_query", "no_such_tool"]
    assert [call["status"] for call in calls] == ["ok", "ok", "error"]
    assert stored(conv["id"])[1].tool_calls == calls


def test_tool_call_fragments_are_merged_by_index(chat, auth_headers, conversation):
    response = send(chat, auth_headers, conversation()["id"],
                    '[[tool_stream]][[tool:calculator {"expression": "10*10"}]]'
                    '[[tool:unit_convert {"value": 1, "from_unit": "km", "to_unit": "m"}]]')
    calls = response.json["data"]["assistant_message"]["tool_calls"]
    assert [(call["name"], call["status"]) for call in calls] == [
        ("calculator", "ok"), ("unit_convert", "ok")]
    assert calls[0]["arguments"] == {"expression": "10*10"}
    assert calls[0]["result"]["result"] == 100 and calls[1]["result"]["result"] == 1000


def test_an_error_inside_the_stream_is_an_error_answer_keeping_the_text(
        chat, auth_headers, conversation):
    conv = conversation()
    events = stream(chat, auth_headers, conv["id"], "[[chunks:5]][[stream_error:2]]")
    assert kinds(events) == ["start", "text", "text", "error"]
    assert events[-1][1]["code"] == "upstream_error"
    answer = stored(conv["id"])[1]
    assert answer.status == "error" and answer.content == "w0 w1 "
    assert "敏感" in answer.error


def test_invalid_tool_arguments_become_an_error_result(chat, auth_headers, conversation,
                                                       glm_simulator):
    response = send(chat, auth_headers, conversation()["id"], "[[bad_args:calculator]]")
    assert response.status_code == 201
    call = response.json["data"]["assistant_message"]["tool_calls"][0]
    assert call["status"] == "error" and "JSON" in call["result"]["error"]
    assert chat_requests(glm_simulator)[-1]["body"]["messages"][-1]["role"] == "tool"


def test_tool_schema_violations_become_an_error_result(chat, auth_headers, conversation):
    response = send(chat, auth_headers, conversation()["id"],
                    '[[tool:calculator {"expression": 5}]]')
    call = response.json["data"]["assistant_message"]["tool_calls"][0]
    assert call["status"] == "error" and "expression" in call["result"]["details"]


def test_the_round_limit_stops_an_endless_tool_loop(chat, auth_headers, conversation,
                                                    glm_simulator):
    response = send(chat, auth_headers, conversation()["id"],
                    '[[tool_every_round:calculator {"expression": "1+1"}]]')
    assert response.status_code == 201
    answer = response.json["data"]["assistant_message"]
    assert len(answer["tool_calls"]) == 5
    requests = chat_requests(glm_simulator)
    assert len(requests) == 6
    assert all(r["body"].get("tools") for r in requests[:5])
    assert not requests[5]["body"].get("tools")


@pytest.mark.parametrize("status,code", [
    (400, "upstream_error"), (401, "upstream_error"), (429, "upstream_unavailable"),
    (500, "upstream_error"), (503, "upstream_unavailable"),
])
def test_provider_http_errors_store_the_user_message_and_an_error_answer(
        chat, auth_headers, conversation, status, code):
    conv = conversation()
    response = send(chat, auth_headers, conv["id"], f"[[http:{status}]]")
    expected_status = {"upstream_error": 502, "upstream_unavailable": 503}[code]
    assert response.status_code == expected_status
    assert response.json["error"]["code"] == code
    assert response.json["error"]["details"]["provider_status"] == status
    data = response.json["data"]
    assert data["user_message"]["content"] == f"[[http:{status}]]"
    assert data["assistant_message"]["status"] == "error" and data["assistant_message"]["error"]
    assert [m.status for m in stored(conv["id"])] == ["completed", "error"]
    events = stream(chat, auth_headers, conv["id"], f"[[http:{status}]]")
    assert kinds(events) == ["start", "error"] and events[1][1]["code"] == code
    assert events[1][1]["assistant_message"]["status"] == "error"


def test_a_dropped_connection_keeps_the_partial_text_as_an_error(chat, auth_headers,
                                                                 conversation):
    conv = conversation()
    events = stream(chat, auth_headers, conv["id"], "[[chunks:10]][[drop:4]]")
    assert kinds(events) == ["start"] + ["text"] * 4 + ["error"]
    assert events[-1][1]["code"] == "upstream_error"
    partial = "".join(data["delta"] for kind, data in events if kind == "text")
    answer = stored(conv["id"])[1]
    assert answer.status == "error" and answer.content == partial
    response = send(chat, auth_headers, conv["id"], "[[chunks:10]][[drop:4]]")
    assert response.status_code == 502


def test_a_stall_past_the_read_timeout_is_504(chat, auth_headers, conversation):
    conv = conversation()
    response = send(chat, auth_headers, conv["id"], "[[stall:4]]")
    assert response.status_code == 504
    assert response.json["error"]["code"] == "upstream_timeout"
    events = stream(chat, auth_headers, conv["id"], "[[chunks:3]][[stall:4]][[stall_after:1]]")
    assert kinds(events) == ["start", "text", "error"]
    assert events[-1][1]["code"] == "upstream_timeout"
    assert stored(conv["id"])[-1].content == events[1][1]["delta"]


def test_a_stream_without_finish_reason_is_an_error(chat, auth_headers, conversation):
    response = send(chat, auth_headers, conversation()["id"], "[[no_finish]]")
    assert response.status_code == 502
    assert response.json["data"]["assistant_message"]["status"] == "error"


@pytest.mark.parametrize("marker", [
    "[[malformed_chunk]]", "[[usage_total:1e400]]", "[[usage_total:99999999999]]",
    "[[usage_total:-1]]", '[[usage_total:"12"]]', "[[usage_total:true]]",
    "[[usage_total:12.5]]", "[[bad_chunk:content]]", "[[bad_chunk:reasoning_content]]",
    "[[bad_chunk:finish_reason]]", "[[bad_chunk:tool_call_id]]"])
def test_a_chunk_shaped_otherwise_than_glms_ends_the_answer_with_a_502(
        chat, auth_headers, conversation, marker):
    """Infinity (1e400 to Python's JSON parser), a count past any call's, a negative one, and
    counts that are no whole numbers included: the counts go into 32-bit columns and the
    user's quota; and a text, a finish reason or a tool call's id that is no text."""
    conv = conversation()
    response = send(chat, auth_headers, conv["id"], f"[[chunks:3]]{marker}")
    assert response.status_code == 502
    assert response.json["error"]["code"] == "upstream_error"
    assert response.json["error"]["details"]["provider_error"] == "malformed stream chunk"
    assert response.json["data"]["assistant_message"]["status"] == "error"
    assert [m.status for m in stored(conv["id"])] == ["completed", "error"]


def test_the_length_limit_leaves_an_incomplete_answer(chat, auth_headers, conversation):
    response = send(chat, auth_headers, conversation()["id"], "[[finish:length]]")
    answer = response.json["data"]["assistant_message"]
    assert response.status_code == 201
    assert answer["status"] == "incomplete" and answer["finish_reason"] == "length"


def test_history_is_replayed_without_error_answers(
        chat, auth_headers, conversation, glm_simulator):
    conv = conversation(system_prompt="You are terse.")
    send(chat, auth_headers, conv["id"], "first")
    send(chat, auth_headers, conv["id"], "[[http:500]]")
    send(chat, auth_headers, conv["id"], '[[tool:calculator {"expression": "2+2"}]]')
    send(chat, auth_headers, conv["id"], "last")
    messages = chat_requests(glm_simulator)[-1]["body"]["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "user",
                     "assistant", "tool", "assistant", "user"]
    assert messages[1]["content"] == "first" and messages[2]["content"] == DEFAULT_REPLY
    assert messages[3]["content"] == "[[http:500]]"
    assert messages[5]["tool_calls"][0]["function"]["name"] == "calculator"
    assert json.loads(messages[5]["tool_calls"][0]["function"]["arguments"]) == {
        "expression": "2+2"}
    assert messages[6]["tool_call_id"] == messages[5]["tool_calls"][0]["id"]
    assert "4" in messages[6]["content"]
    assert messages[-1] == {"role": "user", "content": "last"}


def test_long_history_is_trimmed_from_the_oldest_end(chat, auth_headers, conversation,
                                                     glm_simulator):
    from datetime import timedelta

    from chatapi.models.timestamps import utcnow
    conv = conversation(model="glm-4.5", max_tokens=65536)
    start = utcnow() - timedelta(hours=1)
    # glm-4.5: 128,000 tokens, 64,000 kept for the answer; each message ~10,000 tokens.
    rows = [Message(id=f"msg_long{i}", parent_id=f"msg_long{i - 1}" if i else None,
                    conversation_id=conv["id"], role="user" if i % 2 == 0 else "assistant",
                    content=f"<{i}>" + "x" * 20000, status="completed", tool_calls=[],
                    created_at=start + timedelta(seconds=i)) for i in range(10)]
    db.session.add_all(rows)
    db.session.flush()
    db.session.get(Conversation, conv["id"]).current_message_id = rows[-1].id
    db.session.commit()
    send(chat, auth_headers, conv["id"], "now")
    messages = chat_requests(glm_simulator)[-1]["body"]["messages"]
    kept = [m["content"][:4] for m in messages[:-1]]
    assert kept == ["<4>x", "<5>x", "<6>x", "<7>x", "<8>x", "<9>x"]
    assert messages[-1] == {"role": "user", "content": "now"}


def test_the_first_message_names_the_conversation(chat, client, auth_headers, conversation):
    conv = conversation()
    send(chat, auth_headers, conv["id"], "  How do   I bake bread at home without yeast?  ")
    send(chat, auth_headers, conv["id"], "second question")
    data = client.get("/api/conversations/" + conv["id"], headers=auth_headers).json["data"]
    assert data["title"] == "How do I bake bread at home wi"
    assert data["message_count"] == 4
    renamed = conversation(title="Mine")
    send(chat, auth_headers, renamed["id"], "hello")
    assert client.get("/api/conversations/" + renamed["id"],
                      headers=auth_headers).json["data"]["title"] == "Mine"
