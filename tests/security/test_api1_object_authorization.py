"""OWASP API1:2023 Broken Object Level Authorization.

Every route with a path parameter is taken from the app's URL map, so a new route cannot be
forgotten: `OWNED` says how to fill each parameter that names a user's object, `PUBLIC` lists
the parameters that name something every user shares, and the first test fails when a
parameterised route has a parameter in neither. For each owned route, a second user gets the
same 404 envelope as for an id that does not exist, the owner's rows stay as they were, and
then the owner passes the very same URLs (so the 404s cannot come from a badly filled URL).
Ids that travel in a body or a query string are covered too."""
import re

import pytest
from sqlalchemy import func, select

from chatapi.extensions import db
from chatapi.models import Message

from .conftest import assert_error, call, chat_requests, routes, stored_rows

# Parameter -> the object of `exchange` it names. The order is the order the owner's own
# DELETEs run in: a message before the conversation that holds it.
OWNED = {
    "message_id": lambda exchange: exchange.assistant_message["id"],
    "conversation_id": lambda exchange: exchange.conversation["id"],
}
# Tools are one catalogue, the same for every user: nothing in it belongs to anyone, so there
# is no object to take from another user. Unknown names must still be 404.
PUBLIC = {"name": "calculator"}
PUBLIC_BODIES = {"POST": {"expression": "6 * 7"}}
# What each method sends: a valid body, so only ownership can refuse it.
BODIES = {"PUT": {"title": "taken over", "system_prompt": "obey bob"}}
OWNER_ORDER = {"GET": 0, "PUT": 1, "POST": 2, "DELETE": 3}


def owned_routes(app):
    return [route for route in routes(app) if route.arguments & set(OWNED)]


def public_routes(app):
    return [route for route in routes(app) if route.arguments & set(PUBLIC)]


def test_every_path_parameter_of_the_url_map_is_owned_or_public(app):
    parameterised = [route for route in routes(app) if route.arguments]
    unfillable = [f"{route} ({', '.join(sorted(route.arguments - set(OWNED) - set(PUBLIC)))})"
                  for route in parameterised
                  if route.arguments - set(OWNED) - set(PUBLIC)]
    assert unfillable == [], "add these parameters to OWNED or PUBLIC"
    assert not set(OWNED) & set(PUBLIC)
    used = set().union(*(route.arguments for route in parameterised))
    assert used == set(OWNED) | set(PUBLIC), "stale entries in OWNED or PUBLIC"


def test_another_user_gets_404_on_every_owned_route_and_the_objects_stay(
        app, chat_client, exchange, auth_headers, other_headers):
    before = stored_rows(exchange.conversation["id"])
    values = {name: fill(exchange) for name, fill in OWNED.items()}
    missing = {name: value[:5] + "doesNotExist0000000000" for name, value in values.items()}
    checked = owned_routes(app)
    assert {route.endpoint for route in checked} >= {
        "conversations.get_conversation", "conversations.update_conversation",
        "conversations.delete_conversation", "messages.list_messages",
        "messages.delete_message", "transfer.export_conversation"}
    for route in checked:
        body = BODIES.get(route.method)
        foreign = call(chat_client, route, other_headers, body, **values)
        assert_error(foreign, 404, "not_found")
        absent = call(chat_client, route, auth_headers, body, **missing)
        assert foreign.get_json() == assert_error(absent, 404, "not_found"), route

    assert stored_rows(exchange.conversation["id"]) == before
    seen = chat_client.get(f"/api/messages/{exchange.conversation['id']}", headers=auth_headers)
    assert [item["content"] for item in seen.get_json()["data"]["items"]] == [
        "[[reply:hello alice]]", "hello alice"]

    for route in sorted(checked, key=lambda route: (OWNER_ORDER[route.method], sorted(
            list(OWNED).index(name) for name in route.arguments if name in OWNED))):
        mine = call(chat_client, route, auth_headers, BODIES.get(route.method), **values)
        assert mine.status_code in (200, 201), (str(route), mine.get_json())
    assert stored_rows(exchange.conversation["id"]) is None


def test_public_catalogue_routes_answer_every_user_alike_and_404_unknown_names(
        app, client, auth_headers, other_headers):
    checked = public_routes(app)
    assert {route.endpoint for route in checked} == {"tools.get_tool", "tools.execute_tool"}
    for route in checked:
        body = PUBLIC_BODIES.get(route.method)
        answers = [call(client, route, headers, body, **PUBLIC).get_json()
                   for headers in (auth_headers, other_headers)]
        assert answers[0]["success"] is True, (str(route), answers[0])
        for answer in answers:
            answer.get("data", {}).pop("duration_ms", None)
        assert answers[0] == answers[1], route
        unknown = call(client, route, auth_headers, body, name="no_such_tool")
        assert_error(unknown, 404, "not_found")


@pytest.mark.parametrize("path", ["/api/messages/", "/api/messages/stream"])
def test_sending_into_another_users_conversation_is_404_and_stores_nothing(
        chat_client, exchange, other_headers, glm_simulator, path):
    before = stored_rows(exchange.conversation["id"])
    asked = len(chat_requests(glm_simulator))
    response = chat_client.post(path, headers=other_headers, json={
        "conversation_id": exchange.conversation["id"], "content": "what did alice say?"})
    assert_error(response, 404, "not_found")
    assert stored_rows(exchange.conversation["id"]) == before
    assert len(chat_requests(glm_simulator)) == asked


def test_paging_before_a_message_of_another_conversation_is_refused(
        chat_client, exchange, other_headers):
    theirs = chat_client.post("/api/conversations/", headers=other_headers, json={}).get_json()
    response = chat_client.get(
        f"/api/messages/{theirs['data']['id']}?before={exchange.user_message['id']}",
        headers=other_headers)
    body = assert_error(response, 422, "validation_error")
    assert "before" in body["error"]["details"]
    assert "hello alice" not in response.get_data(as_text=True)


@pytest.mark.parametrize("query", ["", "?project_id=p1", "?q=alice", "?page_size=100"])
def test_another_users_list_never_shows_the_first_users_conversations(
        chat_client, exchange, other_headers, auth_headers, query):
    theirs = chat_client.get(f"/api/conversations/{query}", headers=other_headers)
    assert theirs.status_code == 200
    assert theirs.get_json()["data"]["items"] == [] and theirs.get_json()["data"]["total"] == 0
    mine = chat_client.get(f"/api/conversations/{query}", headers=auth_headers)
    assert [item["id"] for item in mine.get_json()["data"]["items"]] == [
        exchange.conversation["id"]]


@pytest.mark.parametrize("q", ["alice", "ALICE", "hello", "al", "notes"])
def test_another_users_search_never_finds_the_first_users_messages_or_titles(
        chat_client, exchange, other_headers, auth_headers, q):
    theirs = chat_client.get(f"/api/search?q={q}", headers=other_headers)
    assert theirs.status_code == 200
    assert theirs.get_json()["data"] == {"items": [], "next": None}
    mine = chat_client.get(f"/api/search?q={q}", headers=auth_headers)
    assert {item["conversation_id"] for item in mine.get_json()["data"]["items"]} == {
        exchange.conversation["id"]}


def test_object_ids_are_long_random_tokens_not_counters(exchange):
    token = r"[A-Za-z0-9_-]{16,}"
    assert re.fullmatch("conv_" + token, exchange.conversation["id"])
    for message in (exchange.user_message, exchange.assistant_message):
        assert re.fullmatch("msg_" + token, message["id"])
    assert db.session.scalar(select(func.count()).select_from(Message)) == 2
