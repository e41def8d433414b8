"""Walks of a conversation's message tree (docs/API.md §4, "Branches"), each one statement:
a recursive CTE, the same on SQLite as on PostgreSQL."""
from sqlalchemy import Integer, bindparam, literal, select
from sqlalchemy.orm import aliased

from ..errors import ValidationFailed
from ..extensions import db
from ..models import Message
from ..models.message import ID_FORMAT


def branch(conversation_id, leaf_id):
    """The branch that ends at `leaf_id`, as a CTE of (id, depth): the leaf is depth 0, its
    parent 1, up to the root."""
    walk = (select(Message.id, Message.parent_id, literal(0, Integer).label("depth"))
            .where(Message.id == leaf_id, Message.conversation_id == conversation_id)
            .cte("branch", recursive=True))
    parent = aliased(Message)
    return walk.union_all(
        select(parent.id, parent.parent_id, walk.c.depth + 1)
        .where(parent.id == walk.c.parent_id, parent.conversation_id == conversation_id))


MESSAGES = Message.__table__


def branch_rows_statement():
    """What a new answer needs of a branch, leaf first: (id, role, content, tool_calls,
    status) of each message from `leaf_id` up to the root of `conversation_id`. Built once:
    building the recursive walk costs more CPU than running it."""
    conversation_id = bindparam("conversation_id")
    walk = (select(MESSAGES.c.id, MESSAGES.c.parent_id, literal(0, Integer).label("depth"))
            .where(MESSAGES.c.id == bindparam("leaf_id"),
                   MESSAGES.c.conversation_id == conversation_id)
            .cte("branch", recursive=True))
    parent = MESSAGES.alias("parent")
    walk = walk.union_all(
        select(parent.c.id, parent.c.parent_id, walk.c.depth + 1)
        .where(parent.c.id == walk.c.parent_id, parent.c.conversation_id == conversation_id))
    return (select(MESSAGES.c.id, MESSAGES.c.role, MESSAGES.c.content, MESSAGES.c.tool_calls,
                   MESSAGES.c.status)
            .join(walk, walk.c.id == MESSAGES.c.id).order_by(walk.c.depth.asc()))


BRANCH_ROWS = branch_rows_statement()


def leaf_first(conversation_id, leaf_id):
    return db.session.connection().execute(
        BRANCH_ROWS, {"conversation_id": conversation_id, "leaf_id": leaf_id}).all()


def branch_rows(conversation_id, leaf_id):
    """The branch that ends at `leaf_id` as a new answer's history needs it (rows of id, role,
    content, tool_calls, status), root first; nothing when `leaf_id` is None."""
    if leaf_id is None:
        return []
    rows = leaf_first(conversation_id, leaf_id)
    rows.reverse()
    return rows


def history_to_follow(conversation_id, leaf_id):
    """(what a message sent without `parent_id` follows, the branch up to it as `branch_rows`
    gives it), in one walk of the tree: the last answer of the branch ending at `leaf_id`
    (None when it has none). An answer still being written (`in_progress`) is passed over,
    so a message sent meanwhile becomes a sibling of the one being answered."""
    if leaf_id is None:
        return None, []
    rows = leaf_first(conversation_id, leaf_id)
    for position, row in enumerate(rows):
        if row.role == "assistant" and row.status != "in_progress":
            kept = rows[position:]
            kept.reverse()
            return row.id, kept
    return None, []


def newest_child(conversation_id, parent_id):
    """The newest message that follows `parent_id` (a column or a value; None: the newest
    first message), as a scalar subquery."""
    child = aliased(Message)
    follows = (child.parent_id.is_(None) if parent_id is None
               else child.parent_id == parent_id)
    return (select(child.id).where(follows, child.conversation_id == conversation_id)
            .order_by(child.created_at.desc(), child.id.desc()).limit(1).scalar_subquery())


def newest_descendant(conversation_id, message_id):
    """Where a branch switch to `message_id` lands: its newest child, that one's newest child,
    and so on (`message_id` itself when it has none; None for parent None in an empty
    conversation)."""
    start = message_id if message_id is not None else db.session.scalar(
        select(newest_child(conversation_id, None)))
    if start is None:
        return None
    walk = (select(Message.id, literal(0, Integer).label("depth"))
            .where(Message.id == start, Message.conversation_id == conversation_id)
            .cte("descent", recursive=True))
    walk = walk.union_all(
        select(Message.id, walk.c.depth + 1).select_from(walk)
        .join(Message, Message.id == newest_child(conversation_id, walk.c.id)))
    return db.session.scalar(select(walk.c.id).order_by(walk.c.depth.desc()).limit(1))


def message_in(conversation_id, message_id, field, role=None):
    """The message `message_id` of this conversation (of `role`, when given), or a 422 naming
    `field`: a message of another conversation or user is not one to follow or switch to."""
    message = None
    if ID_FORMAT.fullmatch(message_id):
        message = db.session.scalar(select(Message).where(
            Message.id == message_id, Message.conversation_id == conversation_id))
    if message is None or (role is not None and message.role != role):
        what = "an assistant message" if role == "assistant" else "a message"
        raise ValidationFailed(details={field: [f"Not {what} of this conversation."]})
    return message


def answer_to_follow(conversation_id, message_id):
    """The answer a new user message may follow: an assistant message of this conversation,
    finished (a half-written answer is no history to follow), or a 422 naming `parent_id`."""
    answer = message_in(conversation_id, message_id, "parent_id", role="assistant")
    if answer.status == "in_progress":
        raise ValidationFailed(details={"parent_id": [
            "That answer is still being written: follow it once it has ended."]})
    return answer


def question_of(message):
    """The user message an answer replies to (a user message is its own): what regenerating
    `message` answers again. Read as stored now, not as the session loaded it before: this
    runs again under the tree's lock."""
    if message.role == "user":
        return message
    parent = None if message.parent_id is None else db.session.scalar(
        select(Message).where(Message.id == message.parent_id)
        .execution_options(populate_existing=True))
    if parent is None or parent.role != "user":
        raise ValidationFailed(details={"message_id": [
            "No user message comes before this answer."]})
    return parent
