import secrets
import unicodedata

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .timestamps import UTCDateTime, utcnow

ROLES = ("user", "admin")


def username_key(username):
    """The form two usernames are compared in: `Alice` and `alice` are one account."""
    return unicodedata.normalize("NFKC", username).casefold()


def new_token_key():
    """The key every token of the account carries: a new one ends all of them."""
    return secrets.token_urlsafe(16)


class User(db.Model):
    __tablename__ = "users"
    # AUTOINCREMENT: SQLite would otherwise give a new account the id of a deleted last one.
    # (PostgreSQL's sequence never hands an id out twice.)
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    token_key: Mapped[str] = mapped_column(String(32), default=new_token_key)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # This account's token quota (`200000 per day`, `none`); None: TOKEN_QUOTA's.
    token_quota: Mapped[str | None] = mapped_column(String(64))

    conversations = relationship("Conversation", back_populates="user",
                                 cascade="all, delete-orphan", passive_deletes=True)

    @property
    def is_admin(self):
        return self.role == "admin"

    def __repr__(self):
        return f"<User {self.id} {self.username!r}>"
