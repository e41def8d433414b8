from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .timestamps import UTCDateTime


class RevokedToken(db.Model):
    """A logged-out token's `jti`, kept until the token would have expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)
