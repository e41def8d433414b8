"""PostgreSQL's connections. The pool pings a connection before handing it out only once it
sat idle for DB_PING_AFTER_IDLE seconds (chatapi/postgres.py): a connection whose server
process died while it was idle is replaced before a request uses it, and one used a moment ago
costs no ping. A GET reads without a transaction (chatapi/sessions.py); writes keep theirs."""
import os

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from chatapi.extensions import db
from chatapi.models import User
from chatapi.models.user import username_key
from chatapi.services import tokens

from .conftest import bearer
from .simulator_client import wait_for

pytestmark = pytest.mark.skipif(
    not make_url(os.environ.get("DATABASE_URL") or "sqlite://").drivername.startswith(
        "postgresql"), reason="PostgreSQL's pool (DATABASE_URL)")


@pytest.fixture
def admin(database_url):
    """A connection of the test's own, outside every app's pool."""
    url = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        yield conn


def signed_in(app):
    with app.app_context():
        name = f"pool{id(app)}"
        user = User(username=name, username_key=username_key(name),
                    email=f"{name}@example.com", password_hash="x")
        db.session.add(user)
        db.session.commit()
        return bearer(tokens.issue_tokens(user, app.config)["access_token"])


def pooled_backend(app):
    """The server process of the one connection the app's pool holds (requests here come one
    at a time, so the pool made only one)."""
    with app.app_context():
        assert db.engine.pool.checkedin() == 1
        pid = db.session.scalar(text("SELECT pg_backend_pid()"))
        db.session.close()
    return pid


def kill(admin, pid):
    """End the server process behind a pooled connection, as a restart or an idle timeout on
    the server's side would; back once it is gone."""
    assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    assert wait_for(lambda: admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0,
        timeout=30)


def pings(monkeypatch, app):
    """A list that grows by one for each ping the app's engine sends."""
    sent = []
    with app.app_context():
        dialect = type(db.engine.dialect)
    original = dialect.do_ping

    def counted(self, dbapi_connection):
        sent.append(dbapi_connection)
        return original(self, dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return sent


def test_a_connection_idle_past_the_bound_is_pinged_and_a_dead_one_replaced(
        make_app, admin, monkeypatch):
    app = make_app(DB_PING_AFTER_IDLE=0)
    headers = signed_in(app)
    client = app.test_client()
    assert client.get("/api/conversations/", headers=headers).status_code == 200
    sent = pings(monkeypatch, app)
    kill(admin, pooled_backend(app))
    del sent[:]

    listed = client.get("/api/conversations/", headers=headers)
    assert listed.status_code == 200, listed.get_data(as_text=True)
    assert listed.json["data"]["items"] == []
    assert len(sent) == 1  # the dead one; its replacement is new, and not pinged


def test_a_connection_back_in_the_pool_within_the_bound_is_not_pinged(make_app, monkeypatch):
    app = make_app(DB_PING_AFTER_IDLE=3600)
    headers = signed_in(app)
    client = app.test_client()
    sent = pings(monkeypatch, app)
    for _ in range(3):
        assert client.get("/api/conversations/", headers=headers).status_code == 200
    assert sent == []


def test_a_connection_that_died_within_the_bound_fails_one_request_then_the_pool_is_new(
        make_app, admin):
    """The price of skipping the ping, documented in the README: a server process that died
    less than DB_PING_AFTER_IDLE after its connection was last used costs the request that
    meets it a 503 (as during an outage), and the pool drops every connection it held."""
    app = make_app(DB_PING_AFTER_IDLE=3600)
    headers = signed_in(app)
    client = app.test_client()
    assert client.get("/api/conversations/", headers=headers).status_code == 200
    kill(admin, pooled_backend(app))

    failed = client.get("/api/conversations/", headers={**headers, "Accept-Language": "en"})
    assert failed.status_code == 503
    assert failed.json["error"]["code"] == "upstream_unavailable"
    assert failed.headers["Retry-After"]
    assert client.get("/api/conversations/", headers=headers).status_code == 200


def test_a_get_reads_without_a_transaction_and_a_write_keeps_its_own(make_app):
    app = make_app()
    headers = signed_in(app)
    client = app.test_client()
    seen = []

    def record(connection, _cursor, statement, *_args):
        seen.append((statement.split()[0], connection.connection.dbapi_connection.autocommit))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert client.get("/api/conversations/", headers=headers).status_code == 200
        reads, seen[:] = list(seen), []
        created = client.post("/api/conversations/", json={"title": "kept"}, headers=headers)
        assert created.status_code == 201
        writes, seen[:] = list(seen), []
        # The same pooled connection, back in its own mode once the write returned it.
        listed = client.get("/api/conversations/", headers=headers)
        again = list(seen)
    finally:
        with app.app_context():
            event.remove(db.engine, "before_cursor_execute", record)
    assert reads and all(autocommit for _, autocommit in reads), reads
    assert any(verb == "INSERT" for verb, _ in writes)
    assert not any(autocommit for _, autocommit in writes), writes
    assert again and all(autocommit for _, autocommit in again), again
    assert [item["title"] for item in listed.json["data"]["items"]] == ["kept"]


def test_statements_run_again_and_again_are_planned_for_their_values(make_app):
    """psycopg prepares a statement after five runs; PostgreSQL would then plan it once for
    any values, which for the branch walk was 40 times slower (chatapi/postgres.py)."""
    app = make_app()
    headers = signed_in(app)
    client = app.test_client()
    for _ in range(12):
        assert client.get("/api/conversations/", headers=headers).status_code == 200
    with app.app_context():
        generic, custom = db.session.execute(text(
            "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) "
            "FROM pg_prepared_statements")).one()
        db.session.close()
    assert custom > 0 and generic == 0, (generic, custom)


def test_settings_in_the_databases_url_win(make_app, database_url):
    url = make_url(database_url).update_query_dict(
        {"options": "-c plan_cache_mode=auto -c statement_timeout=7s"})
    app = make_app(SQLALCHEMY_DATABASE_URI=url.render_as_string(hide_password=False))
    with app.app_context():
        assert db.session.scalar(text("SHOW plan_cache_mode")) == "auto"
        assert db.session.scalar(text("SHOW statement_timeout")) == "7s"
        db.session.close()
    default = make_app()
    with default.app_context():
        assert db.session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
        assert db.session.scalar(text("SHOW statement_timeout")) == "10s"
        db.session.close()


def test_without_a_statement_timeout_pgoptions_still_apply(make_app, monkeypatch):
    """DB_STATEMENT_TIMEOUT=0 (as for a long migration) sends no `options`, so libpq's own
    PGOPTIONS apply, plan_cache_mode included; without it, statements are planned each time."""
    monkeypatch.setenv("PGOPTIONS", "-c plan_cache_mode=auto -c lock_timeout=3s")
    chosen = make_app(DB_STATEMENT_TIMEOUT=0)
    with chosen.app_context():
        assert db.session.scalar(text("SHOW plan_cache_mode")) == "auto"
        assert db.session.scalar(text("SHOW lock_timeout")) == "3s"
        assert db.session.scalar(text("SHOW statement_timeout")) == "0"
        db.session.close()
        db.engine.dispose()
    monkeypatch.delenv("PGOPTIONS")
    unbounded = make_app(DB_STATEMENT_TIMEOUT=0)
    with unbounded.app_context():
        assert db.session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
        db.session.close()
