"""Strict JSON in and out: no NaN, Infinity, number beyond a double or lone UTF-16 surrogate is
read from a request, a tool's input or the model's tool arguments, and none is ever written in a
response, an event or a stored message."""
import json
import math
from datetime import datetime, timezone

import pytest

from chatapi import strict_json
from chatapi.services.answers import to_json

from .security.test_api4_resource_consumption import body_routes
from .test_chat import stream

LONE_SURROGATE = "\\ud800"


def strictly_parsed(text):
    def refuse(name):
        raise AssertionError(f"{name} in a response: {text[:200]}")
    return json.loads(text, parse_constant=refuse)


def is_text(value):
    """True when every string (and key) in value is Unicode text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(map(is_text, value))
    if isinstance(value, dict):
        return all(is_text(key) and is_text(item) for key, item in value.items())
    return True


def post_raw(client, url, text, headers):
    return client.post(url, data=text, content_type="application/json", headers=headers)


def refusal(response, status=422):
    body = response.get_json()
    assert response.status_code == status, body
    assert body["success"] is False
    return body["error"]["details"]


@pytest.mark.parametrize("document", ["1e999", "[1, -1e999]", "NaN", '{"a": Infinity}'])
def test_json_query_refuses_a_document_that_is_not_strict_json(client, auth_headers, document):
    response = client.post("/api/tools/json_query/execute", headers=auth_headers,
                           json={"data": document, "expression": "@"})
    assert "data" in refusal(response)


def test_json_query_refuses_a_lone_surrogate_inside_its_json_text(client, auth_headers):
    response = client.post("/api/tools/json_query/execute", headers=auth_headers,
                           json={"data": '["\\ud800"]', "expression": "@"})
    assert "lone surrogate" in refusal(response)["data"][0]


@pytest.mark.parametrize("expression", ["sum(@)", "avg(@)"])
def test_json_query_refuses_a_result_beyond_a_double(client, auth_headers, expression):
    response = client.post("/api/tools/json_query/execute", headers=auth_headers,
                           json={"data": [1e308, 1e308], "expression": expression})
    assert "expression" in refusal(response)


def test_csv_analyze_leaves_a_sum_beyond_a_double_null(client, auth_headers):
    response = client.post("/api/tools/csv_analyze/execute", headers=auth_headers,
                           json={"csv": "a\n1e308\n1.5e308\n"})
    assert response.status_code == 200, response.get_json()
    column = strictly_parsed(response.get_data(as_text=True))["data"]["result"]["columns"][0]
    assert column["sum"] is None and column["mean"] == 1.25e308


def test_a_lone_surrogate_anywhere_in_any_body_is_422_naming_where(app, client, auth_headers):
    routes = body_routes(app, client)
    assert len(routes) >= 8
    values = {"conversation_id": "conv_x", "name": "json_query", "message_id": "msg_x"}
    for route in routes:
        body = '{"data": {"items": [1, "a' + LONE_SURROGATE + 'b"]}, "expression": "@"}'
        response = client.open(route.url(**values), method=route.method, data=body,
                               content_type="application/json", headers=auth_headers)
        assert refusal(response) == {
            "data.items.1": ["Must be valid Unicode text (no lone surrogates)."]}, route


def test_a_lone_surrogate_in_a_key_is_named_by_its_escape(client, auth_headers):
    response = post_raw(client, "/api/tools/json_query/execute",
                        '{"data": {"k' + LONE_SURROGATE + '": 1}, "expression": "@"}',
                        auth_headers)
    assert list(refusal(response)) == ["data.k\\ud800"]


def test_a_valid_surrogate_pair_is_text(client, auth_headers):
    response = post_raw(client, "/api/tools/json_query/execute",
                        '{"data": ["\\ud83d\\ude00"], "expression": "[0]"}', auth_headers)
    assert response.status_code == 200 and response.json["data"]["result"] == {"result": "😀"}


@pytest.mark.parametrize("arguments,reason", [
    ('{"data": NaN, "expression": "@"}', "NaN"),
    ('{"data": [Infinity], "expression": "@"}', "Infinity"),
    ('{"data": -Infinity, "expression": "@"}', "-Infinity"),
    ('{"data": 1e999, "expression": "@"}', "1e999"),
    ('{"data": "' + LONE_SURROGATE + '", "expression": "@"}', "lone surrogate"),
])
def test_model_tool_arguments_that_are_not_strict_json_are_an_error_result(
        chat, auth_headers, conversation_id, arguments, reason):
    url = f"/api/messages/{conversation_id}"
    body = chat.post("/api/messages/stream", headers=auth_headers, json={
        "conversation_id": conversation_id,
        "content": f"[[tool:json_query {arguments}]]"}).get_data(as_text=True)
    events = [strictly_parsed(line.removeprefix("data: ")) for line in body.split("\n")
              if line.startswith("data: ")]
    result = next(data for data in events if data.get("status") == "error")
    assert reason in result["result"]["error"] and result["name"] == "json_query"
    listed = chat.get(url, headers=auth_headers)
    assert listed.status_code == 200
    call = strictly_parsed(listed.get_data(as_text=True))["data"]["items"][1]["tool_calls"][0]
    assert call["status"] == "error" and call["arguments"] == {}
    assert call["result"]["arguments"] == arguments


def test_a_lone_surrogate_in_the_models_text_is_stored_as_a_replacement_character(
        chat, auth_headers, conversation_id):
    events = stream(chat, auth_headers, conversation_id, "[[reply:ok]][[lone_surrogate]]")
    assert events[-1][0] == "done"
    assert events[-1][1]["assistant_message"]["content"] == "ok\ufffd"
    listed = chat.get(f"/api/messages/{conversation_id}", headers=auth_headers).json["data"]
    assert listed["items"][1]["content"] == "ok\ufffd" and is_text(listed)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_reach_no_response_or_stream_event_as_tokens(app, value):
    response = app.json.response({"result": value, "kept": 1.5})
    assert strictly_parsed(response.get_data(as_text=True)) == {"result": None, "kept": 1.5}
    with pytest.raises(ValueError):
        to_json({"result": value})  # every stream event's data


def test_a_response_is_utf8_json_in_the_order_given(app):
    response = app.json.response({"zh": "你好", "emoji": "🙂", "a": [1, None, True]})
    assert response.mimetype == "application/json"
    assert response.get_data() == '{"zh":"你好","emoji":"🙂","a":[1,null,true]}\n'.encode()


def test_what_orjson_refuses_is_written_as_the_json_module_wrote_it(app):
    """A lone surrogate escaped (no route lets one reach a response: this is the last guard),
    an integer beyond 64 bits whole, a non-string key as a string, a datetime as Flask writes
    it."""
    response = app.json.response({"text": "a\ud800", "big": 2 ** 70})
    assert response.get_data(as_text=True).isascii()
    assert json.loads(response.get_data()) == {"text": "a\ud800", "big": 2 ** 70}
    assert app.json.response({7: "seven"}).json == {"7": "seven"}
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert app.json.response({"when": when}).json == {"when": "Fri, 02 Jan 2026 03:04:05 GMT"}


@pytest.mark.parametrize("chunk,value", [
    (b'{"usage": {"total_tokens": 18446744073709551617}}', {"usage": {"total_tokens": 2**64 + 1}}),
    (b'{"delta": "\\ud800 ok", "n": 1e400}', {"delta": "\ufffd ok", "n": math.inf}),
    (b'{"delta": "\\ud83d\\ude00", "index": 0}', {"delta": "\U0001F600", "index": 0}),
    (b'{"usage": {"total_tokens": 9223372036854775808}}', {"usage": {"total_tokens": 2**63}}),
    (b'{"n": -9223372036854775809, "m": 999999999999999999}',
     {"n": -2**63 - 1, "m": 10**18 - 1}),
    (b'{"delta": "12345678901234567890", "n": -12.5}',
     {"delta": "12345678901234567890", "n": -12.5})])
def test_a_model_chunk_is_read_as_the_json_module_reads_it(chunk, value):
    """An integer beyond 64 bits stays whole, a number beyond a double is infinity (as the json
    module reads it), a lone surrogate is replaced and a pair is its character."""
    read = strict_json.loads_replacing_surrogates(chunk)
    assert read == value
    assert json.dumps(read) == json.dumps(value)


@pytest.mark.parametrize("chunk", [b"[" * 1000 + b"]" * 1000,
                                   b'{"a":' * 1000 + b"1" + b"}" * 1000])
def test_a_model_chunk_nested_past_the_json_modules_depth_is_refused_as_it_refused_it(chunk):
    """orjson would read 1,024 levels; the json module gives up before (the stream's reader
    turns that into an unreadable chunk)."""
    with pytest.raises(RecursionError):
        json.loads(chunk)
    with pytest.raises(RecursionError):
        strict_json.loads_replacing_surrogates(chunk)
