from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import User
from chatapi.services import tokens

from .conftest import PASSWORD, bearer


def account(name):
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.username == name))


def login_status(client, name, password):
    return client.post("/api/auth/login",
                       json={"username": name, "password": password}).status_code


def test_create_with_password_from_stdin(runner, client):
    result = runner.invoke(args=["users", "create", "grace", "--email", "Grace@Example.com",
                                 "--password-stdin"], input="long enough pw\n")
    assert result.exit_code == 0, result.output
    assert "created user grace" in result.output
    assert account("grace").email == "grace@example.com"
    assert account("grace").role == "user"
    assert login_status(client, "grace", "long enough pw") == 200


def test_create_admin_with_a_hidden_prompt_asked_twice(runner):
    result = runner.invoke(args=["users", "create", "root", "--email", "root@example.com",
                                 "--admin"], input="admin password\nadmin password\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("Password") == 1 and "Repeat for confirmation" in result.output
    assert "admin password" not in result.output
    assert account("root").role == "admin"


def test_create_refuses_mismatched_prompts_then_accepts_a_match(runner):
    result = runner.invoke(args=["users", "create", "heidi", "--email", "h@example.com"],
                           input="first password\nsecond password\nfinal password\n"
                                 "final password\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output


def test_create_validates_like_register(runner):
    result = runner.invoke(args=["users", "create", "x", "--email", "nope",
                                 "--password-stdin"], input="short\n")
    assert result.exit_code == 1
    for field in ("username", "email", "password"):
        assert field in result.output
    assert account("x") is None


def test_create_refuses_a_taken_name_in_any_case(runner, user):
    result = runner.invoke(args=["users", "create", "ALICE", "--email", "other@example.com",
                                 "--password-stdin"], input="long enough pw\n")
    assert result.exit_code == 1
    assert "username" in result.output


def test_list_shows_every_account(runner, user, make_user):
    make_user("ivan", role="admin", is_active=False)
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 3
    assert "alice" in lines[1] and "user" in lines[1] and "yes" in lines[1]
    assert "ivan" in lines[2] and "admin" in lines[2] and "no" in lines[2]


def test_set_password_replaces_the_old_one_and_ends_every_token(runner, client, app, user):
    old = tokens.issue_tokens(user, app.config)
    result = runner.invoke(args=["users", "set-password", "alice", "--password-stdin"],
                           input="brand new password\n")
    assert result.exit_code == 0, result.output
    assert login_status(client, "alice", PASSWORD) == 401
    assert login_status(client, "alice", "brand new password") == 200
    assert client.get("/api/auth/me", headers=bearer(old["access_token"])).status_code == 401
    assert client.post("/api/auth/refresh",
                       headers=bearer(old["refresh_token"])).status_code == 401


def test_set_password_refuses_a_short_one(runner, client, user):
    result = runner.invoke(args=["users", "set-password", "alice", "--password-stdin"],
                           input="short\n")
    assert result.exit_code == 1
    assert login_status(client, "alice", PASSWORD) == 200


def test_deactivate_ends_every_token_for_good_and_activate_allows_login_again(
        runner, client, app, user):
    old = tokens.issue_tokens(user, app.config)
    assert runner.invoke(args=["users", "deactivate", "alice"]).exit_code == 0
    assert client.get("/api/auth/me", headers=bearer(old["access_token"])).status_code == 401
    assert login_status(client, "alice", PASSWORD) == 403
    assert runner.invoke(args=["users", "activate", "alice"]).exit_code == 0
    assert client.get("/api/auth/me", headers=bearer(old["access_token"])).status_code == 401
    assert client.post("/api/auth/refresh",
                       headers=bearer(old["refresh_token"])).status_code == 401
    assert login_status(client, "alice", PASSWORD) == 200


def test_delete_asks_for_confirmation(runner, user):
    declined = runner.invoke(args=["users", "delete", "alice"], input="n\n")
    assert declined.exit_code == 1
    assert account("alice") is not None
    confirmed = runner.invoke(args=["users", "delete", "alice"], input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert account("alice") is None


def test_delete_with_yes_does_not_ask(runner, client, user, auth_headers):
    result = runner.invoke(args=["users", "delete", "alice", "--yes"])
    assert result.exit_code == 0
    assert account("alice") is None
    assert client.get("/api/auth/me", headers=auth_headers).status_code == 401


def test_unknown_user_is_an_error(runner):
    for command in (["deactivate", "nobody"], ["activate", "nobody"],
                    ["delete", "nobody", "--yes"]):
        result = runner.invoke(args=["users", *command])
        assert result.exit_code == 1
        assert "no user named 'nobody'" in result.output
