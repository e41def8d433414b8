from flask import current_app, request
from flask_jwt_extended import current_user, get_jwt
from .blueprint import Blueprint

from ..language import request_language
from ..models.timestamps import utcnow
from ..schemas.auth import (AccessTokenSchema, AccountDeletionSchema, AccountSchema,
                            LoginResultSchema, LoginSchema, LogoutSchema, PasswordChangeSchema,
                            RegisterSchema, TokenPairSchema, UserRefSchema)
from ..schemas.envelope import envelope
from ..services import account_deletion, quotas, tokens, users
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


@blp.route("/password", methods=["POST"])
@login_required
@blp.errors(429)
@blp.arguments(PasswordChangeSchema)
@blp.response(200, envelope(TokenPairSchema))
def change_password(body):
    """Change the calling user's password: every earlier token ends, new ones are returned"""
    language = request_language()
    confirm_password(body["current_password"])
    account = users.account(current_user)
    users.change_password(account, body["current_password"], body["new_password"], language)
    return {"message": say("password_changed", language),
            "data": tokens.issue_tokens(account, current_app.config)}


@blp.route("/me", methods=["DELETE"])
@login_required
@blp.errors(429)
@blp.arguments(AccountDeletionSchema)
@blp.response(200, envelope())
def delete_account(body):
    """Delete the calling user's account and everything it owns"""
    confirm_password(body["password"])
    account_deletion.delete_account(current_user, current_app.extensions["chatapi.answers"])
    return {"message": say("account_deleted", request_language())}


def confirm_password(password):
    """The caller's password, checked under the login's limits."""
    users.confirm_password(current_user, password, request.remote_addr,
                           current_app.extensions["chatapi.rate_limiter"],
                           current_app.config["LOGIN_FAILURE_LIMIT"],
                           current_app.config["LOGIN_ADDRESS_FAILURE_LIMIT"])
