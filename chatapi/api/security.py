"""Who is calling: bearer tokens checked against revocation and the account's state."""
from flask import current_app
from flask_jwt_extended import jwt_required
from .blueprint import Blueprint

from ..extensions import jwt
from ..services import users

BEARER = [{"bearerAuth": []}]


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
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError):
        return None
    return users.get_active_user(user_id)
