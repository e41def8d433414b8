"""The write side of the message tree (docs/API.md §4, "Branches"): editing (a send with
`parent_id`), regenerating, switching branch and deleting, through the API a client uses, with
what the GLM simulator received checked after each answer: the branch being answered, never a
sibling's text."""
import pytest
from sqlalchemy import func, select

from chatapi.extensions import db
from chatapi.models import Message

from .test_chat import chat_requests, parse_events

URL = "/api/messages/"


class Chat:
    """One user's conversation, driven as a client would; `said` maps each content to the id
    of the user message that said it, `answers` each content to its answer's id."""

    def __init__(self, client, headers, glm_simulator):
        self.client, self.headers, self.simulator = client, headers, glm_simulator
        self.id = client.post("/api/conversations/", json={},
                              headers=headers).json["data"]["id"]
        self.said, self.answers = {}, {}

    def send(self, content, **extra):
        response = self.client.post(URL, headers=self.headers, json={
            "conversation_id": self.id, "content": content, **extra})
        assert response.status_code == 201, response.json
        return self.remember(response.json["data"])

    def regenerate(self, message_id, stream=False, **body):
        path = f"{URL}{message_id}/regenerate" + ("/stream" if stream else "")
        response = self.client.post(path, headers=self.headers, json=body)
        if not stream:
            assert response.status_code == 201, response.json
            return response.json["data"]
        assert response.status_code == 200
        return parse_events(response.get_data(as_text=True))

    def remember(self, data):
        content = data["user_message"]["content"]
        self.said[content] = data["user_message"]["id"]
        self.answers[content] = data["assistant_message"]["id"]
        return data

    def sent_to_model(self):
        """The contents of the last request's messages."""
        return [m["content"] for m in chat_requests(self.simulator)[-1]["body"]["messages"]]

    def branch(self, **query):
        response = self.client.get(URL + self.id, headers=self.headers, query_string=query)
        assert response.status_code == 200, response.json
        return response.json["data"]

    def conversation(self):
        return self.client.get("/api/conversations/" + self.id,
                               headers=self.headers).json["data"]

    def switch(self, message_id):
        return self.client.put("/api/conversations/" + self.id, headers=self.headers,
                               json={"current_message_id": message_id})


@pytest.fixture
def talk(chat, auth_headers, glm_simulator):
    return Chat(chat, auth_headers, glm_simulator)


def reply(text):
    return f"[[reply:{text}]]"


def contents(listing):
    return [m["content"] for m in listing["items"]]


def count_rows(conversation_id):
    db.session.expire_all()
    counted = db.session.scalar(select(func.count()).select_from(Message)
                                .where(Message.conversation_id == conversation_id))
    db.session.rollback()
    return counted


def test_editing_a_message_keeps_the_old_one_and_its_answer_as_a_sibling(talk):
    talk.send(f"q1{reply('a1')}")
    talk.send(f"q2{reply('a2')}")
    first_answer = talk.answers[f"q1{reply('a1')}"]
    edited = talk.send(f"q2 edited{reply('a2 edited')}", parent_id=first_answer)

    question = edited["user_message"]
    assert question["parent_id"] == first_answer
    assert question["sibling_ids"] == [talk.said[f"q2{reply('a2')}"], question["id"]]
    assert talk.sent_to_model() == [f"q1{reply('a1')}", "a1", f"q2 edited{reply('a2 edited')}"]
    assert contents(talk.branch()) == [f"q1{reply('a1')}", "a1",
                                       f"q2 edited{reply('a2 edited')}", "a2 edited"]
    conversation = talk.conversation()
    assert conversation["current_message_id"] == edited["assistant_message"]["id"]
    assert conversation["message_count"] == 6
    # The old branch is still there, whole.
    old = talk.branch(leaf=talk.answers[f"q2{reply('a2')}"])
    assert contents(old) == [f"q1{reply('a1')}", "a1", f"q2{reply('a2')}", "a2"]


def test_editing_the_first_message_starts_a_second_root(talk):
    talk.send(f"first{reply('one')}")
    edited = talk.send(f"first again{reply('two')}", parent_id=None)
    assert edited["user_message"]["parent_id"] is None
    assert edited["user_message"]["sibling_ids"] == [talk.said[f"first{reply('one')}"],
                                                     edited["user_message"]["id"]]
    assert talk.sent_to_model() == [f"first again{reply('two')}"]
    assert contents(talk.branch()) == [f"first again{reply('two')}", "two"]


def test_regenerating_an_answer_stores_a_sibling_answer_to_the_same_question(talk):
    talk.send("hello")
    question_id, first = talk.said["hello"], talk.answers["hello"]
    again = talk.regenerate(first)
    assert again["user_message"]["id"] == question_id
    answer = again["assistant_message"]
    assert answer["parent_id"] == question_id and answer["sibling_ids"] == [first, answer["id"]]
    assert talk.sent_to_model() == ["hello"]
    # The user message is answered again, not stored again.
    assert [m["id"] for m in talk.branch()["items"]] == [question_id, answer["id"]]
    assert talk.conversation()["message_count"] == 3
    # By the user message's id too, with another model and no tools.
    third = talk.regenerate(question_id, model="glm-4.5-air", tools_enabled=False)
    assert third["assistant_message"]["model"] == "glm-4.5-air"
    request = chat_requests(talk.simulator)[-1]["body"]
    assert request["model"] == "glm-4.5-air" and "tools" not in request
    assert third["assistant_message"]["sibling_ids"] == [first, answer["id"],
                                                         third["assistant_message"]["id"]]
    assert talk.conversation()["current_message_id"] == third["assistant_message"]["id"]


def test_regenerating_without_a_body_takes_the_defaults(talk):
    talk.send("hi")
    response = talk.client.post(f"{URL}{talk.answers['hi']}/regenerate", headers=talk.headers)
    assert response.status_code == 201, response.json
    assert "tools" in chat_requests(talk.simulator)[-1]["body"]
    assert response.json["data"]["assistant_message"]["model"] == talk.conversation()["model"]


def test_a_streamed_regeneration_sends_the_same_events_as_a_send(talk):
    talk.send("tell me")
    events = talk.regenerate(talk.answers["tell me"], stream=True,
                             **{"tools_enabled": False})
    assert [kind for kind, _ in events][0] == "start" and events[-1][0] == "done"
    start, done = events[0][1], events[-1][1]
    assert start["user_message"]["id"] == talk.said["tell me"]
    answer = done["assistant_message"]
    assert answer["id"] == start["assistant_message_id"]
    assert answer["parent_id"] == talk.said["tell me"]
    assert answer["sibling_ids"] == [talk.answers["tell me"], answer["id"]]
    assert talk.branch()["items"][-1]["id"] == answer["id"]


def test_edits_and_regenerations_at_every_depth_send_only_their_branch(talk):
    """Three turns, then an edit of each turn and a regeneration of each answer: every request
    the model gets is the branch leading to the question, whatever is stored beside it."""
    for turn in (1, 2, 3):
        talk.send(f"q{turn}{reply(f'a{turn}')}")
    trunk = {turn: (f"q{turn}{reply(f'a{turn}')}", f"a{turn}") for turn in (1, 2, 3)}

    def before(turn):
        return [text for earlier in range(1, turn) for text in trunk[earlier]]

    for turn in (1, 2, 3):
        parent = talk.answers[trunk[turn - 1][0]] if turn > 1 else None
        edit = f"edit {turn}{reply(f'edited answer {turn}')}"
        talk.send(edit, parent_id=parent)
        assert talk.sent_to_model() == before(turn) + [edit]
        talk.regenerate(talk.answers[trunk[turn][0]])
        assert talk.sent_to_model() == before(turn) + [trunk[turn][0]]
        # A follow-up on the edited branch sees that branch only.
        talk.send(f"after edit {turn}", parent_id=talk.answers[edit])
        assert talk.sent_to_model() == before(turn) + [edit, f"edited answer {turn}",
                                                       f"after edit {turn}"]
    for request in chat_requests(talk.simulator):
        sent = [m["content"] for m in request["body"]["messages"]]
        # Never two user messages of one parent in one request.
        assert len(sent) == len(set(sent)), sent


def test_switching_branch_lands_on_the_newest_descendant_and_is_not_activity(talk):
    talk.send("q1")
    talk.send("q2")
    talk.send("q2 edited", parent_id=talk.answers["q1"])
    talk.send("q3 on the edit")
    before = talk.conversation()

    switched = talk.switch(talk.said["q2"])
    assert switched.status_code == 200, switched.json
    assert switched.json["data"]["current_message_id"] == talk.answers["q2"]
    assert switched.json["data"]["updated_at"] == before["updated_at"]
    assert [m["id"] for m in talk.branch()["items"]] == [
        talk.said["q1"], talk.answers["q1"], talk.said["q2"], talk.answers["q2"]]
    # The root's newest descendant: the newest child at each step.
    back = talk.switch(talk.said["q1"]).json["data"]
    assert back["current_message_id"] == talk.answers["q3 on the edit"]
    assert talk.conversation()["updated_at"] == before["updated_at"]
    # A send with no parent follows the branch switched to.
    talk.switch(talk.answers["q2"])
    follow = talk.send("q3 on the original")
    assert follow["user_message"]["parent_id"] == talk.answers["q2"]
    assert talk.conversation()["updated_at"] != before["updated_at"]


def test_a_rename_with_a_switch_is_activity(talk):
    talk.send("q1")
    talk.send("q1 again", parent_id=None)
    before = talk.conversation()
    response = talk.client.put("/api/conversations/" + talk.id, headers=talk.headers,
                               json={"title": "renamed", "current_message_id": talk.said["q1"]})
    assert response.status_code == 200, response.json
    data = response.json["data"]
    assert data["title"] == "renamed" and data["current_message_id"] == talk.answers["q1"]
    assert data["updated_at"] != before["updated_at"]


def test_deleting_the_current_answer_hands_over_to_its_parents_newest_descendant(talk):
    talk.send("q1")
    first = talk.answers["q1"]
    second = talk.regenerate(first)["assistant_message"]["id"]
    assert talk.client.delete(URL + second, headers=talk.headers).status_code == 200
    assert talk.conversation()["current_message_id"] == first
    talk.send("q1 edited", parent_id=None)
    assert talk.client.delete(URL + talk.said["q1 edited"],
                              headers=talk.headers).status_code == 200
    # Its answer follows its parent (none: it becomes a first message) and is the newest.
    assert talk.conversation()["current_message_id"] == talk.answers["q1 edited"]
    assert talk.branch()["items"][0]["parent_id"] is None


def assert_refused_without_a_trace(talk, response, status, field=None):
    assert response.status_code == status, response.json
    assert response.json["success"] is False
    if field is not None:
        assert response.json["error"]["code"] == "validation_error"
        assert field in response.json["error"]["details"], response.json
    assert count_rows(talk.id) == talk.stored_rows
    assert talk.conversation() == talk.stored_conversation


@pytest.fixture
def settled(talk):
    """`talk` with one exchange and a second conversation of the same user, what is stored
    remembered to check that refusals leave it."""
    talk.send("q1")
    talk.elsewhere = Chat(talk.client, talk.headers, talk.simulator)
    talk.elsewhere.send("there")
    talk.stored_rows = count_rows(talk.id)
    talk.stored_conversation = talk.conversation()
    return talk


def test_a_parent_that_is_not_an_answer_of_this_conversation_is_422(
        settled, chat, other_headers, glm_simulator):
    theirs = Chat(chat, other_headers, glm_simulator)
    theirs.send("their question")
    bad = [settled.said["q1"], settled.elsewhere.answers["there"],
           theirs.answers["their question"], "msg_doesnotexist", "not an id", ""]
    for parent in bad:
        for path in (URL, URL + "stream"):
            response = settled.client.post(path, headers=settled.headers, json={
                "conversation_id": settled.id, "content": "x", "parent_id": parent})
            assert_refused_without_a_trace(settled, response, 422, "parent_id")
    assert theirs.conversation()["message_count"] == 2


def test_a_parent_id_of_the_wrong_type_is_422(settled):
    for parent in (1, True, ["msg_x"], {"id": "x"}):
        response = settled.client.post(URL, headers=settled.headers, json={
            "conversation_id": settled.id, "content": "x", "parent_id": parent})
        assert_refused_without_a_trace(settled, response, 422, "parent_id")


def test_switching_to_a_message_from_elsewhere_is_422(settled, chat, other_headers,
                                                      glm_simulator):
    theirs = Chat(chat, other_headers, glm_simulator)
    theirs.send("their question")
    for message_id in (settled.elsewhere.said["there"], theirs.answers["their question"],
                       "msg_doesnotexist", "conv_x", None, 5):
        response = settled.switch(message_id)
        assert_refused_without_a_trace(settled, response, 422, "current_message_id")


def test_regenerating_what_is_not_yours_is_404(settled, chat, other_headers, glm_simulator):
    theirs = Chat(chat, other_headers, glm_simulator)
    theirs.send("their question")
    for message_id in (theirs.answers["their question"], theirs.said["their question"],
                       "msg_doesnotexist", "conv_x"):
        for suffix in ("", "/stream"):
            response = settled.client.post(f"{URL}{message_id}/regenerate{suffix}",
                                           headers=settled.headers, json={})
            assert_refused_without_a_trace(settled, response, 404)
    assert theirs.conversation()["message_count"] == 2


def test_regenerate_validates_its_body(settled):
    answer = settled.answers["q1"]
    for body, status in (({"model": "gpt-4"}, 422), ({"model": 5}, 422),
                         ({"tools_enabled": "yes"}, 422), ([1], 400), ("x", 400)):
        response = settled.client.post(f"{URL}{answer}/regenerate", headers=settled.headers,
                                       json=body)
        assert_refused_without_a_trace(settled, response, status)


def test_an_answer_without_a_question_before_it_cannot_be_regenerated(settled):
    settled.client.delete(URL + settled.said["q1"], headers=settled.headers)
    settled.stored_rows = count_rows(settled.id)
    settled.stored_conversation = settled.conversation()
    response = settled.client.post(f"{URL}{settled.answers['q1']}/regenerate",
                                   headers=settled.headers, json={})
    assert_refused_without_a_trace(settled, response, 422, "message_id")


def test_a_message_sent_while_an_answer_is_written_becomes_its_questions_sibling(talk):
    """Two tabs: the first one's answer is under way (`in_progress`) when the second tab sends;
    the second message follows the branch's last finished answer, not the question being
    answered, and both answers are stored as their own questions' children."""
    talk.send("q1")
    first_tab = talk.client.post(URL + "stream", headers=talk.headers, buffered=False, json={
        "conversation_id": talk.id, "content": "from tab one[[stall:600]]"})
    events = iter(first_tab.response)
    start = parse_events(next(events).decode())[0][1]
    second = talk.send("from tab two")
    stopped = talk.client.post(f"{URL}{start['assistant_message_id']}/stop",
                               headers=talk.headers)
    assert stopped.status_code == 200, stopped.json
    first_answer = parse_events(b"".join(events).decode(), first_id=2)[-1][1]["assistant_message"]
    first_tab.close()

    assert first_answer["parent_id"] == start["user_message"]["id"]
    assert first_answer["status"] == "incomplete" and first_answer["finish_reason"] == "stopped"
    assert second["user_message"]["parent_id"] == talk.answers["q1"]
    assert second["user_message"]["sibling_ids"] == [start["user_message"]["id"],
                                                     second["user_message"]["id"]]
    # The second tab's message ends the active branch: it was sent last.
    assert talk.conversation()["current_message_id"] == second["assistant_message"]["id"]
    assert contents(talk.branch(leaf=first_answer["id"]))[-2] == "from tab one[[stall:600]]"
    assert talk.conversation()["message_count"] == 6
