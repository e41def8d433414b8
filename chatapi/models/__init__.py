from .conversation import Conversation
from .revoked_token import RevokedToken
from .user import User

__all__ = ["Conversation", "RevokedToken", "User"]
