import re
import secrets

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from ..extensions import db
from .timestamps import UTCDateTime, utcnow

JSONDocument = JSON().with_variant(JSONB(), "postgresql")


def without_nul(value):
    """`value` (text, or a JSON document) with each NUL replaced by U+FFFD: PostgreSQL holds
    NUL neither in text nor in jsonb, and what the model or a tool produces may have one."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return value


def new_message_id():
    return "msg_" + secrets.token_urlsafe(16)


# What an id can look like (the column holds 40 characters); anything else names no message.
ID_FORMAT = re.compile(r"msg_[A-Za-z0-9_-]{1,36}")


class Message(db.Model):
    __tablename__ = "messages"
    # History is read oldest-to-newest (and newest-first for `limit`), within one conversation.
    # A message's children are found by parent (with the conversation: its roots too); the
    # parent comes first so that deleting a message, whose children the database must then
    # look up (ON DELETE SET NULL), is an index lookup and not a scan of every message.
    __table_args__ = (Index("ix_messages_conversation_created", "conversation_id", "created_at",
                            "id"),
                      Index("ix_messages_parent_conversation", "parent_id", "conversation_id"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_message_id)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"))
    # The message this one follows (None for a first message): the conversation is a tree.
    # services.messages.delete re-attaches a deleted message's children to its parent; SET NULL
    # only guards against a reference to a message that is gone.
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    reasoning_content: Mapped[str | None] = mapped_column(Text)
    tool_calls = mapped_column(JSONDocument, nullable=False, default=list)
    status: Mapped[str] = mapped_column(String(16), default="completed")
    error: Mapped[str | None] = mapped_column(Text)
    # The machine code of an answer's failure (`upstream_error`, `answer_interrupted`, ...).
    error_code: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(64))
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    usage = mapped_column(JSONDocument)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    conversation = relationship("Conversation", back_populates="messages",
                                foreign_keys=[conversation_id])

    @validates("content", "reasoning_content", "error", "tool_calls")
    def storable(self, _key, value):
        return without_nul(value)

    def __repr__(self):
        return f"<Message {self.id} {self.role} in {self.conversation_id}>"
