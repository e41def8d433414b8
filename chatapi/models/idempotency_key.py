from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .timestamps import UTCDateTime


class IdempotencyKey(db.Model):
    """An `Idempotency-Key` a user sent with a request that started an answer (docs/API.md §4,
    "Idempotency-Key"): what the request was and what it stored, so that a repeat is answered
    from it. Stored in the transaction that stores the answer's row; free again after
    IDEMPOTENCY_TTL_HOURS. No foreign key to the messages: a repeat of a request whose
    messages were deleted since is told so (404), not taken for a new request."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "send" or "regenerate"
    # sha256 of the request: its path's message id and its body as loaded.
    fingerprint: Mapped[str] = mapped_column(String(64))
    answer_id: Mapped[str] = mapped_column(String(40))
    user_message_id: Mapped[str] = mapped_column(String(40))
    created_at = mapped_column(UTCDateTime, nullable=False, index=True)
