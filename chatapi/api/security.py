"""Who is calling: bearer tokens checked for their shape, against revocation, and against the
account's state and token key. Every flask-jwt-extended callback is registered here: those that
check a token need the services, those that refuse one answer the envelope of errors.py, and
only this layer may use both (errors.py sits below the services)."""
from flask import current_app, request
from flask_jwt_extended import jwt_required
from .blueprint import Blueprint

from ..errors import error_response
from ..services import tokens, users

BEARER = [{"bearerAuth": []}]
CALLER = "chatapi.caller"


def login_required(view):
    return Blueprint.doc(security=BEARER)(jwt_required()(view))


def refresh_token_required(view):
    return Blueprint.doc(security=BEARER)(jwt_required(refresh=True)(view))


def public(view):
    return Blueprint.doc(security=[])(view)


def revocations():
    return current_app.extensions["chatapi.revocations"]


def token_is_revoked(_header, claims):
    return caller(claims)[1]


def load_active_user(_header, claims):
    """A deactivated or deleted account's tokens, and those issued before its password was
    last set, stop working on their next request."""
    return caller(claims)[0]


def caller(claims):
    """(the token's active account or None, whether the token is revoked): flask-jwt-extended
    asks the two apart, one query answers both, once per request and token (kept with the
    request: an app context, and its `g`, may outlive one)."""
    asked = request.environ.get(CALLER)
    if asked is None or asked[0] != claims["jti"]:
        store = revocations()
        asked = request.environ[CALLER] = (claims["jti"], *users.token_caller(
            int(claims["sub"]), claims[tokens.TOKEN_KEY_CLAIM], store.revoked,
            store.revoked_values(claims["jti"])))
    return asked[1:]


def register_jwt_callbacks(jwt):
    # Every token's claims as sent (for a request and for logout's `refresh_token` alike),
    # verified, before a missing `type` is taken for "access" and a missing `jti` for None.
    jwt.claims_check_loader(tokens.well_formed)
    jwt.token_in_blocklist_loader(token_is_revoked)
    jwt.user_lookup_loader(load_active_user)
    # Token failures, each answered with the envelope.
    jwt.unauthorized_loader(lambda _reason: error_response(401))
    jwt.invalid_token_loader(lambda _reason: error_response(401))
    jwt.expired_token_loader(lambda _header, _claims: error_response(401, "token_expired"))
    jwt.revoked_token_loader(lambda _header, _claims: error_response(401, "token_revoked"))
    jwt.needs_fresh_token_loader(lambda _header, _claims: error_response(401))
    jwt.user_lookup_error_loader(lambda _header, _claims: error_response(401))
    jwt.token_verification_failed_loader(lambda _header, _claims: error_response(401))
