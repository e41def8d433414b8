"""JSON nested deeper than the service's recursive code goes (parsing at a deeper stack,
encoders, storing a message) is refused where it enters: a tool's result and the model's tool
arguments. Without a bound, a result or arguments some 500 to 950 levels deep passed one
recursion and broke the next: a 500, and the model's answer was never stored."""
import pytest

from .test_chat import stream

# Deep enough to break every recursive walk, shallow enough for the compute worker's parser.
DEEP = 900


def nested(depth):
    return '{"a":' * depth + "1" + "}" * depth


def test_a_json_query_result_nested_too_deeply_is_422(client, auth_headers):
    response = client.post("/api/tools/json_query/execute", headers=auth_headers,
                           json={"data": nested(DEEP), "expression": "@"})
    body = response.get_json()
    assert response.status_code == 422, body
    assert "nested" in body["error"]["details"]["_schema"][0]
    shallow = client.post("/api/tools/json_query/execute", headers=auth_headers,
                          json={"data": nested(50), "expression": "a.a"})
    assert shallow.status_code == 200, shallow.get_json()


@pytest.mark.parametrize("arguments", [
    '{"expression": "@", "data": ' + nested(DEEP) + "}",
    '{"expression": "@", "data": "' + nested(DEEP).replace('"', '\\"') + '"}',
])
def test_the_models_answer_with_deeply_nested_arguments_or_result_is_stored(
        chat, auth_headers, conversation_id, arguments):
    events = stream(chat, auth_headers, conversation_id, f"[[tool:json_query {arguments}]]")
    assert events[-1][0] == "done", events[-1]
    [result] = [data for kind, data in events if kind == "tool_result"]
    assert result["status"] == "error" and "nested" in str(result["result"])
    listed = chat.get(f"/api/messages/{conversation_id}", headers=auth_headers)
    assert listed.status_code == 200
    [call] = listed.json["data"]["items"][1]["tool_calls"]
    assert call["status"] == "error"
