"""`Idempotency-Key` (docs/API.md §4, "Idempotency-Key"): a request that starts an answer,
sent again with the same key by the same user within IDEMPOTENCY_TTL_HOURS, stores nothing
and calls no provider; it is answered from the answer the first one started. Browser SSE
clients re-send a POST after a network error or when a hidden tab becomes visible."""
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..errors import ValidationFailed
from ..extensions import db
from ..models import IdempotencyKey
from ..models.timestamps import utcnow

log = logging.getLogger(__name__)

SEND, REGENERATE = "send", "regenerate"
HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class KeyedRequest:
    """A request that came with a key: who sent it, which kind (a stream or not is the same
    request) and a fingerprint of what it asked."""

    user_id: int
    key: str
    kind: str
    fingerprint: str
    ttl_hours: float


@dataclass(frozen=True)
class FirstAnswer:
    answer_id: str
    user_message_id: str


def keyed_request(user_id, key, kind, body, ttl_hours, message_id=None):
    canonical = json.dumps({"message_id": message_id, "body": body}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return KeyedRequest(user_id, key, kind, hashlib.sha256(canonical.encode()).hexdigest(),
                        ttl_hours)


def begin_once(request, begin):
    """(the exchange `begin(request)` started, None) for a new key (or no key: `request` None);
    (None, the FirstAnswer) for a repeat, even one that raced the first and lost on the key's
    unique row. The same key for another request: 422."""
    if request is None:
        return begin(None), None
    first = first_answer(request)
    if first is not None:
        return None, first
    try:
        return begin(request), None
    except IntegrityError:
        # The row of a repeat sent at the same time got in first (chat.start rolled back).
        first = first_answer(request)
        if first is None:
            raise
        log.info("a repeat of answer %s's request came while it was stored", first.answer_id)
        return None, first


def first_answer(request):
    row = db.session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.user_id == request.user_id, IdempotencyKey.key == request.key))
    if row is None:
        return None
    if row.created_at < utcnow() - timedelta(hours=request.ttl_hours):
        # Expired and not swept yet: the key is free again.
        db.session.delete(row)
        db.session.commit()
        return None
    if (row.kind, row.fingerprint) != (request.kind, request.fingerprint):
        raise ValidationFailed(details={HEADER: [
            "Was sent with another request within the last "
            f"{request.ttl_hours:g} hours: use a new key for a new request."]})
    return FirstAnswer(row.answer_id, row.user_message_id)


def remember(request, answer_id, user_message_id):
    """The key's row, added to the transaction that stores the answer's row."""
    db.session.add(IdempotencyKey(
        user_id=request.user_id, key=request.key, kind=request.kind,
        fingerprint=request.fingerprint, answer_id=answer_id,
        user_message_id=user_message_id, created_at=utcnow()))


def sweep(ttl_hours):
    """Forget the keys older than `ttl_hours`."""
    cutoff = utcnow() - timedelta(hours=ttl_hours)
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff)
                       .execution_options(synchronize_session=False))
    db.session.commit()
