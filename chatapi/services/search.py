"""Search the caller's messages and conversation titles for a text: case-insensitive
substring, any script, newest first, a page at a time (docs/API.md §3, "Search").

A query of three characters or more is served by the substring indexes (search_index). A
shorter one cannot be (a trigram index knows nothing of one or two characters): it looks
through the caller's newest SHORT_QUERY_SCAN messages and conversations only.

On SQLite, the FTS5 index holds every user's text and has no statistics a planner could
weigh: for a text in many rows, reading its matches would cost more than reading the caller's
own rows. The service counts the matches up to FTS_MATCHES_WORTH_IT first and, past that,
reads the caller's rows instead (all of them: the answer is the same either way, the cost
that of the caller's own rows)."""
import html
import re
from dataclasses import dataclass
from functools import cache

from sqlalchemy import (ARRAY, Integer, String, any_, bindparam, func, literal_column, or_,
                        select)

from ..extensions import db
from ..models import Conversation, Message
from ..models.search_index import (IN_PROGRESS, conversation_search, conversation_search_keys,
                                   every_trigram, message_search,
                                   message_search_keys)
from ..models.text_search import caseless, contains_bound, fold, needle_value

SHORT_QUERY_SCAN = 5000
TRIGRAM = 3
FTS_MATCHES_WORTH_IT = 2000
SNIPPET_CHARS = 60
ELLIPSIS = "…"
SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Hit:
    created_at: object
    id: str
    conversation_id: str
    conversation_title: str
    message_id: str | None
    role: str | None
    text: str


@dataclass(frozen=True)
class Source:
    """Where hits come from: messages, or conversation titles. `fts` and `keys`: its SQLite
    index; `key`: the keys table's column naming the row."""
    model: type
    text: object
    fts: object
    keys: object
    key: str

    def hits_query(self, user_id, owner_index=True):
        """The caller's rows. `owner_index=False` keeps SQLite from reading them through the
        owner's index (an expression cannot use one): the FTS5 matches lead instead."""
        owner = Conversation.user_id if owner_index else Conversation.user_id + 0
        if self.model is Message:
            return (select(Message.created_at, Message.id, Message.conversation_id,
                           Conversation.title, Message.id, Message.role, Message.content)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(owner == user_id, Message.status != IN_PROGRESS))
        return (select(Conversation.created_at, Conversation.id, Conversation.id,
                       Conversation.title, literal_column("NULL"), literal_column("NULL"),
                       Conversation.title)
                .where(owner == user_id))

    def newest_first(self, statement):
        return statement.order_by(self.model.created_at.desc(), self.model.id.desc())

    def older_than(self, cursor):
        created_at, row_id = cursor
        return or_(self.model.created_at < created_at,
                   (self.model.created_at == created_at) & (self.model.id < row_id))

    def fts_rows(self, match):
        """The keys of rows matching the FTS5 query `match` (every_trigram's)."""
        return (select(self.keys.c[self.key])
                .join(self.fts, self.fts.c.rowid == self.keys.c.rowid)
                .where(literal_column(self.fts.name).op("MATCH")(match)))


MESSAGES = Source(Message, Message.content, message_search, message_search_keys, "message_id")
TITLES = Source(Conversation, Conversation.title, conversation_search, conversation_search_keys,
                "conversation_id")


def search(user_id, q, limit, before=None):
    """{"items": up to `limit` hits older than `before` ((created_at, id)), newest first,
    "next": the cursor after the last one, or None when there are no more}."""
    dialect = db.session.get_bind().dialect.name
    connection = db.session.connection()
    hits = [Hit(*row) for source in (MESSAGES, TITLES)
            for row in connection.execute(*query(source, dialect, user_id, q, limit + 1, before))]
    hits.sort(key=lambda hit: (hit.created_at, hit.id), reverse=True)
    page = hits[:limit]
    more = len(hits) > limit
    return {"items": [item(hit, q, dialect) for hit in page],
            "next": (page[-1].created_at, page[-1].id) if more else None}


def query(source, dialect, user_id, q, limit, before):
    """(the statement, its values) for `source`'s hits."""
    fts = len(q) >= TRIGRAM and dialect == "sqlite" and fts_is_worth_it(source, q)
    values = {"user_id": user_id, "needle": needle_value(q, dialect), "limit": limit}
    if fts:
        values["match"] = every_trigram(q)
    if before is not None:
        values["before_created_at"], values["before_id"] = before
    return statement(source, dialect, fts, before is not None, len(q) < TRIGRAM,
                     caseless(q)), values


@cache
def statement(source, dialect, fts, after_cursor, short, needle_is_caseless):
    """query()'s statement for one shape, built once: building it costs more CPU than running
    it; its values are bound when it runs."""
    user_id = bindparam("user_id", type_=Integer())
    found = source.hits_query(user_id, owner_index=not fts).where(
        contains_bound(source.text, dialect, needle_is_caseless,
                       bindparam("needle", type_=String())))
    if after_cursor:
        found = found.where(source.older_than((
            bindparam("before_created_at", type_=source.model.created_at.type),
            bindparam("before_id", type_=String()))))
    if short:
        newest = source.newest_first(source.hits_query(user_id).with_only_columns(
            source.model.id)).limit(SHORT_QUERY_SCAN)
        found = found.where(source.model.id.in_(newest.scalar_subquery()))
    elif fts:
        found = found.where(source.model.id.in_(
            source.fts_rows(bindparam("match", type_=String())).scalar_subquery()))
    elif dialect == "postgresql" and source.model is Message:
        found = found.where(in_owners_conversations(user_id))
    return source.newest_first(found).limit(bindparam("limit", type_=Integer()))


def in_owners_conversations(user_id):
    """The caller's conversations as an array, which lets PostgreSQL AND the bitmap of the
    caller's messages (ix_messages_conversation_created) with the trigram index's: a text in
    many users' messages is then checked in the caller's rows only. (Its statistics cannot
    tell a common text from a rare one: texts over 1 kB are left out of them.)"""
    owned = select(Conversation.id).where(Conversation.user_id == user_id).scalar_subquery()
    return Message.conversation_id == any_(func.array(owned, type_=ARRAY(String)))


def fts_is_worth_it(source, q):
    return db.session.connection().execute(
        fts_probe(source), {"match": every_trigram(q)}).scalar() < FTS_MATCHES_WORTH_IT


@cache
def fts_probe(source):
    """The count of `source`'s FTS5 matches, up to FTS_MATCHES_WORTH_IT, built once."""
    return select(func.count()).select_from(source.fts_rows(
        bindparam("match", type_=String())).limit(FTS_MATCHES_WORTH_IT).subquery())


def item(hit, q, dialect):
    return {"conversation_id": hit.conversation_id,
            "conversation_title": hit.conversation_title, "message_id": hit.message_id,
            "role": hit.role, "snippet": snippet(hit.text, q, dialect),
            "created_at": hit.created_at}


def snippet(text, q, dialect):
    """About SNIPPET_CHARS characters of `text` around the first match of `q`, HTML-escaped,
    the match in <mark>; whitespace runs as one space; … where the text was cut."""
    start, end = first_match(text, q, dialect)
    context = max(0, SNIPPET_CHARS - (end - start))
    first, last = start - context // 2, end + context - context // 2
    if first < 0:
        first, last = 0, last - first
    if last > len(text):
        first, last = max(0, first - (last - len(text))), len(text)
    before, match, after = text[first:start], text[start:end], text[end:last]
    return "".join([ELLIPSIS if first > 0 else "", shown(before),
                    "<mark>" + shown(match) + "</mark>" if match else "", shown(after),
                    ELLIPSIS if last < len(text) else ""])


def shown(text):
    return html.escape(SPACES.sub(" ", text))


def first_match(text, q, dialect):
    """(start, end) of `q` in `text` as the database matched it (folded); (0, 0) if folding
    character by character finds it nowhere (a fold that depends on context)."""
    needle, folded = fold(q, dialect), fold(text, dialect)
    if len(folded) == len(text):
        start = folded.find(needle)
        return (start, start + len(needle)) if start >= 0 else (0, 0)
    # A fold changed lengths (ß -> ss): the characters whose folds hold the match. Each
    # character folds alone, so a prefix's fold grows with it: found by halving, folding whole
    # prefixes in C (a loop over the characters in Python took 0.8 s a megabyte, for each
    # hit of a page).
    start = folded.find(needle)
    if start < 0:
        return 0, 0
    grown = len(folded) - len(text)
    return (prefix_folding_past(text, start, grown, dialect) - 1,
            prefix_folding_past(text, start + len(needle) - 1, grown, dialect))


def prefix_folding_past(text, length, grown, dialect):
    """The length of the shortest prefix of `text` whose fold is longer than `length`. A
    character folds into one or more, and the whole text's fold is `grown` longer: that
    prefix is at most `length` + 1 long, at least `length` + 1 - `grown`."""
    low, high = max(0, length + 1 - grown), min(len(text), length + 1)
    while low < high:
        middle = (low + high) // 2
        if len(fold(text[:middle], dialect)) > length:
            high = middle
        else:
            low = middle + 1
    return low
