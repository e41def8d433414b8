"""Who is calling: bearer tokens checked against revocation and the account's state."""
import re
from datetime import datetime, timezone

from flask import current_app
from flask_jwt_extended import jwt_required
from .blueprint import Blueprint

from ..extensions import jwt
from ..services import users

BEARER = [{"bearerAuth": []}]
# Tokens name their account as str(user.id), and nothing else does: not 1, true, 1.9, " 1",
# "+1", "01" or "١" (which int() would all read as user 1), nor a number past the id column.
SUBJECT = re.compile(r"[1-9][0-9]{0,9}")
MAX_USER_ID = 2 ** 31 - 1


def login_required(view):
    return Blueprint.doc(security=BEARER)(jwt_required()(view))


def refresh_token_required(view):
    return Blueprint.doc(security=BEARER)(jwt_required(refresh=True)(view))


def public(view):
    return Blueprint.doc(security=[])(view)


def revocations():
    return current_app.extensions["chatapi.revocations"]


@jwt.token_in_blocklist_loader
def token_is_revoked(_header, claims):
    return revocations().is_revoked(claims["jti"])


@jwt.user_lookup_loader
def load_active_user(_header, claims):
    """A deactivated (or deleted) account's tokens stop working on its next request."""
    subject, issued_at = claims.get("sub"), claims.get("iat")
    if not (isinstance(subject, str) and SUBJECT.fullmatch(subject)
            and int(subject) <= MAX_USER_ID and isinstance(issued_at, int) and issued_at >= 0):
        return None
    return users.get_active_user(int(subject), datetime.fromtimestamp(issued_at, timezone.utc))
