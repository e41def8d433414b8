"""A ~30 MB ChatGPT export imported by one real gunicorn gevent worker while another client
keeps asking /api/health: the import is stored whole and the worker keeps answering. (How
fast health answers meanwhile is a figure of the bench: `make bench IMPORT=1`.)"""
import threading

import pytest
import requests
from sqlalchemy import func, select

from chatapi.extensions import db
from chatapi.models import Conversation, Message
from chatapi.services import tokens

from .chatgpt_exports import big_export
from .conftest import bearer, gunicorn_env
from .servers import gunicorn

pytestmark = pytest.mark.slow
SIZE = 30 * 1024 * 1024


def test_a_30_mb_chatgpt_export_is_stored_whole_while_health_keeps_answering(
        app, database_url, user):
    body, conversations, nodes = big_export(SIZE)
    assert len(body) >= SIZE
    headers = {**bearer(tokens.issue_tokens(user, app.config)["access_token"]),
               "Content-Type": "application/json"}
    with gunicorn(gunicorn_env(database_url), workers=1) as base:
        outcome = {}

        def post():
            outcome["response"] = requests.post(f"{base}/api/conversations/import", data=body,
                                                headers=headers, timeout=600)

        poster = threading.Thread(target=post)
        poster.start()
        health = []
        with requests.Session() as session:
            while poster.is_alive():
                health.append(session.get(f"{base}/api/health", timeout=60).status_code)
        poster.join()
    response = outcome["response"]
    assert response.status_code == 201, response.text[:500]
    ids = response.json()["data"]["conversations"]
    assert len(ids) == len(set(ids)) == conversations
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Conversation).where(
        Conversation.user_id == user.id)) == conversations
    # Each template conversation's nodes become fewer messages (an answer's chain is one).
    stored = db.session.scalar(
        select(func.count()).select_from(Message)
        .join(Conversation, Message.conversation_id == Conversation.id)
        .where(Conversation.user_id == user.id))
    assert conversations * 4 <= stored < nodes
    assert len(health) > 1 and set(health) == {200}
