"""Titles made by the model (docs/API.md §3, "Titles"): asked alongside a conversation's first
answer from TITLE_MODEL, stored in place of the automatic title unless the user chose one, sent
to the answer's stream as `event: title`, counted in usage; a failing or slow title call never
delays or breaks the answer."""
import logging

import pytest
import requests
from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import Conversation, UsageRecord
from chatapi.services.titles import INSTRUCTION, automatic_title, cleaned

from .conftest import gunicorn_env
from .servers import gunicorn
from .simulator_client import wait_for
from .sse_client import events as sse_events
from .sse_client import open_stream as open_sse
from .test_answers_as_jobs import open_stream, read_until
from .test_chat import chat_requests, send, stream

CONVERSATIONS = "/api/conversations/"
# Generous: each is waited for as an event, and returns as soon as it comes.
DEADLINE = 60


@pytest.fixture
def titled(chat_app):
    return chat_app(AUTO_TITLE=True, TITLE_MODEL="glm-4.5-air",
                    GLM_MODELS=["glm-5", "glm-4.5-air"], GLM_READ_TIMEOUT=30.0).test_client()


def new_conversation(client, headers, **fields):
    response = client.post(CONVERSATIONS, json=fields, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["data"]


def conversation_row(conversation_id):
    db.session.expire_all()
    row = db.session.get(Conversation, conversation_id)
    db.session.rollback()
    return row


def title_requests(glm_simulator):
    return [r for r in chat_requests(glm_simulator) if not r["body"].get("stream")]


def usage_rows(user_id):
    db.session.expire_all()
    rows = db.session.scalars(select(UsageRecord).where(UsageRecord.user_id == user_id)
                              .order_by(UsageRecord.id)).all()
    db.session.rollback()
    return rows


def title_becomes(conversation_id, title):
    return wait_for(lambda: conversation_row(conversation_id).title == title, DEADLINE)


def logged(caplog, text):
    return wait_for(lambda: any(text in record.getMessage() for record in caplog.records),
                    DEADLINE)


def test_the_model_titles_a_conversation_after_its_first_message(
        titled, auth_headers, user, glm_simulator):
    conversation = new_conversation(titled, auth_headers)
    first = "请解释 Rust 的所有权和借用规则，并举一个例子 [[title_reply:「Rust 所有权与借用」]]"
    response = send(titled, auth_headers, conversation["id"], first)
    assert response.status_code == 201, response.json
    answer = response.json["data"]["assistant_message"]

    # The quotes the model put around it are taken off.
    assert title_becomes(conversation["id"], "Rust 所有权与借用")
    listed = titled.get(CONVERSATIONS + conversation["id"], headers=auth_headers).json["data"]
    assert listed["title"] == "Rust 所有权与借用"

    [request] = title_requests(glm_simulator)
    body = request["body"]
    assert body["model"] == "glm-4.5-air" and body["stream"] is False
    assert body["thinking"] == {"type": "disabled"} and "tools" not in body
    assert body["messages"] == [{"role": "system", "content": INSTRUCTION},
                                {"role": "user", "content": first}]

    # Counted: a usage row with the tokens the provider reported for the title call, under the
    # answer it was made for.
    rows = wait_for(lambda: len(usage_rows(user.id)) == 2 and usage_rows(user.id), DEADLINE)
    title_row = next(row for row in rows if row.model == "glm-4.5-air")
    assert (title_row.prompt_tokens, title_row.completion_tokens, title_row.total_tokens) == (
        request["usage"]["prompt_tokens"], request["usage"]["completion_tokens"],
        request["usage"]["total_tokens"])
    assert not title_row.estimated
    assert (title_row.conversation_id, title_row.message_id) == (conversation["id"], answer["id"])
    totals = titled.get("/api/usage/", query_string={"group_by": "model"},
                        headers=auth_headers).json["data"]
    assert {group["key"]: group["total_tokens"] for group in totals["groups"]}[
        "glm-4.5-air"] == request["usage"]["total_tokens"]

    # Only the first message is titled.
    assert send(titled, auth_headers, conversation["id"], "再举一个").status_code == 201
    assert len(title_requests(glm_simulator)) == 1


def test_the_title_event_comes_in_the_stream_before_done(titled, auth_headers, glm_simulator):
    conversation = new_conversation(titled, auth_headers)
    # The answer stays silent after two pieces until it is stopped; the title call is answered
    # at once, so its event is due before the answer ends.
    response, pieces = open_stream(
        titled, auth_headers, conversation["id"],
        "[[chunks:4]][[stall_after:2]][[stall:600]][[title_stall:0]][[title_reply:Stalled]]")
    seen = read_until(pieces, "text", count=2)
    answer_id = seen[0][1]["assistant_message_id"]
    assert title_becomes(conversation["id"], "Stalled")
    assert titled.post(f"/api/messages/{answer_id}/stop",
                       headers=auth_headers).status_code == 200
    seen += read_until(pieces, "done")
    response.close()
    kinds = [kind for kind, *_ in seen]
    # With the answer's next event: after either piece of text (whenever the title was
    # stored), or with the end; before `done` in any case, and once.
    assert [kind for kind in kinds if kind != "title"] == ["start", "text", "text", "done"]
    assert kinds.count("title") == 1 and kinds.index("title") < kinds.index("done")
    assert seen[kinds.index("title")][1] == {"conversation_id": conversation["id"],
                                             "title": "Stalled"}
    # Kept with the answer's events: a client that re-attaches gets it too.
    followed = titled.get(f"/api/messages/{answer_id}/stream", headers=auth_headers)
    assert ("title", {"conversation_id": conversation["id"], "title": "Stalled"}) in [
        (kind, data) for kind, data in parse_followed(followed)]


def parse_followed(response):
    body = response.get_data(as_text=True)
    return [(kind, data) for kind, data, _id in read_until([body.encode()], "done")]


@pytest.mark.parametrize("failure", ["[[title_http:500]]", "[[title_malformed_chunk]]",
                                     "[[title_usage_total:1e400]]"])
def test_a_failing_title_call_leaves_the_automatic_title_and_the_answer_whole(
        titled, auth_headers, user, glm_simulator, caplog, failure):
    caplog.set_level(logging.INFO, logger="chatapi.services.titles")
    conversation = new_conversation(titled, auth_headers)
    events = stream(titled, auth_headers, conversation["id"], f"Plan a trip to Kyoto {failure}")
    assert [kind for kind, _ in events] == ["start", "text", "text", "text", "done"]
    assert events[-1][1]["assistant_message"]["status"] == "completed"
    assert logged(caplog, f"no title for conversation {conversation['id']}: UpstreamError")
    assert conversation_row(conversation["id"]).title == automatic_title(
        f"Plan a trip to Kyoto {failure}")
    # A refused call costs nothing: the answer's row only.
    assert [row.model for row in usage_rows(user.id)] == ["glm-5"]


def test_a_lone_surrogate_in_the_title_the_model_wrote_is_dropped(
        titled, auth_headers, glm_simulator):
    conversation = new_conversation(titled, auth_headers)
    assert send(titled, auth_headers, conversation["id"],
                "hi [[title_reply:Kyoto]][[title_lone_surrogate]]").status_code == 201
    assert title_becomes(conversation["id"], "Kyoto")


def test_a_slow_title_call_does_not_delay_the_answer_and_lands_after_it(
        titled, auth_headers, glm_simulator):
    conversation = new_conversation(titled, auth_headers)
    first = "日本の旅行 [[title_stall:5]][[title_reply:京都旅行の計画]]"
    events = stream(titled, auth_headers, conversation["id"], first)
    assert events[-1][0] == "done" and "title" not in [kind for kind, _ in events]
    # The answer ended while the title call was still waiting for the model: the simulator
    # records a call's usage once it answers.
    [request] = title_requests(glm_simulator)
    assert "usage" not in request
    before = conversation_row(conversation["id"])
    assert before.title == automatic_title(first)
    assert title_becomes(conversation["id"], "京都旅行の計画")
    # Not activity: a title does not move the conversation up the list.
    assert conversation_row(conversation["id"]).updated_at == before.updated_at


def test_a_title_call_past_title_timeout_is_given_up(chat_app, auth_headers, glm_simulator,
                                                     caplog):
    caplog.set_level(logging.INFO, logger="chatapi.services.titles")
    chat = chat_app(AUTO_TITLE=True, TITLE_TIMEOUT=0.5).test_client()
    conversation = new_conversation(chat, auth_headers)
    assert send(chat, auth_headers, conversation["id"], "hello [[title_stall:30]]"
                ).status_code == 201
    assert logged(caplog, "UpstreamTimeout")
    assert wait_for(glm_simulator.hangups, DEADLINE)
    assert conversation_row(conversation["id"]).title == automatic_title(
        "hello [[title_stall:30]]")


def test_a_rename_while_the_title_is_made_wins(titled, auth_headers, user, glm_simulator):
    conversation = new_conversation(titled, auth_headers)
    assert send(titled, auth_headers, conversation["id"],
                "first [[title_stall:3]][[title_reply:Model title]]").status_code == 201
    renamed = titled.put(CONVERSATIONS + conversation["id"], json={"title": "Mine"},
                         headers=auth_headers)
    assert renamed.status_code == 200
    # The title call ends and is counted, and the user's title stays.
    assert wait_for(lambda: len(usage_rows(user.id)) == 2, DEADLINE)
    assert conversation_row(conversation["id"]).title == "Mine"


def test_no_title_call_for_a_title_the_user_chose_or_with_auto_title_off(
        titled, chat_app, auth_headers, glm_simulator):
    named = new_conversation(titled, auth_headers, title="Named by me")
    assert send(titled, auth_headers, named["id"], "hello").status_code == 201
    untitled = chat_app(AUTO_TITLE=False).test_client()
    plain = new_conversation(untitled, auth_headers)
    assert send(untitled, auth_headers, plain["id"], "hello there").status_code == 201
    assert len(chat_requests(glm_simulator)) == 2 and title_requests(glm_simulator) == []
    assert conversation_row(named["id"]).title == "Named by me"
    assert conversation_row(plain["id"]).title == "hello there"


def test_a_title_with_nothing_usable_leaves_the_automatic_one(
        titled, auth_headers, user, glm_simulator):
    conversation = new_conversation(titled, auth_headers)
    assert send(titled, auth_headers, conversation["id"],
                'hi [[title_reply:"  ."]]').status_code == 201
    # Counted all the same: the model answered.
    assert wait_for(lambda: len(usage_rows(user.id)) == 2, DEADLINE)
    assert conversation_row(conversation["id"]).title == automatic_title(
        'hi [[title_reply:"  ."]]')


@pytest.mark.parametrize("written,title", [
    ("Rust 所有权", "Rust 所有权"),
    ('"Planning a Kyoto trip."', "Planning a Kyoto trip"),
    ("Title: **Kyoto trip**", "Kyoto trip"),
    ("标题：《京都之旅》。", "京都之旅"),
    ("\n\n  First line\nsecond line", "First line"),
    ("a\u0000b\u200bc\u202ed", "abcd"),
    ("x" * 80, "x" * 30),
    ("", None),
    ("  「」 ", None),
])
def test_what_the_model_wrote_is_cleaned_to_a_title(written, title):
    assert cleaned(written) == title


@pytest.mark.slow
def test_a_title_under_gunicorn_and_gevent_reaches_the_stream_and_the_usage(
        app, database_url, glm_simulator, auth_headers, user):
    glm_simulator.reset()
    env = gunicorn_env(database_url, glm_simulator, AUTO_TITLE="on", TITLE_MODEL="glm-4.5-air",
                       GLM_READ_TIMEOUT="600")
    with gunicorn(env, workers=1) as base:
        conversation_id = requests.post(f"{base}{CONVERSATIONS}", json={}, headers=auth_headers,
                                        timeout=30).json()["data"]["id"]
        seen = []
        with open_sse(base, auth_headers, conversation_id,
                      "[[chunks:4]][[stall_after:2]][[stall:600]]"
                      "[[title_stall:0]][[title_reply:Gevent title]]") as response:
            for kind, data, _ in sse_events(response):
                seen.append((kind, data))
                if [k for k, _ in seen].count("text") == 2 and kind == "text":
                    # The model is silent now: the title, once stored, waits for the end.
                    assert title_becomes(conversation_id, "Gevent title")
                    answer_id = seen[0][1]["assistant_message_id"]
                    assert requests.post(f"{base}/api/messages/{answer_id}/stop",
                                         headers=auth_headers, timeout=60).status_code == 200
    kinds = [kind for kind, _ in seen]
    assert [kind for kind in kinds if kind != "title"] == ["start", "text", "text", "done"]
    assert kinds.count("title") == 1 and kinds.index("title") < kinds.index("done")
    assert seen[kinds.index("title")][1] == {"conversation_id": conversation_id,
                                             "title": "Gevent title"}
    assert sorted(row.model for row in usage_rows(user.id)) == ["glm-4.5-air", "glm-5"]
