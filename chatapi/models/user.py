import unicodedata

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .timestamps import UTCDateTime, utcnow

ROLES = ("user", "admin")


def username_key(username):
    """The form two usernames are compared in: `Alice` and `alice` are one account."""
    return unicodedata.normalize("NFKC", username).casefold()


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    conversations = relationship("Conversation", back_populates="user",
                                 cascade="all, delete-orphan", passive_deletes=True)

    @property
    def is_admin(self):
        return self.role == "admin"

    def __repr__(self):
        return f"<User {self.id} {self.username!r}>"
