"""Shared by the security suite (tests/security, one file per OWASP API Security Top 10 2023
item): the error envelope check, the app's routes as the URL map lists them, an app that talks
to the GLM simulator, one exchange owned by `user` and its stored rows. (The loopback guard
`connections`, the local `site` and the counting `listener` are in tests/conftest.py.)"""
import re
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import Conversation, Message

IGNORED_METHODS = {"HEAD", "OPTIONS"}


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
def glm_app(chat_app):
    """An app whose model is the GLM simulator (tests/glm_simulator.py), which forgets what it
    saw before this test."""
    return chat_app()


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
