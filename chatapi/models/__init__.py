from .answer_job import AnswerEvent, AnswerJob
from .conversation import Conversation
from .idempotency_key import IdempotencyKey
from .message import Message
from .revoked_token import RevokedToken
from .usage import TokenCounter, UsageRecord
from .user import User

__all__ = ["AnswerEvent", "AnswerJob", "Conversation", "IdempotencyKey", "Message",
           "RevokedToken", "TokenCounter", "UsageRecord", "User"]
