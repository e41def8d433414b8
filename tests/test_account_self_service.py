"""Account self-service (docs/API.md §2): a signed-in user changes their password (every earlier
token ends, the caller gets new ones) or deletes their account with everything it owns (its
answers being written are stopped first). Both ask for the password again, which counts
against the login's limits. Answers run on the GLM simulator, their events kept in the
database or, when the suite has one, in Redis."""
import os

import pytest
from sqlalchemy import func, select

from chatapi.extensions import db
from chatapi.models import (AnswerEvent, AnswerJob, Conversation, IdempotencyKey, Message,
                            User)

from .conftest import PASSWORD, bearer
from .simulator_client import wait_for
from .test_answers_as_jobs import read_until, stalled_answer

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(params=["database", "redis"])
def chat_app(chat_app, request):
    """Apps whose answers keep their events and stop signals in the database, or in Redis."""
    redis_url = None
    if request.param == "redis":
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            pytest.skip("the suite has no Redis (REDIS_URL)")
    return lambda **overrides: chat_app(**{"REDIS_URL": redis_url, **overrides})


def login(client, username="alice", password=PASSWORD):
    return client.post("/api/auth/login", json={"username": username, "password": password})


def change_password(client, headers, current=PASSWORD, new=NEW_PASSWORD, **kwargs):
    return client.post("/api/auth/password", headers=headers,
                       json={"current_password": current, "new_password": new}, **kwargs)


def delete_account(client, headers, password=PASSWORD):
    return client.delete("/api/auth/me", headers=headers, json={"password": password})


def refused_everywhere(client, session):
    """Every endpoint tried with the session's access token, and refresh with its refresh
    token, answers 401."""
    access = bearer(session["access_token"])
    statuses = [
        client.get("/api/auth/me", headers=access).status_code,
        client.get("/api/conversations/", headers=access).status_code,
        client.post("/api/conversations/", headers=access, json={}).status_code,
        client.post("/api/auth/logout", headers=access).status_code,
        change_password(client, access, NEW_PASSWORD, "yet another passphrase").status_code,
        delete_account(client, access, NEW_PASSWORD).status_code,
        client.post("/api/auth/refresh",
                    headers=bearer(session["refresh_token"])).status_code,
    ]
    return statuses == [401] * len(statuses)


def test_a_password_change_ends_every_earlier_token_and_returns_a_working_pair(client, user):
    mine, elsewhere = login(client).json["data"], login(client).json["data"]
    response = change_password(client, bearer(mine["access_token"]))
    assert response.status_code == 200, response.json
    assert response.json["success"] is True and response.json["message"] == "密码修改成功"
    fresh = response.json["data"]
    assert set(fresh) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert fresh["token_type"] == "bearer" and fresh["expires_in"] > 0

    assert refused_everywhere(client, mine) and refused_everywhere(client, elsewhere)
    me = client.get("/api/auth/me", headers=bearer(fresh["access_token"]))
    assert me.status_code == 200 and me.json["data"]["username"] == "alice"
    assert client.get("/api/conversations/",
                      headers=bearer(fresh["access_token"])).status_code == 200
    refreshed = client.post("/api/auth/refresh", headers=bearer(fresh["refresh_token"]))
    assert refreshed.status_code == 200
    assert client.get("/api/auth/me", headers=bearer(
        refreshed.json["data"]["access_token"])).status_code == 200
    assert login(client).status_code == 401
    assert login(client, password=NEW_PASSWORD).status_code == 200


def test_the_success_messages_follow_accept_language(client, user, auth_headers):
    changed = change_password(client, {**auth_headers, "Accept-Language": "en"})
    assert changed.json["message"] == "Password changed"
    deleted = client.delete("/api/auth/me", json={"password": NEW_PASSWORD}, headers={
        **bearer(changed.json["data"]["access_token"]), "Accept-Language": "en"})
    assert deleted.status_code == 200
    assert deleted.json == {"success": True, "message": "Account deleted"}


def test_a_wrong_current_password_is_401_and_changes_nothing(client, user, auth_headers):
    for attempt in (change_password(client, auth_headers, current="not the password"),
                    delete_account(client, auth_headers, "not the password")):
        assert attempt.status_code == 401
        assert attempt.json["success"] is False and attempt.json["message"] == "密码错误"
        assert attempt.json["error"]["code"] == "unauthorized"
    assert client.get("/api/auth/me", headers=auth_headers).status_code == 200
    assert login(client).status_code == 200


def test_wrong_passwords_count_against_the_login_limits_of_the_account(make_app, user):
    client = make_app(LOGIN_FAILURE_LIMIT="3 per 5 minutes").test_client()
    headers = bearer(login(client).json["data"]["access_token"])
    assert change_password(client, headers, current="wrong once").status_code == 401
    assert delete_account(client, headers, "wrong twice").status_code == 401
    assert login(client, password="wrong thrice").status_code == 401
    # The window is full: the right password is refused too, by every one of the three.
    for blocked in (change_password(client, headers), delete_account(client, headers),
                    login(client)):
        assert blocked.status_code == 429
        assert blocked.json["error"]["code"] == "rate_limited"
        assert int(blocked.headers["Retry-After"]) > 0
    assert client.get("/api/auth/me", headers=headers).status_code == 200


def test_failed_logins_limit_the_password_check_too(make_app, user):
    client = make_app(LOGIN_FAILURE_LIMIT="2 per 5 minutes").test_client()
    headers = bearer(login(client).json["data"]["access_token"])
    for _ in range(2):
        assert login(client, password="wrong").status_code == 401
    blocked = change_password(client, headers)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert login(client, password=NEW_PASSWORD).status_code == 429


@pytest.mark.parametrize("body,fields", [
    ({}, {"current_password", "new_password"}),
    ({"current_password": PASSWORD}, {"new_password"}),
    ({"new_password": NEW_PASSWORD}, {"current_password"}),
    ({"current_password": PASSWORD, "new_password": "7 chars"}, {"new_password"}),
    ({"current_password": PASSWORD, "new_password": "x" * 129}, {"new_password"}),
    ({"current_password": PASSWORD, "new_password": 12345678}, {"new_password"}),
    ({"current_password": None, "new_password": NEW_PASSWORD}, {"current_password"}),
    ({"current_password": ["x"], "new_password": {"a": 1}},
     {"current_password", "new_password"}),
    ({"current_password": "", "new_password": NEW_PASSWORD}, {"current_password"}),
])
def test_a_password_change_with_bad_fields_is_422_naming_each(client, user, auth_headers,
                                                              body, fields):
    response = client.post("/api/auth/password", headers=auth_headers, json=body)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert set(response.json["error"]["details"]) == fields
    assert client.get("/api/auth/me", headers=auth_headers).status_code == 200


def test_a_new_password_that_is_the_current_one_is_422(client, user, auth_headers):
    response = change_password(client, auth_headers, new=PASSWORD)
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"new_password": ["新密码不能与当前密码相同"]}
    assert client.get("/api/auth/me", headers=auth_headers).status_code == 200


def test_the_new_password_may_be_8_or_128_characters(client, user, auth_headers):
    changed = change_password(client, auth_headers, new="x" * 8)
    assert changed.status_code == 200
    headers = bearer(changed.json["data"]["access_token"])
    assert change_password(client, headers, current="x" * 8, new="y" * 128).status_code == 200


@pytest.mark.parametrize("body", [{}, {"password": None}, {"password": 12345678},
                                  {"password": ""}, {"password": ["x"]}])
def test_a_deletion_with_a_bad_password_field_is_422(client, user, auth_headers, body):
    response = client.delete("/api/auth/me", headers=auth_headers, json=body)
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"password"}
    assert client.get("/api/auth/me", headers=auth_headers).status_code == 200


def test_both_need_a_bearer_access_token(client, user):
    refresh = bearer(login(client).json["data"]["refresh_token"])
    for headers in ({}, refresh):
        assert change_password(client, headers).status_code == 401
        assert delete_account(client, headers).status_code == 401
    assert login(client).status_code == 200


def rows_of(user_id, conversation_ids, answer_ids):
    """How many rows of each table belong to the user (its answers' events and jobs in the
    database; in Redis, the store's own reads tell)."""
    db.session.expire_all()
    count = lambda model, *where: db.session.scalar(  # noqa: E731
        select(func.count()).select_from(model).where(*where))
    rows = {
        "users": count(User, User.id == user_id),
        "conversations": count(Conversation, Conversation.user_id == user_id),
        "messages": count(Message, Message.conversation_id.in_(conversation_ids)),
        "idempotency_keys": count(IdempotencyKey, IdempotencyKey.user_id == user_id),
        "answer_jobs": count(AnswerJob, AnswerJob.answer_id.in_(answer_ids)),
        "answer_events": count(AnswerEvent, AnswerEvent.answer_id.in_(answer_ids)),
    }
    db.session.rollback()
    return rows


def kept_in_store(app, answer_ids):
    """The answers whose job or events the app's store (database or Redis) still has."""
    store = app.extensions["chatapi.answers"].store
    kept = [answer_id for answer_id in answer_ids
            if store.job(answer_id) is not None or store.events_after(answer_id, 0)]
    db.session.rollback()
    return kept


def fill_account(chat, headers):
    """Two conversations with answers (one sent with an Idempotency-Key, one streamed):
    (conversation ids, answer ids)."""
    conversation_ids, answer_ids = [], []
    for number in range(2):
        conversation_id = chat.post("/api/conversations/", headers=headers,
                                    json={"title": f"c{number}"}).json["data"]["id"]
        sent = chat.post("/api/messages/", json={"conversation_id": conversation_id,
                                                 "content": "hello"},
                         headers={**headers, "Idempotency-Key": f"key-{number}"})
        assert sent.status_code == 201, sent.json
        streamed = chat.post("/api/messages/stream", headers=headers, json={
            "conversation_id": conversation_id, "content": "[[chunks:3]]"})
        assert "event: done" in streamed.get_data(as_text=True)
        conversation_ids.append(conversation_id)
        answer_ids.append(sent.json["data"]["assistant_message"]["id"])
    answer_ids += [m["id"] for c in conversation_ids for m in chat.get(
        f"/api/messages/{c}", headers=headers).json["data"]["items"]
        if m["role"] == "assistant" and m["id"] not in answer_ids]
    return conversation_ids, answer_ids


def test_deleting_the_account_removes_every_row_of_it_and_no_other(
        chat_app, user, other_user, auth_headers, other_headers):
    app = chat_app()
    chat = app.test_client()
    user_id, other_id = user.id, other_user.id
    mine = fill_account(chat, auth_headers)
    theirs = fill_account(chat, other_headers)
    session = login(chat).json["data"]
    before = rows_of(other_id, *theirs)
    assert rows_of(user_id, *mine)["idempotency_keys"] == 2
    assert len(kept_in_store(app, mine[1])) == 4

    response = delete_account(chat, auth_headers)
    assert response.status_code == 200, response.json
    assert response.json == {"success": True, "message": "账号已删除"}

    assert set(rows_of(user_id, *mine).values()) == {0}
    assert kept_in_store(app, mine[1]) == []
    assert rows_of(other_id, *theirs) == before
    assert len(kept_in_store(app, theirs[1])) == 4
    assert chat.get(f"/api/messages/{theirs[0][0]}",
                    headers=other_headers).json["data"]["total"] == 4
    # Its tokens, the one that deleted it included, name no account any more.
    assert refused_everywhere(chat, session)
    assert client_statuses(chat, auth_headers) == {401}
    assert login(chat).status_code == 401


def client_statuses(client, headers):
    return {client.get("/api/auth/me", headers=headers).status_code,
            client.get("/api/conversations/", headers=headers).status_code}


def test_deleting_the_account_stops_its_answer_being_written(
        chat_app, user, other_user, auth_headers, other_headers, glm_simulator):
    app = chat_app(GLM_READ_TIMEOUT=600.0)
    chat = app.test_client()
    user_id = user.id
    conversation_id, response, pieces, seen, answer_id = stalled_answer(chat, auth_headers)
    theirs = chat.post("/api/conversations/", json={}, headers=other_headers).json["data"]["id"]

    deleted = delete_account(chat, auth_headers)
    assert deleted.status_code == 200, deleted.json
    # The model was hung up on, and the stream ended as a stop ends it.
    assert wait_for(glm_simulator.hangups, timeout=10)
    rest = read_until(pieces, "done")
    response.close()
    assert rest[-1][0] == "done"
    ended = rest[-1][1]["assistant_message"]
    assert (ended["id"], ended["status"], ended["finish_reason"]) == (
        answer_id, "incomplete", "stopped")
    assert ended["content"] == "w0 w1 "
    assert set(rows_of(user_id, [conversation_id], [answer_id]).values()) == {0}
    assert kept_in_store(app, [answer_id]) == []
    assert chat.get(f"/api/messages/{answer_id}/stream",
                    headers=auth_headers).status_code == 401
    # The service goes on: another user's answer runs to its end.
    other = chat.post("/api/messages/", headers=other_headers,
                      json={"conversation_id": theirs, "content": "hello"})
    assert other.status_code == 201 and other.json["data"]["assistant_message"]["status"] == \
        "completed"


def test_the_operators_delete_command_removes_the_same_rows(chat_app, user, auth_headers):
    app = chat_app()
    chat = app.test_client()
    user_id = user.id
    mine = fill_account(chat, auth_headers)
    with app.app_context():  # the command's app, not the `app` fixture's
        result = app.test_cli_runner().invoke(args=["users", "delete", "alice", "--yes"])
    assert result.exit_code == 0, result.output
    assert set(rows_of(user_id, *mine).values()) == {0}
    assert kept_in_store(app, mine[1]) == []
    assert client_statuses(chat, auth_headers) == {401}
