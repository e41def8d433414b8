"""The message tree (docs/API.md §3 "Switching branch", §4 "Where a new message goes",
"Regenerating", "Deleting") attacked from outside: ids from elsewhere and of every shape in
each field that names a message, answered alike whoever owns them; deletes that land while a
send, a regeneration, a switch or an answer is under way; and what the tree looks like after.
The races hold a real lock on PostgreSQL: another connection deletes (without committing yet)
what a request is about to use, and commits once the request waits for it."""
import os
import random
import threading

import psycopg
import pytest
from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import Conversation, Message

from ..simulator_client import wait_for
from ..test_chat import parse_events
from ..test_message_branches import URL, Chat, count_rows, reply


@pytest.fixture
def talk(chat, auth_headers, glm_simulator):
    return Chat(chat, auth_headers, glm_simulator)


@pytest.fixture
def theirs(chat, other_headers, glm_simulator):
    other = Chat(chat, other_headers, glm_simulator)
    other.send("their question")
    return other


def error_of(response):
    return response.status_code, response.json["error"], response.json["message"]


def test_another_users_ids_answer_exactly_as_ids_that_do_not_exist(talk, theirs):
    """Whichever field names a message, another user's id gets the very answer a made-up one
    gets: nothing tells them apart."""
    talk.send("q1")
    answer = talk.answers["q1"]
    their_answer, nowhere = theirs.answers["their question"], "msg_" + "A" * 22

    def answers(message_id):
        return [
            talk.client.post(URL, headers=talk.headers, json={
                "conversation_id": talk.id, "content": "x", "parent_id": message_id}),
            talk.client.get(URL + talk.id, headers=talk.headers,
                            query_string={"leaf": message_id}),
            talk.client.get(URL + talk.id, headers=talk.headers,
                            query_string={"before": message_id}),
            talk.client.get(URL + talk.id, headers=talk.headers,
                            query_string={"before": message_id, "view": "tree"}),
            talk.client.get(URL + talk.id, headers=talk.headers,
                            query_string={"leaf": answer, "before": message_id}),
            talk.switch(message_id),
            talk.client.post(f"{URL}{message_id}/regenerate", headers=talk.headers, json={}),
            talk.client.post(f"{URL}{message_id}/regenerate/stream", headers=talk.headers),
            talk.client.delete(URL + message_id, headers=talk.headers),
        ]

    foreign, missing = answers(their_answer), answers(nowhere)
    assert [error_of(r) for r in foreign] == [error_of(r) for r in missing]
    assert [r.status_code for r in foreign] == [422] * 6 + [404] * 3
    assert count_rows(talk.id) == 2 and theirs.conversation()["message_count"] == 2


def test_ids_of_any_shape_are_refused_without_a_500(talk):
    talk.send("q1")
    answer = talk.answers["q1"]
    shapes = ["msg_\x00", answer + "\x00", "msg_" + "a" * 60, "msg_é", "\u202emsg_x",
              "msg_a/b", "msg_%2F", "' OR 1=1 --", answer.upper(), " " + answer]
    for shape in shapes:
        for response in (
                talk.client.post(URL, headers=talk.headers, json={
                    "conversation_id": talk.id, "content": "x", "parent_id": shape}),
                talk.client.get(URL + talk.id, headers=talk.headers,
                                query_string={"leaf": shape}),
                talk.client.get(URL + talk.id, headers=talk.headers,
                                query_string={"before": shape}),
                talk.switch(shape)):
            assert response.status_code == 422, (shape, response.json)
    for path in ("msg_a%2Fb", "msg_a%00", answer + "%00", "msg_%C3%A9", "msg_" + "a" * 60,
                 "%2e%2e"):
        response = talk.client.post(f"{URL}{path}/regenerate", headers=talk.headers, json={})
        assert response.status_code == 404, (path, response.json)
    assert count_rows(talk.id) == 2


HELD = "[[stall:600]]"


@pytest.fixture
def patient(chat_app, auth_headers, glm_simulator):
    """`talk` on an app that waits for a silent model as long as the test lasts: an answer
    whose content says HELD is under way until it is stopped."""
    return Chat(chat_app(GLM_READ_TIMEOUT=600.0).test_client(), auth_headers, glm_simulator)


def held(talk, path, body=None):
    """Start an answer that stays under way: (its stream, its start event's data)."""
    response = talk.client.post(path, headers=talk.headers, buffered=False, json=body or {})
    assert response.status_code == 200
    pieces = iter(response.response)
    return (response, pieces), parse_events(next(pieces).decode())[0][1]


def stopped(talk, stream, answer_id):
    """Stop a held answer; its stored message, as its stream's last event has it."""
    response, pieces = stream
    assert talk.client.post(f"{URL}{answer_id}/stop", headers=talk.headers).status_code == 200
    rest = b"".join(pieces).decode()
    response.close()
    return parse_events(rest, first_id=2)[-1][1]["assistant_message"]


def test_an_answer_whose_question_is_deleted_meanwhile_stays_off_the_other_tabs_branch(
        patient):
    """Tab one's question is deleted while its answer is written, after tab two moved the
    active branch on: the answer follows what the question followed (as the question's
    children do), never the end of tab two's branch, whose history the model is sent."""
    talk = patient
    talk.send(f"q0{reply('a0')}")
    stream, start = held(talk, URL + "stream", {"conversation_id": talk.id,
                                                "content": f"from tab one{HELD}"})
    talk.send(f"from tab two{reply('answer two')}")
    deleted = talk.client.delete(URL + start["user_message"]["id"], headers=talk.headers)
    assert deleted.status_code == 200

    answer = stopped(talk, stream, start["assistant_message_id"])
    assert answer["parent_id"] == talk.answers[f"q0{reply('a0')}"]
    # Started before tab two's question was sent: the older of the two.
    assert answer["sibling_ids"] == [answer["id"],
                                     talk.said[f"from tab two{reply('answer two')}"]]
    conversation = talk.conversation()
    assert conversation["current_message_id"] == talk.answers[
        f"from tab two{reply('answer two')}"]
    assert conversation["message_count"] == count_rows(talk.id) == 5
    talk.send("next")
    assert talk.sent_to_model() == [f"q0{reply('a0')}", "a0",
                                    f"from tab two{reply('answer two')}", "answer two", "next"]


def test_an_answer_to_an_edit_deleted_meanwhile_is_not_appended_to_the_edited_branch(
        patient):
    """The edit being answered is deleted: its answer follows what the edit followed, beside
    the old version, never after the old version's answer."""
    talk = patient
    talk.send("q0")
    talk.send("q1")
    stream, start = held(talk, URL + "stream", {"conversation_id": talk.id,
                                                "content": f"q1 edited{HELD}",
                                                "parent_id": talk.answers["q0"]})
    talk.client.delete(URL + start["user_message"]["id"], headers=talk.headers)
    answer = stopped(talk, stream, start["assistant_message_id"])
    assert answer["parent_id"] == talk.answers["q0"]
    assert answer["sibling_ids"] == [talk.said["q1"], answer["id"]]
    assert [m["id"] for m in talk.branch(leaf=talk.answers["q1"])["items"]] == [
        talk.said["q0"], talk.answers["q0"], talk.said["q1"], talk.answers["q1"]]
    assert talk.conversation()["message_count"] == count_rows(talk.id) == 5


def test_an_answer_whose_question_and_its_parent_are_deleted_follows_the_next_one_up(
        patient):
    talk = patient
    talk.send("q0")
    talk.send("q1")
    stream, start = held(talk, URL + "stream", {"conversation_id": talk.id,
                                                "content": f"q2{HELD}"})
    for message_id in (start["user_message"]["id"], talk.answers["q1"]):
        assert talk.client.delete(URL + message_id, headers=talk.headers).status_code == 200
    answer = stopped(talk, stream, start["assistant_message_id"])
    assert answer["parent_id"] == talk.said["q1"]
    assert talk.conversation()["current_message_id"] == answer["id"]
    assert talk.conversation()["message_count"] == count_rows(talk.id) == 4


def test_two_regenerations_at_once_and_a_switch_meanwhile_store_both_and_keep_the_switch(
        patient):
    talk = patient
    talk.send("q0")
    # q1's first answer is stopped at once: each answer to q1 is held until it is stopped.
    stream, start = held(talk, URL + "stream", {"conversation_id": talk.id,
                                                "content": f"q1{HELD}"})
    first = stopped(talk, stream, start["assistant_message_id"])["id"]
    question = start["user_message"]["id"]
    regenerations = [held(talk, f"{URL}{first}/regenerate/stream") for _ in range(2)]
    ids = [data["assistant_message_id"] for _, data in regenerations]
    assert talk.conversation()["current_message_id"] == ids[1]
    # The newest descendant of q0: the newest answer to q1, under way.
    switched = talk.switch(talk.said["q0"]).json["data"]["current_message_id"]
    assert switched == ids[1]
    talk.switch(first)
    answers = [stopped(talk, stream, answer_id)
               for (stream, _), answer_id in zip(reversed(regenerations), reversed(ids))]
    assert all(answer["parent_id"] == question for answer in answers)
    # Siblings in the order the answers started.
    assert answers[0]["sibling_ids"] == [first, *ids]
    conversation = talk.conversation()
    assert conversation["current_message_id"] == first
    assert conversation["message_count"] == count_rows(talk.id) == 6


def stored_tree(conversation_id):
    """({id: (parent_id, role, content)} of the conversation's messages, its row) as stored
    now."""
    db.session.expire_all()
    messages = {row.id: (row.parent_id, row.role, row.content) for row in db.session.execute(
        select(Message.id, Message.parent_id, Message.role, Message.content)
        .where(Message.conversation_id == conversation_id))}
    conversation = db.session.get(Conversation, conversation_id)
    db.session.rollback()
    return messages, conversation


def path_up(messages, message_id):
    """`message_id` and the messages it follows, up to its root; every parent must be a
    message of the same conversation, and the walk must end (no cycle)."""
    path = []
    while message_id is not None:
        assert message_id in messages, "a parent outside the conversation"
        assert message_id not in path, "a cycle"
        path.append(message_id)
        message_id = messages[message_id][0]
    return path


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_sequence_of_sends_edits_regenerations_switches_and_deletes_keeps_the_tree_whole(
        chat_app, auth_headers, glm_simulator, seed):
    """Random operations through the API (answers that fail among them); after each, the tree
    has no cycle and no parent elsewhere, `message_count` counts its rows, the active branch
    ends at one of its messages (none only when it is empty), and each answer was asked with
    exactly its branch, failed answers left out."""
    talk = Chat(chat_app(MESSAGE_RATE_LIMIT=None).test_client(), auth_headers, glm_simulator)
    rng = random.Random(seed)
    for step in range(40):
        messages, conversation = stored_tree(talk.id)
        ids = sorted(messages)
        operation = rng.choice(["send", "send", "fail", "edit", "regenerate", "switch",
                                "delete"] if ids else ["send"])
        content = f"m{step}{reply(f'r{step}')}"
        question = None
        if operation == "send":
            question = talk.send(content)["user_message"]["id"]
        elif operation == "fail":
            response = talk.client.post(URL, headers=talk.headers, json={
                "conversation_id": talk.id, "content": f"m{step}[[http:400]]"})
            assert response.status_code == 502, response.json
            question = response.json["data"]["user_message"]["id"]
        elif operation == "edit":
            answers = [i for i in ids if messages[i][1] == "assistant"]
            parent = rng.choice(answers + [None])
            question = talk.send(content, parent_id=parent)["user_message"]["id"]
        elif operation == "regenerate":
            named = rng.choice(ids)
            parent, role, _ = messages[named]
            asked = named if role == "user" else parent
            if asked is not None and messages[asked][1] != "user":
                asked = None
            response = talk.client.post(f"{URL}{named}/regenerate", headers=talk.headers)
            if asked is None:
                assert response.status_code == 422, response.json
            else:
                failing = "[[http:400]]" in messages[asked][2]
                assert response.status_code == (502 if failing else 201), response.json
                question = response.json["data"]["user_message"]["id"]
        elif operation == "switch":
            target = rng.choice(ids)
            response = talk.switch(target)
            assert response.status_code == 200, response.json
            current = response.json["data"]["current_message_id"]
            assert target in path_up(messages, current)
            assert all(parent != current for parent, _, _ in messages.values())
        else:
            response = talk.client.delete(URL + rng.choice(ids), headers=talk.headers)
            assert response.status_code == 200, response.json

        messages, conversation = stored_tree(talk.id)
        for message_id in messages:
            path_up(messages, message_id)
        assert conversation.message_count == len(messages)
        current = conversation.current_message_id
        assert (current in messages) if messages else current is None
        active = talk.branch(limit=1000)
        assert [m["id"] for m in active["items"]] == path_up(messages, current)[::-1]
        if question is not None:
            asked = talk.branch(leaf=question, limit=1000)["items"]
            assert talk.sent_to_model() == [m["content"] for m in asked
                                            if m["status"] != "error"]


# Races on PostgreSQL: a second connection takes the row lock a change to the tree takes.

def postgres_dsn():
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers differently")
    return url.replace("+psycopg", "")


@pytest.fixture
def rival(make_app):
    """A connection of another client, in a transaction of its own until `commit_when`
    sees the request waiting for it (after `make_app`, so it ends before rows are removed)."""
    with psycopg.connect(postgres_dsn()) as connection:
        yield connection


def commit_when_blocked(rival, request):
    """Run `request` in a thread, commit `rival`'s transaction once the request waits on
    its locks, and return the request's response."""
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(response=request()))
    thread.start()
    with psycopg.connect(postgres_dsn(), autocommit=True) as probe:
        assert wait_for(lambda: probe.execute(
            "SELECT 1 FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (rival.info.backend_pid,)).fetchone()), "the request never waited for the lock"
    rival.commit()
    thread.join(timeout=10)
    return outcome["response"]


def delete_conversation(rival, conversation_id):
    rival.execute("DELETE FROM conversations WHERE id = %s", (conversation_id,))


def test_a_send_into_a_conversation_deleted_meanwhile_is_404(talk, rival):
    talk.send("q1")
    delete_conversation(rival, talk.id)
    response = commit_when_blocked(rival, lambda: talk.client.post(
        URL, headers=talk.headers, json={"conversation_id": talk.id, "content": "x"}))
    assert error_of(response)[:2] == (404, {"code": "not_found", "details": {}})


def test_an_edit_in_a_conversation_deleted_meanwhile_is_404(talk, rival):
    talk.send("q1")
    delete_conversation(rival, talk.id)
    response = commit_when_blocked(rival, lambda: talk.client.post(URL, headers=talk.headers, json={
        "conversation_id": talk.id, "content": "x", "parent_id": talk.answers["q1"]}))
    assert response.status_code == 404, response.json


def test_a_regeneration_in_a_conversation_deleted_meanwhile_is_404(talk, rival):
    talk.send("q1")
    delete_conversation(rival, talk.id)
    response = commit_when_blocked(rival, lambda: talk.client.post(
        f"{URL}{talk.answers['q1']}/regenerate", headers=talk.headers, json={}))
    assert response.status_code == 404, response.json


@pytest.mark.parametrize("body", [{"title": "renamed"}, {"current_message_id": "q1"},
                                  {"title": "renamed", "current_message_id": "q1"}])
def test_an_update_of_a_conversation_deleted_meanwhile_is_404(talk, rival, body):
    talk.send("q1")
    body = {key: talk.said.get(value, value) for key, value in body.items()}
    delete_conversation(rival, talk.id)
    response = commit_when_blocked(rival, lambda: talk.client.put(
        "/api/conversations/" + talk.id, headers=talk.headers, json=body))
    assert response.status_code == 404, response.json


def delete_message(rival, conversation_id, message_id):
    """What DELETE /api/messages/{id} does, in the rival's transaction."""
    rival.execute("UPDATE conversations SET message_count = message_count - 1, "
                  "current_message_id = NULL WHERE id = %s", (conversation_id,))
    rival.execute("UPDATE messages SET parent_id = (SELECT parent_id FROM messages "
                  "WHERE id = %(id)s) WHERE parent_id = %(id)s", {"id": message_id})
    rival.execute("DELETE FROM messages WHERE id = %s", (message_id,))


def test_an_edit_whose_parent_is_deleted_meanwhile_is_422_and_stores_nothing(talk, rival):
    talk.send("q1")
    talk.send("q2")
    delete_message(rival, talk.id, talk.answers["q1"])
    response = commit_when_blocked(rival, lambda: talk.client.post(URL, headers=talk.headers, json={
        "conversation_id": talk.id, "content": "x", "parent_id": talk.answers["q1"]}))
    assert response.status_code == 422 and "parent_id" in response.json["error"]["details"]
    assert count_rows(talk.id) == talk.conversation()["message_count"] == 3


def test_a_switch_to_a_message_deleted_meanwhile_is_422(talk, rival):
    talk.send("q1")
    talk.send("q2")
    delete_message(rival, talk.id, talk.said["q2"])
    response = commit_when_blocked(rival, lambda: talk.switch(talk.said["q2"]))
    assert response.status_code == 422, response.json
    assert "current_message_id" in response.json["error"]["details"]


def test_regenerating_an_answer_whose_question_is_deleted_meanwhile_is_422(talk, rival):
    """As when the question was deleted before: the answer named is there, its question
    is not (docs/API.md §4, "Regenerating")."""
    talk.send("q1")
    talk.send("q2")
    delete_message(rival, talk.id, talk.said["q2"])
    response = commit_when_blocked(rival, lambda: talk.client.post(
        f"{URL}{talk.answers['q2']}/regenerate", headers=talk.headers, json={}))
    assert response.status_code == 422, response.json
    assert "message_id" in response.json["error"]["details"]
    assert count_rows(talk.id) == talk.conversation()["message_count"] == 3


def test_a_regeneration_sends_the_branch_as_a_delete_meanwhile_left_it(talk, rival):
    """The answer before the question is deleted while the regeneration waits: the model is
    sent the branch as it is now (the question follows the first question), not nothing."""
    talk.send(f"q1{reply('a1')}")
    talk.send(f"q2{reply('a2')}")
    delete_message(rival, talk.id, talk.answers[f"q1{reply('a1')}"])
    answer = talk.answers[f"q2{reply('a2')}"]
    response = commit_when_blocked(rival, lambda: talk.client.post(
        f"{URL}{answer}/regenerate", headers=talk.headers, json={}))
    assert response.status_code == 201, response.json
    assert talk.sent_to_model() == [f"q1{reply('a1')}", f"q2{reply('a2')}"]


def test_deleting_a_message_whose_parent_is_deleted_meanwhile_hands_its_children_up(talk, rival):
    """The delete reads the message's parent again under the lock: its children follow the
    parent it has now, not the one deleted meanwhile."""
    talk.send("q1")
    talk.send("q2")
    talk.send("q3")
    delete_message(rival, talk.id, talk.answers["q1"])
    response = commit_when_blocked(rival, lambda: talk.client.delete(
        URL + talk.said["q2"], headers=talk.headers))
    assert response.status_code == 200, response.json
    branch = talk.branch(leaf=talk.answers["q3"])["items"]
    assert [m["id"] for m in branch] == [talk.said["q1"], talk.answers["q2"], talk.said["q3"],
                                         talk.answers["q3"]]
    assert talk.conversation()["message_count"] == count_rows(talk.id) == 4


def test_a_rename_that_lands_while_the_first_message_waits_is_kept(talk, rival):
    """The first message titles a conversation still titled 新会话 as stored when it is
    sent, not as the request loaded it before waiting."""
    rival.execute("UPDATE conversations SET title = 'renamed' WHERE id = %s", (talk.id,))
    response = commit_when_blocked(rival, lambda: talk.client.post(
        URL, headers=talk.headers, json={"conversation_id": talk.id, "content": "hello"}))
    assert response.status_code == 201, response.json
    assert talk.conversation()["title"] == "renamed"
