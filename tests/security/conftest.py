"""Shared by the security suite (tests/security, one file per OWASP API Security Top 10 2023
item): the error envelope check, the app's routes as the URL map lists them, an app that talks
to the GLM simulator, one exchange owned by `user`, its stored rows, and a guard that records
every socket connection and refuses any outside loopback."""
import ipaddress
import re
import socket
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import Conversation, Message

from ..local_sites import counting_listener, local_site

IGNORED_METHODS = {"HEAD", "OPTIONS"}
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def assert_error(response, status, code):
    """The error envelope of docs/API.md §1, with `status` and `code`; the body."""
    body = response.get_json()
    assert response.status_code == status, (response.status_code, body)
    assert set(body) == {"success", "message", "error"} or set(body) == {
        "success", "message", "error", "data"}, body
    assert body["success"] is False
    assert isinstance(body["message"], str) and body["message"]
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["details"], dict)
    return body


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    endpoint: str
    arguments: frozenset

    def url(self, **values):
        return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda match: str(values[match.group(1)]),
                      self.rule)

    def __str__(self):
        return f"{self.method} {self.rule}"


def routes(app):
    """Every (rule, method) the app answers, HEAD and OPTIONS aside, as the URL map says."""
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - IGNORED_METHODS):
            found.append(Route(rule.rule, method, rule.endpoint, frozenset(rule.arguments)))
    return found


def call(client, route, headers=None, json=None, **values):
    return client.open(route.url(**values), method=route.method, headers=headers, json=json)


@pytest.fixture
def glm_app(make_app, glm_simulator):
    """An app whose model is the GLM simulator (tests/glm_simulator.py), which forgets what it
    saw before this test."""
    glm_simulator.reset()
    return make_app(ZHIPUAI_API_KEY="test-key", GLM_BASE_URL=glm_simulator.base_url,
                    GLM_READ_TIMEOUT=5.0)


@pytest.fixture
def chat_client(glm_app):
    return glm_app.test_client()


def chat_requests(glm_simulator):
    return [seen for seen in glm_simulator.requests()
            if seen["path"].endswith("/chat/completions")]


@dataclass
class Exchange:
    conversation: dict
    user_message: dict
    assistant_message: dict


@pytest.fixture
def exchange(chat_client, auth_headers):
    """A conversation of `user` with one question and its answer, made through the API."""
    created = chat_client.post("/api/conversations/", headers=auth_headers,
                               json={"title": "alice's notes", "project_id": "p1"})
    assert created.status_code == 201, created.get_json()
    conversation = created.get_json()["data"]
    sent = chat_client.post("/api/messages/", headers=auth_headers, json={
        "conversation_id": conversation["id"], "content": "[[reply:hello alice]]"})
    assert sent.status_code == 201, sent.get_json()
    both = sent.get_json()["data"]
    return Exchange(conversation, both["user_message"], both["assistant_message"])


def stored_rows(conversation_id):
    """The conversation's row and its messages' rows as the database holds them now."""
    db.session.expire_all()
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    columns = [column.name for column in Conversation.__table__.columns]
    message_columns = [column.name for column in Message.__table__.columns]
    messages = db.session.scalars(select(Message).where(
        Message.conversation_id == conversation_id).order_by(Message.created_at)).all()
    return ({name: getattr(conversation, name) for name in columns},
            [{name: getattr(message, name) for name in message_columns}
             for message in messages])


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
            raise ConnectionRefusedError(f"the security suite never leaves loopback: {address}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not seen.check(address):
            raise ConnectionRefusedError(f"the security suite never leaves loopback: {address}")
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield seen
    assert seen.refused == [], "connections outside loopback were attempted"


@pytest.fixture(scope="module")
def site():
    """A small web site on 127.0.0.1 (tests/local_sites.py)."""
    with local_site() as running:
        yield running


@pytest.fixture
def listener():
    """A listener on 127.0.0.1 and ::1 (one port) that counts the connections it accepts."""
    with counting_listener() as counter:
        yield counter
