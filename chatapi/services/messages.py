"""Stored messages, reached only through a conversation the caller owns."""
from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy import update as update_rows

from ..errors import NotFound, ValidationFailed
from ..extensions import db
from ..models import Conversation, Message
from ..models.message import ID_FORMAT
from . import conversations, tree


def chronological():
    return Message.created_at.asc(), Message.id.asc()


def older_than(message):
    return or_(Message.created_at < message.created_at,
               and_(Message.created_at == message.created_at, Message.id < message.id))


def list_page(user_id, conversation_id, limit, before=None, leaf=None, view="branch"):
    """The newest `limit` messages of the view (older than `before` when given), oldest first.
    The view is the active branch, the branch ending at `leaf`, or (view "tree") every
    message. Each message is a plain dict of its row: a listing changes nothing."""
    conversation = conversations.owned_row(user_id, conversation_id)
    if view == "tree":
        page = tree_page(conversation.id, limit, before)
    else:
        if leaf is None:
            leaf = conversation.current_message_id
        else:
            tree.message_in(conversation.id, leaf, "leaf")
        page = branch_page(conversation.id, leaf, limit, before)
    found = siblings(conversation.id, {item["parent_id"] for item in page["items"]})
    for item in page["items"]:
        item["sibling_ids"] = found.get(item["parent_id"], [item["id"]])
    return page


def not_in_view():
    return ValidationFailed(details={"before": ["Not a message of this view."]})


COLUMNS = tuple(Message.__table__.columns)
NAMES = tuple(column.key for column in COLUMNS)


def tree_page(conversation_id, limit, before):
    in_conversation_ = Message.conversation_id == conversation_id
    conditions = [in_conversation_]
    if before is not None:
        anchor = db.session.scalar(select(Message).where(in_conversation_, Message.id == before))
        if anchor is None:
            raise not_in_view()
        conditions.append(older_than(anchor))
    newest_first = db.session.execute(
        select(*COLUMNS).where(*conditions)
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)).all()
    total = db.session.scalar(select(func.count()).select_from(Message).where(in_conversation_))
    return {"items": [row._asdict() for row in reversed(newest_first[:limit])],
            "total": total, "has_more": len(newest_first) > limit}


def branch_page(conversation_id, leaf, limit, before):
    """One query for the page and the view's total; the branch is in order by depth, which for
    a single branch is the order of (created_at, id). Rows of the message table."""
    if leaf is None:
        if before is not None:
            raise not_in_view()
        return {"items": [], "total": 0, "has_more": False}
    values = {"conversation_id": conversation_id, "leaf": leaf, "limit": limit + 1}
    if before is None:
        rows = db.session.connection().execute(NEWEST_OF_BRANCH, values).all()
    else:
        walk = tree.branch(conversation_id, leaf)
        anchor_depth = db.session.scalar(select(walk.c.depth).where(walk.c.id == before))
        if anchor_depth is None:
            raise not_in_view()
        rows = db.session.execute(
            branch_page_query(walk, bindparam("limit"), anchor_depth), values).all()
    # Each row is the message's columns, then the total: zip() leaves the total out.
    newest_first = [dict(zip(NAMES, row)) for row in rows]
    return {"items": list(reversed(newest_first[:limit])),
            "total": rows[0][-1] if rows else branch_total(conversation_id, leaf),
            "has_more": len(newest_first) > limit}


def branch_page_query(walk, limit, anchor_depth=None):
    """(the message's columns..., the branch's total) for up to `limit` messages of the branch
    `walk`, newest first, all older than the message at `anchor_depth` when given."""
    conditions = [] if anchor_depth is None else [walk.c.depth > anchor_depth]
    # The page's ids first: only those rows are read whole, not the whole branch's.
    page = (select(walk.c.id, walk.c.depth).where(*conditions).order_by(walk.c.depth.asc())
            .limit(limit).subquery("page"))
    total = select(func.count()).select_from(walk).scalar_subquery()
    return (select(*COLUMNS, total).join(page, page.c.id == Message.id)
            .order_by(page.c.depth.asc()))


# branch_page_query for the newest page, built once (its values are bound when it runs:
# building the recursive statement costs more CPU than running it).
NEWEST_OF_BRANCH = branch_page_query(tree.branch(bindparam("conversation_id"), bindparam("leaf")),
                                     bindparam("limit"))


def branch_total(conversation_id, leaf):
    walk = tree.branch(conversation_id, leaf)
    return db.session.scalar(select(func.count()).select_from(walk))


def siblings(conversation_id, parent_ids):
    """{parent id: the ids of its children in this conversation, oldest first}; None stands
    for the conversation's first messages."""
    if not parent_ids:
        return {}
    values = {"conversation_id": conversation_id}
    # One parent (an answer's start and end) goes without the IN list, which SQLAlchemy
    # renders anew on every run.
    if len(parent_ids) > 1:
        statement = SAME_PARENTS
        values.update(has_roots=None in parent_ids,
                      parents=[parent for parent in parent_ids if parent is not None])
    elif None in parent_ids:
        statement = ROOTS
    else:
        statement = SAME_PARENT
        (values["parent"],) = parent_ids
    rows = db.session.connection().execute(statement, values).all()
    found = {}
    for row in rows:
        found.setdefault(row.parent_id, []).append(row.id)
    return found


SAME_PARENTS = (select(Message.id, Message.parent_id)
                .where(Message.conversation_id == bindparam("conversation_id"),
                       or_(Message.parent_id.in_(bindparam("parents", expanding=True)),
                           and_(bindparam("has_roots"), Message.parent_id.is_(None))))
                .order_by(*chronological()))
SAME_PARENT = (select(Message.id, Message.parent_id)
               .where(Message.conversation_id == bindparam("conversation_id"),
                      Message.parent_id == bindparam("parent"))
               .order_by(*chronological()))
ROOTS = (select(Message.id, Message.parent_id)
         .where(Message.conversation_id == bindparam("conversation_id"),
                Message.parent_id.is_(None))
         .order_by(*chronological()))


def attach_siblings(page):
    """Give each message `sibling_ids`: the messages with its parent in its conversation,
    itself included, oldest first. One query for the messages of one conversation."""
    by_conversation = {}
    for message in page:
        by_conversation.setdefault(message.conversation_id, set()).add(message.parent_id)
    found = {conversation_id: siblings(conversation_id, parents)
             for conversation_id, parents in by_conversation.items()}
    for message in page:
        of_conversation = found[message.conversation_id]
        message.sibling_ids = of_conversation.get(message.parent_id, [message.id])
    return page


def attach_siblings_of(message):
    """attach_siblings([message]) for the one message an answer's start or end shows."""
    return attach_siblings([message])[0]


def get_owned(user_id, message_id):
    """Another user's message, a malformed id and a missing id are the same 404."""
    if not ID_FORMAT.fullmatch(message_id):
        raise NotFound()
    message = db.session.scalar(
        select(Message).join(Message.conversation)
        .where(Message.id == message_id, Conversation.user_id == user_id))
    if message is None:
        raise NotFound()
    return message


def answer_owned(user_id, message_id):
    """The caller's answer `message_id`: 404 as get_owned, 422 for a user message."""
    message = get_owned(user_id, message_id)
    if message.role != "assistant":
        raise ValidationFailed(details={"message_id": [
            "A user message has no answer of its own here: name the answer."]})
    return message


def answer_as_stored(answer_id):
    """The answer as its row is now (after its writer stored it), with its siblings."""
    db.session.expire_all()
    message = db.session.scalar(select(Message).where(Message.id == answer_id))
    if message is None:
        raise NotFound()
    return attach_siblings([message])[0]


def delete(message):
    """Remove one message: its children follow its parent (a chain may then hold two messages
    of one role in a row), and if it ended the active branch, its parent's newest descendant
    does now."""
    conversations.count_messages(message.conversation_id, -1)
    # Read again under the conversation's lock: a concurrent delete may have moved it.
    row = db.session.execute(
        select(Message.parent_id).where(Message.id == message.id)).one_or_none()
    if row is None:
        db.session.rollback()
        raise NotFound()
    parent_id = row.parent_id
    db.session.execute(
        update_rows(Message).where(Message.parent_id == message.id).values(parent_id=parent_id)
        .execution_options(synchronize_session=False))
    was_current = conversations.current_message_id(message.conversation_id) == message.id
    db.session.delete(message)
    db.session.flush()
    if was_current:
        conversations.move_current(message.conversation_id,
                                   tree.newest_descendant(message.conversation_id, parent_id))
    db.session.commit()
