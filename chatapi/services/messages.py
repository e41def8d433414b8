"""Stored messages, reached only through a conversation the caller owns."""
from sqlalchemy import and_, func, or_, select
from sqlalchemy import update as update_rows

from ..errors import NotFound, ValidationFailed
from ..extensions import db
from ..models import Conversation, Message
from ..models.message import ID_FORMAT
from . import conversations


def chronological():
    return Message.created_at.asc(), Message.id.asc()


def older_than(message):
    return or_(Message.created_at < message.created_at,
               and_(Message.created_at == message.created_at, Message.id < message.id))


def list_page(user_id, conversation_id, limit, before=None):
    """The newest `limit` messages (older than `before` when given), oldest first."""
    conversation = conversations.get_owned(user_id, conversation_id)
    in_conversation = Message.conversation_id == conversation.id
    conditions = [in_conversation]
    if before is not None:
        anchor = db.session.scalar(select(Message).where(in_conversation, Message.id == before))
        if anchor is None:
            raise ValidationFailed(details={"before": ["Not a message of this conversation."]})
        conditions.append(older_than(anchor))
    newest_first = db.session.scalars(
        select(Message).where(*conditions)
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)).all()
    total = db.session.scalar(select(func.count()).select_from(Message).where(in_conversation))
    return {"items": list(reversed(newest_first[:limit])), "total": total,
            "has_more": len(newest_first) > limit}


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


def delete(message):
    """Remove one message: its children follow its parent (a chain may then hold two messages
    of one role in a row), and if it ended the active branch, its parent does now."""
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
    conversations.move_current_from(message.conversation_id, message.id, parent_id)
    db.session.delete(message)
    db.session.commit()


def still_there(message_id):
    return db.session.scalar(select(Message.id).where(Message.id == message_id)) is not None


def replayable_history(conversation_id):
    """What the model sees of earlier turns: everything but failed answers, in order."""
    return db.session.scalars(
        select(Message).where(Message.conversation_id == conversation_id,
                              Message.status != "error")
        .order_by(*chronological())).all()
