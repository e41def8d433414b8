"""The migrations own the schema: they build it from nothing, and they agree with the models."""
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from chatapi.extensions import db
from chatapi.models.timestamps import utcnow

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
        context = MigrationContext.configure(connection, opts={"compare_type": True})
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
