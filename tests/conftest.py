"""Fixtures: one migrated database per test session (SQLite in a temp folder by default, or
the database named by DATABASE_URL), a fresh app per test, rows removed after each test; the
GLM simulator; local upstreams on loopback (a web site, a counting listener, a fake
Open-Meteo) and a guard that records every socket connection and refuses any outside
loopback."""
import ipaddress
import os
import socket
import uuid

import flask_migrate
import pytest
from flask_jwt_extended import create_access_token

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import User
from chatapi.models.user import username_key
from chatapi.services import passwords, tokens

from .fake_open_meteo import FakeOpenMeteo
from .local_sites import counting_listener, local_site
from .loopback_server import self_signed_certificate

JWT_TEST_SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def app_config(database_url, **overrides):
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "JWT_SECRET_KEY": JWT_TEST_SECRET,
        "REDIS_URL": os.environ.get("REDIS_URL"),
        # Limits keyed per test app, so counters in a shared Redis never leak between tests.
        "RATELIMIT_KEY_PREFIX": f"chatapi-test-{uuid.uuid4().hex}",
        # A title call is one more request to the simulator: the tests of titles ask for it.
        "AUTO_TITLE": False,
    }
    config.update(overrides)
    return config


def gunicorn_env(database_url, glm_simulator=None, **settings):
    """The environment of a gunicorn the tests start on the session database (and Redis when
    the suite has one), its model the GLM simulator when given; `settings` add or override."""
    env = {"DATABASE_URL": database_url, "JWT_SECRET_KEY": JWT_TEST_SECRET,
           "REDIS_URL": os.environ.get("REDIS_URL"), "LOG_LEVEL": "WARNING", "AUTO_TITLE": "off"}
    if glm_simulator is not None:
        env.update(ZHIPUAI_API_KEY="test-key", GLM_BASE_URL=glm_simulator.base_url)
    env.update(settings)
    return env


def migrated(url):
    """`url`, its database migrated to the newest revision."""
    app = create_app(app_config(url))
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
    return url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    return migrated(os.environ.get("DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'chatapi-test.db'}"))


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
        # Answers run on their own: each test's end them before its rows go.
        app.extensions["chatapi.answers"].settle(timeout=60)
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


@pytest.fixture(scope="module")
def site():
    """A small web site on 127.0.0.1 (tests/local_sites.py)."""
    with local_site() as running:
        yield running


@pytest.fixture
def execute(make_app, auth_headers, site):
    """Runs a tool through POST /api/tools/<name>/execute on an app that allows only the local
    site (or the hosts in `allowed`); other keywords are settings. One app per settings."""
    clients = {}

    def run(name, arguments, allowed=None, **config):
        config["FETCH_ALLOWED_HOSTS"] = [site.host] if allowed is None else allowed
        key = repr(sorted(config.items()))
        if key not in clients:
            clients[key] = make_app(**config).test_client()
        return clients[key].post(f"/api/tools/{name}/execute", json=arguments,
                                 headers=auth_headers)
    return run


@pytest.fixture
def listener():
    """A listener on 127.0.0.1 and ::1 (one port) that counts the connections it accepts."""
    with counting_listener() as counter:
        yield counter


@pytest.fixture
def open_meteo():
    """A fake Open-Meteo (forecast and geocoding) on 127.0.0.1 (tests/fake_open_meteo.py)."""
    with FakeOpenMeteo() as fake:
        yield fake


@pytest.fixture
def certificate(tmp_path):
    """(the path of a self-signed certificate for 127.0.0.1, a server SSLContext serving it)."""
    return self_signed_certificate(tmp_path)


class Connections:
    """Addresses sockets of this process connected (or tried to connect) to."""

    def __init__(self):
        self.loopback = []
        self.refused = []

    def check(self, address):
        if not isinstance(address, tuple):
            return True  # a Unix socket
        try:
            ip = ipaddress.ip_address(address[0].split("%")[0])
        except ValueError:
            self.refused.append(address)  # a name: sockets get addresses from getaddrinfo
            return False
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if any(ip in network for network in LOOPBACK):
            self.loopback.append(address)
            return True
        self.refused.append(address)
        return False


@pytest.fixture
def connections(monkeypatch):
    """Records every socket connect; one to an address outside 127.0.0.0/8 and ::1 fails with
    ConnectionRefusedError before any packet leaves, and the test fails at teardown."""
    seen = Connections()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(sock, address):
        if not seen.check(address):
            raise ConnectionRefusedError(f"these tests never leave loopback: {address}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not seen.check(address):
            raise ConnectionRefusedError(f"these tests never leave loopback: {address}")
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield seen
    assert seen.refused == [], "connections outside loopback were attempted"
