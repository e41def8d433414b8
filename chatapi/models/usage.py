from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .timestamps import UTCDateTime

# SQLite gives an INTEGER PRIMARY KEY its rowid; BIGINT would not be one.
RecordId = BigInteger().with_variant(Integer(), "sqlite")


class UsageRecord(db.Model):
    """The tokens of one call to the model (docs/API.md §8, "Usage"): each round of an answer
    (a tool round is a call of its own), whether it completed, stopped or failed once the
    provider had answered. `estimated` when the provider sent no usage (a stream cut off).
    The conversation and the answer are kept as ids, without foreign keys, so that deleting
    them leaves what was spent counted."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_user_day", "user_id", "day"),)

    id: Mapped[int] = mapped_column(RecordId, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"))
    conversation_id: Mapped[str | None] = mapped_column(String(40))
    message_id: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    total_tokens: Mapped[int] = mapped_column(Integer)
    estimated: Mapped[bool] = mapped_column(Boolean)
    created_at = mapped_column(UTCDateTime, nullable=False)
    day = mapped_column(Date, nullable=False)  # of created_at, in UTC


class TokenCounter(db.Model):
    """A user's tokens of one UTC day, added to as calls are recorded: a quota's period is
    the sum of at most 31 of these, whatever the number of calls."""

    __tablename__ = "token_counters"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
