import re
import secrets

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .timestamps import UTCDateTime, utcnow

DEFAULT_TITLE = "新会话"


def new_conversation_id():
    """`conv_` + 22 URL-safe characters (128 random bits): not guessable, not sequential."""
    return "conv_" + secrets.token_urlsafe(16)


# What an id can look like (the column holds 40 characters); anything else names no
# conversation and is never sent to the database, which may refuse it (NUL in PostgreSQL).
ID_FORMAT = re.compile(r"conv_[A-Za-z0-9_-]{1,35}")


class Conversation(db.Model):
    __tablename__ = "conversations"
    # The list query filters by owner (maybe project) and archived, and orders pinned first,
    # then by newest activity, with the id as tie-break; each index serves one shape of it
    # without a sort.
    __table_args__ = (
        Index("ix_conversations_user_list", "user_id", "archived", "pinned", "updated_at", "id"),
        Index("ix_conversations_user_project_list", "user_id", "project_id", "archived",
              "pinned", "updated_at", "id"),
        # Deleting a message makes the database look up the conversation it may be current of.
        Index("ix_conversations_current_message", "current_message_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_conversation_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200), default=DEFAULT_TITLE)
    # Set once the user chose the title (on create or by a rename): no title is made for it.
    title_by_user: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    model: Mapped[str] = mapped_column(String(64))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    temperature: Mapped[float] = mapped_column(Float, default=1.0)
    max_tokens: Mapped[int] = mapped_column(Integer, default=65536)
    thinking_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    # The last message of the active branch (None when empty). Conversations and messages
    # refer to each other: this key is added after both tables exist (use_alter).
    current_message_id: Mapped[str | None] = mapped_column(ForeignKey(
        "messages.id", ondelete="SET NULL", use_alter=True,
        name="fk_conversations_current_message_id_messages"))
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)

    user = relationship("User", back_populates="conversations")
    messages = relationship("Message", back_populates="conversation",
                            foreign_keys="Message.conversation_id",
                            cascade="all, delete-orphan", passive_deletes=True)

    def __repr__(self):
        return f"<Conversation {self.id} of user {self.user_id}>"
