from flask import current_app, request
from flask_jwt_extended import current_user, get_jwt
from .blueprint import Blueprint

from ..language import request_language
from ..models.timestamps import utcnow
from ..schemas.auth import (AccessTokenSchema, AccountSchema, LoginResultSchema, LoginSchema,
                            LogoutSchema, RegisterSchema, UserRefSchema)
from ..schemas.envelope import envelope
from ..services import quotas, tokens, users
from ..texts import say
from .security import login_required, public, refresh_token_required, revocations

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Accounts and tokens")


@blp.route("/register", methods=["POST"])
@public
@blp.errors(409, 429)
@blp.arguments(RegisterSchema)
@blp.response(201, envelope(UserRefSchema))
def register(body):
    """Register a new account"""
    language = request_language()
    user = users.register(body, request.remote_addr,
                          current_app.extensions["chatapi.rate_limiter"],
                          current_app.config["REGISTER_LIMIT"], language)
    return {"message": say("registered", language), "data": user}


@blp.route("/login", methods=["POST"])
@public
@blp.errors(401, 403, 429)
@blp.arguments(LoginSchema)
@blp.response(200, envelope(LoginResultSchema))
def login(body):
    """Log in with a username and password"""
    user = users.log_in(body["username"], body["password"], request.remote_addr,
                        current_app.extensions["chatapi.rate_limiter"],
                        current_app.config["LOGIN_FAILURE_LIMIT"],
                        current_app.config["LOGIN_ADDRESS_FAILURE_LIMIT"])
    result = tokens.issue_tokens(user, current_app.config)
    result["user"] = user
    return {"message": say("logged_in", request_language()), "data": result}


@blp.route("/refresh", methods=["POST"])
@refresh_token_required
@blp.response(200, envelope(AccessTokenSchema))
def refresh():
    """Get a new access token with a refresh token"""
    return {"message": say("token_refreshed", request_language()),
            "data": tokens.access_token_for(current_user, current_app.config)}


@blp.route("/logout", methods=["POST"])
@login_required
@blp.arguments(LogoutSchema)
@blp.response(200, envelope())
def logout(body):
    """Revoke the access token (and a refresh token, if given)"""
    language = request_language()
    if "refresh_token" in body:
        tokens.revoke_refresh_token(revocations(), body["refresh_token"], current_user.id,
                                    language)
    tokens.revoke(revocations(), get_jwt())
    return {"message": say("logged_out", language)}


@blp.route("/me")
@login_required
@blp.response(200, envelope(AccountSchema))
def me():
    """Get the calling user's account and token quota"""
    return {"data": quotas.account_with_quota(
        current_user, current_app.config["TOKEN_QUOTA"],
        current_app.extensions["chatapi.token_meter"], utcnow())}
