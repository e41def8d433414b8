"""search: substring indexes over message contents and conversation titles (GET /api/search)

PostgreSQL: pg_trgm GIN indexes on lower(content) and lower(title); the message index leaves
out answers still being written (their row is rewritten about once a second while they
stream), so that a streaming answer costs the index nothing until it ends.

SQLite: an FTS5 table with the trigram tokenizer for each, contentless (the text lives once,
in its own table), kept in step by triggers so that every writer keeps it, the app or not. An
FTS5 row is named by an integer; a `*_search_keys` table with its own INTEGER PRIMARY KEY maps
it to the message or conversation id (a table's implicit rowid may change on VACUUM or when a
batch migration copies the table). The triggers use no function of the app's: plain sqlite3
and `flask db` keep the index as well as the app does.

A later batch migration that rebuilds `messages` or `conversations` on SQLite drops their
triggers with the old table: it must create them again (sqlite_index below) and refill the
index (refill below).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 04:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

POSTGRESQL_UP = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_messages_content_trgm ON messages "
    "USING gin (lower(content) gin_trgm_ops) WHERE status <> 'in_progress'",
    "CREATE INDEX ix_conversations_title_trgm ON conversations "
    "USING gin (lower(title) gin_trgm_ops)",
]
# The extension stays: another database object may use it by now.
POSTGRESQL_DOWN = [
    "DROP INDEX ix_conversations_title_trgm",
    "DROP INDEX ix_messages_content_trgm",
]


def sqlite_index(name, source, key, text, indexed):
    """Tables and triggers that keep `name` (FTS5, trigram) holding `source`.`text` for the
    rows where `indexed` holds (a condition on the row, written with `{row}.` for new or
    old). The FTS5 table is contentless: deleting from it takes the text as it was indexed,
    which the triggers have as `old.<text>`."""
    keys = f"{name}_keys"
    old_indexed, new_indexed = indexed.format(row="old"), indexed.format(row="new")
    forget_old = (
        f"INSERT INTO {name}({name}, rowid, {text}) "
        f"SELECT 'delete', rowid, old.{text} FROM {keys} WHERE {key} = old.id; "
        f"DELETE FROM {keys} WHERE {key} = old.id;")
    add_new = (
        f"INSERT INTO {keys}({key}) SELECT new.id WHERE {new_indexed}; "
        f"INSERT INTO {name}(rowid, {text}) SELECT rowid, new.{text} FROM {keys} "
        f"WHERE {key} = new.id;")
    tables = [
        f"CREATE TABLE {keys} (rowid INTEGER PRIMARY KEY, {key} VARCHAR(40) NOT NULL UNIQUE)",
        f"CREATE VIRTUAL TABLE {name} USING fts5({text}, content='', tokenize='trigram')",
    ]
    triggers = [
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {source} BEGIN {add_new} END",
        # Only a change to what is indexed touches the index; while an answer streams, its
        # row (status in_progress) is rewritten without one.
        f"CREATE TRIGGER {name}_update AFTER UPDATE ON {source} "
        f"WHEN (new.{text} IS NOT old.{text} OR ({old_indexed}) IS NOT ({new_indexed})) "
        f"AND (({old_indexed}) OR ({new_indexed})) "
        f"BEGIN {forget_old} {add_new} END",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {source} BEGIN {forget_old} END",
    ]
    return tables, triggers, refill(name, source, key, text, indexed)


def refill(name, source, key, text, indexed):
    """Statements that index every row of `source` where `indexed` holds (on empty tables)."""
    keys = f"{name}_keys"
    condition = indexed.format(row=source)
    return [
        f"INSERT INTO {keys}({key}) SELECT id FROM {source} WHERE {condition}",
        f"INSERT INTO {name}(rowid, {text}) SELECT {keys}.rowid, {source}.{text} "
        f"FROM {keys} JOIN {source} ON {source}.id = {keys}.{key}",
    ]


SQLITE_INDEXES = [
    ("message_search", "messages", "message_id", "content", "{row}.status <> 'in_progress'"),
    ("conversation_search", "conversations", "conversation_id", "title", "1"),
]


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL_UP:
            op.execute(statement)
        return
    for spec in SQLITE_INDEXES:
        tables, triggers, fill = sqlite_index(*spec)
        for statement in tables + fill + triggers:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL_DOWN:
            op.execute(statement)
        return
    for name, source, *_ in reversed(SQLITE_INDEXES):
        for trigger in ("delete", "update", "insert"):
            op.execute(f"DROP TRIGGER {name}_{trigger}")
        op.execute(f"DROP TABLE {name}")
        op.execute(f"DROP TABLE {name}_keys")
