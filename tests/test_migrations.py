"""The migrations own the schema: they build it from nothing, and they agree with the models."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from chatapi.extensions import db
from chatapi.models.message import JSONDocument
from chatapi.models.search_index import include_in_schema_comparison
from chatapi.models.timestamps import UTCDateTime, utcnow

from .conftest import app_config


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"chatapi_migrations_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def schema_differences(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "include_object": include_in_schema_comparison})
        return compare_metadata(context, db.metadata)


def test_flask_db_upgrade_builds_the_schema_from_nothing(empty_database_url):
    from chatapi import create_app
    app = create_app(app_config(empty_database_url))
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        assert {"users", "revoked_tokens", "alembic_version"} <= tables
    assert schema_differences(app) == []
    downgraded = app.test_cli_runner().invoke(args=["db", "downgrade", "base"])
    assert downgraded.exit_code == 0, downgraded.output
    with app.app_context():
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()


def test_models_and_migrations_agree_on_the_test_database(app):
    assert schema_differences(app) == []


def run_flask_db(app, *args):
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, result.output


def rows(app, sql):
    with app.app_context(), db.engine.connect() as connection:
        return connection.execute(text(sql)).all()


def add_user(connection, name, **columns):
    values = {"username": name, "username_key": name, "email": f"{name}@example.com",
              "password_hash": "hash", "role": "user", "is_active": True,
              "created_at": utcnow(), **columns}
    return connection.execute(text(
        f"INSERT INTO users ({', '.join(values)}) VALUES ({', '.join(':' + k for k in values)}) "
        "RETURNING id"), values).scalar_one()


def test_0004_gives_every_account_its_own_token_key_keeps_the_data_and_never_reuses_ids(
        empty_database_url):
    """From 0003 with accounts, a conversation and a message in it: the data stays (on SQLite
    the users table is rebuilt, and its old copy's drop must not cascade into conversations),
    each account gets a distinct token key, and an id freed by a deletion stays unused."""
    from chatapi import create_app
    app = create_app(app_config(empty_database_url))
    run_flask_db(app, "upgrade", "0003")
    with app.app_context(), db.engine.begin() as connection:
        eve, ada, zed = (add_user(connection, name) for name in ("eve", "ada", "zed"))
        connection.execute(text(
            "INSERT INTO conversations (id, user_id, title, model, temperature, max_tokens, "
            "thinking_enabled, message_count, created_at, updated_at) VALUES "
            "('conv_1', :user, 't', 'glm-4.6', 1.0, 100, false, 1, :now, :now)"),
            {"user": eve, "now": utcnow()})
        connection.execute(text(
            "INSERT INTO messages (id, conversation_id, role, content, tool_calls, status, "
            "created_at) VALUES ('msg_1', 'conv_1', 'user', 'hello', '[]', 'completed', :now)"),
            {"now": utcnow()})
        connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": zed})

    run_flask_db(app, "upgrade")
    keys = dict(rows(app, "SELECT id, token_key FROM users"))
    assert set(keys) == {eve, ada}
    assert all(keys.values()) and len(set(keys.values())) == 2
    assert rows(app, "SELECT id, user_id FROM conversations") == [("conv_1", eve)]
    assert rows(app, "SELECT id, content FROM messages") == [("msg_1", "hello")]
    assert schema_differences(app) == []
    with app.app_context(), db.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            table_sql = connection.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'users'")).scalar_one()
            assert "AUTOINCREMENT" in table_sql
        connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": ada})
        newcomer = add_user(connection, "newcomer", token_key="k")
    assert newcomer > ada

    run_flask_db(app, "downgrade", "0003")
    assert rows(app, "SELECT id, username FROM users ORDER BY id") == [
        (eve, "eve"), (newcomer, "newcomer")]
    assert rows(app, "SELECT id, user_id FROM conversations") == [("conv_1", eve)]
    assert rows(app, "SELECT id FROM messages") == [("msg_1",)]
    with app.app_context():
        assert "token_key" not in {column["name"] for column in
                                   inspect(db.engine).get_columns("users")}
        db.engine.dispose()


# Rows as the app stores them (timestamps in each database's own format), without the models,
# which describe the newest schema.
conversations_0004 = sa.table(
    "conversations", *(sa.column(name) for name in (
        "id", "user_id", "title", "model", "temperature", "max_tokens", "thinking_enabled",
        "message_count")),
    sa.column("created_at", UTCDateTime()), sa.column("updated_at", UTCDateTime()))
messages_0004 = sa.table(
    "messages", *(sa.column(name) for name in (
        "id", "conversation_id", "role", "content", "status")),
    sa.column("tool_calls", JSONDocument), sa.column("created_at", UTCDateTime()))


def test_0005_makes_each_conversation_one_branch_in_created_at_then_id_order(
        empty_database_url):
    """From 0004: each message's parent is the one before it by (created_at, id), whatever
    order the rows were written in (an answer's row is written when it ends, with the time it
    began), two user messages in a row stay a chain, and the last message is current; an
    empty conversation has none. The downgrade keeps every row."""
    from chatapi import create_app
    app = create_app(app_config(empty_database_url))
    run_flask_db(app, "upgrade", "0004")
    t = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    # (id, conversation, role, created_at), in insert order.
    written = [
        ("msg_a1", "conv_answers", "user", t),
        ("msg_a3", "conv_answers", "user", t + timedelta(seconds=30)),
        ("msg_a2", "conv_answers", "assistant", t + timedelta(microseconds=1)),
        ("msg_a4", "conv_answers", "assistant", t + timedelta(seconds=31)),
        ("msg_t2", "conv_ties", "user", t),
        ("msg_t1", "conv_ties", "user", t),
        ("msg_t3", "conv_ties", "assistant", t + timedelta(seconds=1)),
        ("msg_s1", "conv_single", "user", t),
    ]
    with app.app_context(), db.engine.begin() as connection:
        owner = add_user(connection, "eve", token_key="k")
        for conversation_id in ("conv_answers", "conv_ties", "conv_single", "conv_empty"):
            connection.execute(conversations_0004.insert().values(
                id=conversation_id, user_id=owner, title="t", model="glm-4.6", temperature=1.0,
                max_tokens=100, thinking_enabled=False,
                message_count=sum(row[1] == conversation_id for row in written),
                created_at=t, updated_at=t))
        for message_id, conversation_id, role, created_at in written:
            connection.execute(messages_0004.insert().values(
                id=message_id, conversation_id=conversation_id, role=role,
                content=f"text of {message_id}", tool_calls=[], status="completed",
                created_at=created_at))

    run_flask_db(app, "upgrade")
    assert dict(rows(app, "SELECT id, parent_id FROM messages")) == {
        "msg_a1": None, "msg_a2": "msg_a1", "msg_a3": "msg_a2", "msg_a4": "msg_a3",
        "msg_t1": None, "msg_t2": "msg_t1", "msg_t3": "msg_t2",
        "msg_s1": None}
    assert dict(rows(app, "SELECT id, current_message_id FROM conversations")) == {
        "conv_answers": "msg_a4", "conv_ties": "msg_t3", "conv_single": "msg_s1",
        "conv_empty": None}
    assert schema_differences(app) == []

    run_flask_db(app, "downgrade", "0004")
    assert sorted(rows(app, "SELECT id, conversation_id, content FROM messages")) == sorted(
        (message_id, conversation_id, f"text of {message_id}")
        for message_id, conversation_id, _, _ in written)
    assert sorted(rows(app, "SELECT id, message_count FROM conversations")) == [
        ("conv_answers", 4), ("conv_empty", 0), ("conv_single", 1), ("conv_ties", 3)]
    with app.app_context():
        inspector = inspect(db.engine)
        assert "parent_id" not in {column["name"] for column in inspector.get_columns("messages")}
        assert "current_message_id" not in {column["name"] for column in
                                            inspector.get_columns("conversations")}
        db.engine.dispose()


def test_0010_indexes_the_stored_messages_and_titles_and_downgrades_cleanly(empty_database_url):
    """From 0009 with a conversation, a finished message and an answer still in progress: after
    0010 search finds the first and the title, not the answer until it ends (the triggers, on
    SQLite, or the index's condition, on PostgreSQL); the downgrade leaves no search object."""
    from chatapi import create_app
    from chatapi.services import search
    app = create_app(app_config(empty_database_url))
    run_flask_db(app, "upgrade", "0009")
    with app.app_context(), db.engine.begin() as connection:
        eve = add_user(connection, "eve", token_key="k")
        connection.execute(text(
            "INSERT INTO conversations (id, user_id, title, model, temperature, max_tokens, "
            "thinking_enabled, message_count, created_at, updated_at) VALUES "
            "('conv_1', :user, '旧的标题 Old Title', 'glm-4.6', 1.0, 100, false, 2, :now, :now)"),
            {"user": eve, "now": utcnow()})
        connection.execute(insert_messages(), [
            {"id": "msg_1", "content": "已经存在的消息 Existing", "status": "completed"},
            {"id": "msg_2", "content": "正在写的回答 Existing", "status": "in_progress"}])

    run_flask_db(app, "upgrade")
    with app.app_context():
        def found(q):
            return [(item["message_id"], item["conversation_id"])
                    for item in search.search(eve, q, 20)["items"]]
        assert found("EXISTING") == [("msg_1", "conv_1")]
        assert found("标题 old") == [(None, "conv_1")]
        db.session.execute(text("UPDATE messages SET status = 'completed' WHERE id = 'msg_2'"))
        db.session.commit()
        assert sorted(found("existing")) == [("msg_1", "conv_1"), ("msg_2", "conv_1")]
        db.session.remove()
        db.engine.dispose()

    run_flask_db(app, "downgrade", "0009")
    with app.app_context():
        inspector = inspect(db.engine)
        assert not [name for name in inspector.get_table_names() if "search" in name]
        assert not [index["name"] for table in ("messages", "conversations")
                    for index in inspector.get_indexes(table) if "trgm" in index["name"]]
        db.engine.dispose()
    run_flask_db(app, "upgrade")


def insert_messages():
    return sa.insert(sa.table(
        "messages", *(sa.column(name) for name in ("id", "content", "status")),
        sa.column("conversation_id"), sa.column("role"), sa.column("tool_calls", JSONDocument),
        sa.column("created_at", UTCDateTime()))).values(
        conversation_id="conv_1", role="user", tool_calls=[], created_at=utcnow())
