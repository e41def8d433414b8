"""Fixtures for fault injection: private PostgreSQL and Redis servers the tests may stop; what
the database holds of a conversation."""
import shutil

import flask_migrate
import pytest
from sqlalchemy import select

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import Conversation, Message

from ..conftest import app_config
from .backends import PrivatePostgres, PrivateRedis, postgres_bin


@pytest.fixture(scope="module")
def private_postgres():
    """A migrated PostgreSQL cluster of this test module's own, running."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    server = PrivatePostgres(bin_dir)
    try:
        server.init()
        server.start()
        app = create_app(app_config(server.url))
        with app.app_context():
            flask_migrate.upgrade()
            db.engine.dispose()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def private_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def persistent_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(persistent=True)
    server.start()
    yield server
    server.destroy()


def stored(conversation_id):
    """(the conversation's message_count, its messages in order) as the database holds them."""
    db.session.expire_all()
    rows = db.session.scalars(select(Message).where(Message.conversation_id == conversation_id)
                              .order_by(Message.created_at, Message.id)).all()
    return db.session.get(Conversation, conversation_id).message_count, rows
