"""Pinned and archived conversations (docs/API.md §3): pinned ones first in the list, archived
ones only under ?archived=true; pinning, archiving and switching branch are not activity; a
title the user sends is theirs."""
import pytest

from chatapi.extensions import db
from chatapi.models import Conversation

from .test_chat import send

URL = "/api/conversations/"


def create(client, headers, **fields):
    response = client.post(URL, json=fields, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["data"]


def put(client, headers, conversation_id, **fields):
    response = client.put(URL + conversation_id, json=fields, headers=headers)
    assert response.status_code == 200, response.json
    return response.json["data"]


def listed(client, headers, **query):
    response = client.get(URL, query_string=query, headers=headers)
    assert response.status_code == 200, response.json
    return response.json["data"]


def titles(page):
    return [item["title"] for item in page["items"]]


def test_pinned_come_first_and_archived_are_listed_apart(client, auth_headers):
    made = {name: create(client, auth_headers, title=name)["id"]
            for name in ("a", "b", "c", "d", "e")}  # e is the newest
    put(client, auth_headers, made["b"], pinned=True)
    put(client, auth_headers, made["d"], archived=True)
    put(client, auth_headers, made["a"], pinned=True, archived=True)

    page = listed(client, auth_headers)
    assert titles(page) == ["b", "e", "c"] and page["total"] == 3
    archived = listed(client, auth_headers, archived="true")
    # Archived ones keep their own order: pinned first.
    assert titles(archived) == ["a", "d"] and archived["total"] == 2
    assert [(item["pinned"], item["archived"]) for item in archived["items"]] == [
        (True, True), (False, True)]
    assert titles(listed(client, auth_headers, archived="false")) == ["b", "e", "c"]
    # The filters combine with the title search and pages.
    assert titles(listed(client, auth_headers, q="a", archived="true")) == ["a"]
    assert titles(listed(client, auth_headers, page=2, page_size=2)) == ["c"]

    put(client, auth_headers, made["d"], archived=False)
    put(client, auth_headers, made["b"], pinned=False)
    assert titles(listed(client, auth_headers)) == ["e", "d", "c", "b"]


def test_filing_and_switching_branch_leave_updated_at_alone(chat, auth_headers):
    conversation = create(chat, auth_headers)
    first = send(chat, auth_headers, conversation["id"], "one").json["data"]
    second = send(chat, auth_headers, conversation["id"], "two").json["data"]
    # Another second message: a branch beside the first one.
    send(chat, auth_headers, conversation["id"], "two, again",
         parent_id=first["assistant_message"]["id"])
    before = chat.get(URL + conversation["id"], headers=auth_headers).json["data"]

    for change in ({"pinned": True}, {"archived": True}, {"pinned": False, "archived": False},
                   {"current_message_id": second["assistant_message"]["id"]}):
        after = put(chat, auth_headers, conversation["id"], **change)
        assert after["updated_at"] == before["updated_at"], change
    assert after["current_message_id"] == second["assistant_message"]["id"]
    # A rename is activity.
    assert put(chat, auth_headers, conversation["id"], title="renamed")["updated_at"] > \
        before["updated_at"]


@pytest.mark.parametrize("fields", [{"pinned": "yes"}, {"archived": 1}, {"pinned": None}])
def test_pinned_and_archived_take_booleans_only(client, auth_headers, fields):
    conversation = create(client, auth_headers)
    response = client.put(URL + conversation["id"], json=fields, headers=auth_headers)
    assert response.status_code == 422
    [field] = fields
    assert list(response.json["error"]["details"]) == [field]
    stored = db.session.get(Conversation, conversation["id"])
    assert (stored.pinned, stored.archived) == (False, False)


def test_a_bad_archived_filter_is_422(client, auth_headers):
    response = client.get(URL, query_string={"archived": "maybe"}, headers=auth_headers)
    assert response.status_code == 422
    assert list(response.json["error"]["details"]) == ["archived"]


def test_a_title_the_user_sent_is_never_replaced(chat, auth_headers):
    named = create(chat, auth_headers, title="新会话")
    renamed = create(chat, auth_headers)
    put(chat, auth_headers, renamed["id"], title="My own")
    untouched = create(chat, auth_headers)
    for conversation in (named, renamed, untouched):
        assert send(chat, auth_headers, conversation["id"], "the first words").status_code == 201
    by_id = {item["id"]: item["title"] for item in listed(chat, auth_headers)["items"]}
    assert by_id == {named["id"]: "新会话", renamed["id"]: "My own",
                     untouched["id"]: "the first words"}


def test_another_users_conversation_cannot_be_pinned(client, auth_headers, other_headers):
    conversation = create(client, auth_headers)
    response = client.put(URL + conversation["id"], json={"pinned": True}, headers=other_headers)
    assert response.status_code == 404
    assert db.session.get(Conversation, conversation["id"]).pinned is False
