"""Search reads the substring index, not every message: for a user with 10,000 messages
among another user's 10,000, a rare text's query goes through PostgreSQL's trigram GIN index
or SQLite's FTS5 trigram table."""
from datetime import timedelta

import pytest
from sqlalchemy import insert, text

from chatapi.extensions import db
from chatapi.models import Conversation, Message
from chatapi.models.timestamps import utcnow
from chatapi.services import search

from .test_conversation_query_plan import plan_of

pytestmark = pytest.mark.slow

RARE = 4321
WORDS = ["alpha", "beta", "gamma", "delta", "数据", "分析", "模型", "训练", "東京", "ラーメン"]


@pytest.fixture
def crowded(user, other_user):
    start = utcnow()
    for owner in (user, other_user):
        db.session.execute(insert(Conversation), [
            {"id": f"conv_{owner.id}_{c:04d}", "user_id": owner.id, "model": "glm-5",
             "title": f"{WORDS[c % 10]} {c}", "created_at": start, "updated_at": start}
            for c in range(100)])
        db.session.execute(insert(Message), [
            {"id": f"msg_{owner.id}_{i:06d}", "conversation_id": f"conv_{owner.id}_{i % 100:04d}",
             "role": "user", "status": "completed", "tool_calls": [],
             "content": " ".join(WORDS[(i * k) % 10] for k in range(1, 24)) + f" n{i}"
             + (" 斑马鱼zebrafish" if i == RARE else ""),
             "created_at": start + timedelta(seconds=i)}
            for i in range(10_000)])
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # As autovacuum leaves a table in service: VACUUM also moves the rows waiting in the
        # GIN index's pending list into the index and updates the index's statistics, which
        # the planner costs the trigram scan by (stale after an earlier test's rows, they made
        # it prefer reading the user's conversations).
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE messages"))
            connection.execute(text("VACUUM ANALYZE conversations"))
    return user


@pytest.mark.parametrize("q", ["zebrafish", "ZEBRAfish", "斑马鱼zebra"])
def test_a_rare_text_is_looked_up_in_the_index(crowded, q):
    statement, values = search.query(search.MESSAGES, db.engine.dialect.name, crowded.id, q, 21,
                                     None)
    plan = plan_of(statement.params(values))
    print(plan)
    if db.engine.dialect.name == "postgresql":
        assert "ix_messages_content_trgm" in plan
    else:
        assert "SCAN message_search VIRTUAL TABLE INDEX" in plan
        assert "SCAN messages" not in plan
    found = search.search(crowded.id, q, 20)["items"]
    assert [item["message_id"] for item in found] == [f"msg_{crowded.id}_{RARE:06d}"]
