"""PostgreSQL connections that cannot hold a request forever.

A live server cancels a statement running past DB_STATEMENT_TIMEOUT itself (its
`statement_timeout`, sent with each new connection) and answers with an error; the connection
stays usable. A server that accepts but never answers (stopped, frozen, behind a pooler or a
network that keeps TCP up but forwards nothing) cannot: the kernel still acknowledges every
byte, so TCP keepalives and `tcp_user_timeout` see nothing wrong. Every exchange with the
server (statements, commits, pool pings) therefore gets a deadline on the client side too, and
a connection whose deadline passed is closed, so the pool throws it away: whatever the server
sent later would be read as the answer to the next statement. The connection itself is bounded
by libpq's `connect_timeout` (DB_CONNECT_TIMEOUT), startup handshake included. Each statement
is planned for its values (PLAN_EACH_TIME).

A pooled connection is pinged before use only when it has sat idle in the pool for
DB_PING_AFTER_IDLE seconds: one checked in a moment ago is handed out as it is, which spares a
round trip on each request of a busy worker. (Its reset sent nothing: psycopg skips a ROLLBACK
outside a transaction, so the bound runs from the checkin, not from the server's last word.)"""
import time

import psycopg
from psycopg import errors
from sqlalchemy import event, exc

# What the client gives a live server, beyond statement_timeout, to report its own cancel.
SERVER_CANCEL_GRACE = 1.0
# psycopg prepares a statement once it ran five times on a connection, and PostgreSQL then
# plans it for any values (a generic plan) when that looks no costlier. For the message tree's
# recursive walk such a plan took 70-80 ms where a plan for the values takes 2 (a branch of
# 1,000 messages; bench/RESULTS.md): each statement is planned for its values.
PLAN_EACH_TIME = ("SELECT set_config('plan_cache_mode', 'force_custom_plan', false) "
                  "FROM pg_settings WHERE name = 'plan_cache_mode' AND source = 'default'")


class BoundedConnection(psycopg.Connection):
    """A psycopg connection whose every wait for the server ends within `answer_timeout`."""

    answer_timeout = None

    def wait(self, gen, *args, timeout=None, **kwargs):
        try:
            return super().wait(gen, *args, timeout=timeout or self.answer_timeout, **kwargs)
        except errors._WaitTimeout:  # psycopg's own, raised when a wait's timeout passes
            # Cut off mid-exchange: closed, so SQLAlchemy sees a disconnect and discards it.
            self.close()
            raise


def answer_timeout(statement_timeout):
    return statement_timeout + SERVER_CANCEL_GRACE if statement_timeout > 0 else None


def bound_statements(engine, statement_timeout):
    """Every new connection of `engine` is a BoundedConnection with PostgreSQL's own
    statement_timeout set; 0 leaves both unbounded (e.g. for a long migration)."""
    if statement_timeout <= 0:
        return

    @event.listens_for(engine, "do_connect")
    def connect(_dialect, _record, cargs, cparams):
        # First, so that a statement_timeout in DATABASE_URL's own `options` wins.
        cparams["options"] = " ".join(filter(None, [
            f"-c statement_timeout={round(statement_timeout * 1000)}", cparams.get("options")]))
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.answer_timeout = answer_timeout(statement_timeout)
        return connection


def plan_each_time(engine):
    """Every new connection of `engine` plans each statement for its values, unless
    plan_cache_mode was set anywhere else (DATABASE_URL's `options`, PGOPTIONS, the database,
    the role, the server's configuration). One statement per new connection; on a server
    without the setting (PostgreSQL before 12) it changes nothing."""

    @event.listens_for(engine, "connect")
    def connected(dbapi_connection, _record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute(PLAN_EACH_TIME)
        dbapi_connection.commit()


def ping_after_idle(engine, idle_seconds):
    """Ping each connection `engine`'s pool hands out after it sat idle for `idle_seconds` (0:
    every time, as SQLAlchemy's pool_pre_ping does); one found dead is replaced, and every
    connection pooled before it too (as pool_pre_ping does). A new connection is not pinged."""

    @event.listens_for(engine, "checkin")
    def checked_in(_dbapi_connection, record):
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection, record, _proxy):
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.InvalidatePoolError() from error
            raise
