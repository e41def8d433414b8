import pytest
from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import RevokedToken, User
from chatapi.services import passwords, tokens

from .conftest import PASSWORD, bearer, expired_access_token


def register(client, **fields):
    body = {"username": "carol", "email": "carol@example.com", "password": "s3cret-pass"}
    body.update(fields)
    return client.post("/api/auth/register", json=body)


def login(client, username="alice", password=PASSWORD, **kwargs):
    return client.post("/api/auth/login", json={"username": username, "password": password},
                       **kwargs)


def test_register_answers_201_with_id_and_username_and_stores_argon2id_hash(client):
    response = register(client, email="Carol@Example.COM")
    assert response.status_code == 201
    assert response.json == {"success": True, "message": "注册成功",
                             "data": {"id": response.json["data"]["id"], "username": "carol"}}
    stored = db.session.scalar(select(User).where(User.username == "carol"))
    assert stored.email == "carol@example.com"
    assert stored.role == "user" and stored.is_active
    assert stored.password_hash.startswith("$argon2id$")
    assert "s3cret-pass" not in response.get_data(as_text=True)


def test_an_unknown_username_is_checked_against_a_hash_of_the_hasher_s_own_cost():
    # Same parameters as every account's hash, so a login as nobody costs what a wrong
    # password costs (argon2-cffi's defaults may change with its version).
    assert not passwords.needs_rehash(passwords.UNKNOWN_USER_HASH)
    assert passwords.hasher.verify(passwords.UNKNOWN_USER_HASH, "no account has this password")
    assert passwords.verify_password(None, "no account has this password") is False


@pytest.mark.parametrize("taken", [
    {"username": "ALICE"}, {"username": "Alice"}, {"email": "ALICE@example.com"},
])
def test_duplicate_username_or_email_in_any_letter_case_is_409(client, user, taken):
    response = register(client, **taken)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    assert set(response.json["error"]["details"]) == set(taken)


def test_every_invalid_field_is_listed_in_one_422(client):
    response = register(client, username="x", email="not-an-email", password="short")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert set(response.json["error"]["details"]) == {"username", "email", "password"}


def test_missing_fields_are_422_naming_each(client):
    response = client.post("/api/auth/register", json={})
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"username", "email", "password"}


@pytest.mark.parametrize("username,ok", [
    ("张三_01", True), ("abc", True), ("a.b-c_d", True), ("x" * 32, True),
    ("ab", False), ("x" * 33, False), ("a b", False), ("a@b", False), ("a/b", False),
    ("", False), ("alice\n", False), ("abc\r\n", False),
])
def test_username_rules(client, username, ok):
    response = register(client, username=username)
    assert response.status_code == (201 if ok else 422), response.json


@pytest.mark.parametrize("password,ok", [
    ("x" * 7, False), ("x" * 8, True), ("x" * 128, True), ("x" * 129, False),
])
def test_password_length_is_8_to_128(client, password, ok):
    assert register(client, password=password).status_code == (201 if ok else 422)


def test_register_ignores_read_only_and_unknown_fields(client):
    response = register(client, id=999, role="admin", is_active=False, favourite="blue")
    assert response.status_code == 201
    stored = db.session.get(User, response.json["data"]["id"])
    assert stored.id != 999 and stored.role == "user" and stored.is_active


def test_login_by_username_in_any_case_or_by_email_gives_tokens(client, user):
    for name in ("alice", "ALICE", "Alice@Example.com"):
        response = login(client, name)
        assert response.status_code == 200, response.json
        data = response.json["data"]
        assert response.json["message"] == "登录成功"
        assert data["token_type"] == "bearer" and data["expires_in"] == 86400
        assert data["access_token"] and data["refresh_token"]
        assert data["user"] == {"id": user.id, "username": "alice", "role": "user"}


def test_unknown_user_and_wrong_password_get_the_same_401(client, user):
    unknown = login(client, "nobody")
    wrong = login(client, "alice", "wrong password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json == wrong.json
    assert unknown.json["error"]["code"] == "unauthorized"


def test_me_returns_the_account(client, user, auth_headers):
    response = client.get("/api/auth/me", headers=auth_headers)
    assert response.status_code == 200
    data = response.json["data"]
    assert data == {"id": user.id, "username": "alice", "email": "alice@example.com",
                    "role": "user", "is_active": True, "created_at": data["created_at"],
                    "quota": None}
    assert data["created_at"].endswith("Z")


def test_deactivated_user_live_token_is_401_and_login_is_403(client, user, auth_headers):
    assert client.get("/api/auth/me", headers=auth_headers).status_code == 200
    user.is_active = False
    db.session.commit()
    assert client.get("/api/auth/me", headers=auth_headers).status_code == 401
    response = login(client)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


def test_deactivated_user_with_wrong_password_still_gets_401(client, make_user):
    make_user("dora", is_active=False)
    assert login(client, "dora", "wrong password").status_code == 401


def test_refresh_token_gives_a_working_access_token(client, user):
    refresh_token = login(client).json["data"]["refresh_token"]
    response = client.post("/api/auth/refresh", headers=bearer(refresh_token))
    assert response.status_code == 200
    assert set(response.json["data"]) == {"access_token", "token_type", "expires_in"}
    me = client.get("/api/auth/me", headers=bearer(response.json["data"]["access_token"]))
    assert me.status_code == 200


def test_refresh_token_is_refused_as_an_access_token(client, user):
    refresh_token = login(client).json["data"]["refresh_token"]
    assert client.get("/api/auth/me", headers=bearer(refresh_token)).status_code == 401


def test_access_token_is_refused_by_refresh(client, user, auth_headers):
    assert client.post("/api/auth/refresh", headers=auth_headers).status_code == 401


def test_logout_revokes_the_access_token(client, user):
    access = login(client).json["data"]["access_token"]
    response = client.post("/api/auth/logout", headers=bearer(access))
    assert response.status_code == 200
    assert response.json == {"success": True, "message": "登出成功"}
    again = client.get("/api/auth/me", headers=bearer(access))
    assert again.status_code == 401
    assert again.json["error"]["code"] == "unauthorized"


def test_logout_with_refresh_token_revokes_both(client, user):
    data = login(client).json["data"]
    response = client.post("/api/auth/logout", headers=bearer(data["access_token"]),
                           json={"refresh_token": data["refresh_token"]})
    assert response.status_code == 200
    assert client.post("/api/auth/refresh",
                       headers=bearer(data["refresh_token"])).status_code == 401


def test_logout_with_someone_elses_refresh_token_is_422_and_revokes_nothing(
        client, app, user, other_user):
    mine = login(client).json["data"]["access_token"]
    theirs = tokens.issue_tokens(other_user, app.config)["refresh_token"]
    response = client.post("/api/auth/logout", headers=bearer(mine),
                           json={"refresh_token": theirs})
    assert response.status_code == 422
    assert "refresh_token" in response.json["error"]["details"]
    assert client.get("/api/auth/me", headers=bearer(mine)).status_code == 200
    assert client.post("/api/auth/refresh", headers=bearer(theirs)).status_code == 200


def test_revoked_jti_is_kept_with_its_expiry_and_expired_ones_are_pruned(app, client, user):
    if app.config["REDIS_URL"]:
        pytest.skip("revocations live in Redis with a TTL when REDIS_URL is set")
    from datetime import timedelta

    from chatapi.models.timestamps import utcnow
    db.session.add(RevokedToken(jti="old", expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    access = login(client).json["data"]["access_token"]
    client.post("/api/auth/logout", headers=bearer(access))
    rows = db.session.scalars(select(RevokedToken)).all()
    assert [row.jti for row in rows] != ["old"] and len(rows) == 1
    assert rows[0].expires_at > utcnow() + timedelta(hours=23)


def test_revocation_lives_in_redis_with_a_ttl_when_configured(app, client, user):
    if not app.config["REDIS_URL"]:
        pytest.skip("REDIS_URL is not set")
    from flask_jwt_extended import decode_token
    access = login(client).json["data"]["access_token"]
    client.post("/api/auth/logout", headers=bearer(access))
    store = app.extensions["chatapi.revocations"]
    ttl = store.redis.ttl(store.prefix + decode_token(access, allow_expired=True)["jti"])
    assert 86000 < ttl <= 86402


def test_expired_token_is_401(client, user):
    response = client.get("/api/auth/me", headers=bearer(expired_access_token(user)))
    assert response.status_code == 401
    assert response.json["message"] == "令牌已过期"


def test_twenty_wrong_passwords_are_rate_limited_with_retry_after(client, user):
    statuses = [login(client, "alice", "wrong password").status_code for _ in range(20)]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429] * 10
    blocked = login(client)
    assert blocked.status_code == 429
    assert blocked.json["error"]["code"] == "rate_limited"
    assert int(blocked.headers["Retry-After"]) > 0


def test_login_limit_is_per_address_and_username(client, user, make_user):
    make_user("erin")
    for _ in range(11):
        login(client, "alice", "wrong password")
    assert login(client, "erin").status_code == 200
    other_address = {"REMOTE_ADDR": "127.0.0.2"}
    assert login(client, "alice", environ_base=other_address).status_code == 200


def test_successful_logins_are_not_counted(client, user):
    assert all(login(client).status_code == 200 for _ in range(12))
