"""Round trips per request: the SQL statements each endpoint sends its database, and the
commands it sends Redis when the suite has one (a pipeline or a script is one). A change that
adds a round trip to one of these paths fails here; bench/RESULTS.md ("JSON endpoints") shows
what each costs in CPU."""
import os
from contextlib import contextmanager
from datetime import timedelta

import pytest
from redis.connection import AbstractConnection
from sqlalchemy import event, insert, update

from chatapi.extensions import db
from chatapi.models import Conversation, Message
from chatapi.models.timestamps import utcnow
from tests.message_trees import linear

REDIS = bool(os.environ.get("REDIS_URL"))
# With Redis, a token's revocation is asked of it (one EXISTS) before the database is asked
# for the account.
TOKEN_CHECK_REDIS = 1 if REDIS else 0


@pytest.fixture
def round_trips(monkeypatch):
    """counted(): a context that counts the SQL statements and Redis round trips sent in it."""
    sent_redis = []
    original = AbstractConnection.send_packed_command

    def counting(connection, command, check_health=True):
        sent_redis.append(command)
        return original(connection, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)

    @contextmanager
    def counted():
        statements = []

        def record(_connection, _cursor, statement, *_args):
            statements.append(" ".join(statement.split())[:160])

        sent_redis.clear()
        event.listen(db.engine, "before_cursor_execute", record)
        found = {"sql": statements, "redis": sent_redis}
        try:
            yield found
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
            found["redis"] = list(sent_redis)

    return counted


def conversations_of(user, count):
    now = utcnow()
    rows = [{"id": f"conv_rt{user.id}x{index}", "user_id": user.id, "title": f"t{index}",
             "model": "glm-5", "created_at": now - timedelta(minutes=index),
             "updated_at": now - timedelta(minutes=index)} for index in range(count)]
    db.session.execute(insert(Conversation), rows)
    db.session.commit()
    return [row["id"] for row in rows]


def with_branch(conversation_id, length):
    rows, branch = linear(conversation_id, length, utcnow() - timedelta(days=1))
    db.session.execute(insert(Message), rows)
    db.session.execute(update(Conversation).where(Conversation.id == conversation_id)
                       .values(current_message_id=branch[-1], message_count=length))
    db.session.commit()


def check(counted, client, path, headers, sql, redis=0):
    """GET `path` (200) and hold it to `sql` statements and `redis` round trips. Counted the
    second time: the first opens the connections (a new Redis connection says HELLO)."""
    client.get(path, headers=headers)
    db.session.remove()  # as between requests: nothing is cached in the session
    with counted() as found:
        response = client.get(path, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert len(found["sql"]) == sql, "\n".join(found["sql"])
    if REDIS:
        assert len(found["redis"]) == redis, "\n".join(map(repr, found["redis"]))
    return response.get_json()["data"]


def test_health_asks_the_database_once(round_trips, client):
    check(round_trips, client, "/api/health", {}, sql=1)


def test_a_full_page_of_conversations_is_the_token_check_the_page_and_the_count(
        round_trips, client, auth_headers, user):
    conversations_of(user, 45)
    page = check(round_trips, client, "/api/conversations/?page_size=20", auth_headers,
                 sql=3, redis=TOKEN_CHECK_REDIS)
    assert len(page["items"]) == 20 and page["total"] == 45


def test_a_short_last_page_needs_no_count(round_trips, client, auth_headers, user):
    conversations_of(user, 45)
    for page_number, size in ((3, 5), (1, None)):
        path = (f"/api/conversations/?page={page_number}&page_size=20" if size
                else "/api/conversations/?page_size=100")
        page = check(round_trips, client, path, auth_headers, sql=2, redis=TOKEN_CHECK_REDIS)
        assert page["total"] == 45 and len(page["items"]) == (size or 45)


def test_an_empty_page_past_the_end_counts_to_give_the_total(
        round_trips, client, auth_headers, user):
    conversations_of(user, 3)
    page = check(round_trips, client, "/api/conversations/?page=2&page_size=20", auth_headers,
                 sql=3, redis=TOKEN_CHECK_REDIS)
    assert page["items"] == [] and page["total"] == 3


def test_one_conversation_is_the_token_check_and_the_row(round_trips, client, auth_headers,
                                                         user):
    [conversation_id] = conversations_of(user, 1)
    check(round_trips, client, f"/api/conversations/{conversation_id}", auth_headers, sql=2,
          redis=TOKEN_CHECK_REDIS)


def test_a_page_of_the_active_branch_is_four_statements(round_trips, client, auth_headers,
                                                        user):
    """The token check, the owner's look-up, the page with its total, the page's siblings."""
    [conversation_id] = conversations_of(user, 1)
    with_branch(conversation_id, 100)
    page = check(round_trips, client, f"/api/messages/{conversation_id}", auth_headers, sql=4,
                 redis=TOKEN_CHECK_REDIS)
    assert len(page["items"]) == 100 and page["total"] == 100


def test_an_empty_conversation_lists_without_a_walk(round_trips, client, auth_headers, user):
    [conversation_id] = conversations_of(user, 1)
    page = check(round_trips, client, f"/api/messages/{conversation_id}", auth_headers, sql=2,
                 redis=TOKEN_CHECK_REDIS)
    assert page["items"] == []


def test_a_search_is_the_token_check_its_rate_limit_and_two_queries(
        round_trips, client, auth_headers, user):
    """Messages, then titles: each source is one query; on SQLite each is first asked how
    many rows its FTS5 table offers (services/search.fts_is_worth_it), a probe of the
    in-process database that picks the plan. The rate limit's window is one script in Redis
    (in memory without it)."""
    [conversation_id] = conversations_of(user, 1)
    with_branch(conversation_id, 20)
    per_source = 2 if db.engine.dialect.name == "sqlite" else 1
    page = check(round_trips, client, "/api/search?q=message%201", auth_headers,
                 sql=1 + 2 * per_source, redis=TOKEN_CHECK_REDIS + 1)
    assert page["items"]
