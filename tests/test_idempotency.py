"""`Idempotency-Key` (docs/API.md §4): a request that starts an answer, sent again with the same
key by the same user, stores nothing and calls no provider; `POST /` answers the first result,
`/stream` re-attaches to the first answer from its first event. Through the API, with the GLM
simulator counting what it was asked."""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from chatapi.extensions import db
from chatapi.models import IdempotencyKey, Message
from chatapi.models.timestamps import utcnow

from .simulator_client import wait_for
from .test_answers_as_jobs import read_until
from .test_chat import chat_requests, parse_events

URL = "/api/messages/"
SLOW = "[[chunks:10]][[delay:200]]"


@pytest.fixture
def conversation_id(chat, auth_headers):
    return chat.post("/api/conversations/", json={}, headers=auth_headers).json["data"]["id"]


def keyed(headers, key):
    return {**headers, "Idempotency-Key": key}


def send(chat, headers, conversation_id, content="hello", path="", **body):
    return chat.post(URL + path, headers=headers,
                     json={"conversation_id": conversation_id, "content": content, **body})


def message_count(conversation_id):
    db.session.expire_all()
    count = db.session.scalar(select(func.count()).select_from(Message).where(
        Message.conversation_id == conversation_id))
    db.session.rollback()
    return count


def test_a_repeated_send_answers_the_first_result_and_asks_the_model_once(
        chat, auth_headers, conversation_id, glm_simulator):
    headers = keyed(auth_headers, "send-1")
    first = send(chat, headers, conversation_id, "[[reply:first answer]]")
    assert first.status_code == 201, first.json
    again = send(chat, headers, conversation_id, "[[reply:first answer]]")
    assert again.status_code == 201
    assert again.json == first.json
    assert len(chat_requests(glm_simulator)) == 1
    assert message_count(conversation_id) == 2
    listed = chat.get(URL + conversation_id, headers=auth_headers).json["data"]
    assert [m["id"] for m in listed["items"]] == [
        first.json["data"]["user_message"]["id"], first.json["data"]["assistant_message"]["id"]]


def test_a_repeated_stream_re_attaches_to_the_running_answer_from_its_first_event(
        chat, auth_headers, conversation_id, glm_simulator):
    headers = keyed(auth_headers, "stream-1")
    body = {"conversation_id": conversation_id, "content": SLOW}
    first = chat.post(URL + "stream", headers=headers, json=body, buffered=False)
    assert first.status_code == 200
    pieces = iter(first.response)
    seen = read_until(pieces, "text")
    assert seen and seen[-1][0] == "text"

    again = chat.post(URL + "stream", headers=headers, json=body)
    assert again.status_code == 200 and again.mimetype == "text/event-stream"
    repeated = parse_events(again.get_data(as_text=True))
    rest = b"".join(pieces).decode()
    first_events = [(kind, data) for kind, data, _id in seen] + parse_events(
        rest, first_id=len(seen) + 1)
    assert repeated == first_events
    assert repeated[-1][0] == "done"
    assert len(chat_requests(glm_simulator)) == 1
    assert message_count(conversation_id) == 2


def test_a_repeated_stream_after_the_end_replays_the_whole_answer(
        chat, auth_headers, conversation_id, glm_simulator):
    headers = keyed(auth_headers, "stream-2")
    first = send(chat, headers, conversation_id, "[[chunks:4]][[think:2]]", path="stream")
    again = send(chat, headers, conversation_id, "[[chunks:4]][[think:2]]", path="stream")
    assert again.get_data(as_text=True) == first.get_data(as_text=True)
    # A stream and a whole answer are the same request: POST / answers the stored result.
    whole = send(chat, headers, conversation_id, "[[chunks:4]][[think:2]]")
    assert whole.status_code == 201
    done = parse_events(first.get_data(as_text=True))[-1][1]["assistant_message"]
    assert whole.json["data"]["assistant_message"] == done
    assert len(chat_requests(glm_simulator)) == 1
    assert message_count(conversation_id) == 2


def test_the_same_key_for_another_request_is_refused(chat, auth_headers, conversation_id,
                                                     glm_simulator):
    headers = keyed(auth_headers, "reused")
    first = send(chat, headers, conversation_id, "one")
    assert first.status_code == 201
    answer_id = first.json["data"]["assistant_message"]["id"]
    for response in (send(chat, headers, conversation_id, "two"),
                     send(chat, headers, conversation_id, "one", tools_enabled=False),
                     send(chat, headers, conversation_id, "two", path="stream"),
                     chat.post(f"{URL}{answer_id}/regenerate", headers=headers, json={}),
                     chat.post(f"{URL}{answer_id}/regenerate/stream", headers=headers)):
        assert response.status_code == 422, response.get_data(as_text=True)
        assert response.json["error"]["code"] == "validation_error"
        assert list(response.json["error"]["details"]) == ["Idempotency-Key"]
    assert len(chat_requests(glm_simulator)) == 1
    assert message_count(conversation_id) == 2


def test_keys_are_per_user(chat, auth_headers, other_headers, conversation_id, glm_simulator):
    theirs = chat.post("/api/conversations/", json={}, headers=other_headers).json["data"]["id"]
    mine = send(chat, keyed(auth_headers, "shared"), conversation_id, "mine")
    other = send(chat, keyed(other_headers, "shared"), theirs, "theirs")
    assert mine.status_code == other.status_code == 201
    assert other.json["data"]["user_message"]["content"] == "theirs"
    assert len(chat_requests(glm_simulator)) == 2
    # Another user's key does not name my answer: the same key and body of theirs is new.
    again = send(chat, keyed(other_headers, "shared"), theirs, "theirs")
    assert again.json == other.json
    assert message_count(theirs) == 2 and message_count(conversation_id) == 2


@pytest.mark.parametrize("key", ["", " " * 0 + "a" * 256, "tab\there", "caf\u00e9", "del\x7f"])
def test_a_malformed_key_is_refused_before_anything_is_stored(chat, auth_headers,
                                                              conversation_id, glm_simulator,
                                                              key):
    for path in ("", "stream"):
        response = send(chat, keyed(auth_headers, key), conversation_id, "hi", path=path)
        assert response.status_code == 422, (key, response.get_data(as_text=True))
        assert "Idempotency-Key" in response.json["error"]["details"]
    assert chat_requests(glm_simulator) == []
    assert message_count(conversation_id) == 0


def test_keys_of_printable_ascii_up_to_255_characters_are_taken(chat, auth_headers,
                                                                conversation_id):
    for key in ("k", "a" * 255, "~!@#$%^&*()_+ {}|:<>?"):
        assert send(chat, keyed(auth_headers, key), conversation_id).status_code == 201
    assert message_count(conversation_id) == 6


def test_a_repeated_regeneration_answers_the_first_and_streams_it_again(
        chat, auth_headers, conversation_id, glm_simulator):
    sent = send(chat, auth_headers, conversation_id, "[[chunks:3]]").json["data"]
    question_id = sent["user_message"]["id"]
    headers = keyed(auth_headers, "regen-1")
    first = chat.post(f"{URL}{question_id}/regenerate", headers=headers, json={})
    assert first.status_code == 201
    again = chat.post(f"{URL}{question_id}/regenerate", headers=headers, json={})
    assert again.json == first.json
    streamed = chat.post(f"{URL}{question_id}/regenerate/stream", headers=headers, json={})
    events = parse_events(streamed.get_data(as_text=True))
    assert events[0][1]["assistant_message_id"] == first.json["data"]["assistant_message"]["id"]
    assert events[-1] == ("done", {"assistant_message": first.json["data"]["assistant_message"]})
    assert len(chat_requests(glm_simulator)) == 2
    assert message_count(conversation_id) == 3
    # The same key naming the question's answer instead is another request.
    by_answer = chat.post(f"{URL}{sent['assistant_message']['id']}/regenerate", headers=headers,
                          json={})
    assert by_answer.status_code == 422


def test_a_repeat_of_a_failed_answer_is_the_same_failure(chat, auth_headers, conversation_id,
                                                         glm_simulator):
    headers = keyed(auth_headers, "fails")
    first = send(chat, headers, conversation_id, "[[stream_error:2]]")
    assert first.status_code == 502, first.get_data(as_text=True)
    requests = len(chat_requests(glm_simulator))
    again = send(chat, headers, conversation_id, "[[stream_error:2]]")
    assert again.status_code == first.status_code
    assert again.json["error"]["code"] == first.json["error"]["code"] == "upstream_error"
    assert again.json["data"] == first.json["data"]
    assert again.json["data"]["assistant_message"]["status"] == "error"
    streamed = parse_events(send(chat, headers, conversation_id, "[[stream_error:2]]",
                                 path="stream").get_data(as_text=True))
    assert streamed[-1][0] == "error"
    assert streamed[-1][1]["assistant_message"] == first.json["data"]["assistant_message"]
    assert len(chat_requests(glm_simulator)) == requests
    assert message_count(conversation_id) == 2


def test_a_key_is_free_again_after_its_time(chat_app, auth_headers, conversation_id,
                                            glm_simulator):
    chat = chat_app(IDEMPOTENCY_TTL_HOURS=1.0).test_client()
    headers = keyed(auth_headers, "old")
    first = send(chat, headers, conversation_id, "again")
    db.session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=2)))
    db.session.commit()
    second = send(chat, headers, conversation_id, "again")
    assert second.status_code == 201
    assert second.json["data"]["assistant_message"]["id"] != \
        first.json["data"]["assistant_message"]["id"]
    assert len(chat_requests(glm_simulator)) == 2
    assert message_count(conversation_id) == 4
    # Kept for the new request now, and swept once old.
    assert send(chat, headers, conversation_id, "again").json == second.json
    db.session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=2)))
    db.session.commit()
    from chatapi.services import idempotency
    idempotency.sweep(1.0)
    assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_a_repeat_whose_answer_was_deleted_is_not_found(chat, auth_headers, conversation_id,
                                                        glm_simulator):
    headers = keyed(auth_headers, "deleted")
    first = send(chat, headers, conversation_id, "bye")
    answer_id = first.json["data"]["assistant_message"]["id"]
    assert chat.delete(URL + answer_id, headers=auth_headers).status_code == 200
    for path in ("", "stream"):
        again = send(chat, headers, conversation_id, "bye", path=path)
        assert again.status_code == 404, again.get_data(as_text=True)
    assert len(chat_requests(glm_simulator)) == 1
    assert message_count(conversation_id) == 1


def test_repeats_sent_at_once_store_one_answer_and_ask_the_model_once(
        chat_app, auth_headers, conversation_id, glm_simulator):
    app = chat_app()
    headers = keyed(auth_headers, "racing")
    start = threading.Barrier(3)
    responses = [None] * 3

    def post(index):
        start.wait()
        responses[index] = send(app.test_client(), headers, conversation_id, SLOW)

    threads = [threading.Thread(target=post, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert wait_for(lambda: all(responses), 120)
    assert [response.status_code for response in responses] == [201, 201, 201], [
        response.get_data(as_text=True) for response in responses]
    assert responses[0].json == responses[1].json == responses[2].json
    assert len(chat_requests(glm_simulator)) == 1
    assert message_count(conversation_id) == 2
    assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


def test_the_document_describes_the_header_on_the_four_operations(client):
    paths = client.get("/api/openapi.json").json["paths"]
    for path in ("/api/messages/", "/api/messages/stream", "/api/messages/{message_id}/regenerate",
                 "/api/messages/{message_id}/regenerate/stream"):
        operation = paths[path]["post"]
        header, = [parameter for parameter in operation["parameters"]
                   if parameter["in"] == "header"]
        assert header["name"] == "Idempotency-Key" and header["required"] is False
        assert header["schema"] == {"type": "string", "pattern": "^[ -~]{1,255}$"}
        assert "422" in operation["responses"]
    assert all(parameter["name"] != "Idempotency-Key"
               for parameter in paths["/api/messages/{message_id}/stop"]["post"].get(
                   "parameters", []))
