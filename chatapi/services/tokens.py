"""JWT issue, checks and revocation. Revoked `jti`s live where every worker sees them: the
database by default, Redis when `REDIS_URL` is set. Every token carries its account's
`token_key`; a new key (new password, deactivation) ends all of the account's tokens."""
import re
from datetime import datetime, timezone

from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import ExpiredSignatureError, InvalidTokenError
from sqlalchemy import Boolean, bindparam, delete, exists

from ..errors import ValidationFailed
from ..extensions import db
from ..models import RevokedToken
from ..models.timestamps import utcnow
from ..redis_store import failing_closed
from ..texts import say

TOKEN_KEY_CLAIM = "token_key"
TOKEN_TYPES = ("access", "refresh")
# Tokens name their account as str(user.id), and nothing else does: not 1, true, 1.9, " 1",
# "+1", "01" or "١" (which int() would all read as user 1), nor a number past the id column.
SUBJECT = re.compile(r"[1-9][0-9]{0,9}")
MAX_USER_ID = 2 ** 31 - 1
# A `jti` fits the revocation table's column and a Redis key; a token key is what
# models.user.new_token_key makes.
JTI = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOKEN_KEY = re.compile(r"[A-Za-z0-9_-]{1,32}")
# Times past the last second of year 9999 are no date: revoking such a token failed (a 500).
MAX_TIMESTAMP = 253402300799


def is_timestamp(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TIMESTAMP


def matches(pattern, value):
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def well_formed(claims):
    """Whether the claims are shaped as this service issues them: `sub`, `iat`, `exp`, `jti`,
    `type` and the account's token key, each of the type issued. The signature and the times
    are PyJWT's to check."""
    return (matches(SUBJECT, claims.get("sub")) and int(claims["sub"]) <= MAX_USER_ID
            and is_timestamp(claims.get("iat")) and is_timestamp(claims.get("exp"))
            and matches(JTI, claims.get("jti")) and claims.get("type") in TOKEN_TYPES
            and matches(TOKEN_KEY, claims.get(TOKEN_KEY_CLAIM)))


class DatabaseRevocations:
    def revoke(self, jti, expires_at):
        db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
        if db.session.get(RevokedToken, jti) is None:
            db.session.add(RevokedToken(jti=jti, expires_at=expires_at))
        db.session.commit()

    # Whether the token is revoked, as a SQL condition: asked within the account's query.
    revoked = exists().where(RevokedToken.jti == bindparam("jti"))

    def revoked_values(self, jti):
        return {"jti": jti}


class RedisRevocations:
    """Keys expire with the token, so nothing needs pruning. Unreachable Redis fails closed."""

    def __init__(self, client, prefix="chatapi:revoked:"):
        self.redis = client
        self.prefix = prefix

    def revoke(self, jti, expires_at):
        ttl = max(1, int((expires_at - utcnow()).total_seconds()) + 1)
        with failing_closed():
            self.redis.set(self.prefix + jti, 1, ex=ttl)

    # Asked of Redis first, then given to the account's query as a value.
    revoked = bindparam("revoked", type_=Boolean)

    def revoked_values(self, jti):
        with failing_closed():
            return {"revoked": bool(self.redis.exists(self.prefix + jti))}


def revocation_store(redis_client):
    if redis_client is not None:
        return RedisRevocations(redis_client)
    return DatabaseRevocations()


def access_token_for(user, config):
    return {
        "access_token": create_access_token(
            identity=str(user.id),
            additional_claims={"role": user.role, TOKEN_KEY_CLAIM: user.token_key}),
        "token_type": "bearer",
        "expires_in": config["JWT_ACCESS_TOKEN_EXPIRES_SECONDS"],
    }


def issue_tokens(user, config):
    tokens = access_token_for(user, config)
    tokens["refresh_token"] = create_refresh_token(
        identity=str(user.id), additional_claims={TOKEN_KEY_CLAIM: user.token_key})
    return tokens


def expiry_of(claims):
    return datetime.fromtimestamp(claims["exp"], timezone.utc)


def revoke(store, claims):
    store.revoke(claims["jti"], expiry_of(claims))


def revoke_refresh_token(store, refresh_token, user_id, language):
    """Logout may name the session's refresh token too; it must be a refresh token of the
    same user (else a 422 whose details are written in `language`). One that has already
    expired needs no revoking."""
    try:
        claims = decode_token(refresh_token, allow_expired=True)
    except (InvalidTokenError, JWTExtendedException, ExpiredSignatureError):
        claims = None
    if not claims or claims.get("type") != "refresh" or claims.get("sub") != str(user_id):
        raise ValidationFailed(details={"refresh_token": [say("invalid_refresh_token",
                                                              language)]})
    if expiry_of(claims) > utcnow():
        revoke(store, claims)
