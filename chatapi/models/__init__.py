from .revoked_token import RevokedToken
from .user import User

__all__ = ["RevokedToken", "User"]
