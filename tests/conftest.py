"""Fixtures: one migrated database per test session (SQLite in a temp folder by default, or
the database named by DATABASE_URL), a fresh app per test, rows removed after each test."""
import os
import uuid

import flask_migrate
import pytest
from flask_jwt_extended import create_access_token

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import User
from chatapi.models.user import username_key
from chatapi.services import passwords, tokens

JWT_TEST_SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"


def app_config(database_url, **overrides):
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "JWT_SECRET_KEY": JWT_TEST_SECRET,
        "REDIS_URL": os.environ.get("REDIS_URL"),
        # Limits keyed per test app, so counters in a shared Redis never leak between tests.
        "RATELIMIT_KEY_PREFIX": f"chatapi-test-{uuid.uuid4().hex}",
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'chatapi-test.db'}")
    app = create_app(app_config(url))
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
    return url


@pytest.fixture
def make_app(database_url):
    """A factory for apps on the session database, for tests that need other settings."""
    made = []

    def make(**overrides):
        app = create_app(app_config(database_url, **overrides))
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.rollback()
            if app.config["SQLALCHEMY_DATABASE_URI"] == database_url:
                for table in reversed(db.metadata.sorted_tables):
                    db.session.execute(table.delete())
                db.session.commit()
                database_url = None
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    application = make_app()
    with application.app_context():
        yield application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


_hashes = {}


@pytest.fixture
def make_user(app):
    """Accounts are inserted directly (one argon2 hash per distinct password per session);
    the register endpoint has tests of its own."""
    def make(username="alice", password=PASSWORD, email=None, role="user", is_active=True):
        if password not in _hashes:
            _hashes[password] = passwords.hash_password(password)
        user = User(username=username, username_key=username_key(username),
                    email=email or f"{username.lower()}@example.com",
                    password_hash=_hashes[password], role=role, is_active=is_active)
        db.session.add(user)
        db.session.commit()
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("bob")


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth_headers(app, user):
    return bearer(tokens.issue_tokens(user, app.config)["access_token"])


@pytest.fixture
def other_headers(app, other_user):
    return bearer(tokens.issue_tokens(other_user, app.config)["access_token"])


def expired_access_token(user):
    from datetime import timedelta
    return create_access_token(identity=str(user.id), expires_delta=timedelta(seconds=-10),
                               additional_claims={tokens.TOKEN_KEY_CLAIM: user.token_key})


@pytest.fixture(scope="session")
def glm_simulator():
    from .simulator_client import running_simulator
    with running_simulator() as simulator:
        yield simulator


@pytest.fixture
def chat_app(make_app, glm_simulator):
    """A factory of apps talking to the GLM simulator (reset for each test)."""
    glm_simulator.reset()

    def make(**overrides):
        return make_app(**{"ZHIPUAI_API_KEY": "test-key", "GLM_BASE_URL": glm_simulator.base_url,
                           "GLM_READ_TIMEOUT": 5.0, **overrides})

    return make


@pytest.fixture
def chat(chat_app):
    return chat_app().test_client()


@pytest.fixture
def conversation_id(client, auth_headers):
    return client.post("/api/conversations/", json={}, headers=auth_headers).json["data"]["id"]
