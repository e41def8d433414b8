"""OWASP API4 (unrestricted resource consumption): the per-user limits on sending messages,
executing tools and answers in progress. Each refusal is a 429 envelope with Retry-After, and
nothing is stored for a refused message."""
import pytest

from ..conftest import PASSWORD
from ..test_chat import send, stored

CALCULATE = "/api/tools/calculator/execute"


@pytest.fixture
def limited(chat_app):
    return chat_app


def new_conversation(client, headers):
    return client.post("/api/conversations/", json={}, headers=headers).json["data"]["id"]


def assert_refused(response):
    assert response.status_code == 429, response.json
    assert response.json["success"] is False
    assert response.json["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


def open_stream(client, headers, conversation_id, content="[[chunks:2]]"):
    return client.post("/api/messages/stream", headers=headers,
                       json={"conversation_id": conversation_id, "content": content})


def test_messages_past_the_rate_limit_are_refused_and_not_stored(limited, auth_headers,
                                                                 other_headers):
    client = limited(MESSAGE_RATE_LIMIT="3 per minute").test_client()
    conversation_id = new_conversation(client, auth_headers)
    assert send(client, auth_headers, conversation_id, "one").status_code == 201
    assert send(client, auth_headers, conversation_id, "two").status_code == 201
    assert open_stream(client, auth_headers, conversation_id).get_data(as_text=True)

    assert_refused(send(client, auth_headers, conversation_id, "four"))
    assert_refused(open_stream(client, auth_headers, conversation_id, "five"))
    assert [m.content for m in stored(conversation_id) if m.role == "user"] == [
        "one", "two", "[[chunks:2]]"]
    listed = client.get(f"/api/conversations/{conversation_id}", headers=auth_headers)
    assert listed.json["data"]["message_count"] == 6

    # The limit is the user's, not the service's.
    theirs = new_conversation(client, other_headers)
    assert send(client, other_headers, theirs, "mine").status_code == 201


def test_a_conversation_of_another_user_is_404_before_any_limit(
        limited, auth_headers, other_headers):
    client = limited(MESSAGE_RATE_LIMIT="1 per minute").test_client()
    theirs = new_conversation(client, other_headers)
    for _ in range(3):
        assert send(client, auth_headers, theirs, "hi").status_code == 404
    mine = new_conversation(client, auth_headers)
    assert send(client, auth_headers, mine, "hi").status_code == 201


def test_tool_executions_past_the_rate_limit_are_refused(limited, auth_headers, other_headers):
    client = limited(TOOL_RATE_LIMIT="2 per minute").test_client()
    for _ in range(2):
        ran = client.post(CALCULATE, json={"expression": "6*7"}, headers=auth_headers)
        assert ran.status_code == 200 and ran.json["data"]["result"]["result"] == 42
    assert_refused(client.post(CALCULATE, json={"expression": "6*7"}, headers=auth_headers))
    assert client.post(CALCULATE, json={"expression": "1+1"},
                       headers=other_headers).status_code == 200


def test_a_failed_answer_gives_its_slot_back(limited, auth_headers):
    client = limited(MAX_CONCURRENT_ANSWERS=1).test_client()
    conversation_id = new_conversation(client, auth_headers)
    assert send(client, auth_headers, conversation_id, "[[http:500]]").status_code == 502
    assert send(client, auth_headers, conversation_id, "again").status_code == 201


def test_registrations_past_the_limit_per_address_are_refused(make_app):
    client = make_app(REGISTER_LIMIT="2 per hour").test_client()
    for name in ("reg_one", "reg_two"):
        created = client.post("/api/auth/register", json={
            "username": name, "email": f"{name}@example.com", "password": "long enough pw"})
        assert created.status_code == 201, created.json
    refused = client.post("/api/auth/register", json={
        "username": "reg_three", "email": "reg_three@example.com", "password": "long enough pw"})
    assert_refused(refused)
    assert client.post("/api/auth/login", json={
        "username": "reg_three", "password": "long enough pw"}).status_code == 401


def test_failed_logins_over_many_names_from_one_address_are_refused(make_app, user):
    """Each failed login costs an argon2 check: a new name per attempt dodges the per-account
    window, not the per-address one."""
    client = make_app(LOGIN_ADDRESS_FAILURE_LIMIT="3 per 5 minutes").test_client()
    for attempt in range(3):
        failed = client.post("/api/auth/login", json={"username": f"nobody{attempt}",
                                                      "password": "guess"})
        assert failed.status_code == 401
    assert_refused(client.post("/api/auth/login",
                               json={"username": "nobody9", "password": "guess"}))
    # The window is full for this address, even for the right password.
    assert_refused(client.post("/api/auth/login",
                               json={"username": user.username, "password": PASSWORD}))
    elsewhere = client.post("/api/auth/login", environ_base={"REMOTE_ADDR": "127.0.0.2"},
                            json={"username": user.username, "password": PASSWORD})
    assert elsewhere.status_code == 200


def regenerate(client, headers, message_id, stream=False):
    return client.post(f"/api/messages/{message_id}/regenerate" + ("/stream" if stream else ""),
                       headers=headers, json={})


def test_regenerations_count_in_the_message_rate_limit(limited, auth_headers):
    client = limited(MESSAGE_RATE_LIMIT="3 per minute").test_client()
    conversation_id = new_conversation(client, auth_headers)
    answer = send(client, auth_headers, conversation_id, "one").json["data"]["assistant_message"]
    assert regenerate(client, auth_headers, answer["id"]).status_code == 201
    assert regenerate(client, auth_headers, answer["id"], stream=True).status_code == 200
    assert_refused(regenerate(client, auth_headers, answer["id"]))
    assert_refused(regenerate(client, auth_headers, answer["id"], stream=True))
    assert_refused(send(client, auth_headers, conversation_id, "two"))
    assert len(stored(conversation_id)) == 4


def test_a_regeneration_takes_an_answer_slot(limited, auth_headers):
    client = limited(MAX_CONCURRENT_ANSWERS=1).test_client()
    conversation_id = new_conversation(client, auth_headers)
    answer = send(client, auth_headers, conversation_id, "one").json["data"]["assistant_message"]
    # An answer runs to its end whoever reads it: this one lasts long enough (10 s) to be
    # under way while the regenerations are refused.
    under_way = client.post("/api/messages/stream", headers=auth_headers, buffered=False,
                            json={"conversation_id": conversation_id,
                                  "content": "[[chunks:50]][[delay:200]]"})
    events = iter(under_way.response)
    assert b"\nevent: start\n" in next(events)
    assert_refused(regenerate(client, auth_headers, answer["id"]))
    assert_refused(regenerate(client, auth_headers, answer["id"], stream=True))
    assert b"event: done" in b"".join(events)
    under_way.close()
    assert regenerate(client, auth_headers, answer["id"]).status_code == 201
    assert len(stored(conversation_id)) == 5
