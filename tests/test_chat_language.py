"""The language of an answer's texts is the request's (Accept-Language), decided once by the API
layer and passed down: the same failing exchange stores the same texts through
`POST /api/messages/` and `/stream` (whose reader greenlet has no request to ask), and the
stream's events say them too."""
import pytest
from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import Message

from .test_chat import parse_events

URL = "/api/messages/"
# The tool's schema wants a string: a 422 from the tool, stored as the call's error result.
INVALID_ARGUMENTS = '[[tool:calculator {"expression": 5}]]'
# GLM stops the answer itself: a 502, stored as the answer's error with the provider's reason.
PROVIDER_REFUSAL = "[[finish:sensitive]]"
TEXTS = {
    "en": {"validation_error": "Validation failed",
           "upstream_error": "The upstream service failed"},
    "zh": {"validation_error": "参数校验失败", "upstream_error": "上游服务出错"},
}
ASKED = [
    pytest.param({"Accept-Language": "en"}, "en", id="en"),
    pytest.param({"Accept-Language": "en-US,en;q=0.9,zh;q=0.5"}, "en", id="en-us-first"),
    pytest.param({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}, "zh", id="zh-cn-first"),
    pytest.param({}, "zh", id="none-is-chinese"),
]


@pytest.fixture
def new_conversation(client, auth_headers):
    return lambda: client.post("/api/conversations/", json={},
                               headers=auth_headers).json["data"]["id"]


def stored_answer(conversation_id):
    db.session.expire_all()
    return db.session.scalars(select(Message).where(
        Message.conversation_id == conversation_id, Message.role == "assistant")).one()


def send(chat, headers, conversation_id, content):
    return chat.post(URL, json={"conversation_id": conversation_id, "content": content},
                     headers=headers)


def stream(chat, headers, conversation_id, content):
    response = chat.post(URL + "stream", headers=headers,
                         json={"conversation_id": conversation_id, "content": content})
    assert response.status_code == 200
    return dict(parse_events(response.get_data(as_text=True)))


@pytest.mark.parametrize("asked,language", ASKED)
def test_a_failing_tool_call_stores_the_asked_language_both_ways(
        chat, auth_headers, new_conversation, asked, language):
    headers = {**auth_headers, **asked}
    expected = TEXTS[language]["validation_error"]

    sent_to = new_conversation()
    sent = send(chat, headers, sent_to, INVALID_ARGUMENTS)
    assert sent.status_code == 201
    assert sent.json["data"]["assistant_message"]["tool_calls"][0]["result"]["error"] == expected

    streamed_to = new_conversation()
    events = stream(chat, headers, streamed_to, INVALID_ARGUMENTS)
    assert events["tool_result"]["status"] == "error"
    assert events["tool_result"]["result"]["error"] == expected
    assert events["done"]["assistant_message"]["tool_calls"][0]["result"]["error"] == expected

    by_send, by_stream = stored_answer(sent_to), stored_answer(streamed_to)
    assert by_send.tool_calls[0]["result"] == by_stream.tool_calls[0]["result"]
    assert by_stream.tool_calls[0]["result"]["error"] == expected


@pytest.mark.parametrize("asked,language", ASKED)
def test_a_failed_answer_stores_and_says_the_asked_language_both_ways(
        chat, auth_headers, new_conversation, asked, language):
    headers = {**auth_headers, **asked}
    reason = TEXTS[language]["upstream_error"]
    expected = f"{reason}: sensitive"

    sent_to = new_conversation()
    sent = send(chat, headers, sent_to, PROVIDER_REFUSAL)
    assert sent.status_code == 502
    assert sent.json["message"] == reason
    assert sent.json["data"]["assistant_message"]["error"] == expected

    streamed_to = new_conversation()
    events = stream(chat, headers, streamed_to, PROVIDER_REFUSAL)
    assert events["error"]["code"] == "upstream_error"
    assert events["error"]["message"] == reason
    assert events["error"]["assistant_message"]["error"] == expected

    assert stored_answer(sent_to).error == stored_answer(streamed_to).error == expected
