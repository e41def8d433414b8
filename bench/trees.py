"""Two conversations of 1,000 messages for `GET /api/messages/{id}`: one linear, one in 50
branches. The conversations are made through the API; their messages are written straight
into the bench's database (tests/message_trees.py), since no endpoint branches yet."""
from datetime import timedelta

from sqlalchemy import create_engine, insert, text, update

from chatapi.models import Conversation, Message
from chatapi.models.timestamps import utcnow
from tests.message_trees import branched, linear

MESSAGES = 1000
BRANCHES = 50


def fill(database_url, linear_id, branched_id):
    """Each conversation's messages, the end of its longest branch current: {"linear": the
    active branch's length, "branched": the same}."""
    start = utcnow() - timedelta(days=1)
    shapes = {"linear": linear(linear_id, MESSAGES, start),
              "branched": branched(branched_id, MESSAGES, BRANCHES, start)}
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            for rows, branch in shapes.values():
                connection.execute(insert(Message), rows)
                connection.execute(
                    update(Conversation).where(Conversation.id == rows[0]["conversation_id"])
                    .values(current_message_id=branch[-1], message_count=len(rows)))
        if engine.dialect.name == "postgresql":
            # What autovacuum would soon do after so many new rows: plans from real counts.
            with engine.begin() as connection:
                connection.execute(text("ANALYZE messages"))
    finally:
        engine.dispose()
    return {name: len(branch) for name, (_rows, branch) in shapes.items()}
