"""Conversations, always looked up through their owner."""
from functools import cache

from sqlalchemy import bindparam, case, func, select
from sqlalchemy import update as update_rows

from ..errors import ApiError, NotFound
from ..extensions import db
from ..models import Conversation
from ..models.conversation import DEFAULT_TITLE, ID_FORMAT
from ..models.text_search import contains_folded
from ..models.timestamps import utcnow
from . import tree


def create(user_id, fields):
    conversation = Conversation(user_id=user_id, title_by_user="title" in fields, **fields)
    db.session.add(conversation)
    db.session.commit()
    return conversation


def get_owned(user_id, conversation_id):
    """The one look-up every view uses: another user's id, a malformed id and a missing id
    are the same 404."""
    if not ID_FORMAT.fullmatch(conversation_id):
        raise NotFound()
    conversation = db.session.scalar(select(Conversation).where(
        Conversation.id == conversation_id, Conversation.user_id == user_id))
    if conversation is None:
        raise NotFound()
    return conversation


def owned_row(user_id, conversation_id):
    """The conversation's (id, current_message_id) as get_owned finds it (the same 404), for a
    reader that changes nothing and needs no object."""
    if not ID_FORMAT.fullmatch(conversation_id):
        raise NotFound()
    row = db.session.connection().execute(OWNED_ROW, {"conversation_id": conversation_id,
                                                      "user_id": user_id}).one_or_none()
    if row is None:
        raise NotFound()
    return row


OWNED_ROW = select(Conversation.id, Conversation.current_message_id).where(
    Conversation.id == bindparam("conversation_id"), Conversation.user_id == bindparam("user_id"))


CONVERSATIONS = Conversation.__table__
# What an answer needs of its conversation: built once, read without the ORM's bookkeeping.
ANSWER_SETTINGS = select(
    CONVERSATIONS.c.id, CONVERSATIONS.c.model, CONVERSATIONS.c.system_prompt,
    CONVERSATIONS.c.temperature, CONVERSATIONS.c.max_tokens, CONVERSATIONS.c.thinking_enabled,
).where(CONVERSATIONS.c.id == bindparam("conversation_id"),
        CONVERSATIONS.c.user_id == bindparam("user_id"))


def answer_settings(user_id, conversation_id):
    """get_owned's look-up (the same 404s) of what an answer reads of its conversation: id,
    model, system_prompt, temperature, max_tokens, thinking_enabled."""
    if not ID_FORMAT.fullmatch(conversation_id):
        raise NotFound()
    settings = db.session.connection().execute(
        ANSWER_SETTINGS, {"conversation_id": conversation_id, "user_id": user_id}).first()
    if settings is None:
        raise NotFound()
    return settings


def list_filters(user_id, project_id=None, q=None, archived=False):
    conditions = [Conversation.user_id == user_id, Conversation.archived == archived]
    if project_id is not None:
        conditions.append(Conversation.project_id == project_id)
    if q:
        conditions.append(contains_folded(Conversation.title, q,
                                          db.session.get_bind().dialect.name))
    return conditions


def page_query(conditions, limit, offset):
    """Pinned first, then newest activity; the id breaks ties so pages never overlap or skip.
    Plain rows of the table's columns: a listing changes nothing, so it needs no objects."""
    return (select(*Conversation.__table__.columns).where(*conditions)
            .order_by(Conversation.pinned.desc(), Conversation.updated_at.desc(),
                      Conversation.id.desc())
            .limit(limit).offset(offset))


def count_query(conditions):
    return select(func.count()).select_from(Conversation).where(*conditions)


@cache
def bound_list_queries(with_project):
    """(page, count) for a list without a title filter, built once: building a statement
    costs more CPU than running it; the values are bound when it runs."""
    conditions = list_filters(bindparam("user_id"),
                              bindparam("project_id") if with_project else None,
                              archived=bindparam("archived"))
    return page_query(conditions, bindparam("limit"), bindparam("offset")), count_query(conditions)


def list_page(user_id, page, page_size, project_id=None, q=None, archived=False):
    skipped = (page - 1) * page_size
    values = {"user_id": user_id, "project_id": project_id, "archived": archived,
              "limit": page_size, "offset": skipped}
    if q:
        conditions = list_filters(user_id, project_id, q, archived)
        page_rows, count = page_query(conditions, page_size, skipped), count_query(conditions)
    else:
        page_rows, count = bound_list_queries(project_id is not None)
    # Through the connection: plain rows need none of the session's ORM handling.
    reads = db.session.connection()
    result = reads.execute(page_rows, values)
    names = tuple(result.keys())
    items = [dict(zip(names, row)) for row in result]
    if len(items) < page_size and (items or page == 1):
        # A page short of full is the last one: the total needs no count.
        total = skipped + len(items)
    else:
        total = reads.execute(count, values).scalar()
    return {"items": items, "total": total, "page": page, "page_size": page_size}


# Changes that only file the conversation or move around in it: `updated_at` stays.
NOT_ACTIVITY = frozenset({"pinned", "archived", "current_message_id"})


def update(conversation, fields):
    """Change the fields given. Switching branch, pinning and archiving are not activity
    (a rename or a new setting is): then `updated_at` stays."""
    activity = not NOT_ACTIVITY.issuperset(fields)
    switch_to = fields.pop("current_message_id", None)
    # Under the lock from here: neither the conversation nor the message switched to can be
    # deleted between the check and the write.
    try:
        if not lock(conversation.id):
            raise NotFound()
        if switch_to is not None:
            tree.message_in(conversation.id, switch_to, "current_message_id")
    except ApiError:
        db.session.rollback()
        raise
    for name, value in fields.items():
        setattr(conversation, name, value)
    if "title" in fields:
        conversation.title_by_user = True
    if not activity:
        conversation.updated_at = Conversation.updated_at
    db.session.flush()
    if switch_to is not None:
        move_current(conversation.id, tree.newest_descendant(conversation.id, switch_to))
    db.session.commit()
    db.session.refresh(conversation)
    return conversation


def delete(conversation):
    db.session.delete(conversation)
    db.session.commit()


def count_messages(conversation_id, change, **also):
    """Add `change` to the conversation's message count in the database itself (concurrent
    answers in one conversation must not lose a count) and mark it active; False when the
    conversation is gone."""
    counted = Conversation.message_count + change
    result = db.session.execute(
        update_rows(Conversation).where(Conversation.id == conversation_id)
        .values(message_count=case((counted < 0, 0), else_=counted), updated_at=utcnow(), **also)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


COUNTED = CONVERSATIONS.c.message_count + bindparam("change")
COUNT_AND_READ_CURRENT = (
    update_rows(CONVERSATIONS).where(CONVERSATIONS.c.id == bindparam("conversation_id"))
    .values(message_count=case((COUNTED < 0, 0), else_=COUNTED),
            updated_at=bindparam("now", type_=CONVERSATIONS.c.updated_at.type))
    .returning(CONVERSATIONS.c.current_message_id))


def count_messages_at(conversation_id, change):
    """count_messages, which also reads the end of the active branch as it is under the lock
    it takes, in the same statement: (False, None) when the conversation is gone, else (True,
    the end)."""
    row = db.session.connection().execute(COUNT_AND_READ_CURRENT, {
        "conversation_id": conversation_id, "change": change, "now": utcnow()}).first()
    return (False, None) if row is None else (True, row.current_message_id)


def retitle(conversation_id, title):
    """Set the title in the database itself while it is still the default and the user has
    not chosen it (the loaded object may be stale: a rename may have come since); True when
    it was set."""
    result = db.session.execute(
        update_rows(Conversation)
        .where(Conversation.id == conversation_id, Conversation.title_by_user.is_(False),
               Conversation.title == DEFAULT_TITLE)
        .values(title=title).execution_options(synchronize_session=False))
    return result.rowcount == 1


# The message tree. Every change to it first updates the conversation's row (count_messages):
# on PostgreSQL that row stays locked until the commit, on SQLite the database's write lock is
# held, so two changes to one conversation's tree never interleave.

def lock(conversation_id):
    """Take the lock a change to the tree takes, without counting it as activity; False when
    the conversation is gone."""
    result = db.session.execute(
        update_rows(Conversation).where(Conversation.id == conversation_id)
        .values(updated_at=Conversation.updated_at).execution_options(synchronize_session=False))
    return result.rowcount == 1


def current_message_id(conversation_id):
    """The end of the active branch, as stored now (not as a loaded object remembers it)."""
    return db.session.scalar(
        select(Conversation.current_message_id).where(Conversation.id == conversation_id))


def move_current(conversation_id, new_id, *conditions):
    """Make `new_id` the active branch's end (when `conditions` hold). Not activity by itself:
    a new message counts as activity where it is counted."""
    db.session.execute(
        update_rows(Conversation).where(Conversation.id == conversation_id, *conditions)
        .values(current_message_id=new_id, updated_at=Conversation.updated_at)
        .execution_options(synchronize_session=False))


MOVE_CURRENT = (update_rows(CONVERSATIONS)
                .where(CONVERSATIONS.c.id == bindparam("conversation_id"))
                .values(current_message_id=bindparam("new_id"),
                        updated_at=CONVERSATIONS.c.updated_at))


def move_current_to(conversation_id, new_id):
    """move_current without conditions, its statement built once."""
    db.session.connection().execute(MOVE_CURRENT, {"conversation_id": conversation_id,
                                                   "new_id": new_id})


def move_current_from(conversation_id, old_id, new_id):
    """Make `new_id` the active branch's end only while `old_id` still is (None: while the
    conversation has none): an answer that ends after the user moved on does not pull the
    branch back."""
    move_current(conversation_id, new_id,
                 Conversation.current_message_id.is_not_distinct_from(old_id))
