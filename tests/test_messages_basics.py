"""Messages without a model: validation, ownership, listing, deleting, and the no-key path."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from chatapi.extensions import db
from chatapi.models import Conversation, Message
from chatapi.models.message import new_message_id
from chatapi.models.timestamps import utcnow

URL = "/api/messages/"


@pytest.fixture
def conversation(client, auth_headers):
    return client.post("/api/conversations/", json={}, headers=auth_headers).json["data"]


@pytest.fixture
def add_messages(app):
    def add(conversation_id, count, start=None):
        start = start or utcnow()
        conversation = db.session.get(Conversation, conversation_id)
        rows, parent_id = [], conversation.current_message_id
        for i in range(count):
            # One branch, each message following the one before, as sending makes them.
            rows.append(Message(id=new_message_id(), conversation_id=conversation_id,
                                parent_id=parent_id, role="user" if i % 2 == 0 else "assistant",
                                content=f"m{i}", status="completed", tool_calls=[],
                                created_at=start + timedelta(seconds=i)))
            parent_id = rows[-1].id
        db.session.add_all(rows)
        db.session.flush()
        conversation.message_count += count
        conversation.current_message_id = parent_id
        db.session.commit()
        return [row.id for row in rows]
    return add


@pytest.mark.parametrize("body,field", [
    ({"content": "hi"}, "conversation_id"),
    ({"conversation_id": "conv_x"}, "content"),
    ({"conversation_id": "conv_x", "content": "   \n\t"}, "content"),
    ({"conversation_id": "conv_x", "content": "x" * 32001}, "content"),
    ({"conversation_id": "conv_x", "content": "hi", "tools_enabled": "sometimes"},
     "tools_enabled"),
])
@pytest.mark.parametrize("path", ["", "stream"])
def test_invalid_send_is_422_naming_the_field(client, auth_headers, body, field, path):
    response = client.post(URL + path, json=body, headers=auth_headers)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["details"]


@pytest.mark.parametrize("path", ["", "stream"])
def test_sending_to_another_users_conversation_is_404_and_stores_nothing(
        client, auth_headers, other_headers, path):
    theirs = client.post("/api/conversations/", json={}, headers=other_headers).json["data"]
    response = client.post(URL + path, json={"conversation_id": theirs["id"], "content": "hi"},
                           headers=auth_headers)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0


def test_without_an_api_key_the_answer_is_503_and_both_messages_are_stored(
        client, auth_headers, conversation):
    response = client.post(URL, json={"conversation_id": conversation["id"], "content": "hello"},
                           headers=auth_headers)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "upstream_unavailable"
    data = response.json["data"]
    assert data["user_message"]["content"] == "hello"
    assert data["user_message"]["status"] == "completed"
    assert data["assistant_message"]["status"] == "error"
    assert data["assistant_message"]["error"]
    stored = client.get(URL + conversation["id"], headers=auth_headers).json["data"]
    assert [m["id"] for m in stored["items"]] == [data["user_message"]["id"],
                                                  data["assistant_message"]["id"]]
    listed = client.get("/api/conversations/" + conversation["id"], headers=auth_headers).json
    assert listed["data"]["message_count"] == 2
    assert listed["data"]["title"] == "hello"


def test_without_an_api_key_the_stream_ends_with_an_error_event(
        client, auth_headers, conversation):
    response = client.post(URL + "stream", json={"conversation_id": conversation["id"],
                                                 "content": "hello"}, headers=auth_headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    body = response.get_data(as_text=True)
    kinds = [line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("event: ")]
    assert kinds == ["start", "error"]
    assert '"code":"upstream_unavailable"' in body
    items = client.get(URL + conversation["id"], headers=auth_headers).json["data"]["items"]
    assert [m["status"] for m in items] == ["completed", "error"]


def test_list_returns_the_newest_limit_in_chronological_order(
        client, auth_headers, conversation, add_messages):
    ids = add_messages(conversation["id"], 7)
    data = client.get(URL + conversation["id"], query_string={"limit": 3},
                      headers=auth_headers).json["data"]
    assert [m["id"] for m in data["items"]] == ids[4:]
    assert data["total"] == 7 and data["has_more"] is True
    everything = client.get(URL + conversation["id"], headers=auth_headers).json["data"]
    assert [m["id"] for m in everything["items"]] == ids and everything["has_more"] is False


def test_before_pages_further_back(client, auth_headers, conversation, add_messages):
    ids = add_messages(conversation["id"], 7)
    page = client.get(URL + conversation["id"], query_string={"limit": 3, "before": ids[4]},
                      headers=auth_headers).json["data"]
    assert [m["id"] for m in page["items"]] == ids[1:4] and page["has_more"] is True
    last = client.get(URL + conversation["id"], query_string={"limit": 3, "before": ids[1]},
                      headers=auth_headers).json["data"]
    assert [m["id"] for m in last["items"]] == ids[:1] and last["has_more"] is False


def test_before_from_another_conversation_is_422(client, auth_headers, conversation,
                                                 add_messages):
    other = client.post("/api/conversations/", json={}, headers=auth_headers).json["data"]
    foreign = add_messages(other["id"], 1)[0]
    response = client.get(URL + conversation["id"], query_string={"before": foreign},
                          headers=auth_headers)
    assert response.status_code == 422 and "before" in response.json["error"]["details"]


@pytest.mark.parametrize("limit", [0, 1001, "x"])
def test_limit_out_of_range_is_422(client, auth_headers, conversation, limit):
    response = client.get(URL + conversation["id"], query_string={"limit": limit},
                          headers=auth_headers)
    assert response.status_code == 422 and "limit" in response.json["error"]["details"]


def test_another_users_messages_are_404(client, auth_headers, other_headers, add_messages):
    theirs = client.post("/api/conversations/", json={}, headers=other_headers).json["data"]
    message_id = add_messages(theirs["id"], 1)[0]
    assert client.get(URL + theirs["id"], headers=auth_headers).status_code == 404
    assert client.delete(URL + message_id, headers=auth_headers).status_code == 404
    assert db.session.get(Message, message_id) is not None


def test_delete_a_message(client, auth_headers, conversation, add_messages):
    ids = add_messages(conversation["id"], 2)
    response = client.delete(URL + ids[0], headers=auth_headers)
    assert response.status_code == 200
    assert response.json == {"success": True, "message": "消息删除成功"}
    left = client.get(URL + conversation["id"], headers=auth_headers).json["data"]
    assert [m["id"] for m in left["items"]] == ids[1:] and left["total"] == 1
    conversation_now = client.get("/api/conversations/" + conversation["id"],
                                  headers=auth_headers).json["data"]
    assert conversation_now["message_count"] == 1
    assert client.delete(URL + ids[0], headers=auth_headers).status_code == 404


def test_deleting_a_conversation_deletes_its_messages(
        client, auth_headers, conversation, add_messages):
    add_messages(conversation["id"], 4)
    other = client.post("/api/conversations/", json={}, headers=auth_headers).json["data"]
    kept = add_messages(other["id"], 1)
    client.delete("/api/conversations/" + conversation["id"], headers=auth_headers)
    remaining = db.session.scalars(select(Message.id)).all()
    assert remaining == kept


def stored_tree(conversation_id):
    """{message id: parent id} and the current message, as stored (the API shows neither
    yet)."""
    db.session.expire_all()
    parents = dict(db.session.execute(select(Message.id, Message.parent_id).where(
        Message.conversation_id == conversation_id)).all())
    current = db.session.scalar(select(Conversation.current_message_id).where(
        Conversation.id == conversation_id))
    db.session.rollback()
    return parents, current


def test_sent_messages_form_one_branch_that_deletes_keep_whole(
        client, auth_headers, conversation):
    """Each question follows the branch's end and its answer follows it; a deleted message's
    children follow its parent, and a deleted current message hands over to its parent's newest
    descendant."""
    ids = []
    for text in ("one", "two", "three"):
        data = client.post(URL, json={"conversation_id": conversation["id"], "content": text},
                           headers=auth_headers).json["data"]
        ids += [data["user_message"]["id"], data["assistant_message"]["id"]]
    u1, a1, u2, a2, u3, a3 = ids
    assert stored_tree(conversation["id"]) == (
        {u1: None, a1: u1, u2: a1, a2: u2, u3: a2, a3: u3}, a3)

    for deleted in (a2, a3, u1):
        assert client.delete(URL + deleted, headers=auth_headers).status_code == 200
    assert stored_tree(conversation["id"]) == ({a1: None, u2: a1, u3: u2}, u3)
    listed = client.get(URL + conversation["id"], headers=auth_headers).json["data"]
    assert [m["id"] for m in listed["items"]] == [a1, u2, u3]

    data = client.post(URL, json={"conversation_id": conversation["id"], "content": "four"},
                       headers=auth_headers).json["data"]
    u4, a4 = data["user_message"]["id"], data["assistant_message"]["id"]
    # The branch ended in a question (u3): a new one follows the branch's last answer.
    assert stored_tree(conversation["id"]) == ({a1: None, u2: a1, u3: u2, u4: a1, a4: u4}, a4)
    for deleted in (a4, u4, u3, u2, a1):
        assert client.delete(URL + deleted, headers=auth_headers).status_code == 200
    assert stored_tree(conversation["id"]) == ({}, None)

    data = client.post(URL, json={"conversation_id": conversation["id"], "content": "again"},
                       headers=auth_headers).json["data"]
    u5, a5 = data["user_message"]["id"], data["assistant_message"]["id"]
    assert stored_tree(conversation["id"]) == ({u5: None, a5: u5}, a5)
    assert client.delete("/api/conversations/" + conversation["id"],
                         headers=auth_headers).status_code == 200
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0
