"""The substring indexes search reads (made by migration 0010, kept by the database itself).

PostgreSQL: pg_trgm GIN indexes on lower(messages.content), for messages no longer in
progress, and on lower(conversations.title); a query uses one by filtering on the same
expression (text_search.folded) and, for messages, on the same status condition.

SQLite: FTS5 tables with the trigram tokenizer, each mapped to its rows by a keys table. They
are not models: SQLAlchemy only reads them here, and the schema comparison leaves them out."""
from sqlalchemy import column, literal_column, table

# The status the message index leaves out, written out so that PostgreSQL sees it in the query as
# it is in the index's WHERE (a bound parameter would hide it from a generic plan).
IN_PROGRESS = literal_column("'in_progress'")

message_search = table("message_search", column("rowid"))
message_search_keys = table("message_search_keys", column("rowid"), column("message_id"))
conversation_search = table("conversation_search", column("rowid"))
conversation_search_keys = table("conversation_search_keys", column("rowid"),
                                 column("conversation_id"))

SQLITE_SEARCH_TABLES = ("message_search", "conversation_search")
POSTGRESQL_SEARCH_INDEXES = ("ix_messages_content_trgm", "ix_conversations_title_trgm")


def is_search_index(name, type_):
    """Whether a reflected table or index is one of these (or an FTS5 shadow table of one)."""
    if type_ == "table":
        return name is not None and name.startswith(SQLITE_SEARCH_TABLES)
    if type_ == "index":
        return name in POSTGRESQL_SEARCH_INDEXES
    return False


def include_in_schema_comparison(_object, name, type_, reflected, _compare_to):
    return not (reflected and is_search_index(name, type_))


def every_trigram(text):
    """An FTS5 query for the rows holding each trigram of `text` (three characters or more),
    anywhere: the substring condition beside it then checks they make `text`. Each is a string,
    every character literal, a double quote doubled. Not the phrase `text`: FTS5 checks a
    phrase's tokens from every place its first one is (a query of `x` 199 times then `y`, in
    300 messages of `x` 32,000 times: 13 s, in SQLite's C, the worker's loop held)."""
    trigrams = dict.fromkeys(text[start:start + 3] for start in range(len(text) - 2))
    return " AND ".join('"' + trigram.replace('"', '""') + '"' for trigram in trigrams)
