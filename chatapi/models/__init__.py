from .conversation import Conversation
from .message import Message
from .revoked_token import RevokedToken
from .user import User

__all__ = ["Conversation", "Message", "RevokedToken", "User"]
