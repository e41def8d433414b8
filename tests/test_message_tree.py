"""The read side of the message tree (docs/API.md §8.1): listing the active branch, another
branch (`leaf`) or the whole tree, the tree fields of messages and conversations, and the
model being sent only the branch it answers. There are no endpoints that branch yet, so the
tree is stored here as sending and editing will store it."""
from datetime import timedelta

import pytest

from chatapi.extensions import db
from chatapi.models import Conversation, Message
from chatapi.models.message import new_message_id
from chatapi.models.timestamps import utcnow

URL = "/api/messages/"


def store_tree(conversation_id, current):
    """    q1 ─ a1 ┬ old_q ─ old_a
                └ new_q ─ new_a      (each newer than the one before, in this order)
    with `current` (a name) the end of the active branch; {name: id}."""
    shape = [("q1", None, "user"), ("a1", "q1", "assistant"), ("old_q", "a1", "user"),
             ("old_a", "old_q", "assistant"), ("new_q", "a1", "user"),
             ("new_a", "new_q", "assistant")]
    start = utcnow() - timedelta(hours=1)
    ids = {}
    for position, (name, parent, role) in enumerate(shape):
        ids[name] = new_message_id()
        db.session.add(Message(id=ids[name], conversation_id=conversation_id,
                               parent_id=ids.get(parent), role=role, content=f"<{name}>",
                               status="completed", tool_calls=[],
                               created_at=start + timedelta(seconds=position)))
        db.session.flush()
    conversation = db.session.get(Conversation, conversation_id)
    conversation.message_count = len(shape)
    conversation.current_message_id = ids[current]
    db.session.commit()
    return ids


@pytest.fixture
def tree(client, auth_headers):
    conversation_id = client.post("/api/conversations/", json={},
                                  headers=auth_headers).json["data"]["id"]
    return conversation_id, store_tree(conversation_id, "new_a")


def listing(client, headers, conversation_id, **query):
    response = client.get(URL + conversation_id, query_string=query, headers=headers)
    assert response.status_code == 200, response.json
    return response.json["data"]


def names(ids, items):
    by_id = {value: key for key, value in ids.items()}
    return [by_id[item["id"]] for item in items]


def test_the_list_is_the_active_branch_with_parents_and_siblings(client, auth_headers, tree):
    conversation_id, ids = tree
    data = listing(client, auth_headers, conversation_id)
    assert names(ids, data["items"]) == ["q1", "a1", "new_q", "new_a"]
    assert data["total"] == 4 and data["has_more"] is False
    fields = {names(ids, [m])[0]: (m["parent_id"], m["sibling_ids"]) for m in data["items"]}
    assert fields == {"q1": (None, [ids["q1"]]), "a1": (ids["q1"], [ids["a1"]]),
                      "new_q": (ids["a1"], [ids["old_q"], ids["new_q"]]),
                      "new_a": (ids["new_q"], [ids["new_a"]])}
    conversation = client.get("/api/conversations/" + conversation_id,
                              headers=auth_headers).json["data"]
    assert conversation["current_message_id"] == ids["new_a"]
    assert conversation["message_count"] == 6


def test_leaf_lists_the_branch_that_ends_there(client, auth_headers, tree):
    conversation_id, ids = tree
    data = listing(client, auth_headers, conversation_id, leaf=ids["old_a"])
    assert names(ids, data["items"]) == ["q1", "a1", "old_q", "old_a"]
    assert data["total"] == 4
    assert data["items"][2]["sibling_ids"] == [ids["old_q"], ids["new_q"]]
    middle = listing(client, auth_headers, conversation_id, leaf=ids["a1"])
    assert names(ids, middle["items"]) == ["q1", "a1"] and middle["total"] == 2


def test_view_tree_pages_through_every_message(client, auth_headers, tree):
    conversation_id, ids = tree
    everything = listing(client, auth_headers, conversation_id, view="tree")
    assert names(ids, everything["items"]) == ["q1", "a1", "old_q", "old_a", "new_q", "new_a"]
    assert everything["total"] == 6 and everything["has_more"] is False
    newest = listing(client, auth_headers, conversation_id, view="tree", limit=4)
    assert names(ids, newest["items"]) == ["old_q", "old_a", "new_q", "new_a"]
    assert newest["total"] == 6 and newest["has_more"] is True
    back = listing(client, auth_headers, conversation_id, view="tree", limit=4,
                   before=ids["old_q"])
    assert names(ids, back["items"]) == ["q1", "a1"] and back["has_more"] is False


def test_before_and_limit_page_back_along_a_branch(client, auth_headers, tree):
    conversation_id, ids = tree
    newest = listing(client, auth_headers, conversation_id, limit=2)
    assert names(ids, newest["items"]) == ["new_q", "new_a"]
    assert newest["total"] == 4 and newest["has_more"] is True
    back = listing(client, auth_headers, conversation_id, limit=2, before=ids["new_q"])
    assert names(ids, back["items"]) == ["q1", "a1"]
    assert back["total"] == 4 and back["has_more"] is False
    first = listing(client, auth_headers, conversation_id, limit=2, before=ids["q1"])
    assert first["items"] == [] and first["total"] == 4 and first["has_more"] is False
    other_branch = listing(client, auth_headers, conversation_id, leaf=ids["old_a"], limit=1,
                           before=ids["old_a"])
    assert names(ids, other_branch["items"]) == ["old_q"] and other_branch["has_more"] is True
    # A message of the conversation that is not on the listed branch names no place in it.
    response = client.get(URL + conversation_id, query_string={"before": ids["old_q"]},
                          headers=auth_headers)
    assert response.status_code == 422 and "before" in response.json["error"]["details"]


def test_a_leaf_outside_the_conversation_is_422(client, auth_headers, other_headers, tree):
    conversation_id, _ids = tree
    mine = client.post("/api/conversations/", json={}, headers=auth_headers).json["data"]["id"]
    theirs = client.post("/api/conversations/", json={}, headers=other_headers).json["data"]["id"]
    foreign = [store_tree(mine, "q1")["q1"], store_tree(theirs, "q1")["q1"], "msg_nosuchone",
               "not-a-message-id"]
    for leaf in foreign:
        response = client.get(URL + conversation_id, query_string={"leaf": leaf},
                              headers=auth_headers)
        assert response.status_code == 422, leaf
        assert response.json["success"] is False
        assert response.json["error"]["code"] == "validation_error"
        assert "leaf" in response.json["error"]["details"]


def test_view_must_be_branch_or_tree(client, auth_headers, tree):
    conversation_id, _ids = tree
    response = client.get(URL + conversation_id, query_string={"view": "forest"},
                          headers=auth_headers)
    assert response.status_code == 422 and "view" in response.json["error"]["details"]


def test_another_users_tree_is_404_in_every_view(client, auth_headers, other_headers):
    theirs = client.post("/api/conversations/", json={}, headers=other_headers).json["data"]["id"]
    ids = store_tree(theirs, "new_a")
    for query in ({}, {"leaf": ids["old_a"]}, {"view": "tree"}):
        response = client.get(URL + theirs, query_string=query, headers=auth_headers)
        assert response.status_code == 404, query
        assert response.json["error"]["code"] == "not_found"


def test_an_empty_conversation_lists_nothing(client, auth_headers):
    conversation = client.post("/api/conversations/", json={}, headers=auth_headers).json["data"]
    assert conversation["current_message_id"] is None
    data = listing(client, auth_headers, conversation["id"])
    assert data == {"items": [], "total": 0, "has_more": False}


def test_the_model_is_sent_only_the_active_branch(chat, client, auth_headers, tree,
                                                  glm_simulator):
    conversation_id, ids = tree
    response = chat.post(URL, json={"conversation_id": conversation_id, "content": "next"},
                         headers=auth_headers)
    assert response.status_code == 201, response.json
    sent = [r for r in glm_simulator.requests()
            if r["path"].endswith("/chat/completions")][-1]["body"]["messages"]
    assert [m["content"] for m in sent] == ["<q1>", "<a1>", "<new_q>", "<new_a>", "next"]
    assert "<old_q>" not in str(sent) and "<old_a>" not in str(sent)
    question, answer = (response.json["data"]["user_message"],
                        response.json["data"]["assistant_message"])
    assert question["parent_id"] == ids["new_a"] and question["sibling_ids"] == [question["id"]]
    assert answer["parent_id"] == question["id"] and answer["sibling_ids"] == [answer["id"]]
    listed = listing(client, auth_headers, conversation_id)
    assert [m["id"] for m in listed["items"]][-2:] == [question["id"], answer["id"]]
    assert listed["total"] == 6


def test_the_model_is_sent_the_branch_it_answers_when_another_is_older(
        chat, client, auth_headers, glm_simulator):
    """The active branch is the older one here: time order would interleave the other."""
    conversation_id = client.post("/api/conversations/", json={},
                                  headers=auth_headers).json["data"]["id"]
    store_tree(conversation_id, "old_a")
    response = chat.post(URL, json={"conversation_id": conversation_id, "content": "next"},
                         headers=auth_headers)
    assert response.status_code == 201, response.json
    sent = [r for r in glm_simulator.requests()
            if r["path"].endswith("/chat/completions")][-1]["body"]["messages"]
    assert [m["content"] for m in sent] == ["<q1>", "<a1>", "<old_q>", "<old_a>", "next"]
