from marshmallow import fields, validate

from ..models.user import ROLES
from ..texts import TEXTS
from .base import BaseSchema, OutputSchema, Timestamp

# `(?!\n)`: Python's `$` also matches before a final newline ("alice\n" would pass); `\Z` would
# say it for Python alone, but the pattern is the OpenAPI document's too (ECMA-262 regex).
USERNAME_PATTERN = r"^[\w.\-]{3,32}(?!\n)$"
# What a new password must be, at registration and when changed.
NEW_PASSWORD = validate.Length(8, 128)


class RegisterSchema(BaseSchema):
    username = fields.String(required=True, validate=validate.Regexp(
        USERNAME_PATTERN, error=TEXTS["invalid_username"][1]))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, load_only=True, validate=NEW_PASSWORD)


class LoginSchema(BaseSchema):
    username = fields.String(required=True, validate=validate.Length(1, 254),
                             metadata={"description": "username or email"})
    password = fields.String(required=True, load_only=True, validate=validate.Length(1, 1024))


class PasswordChangeSchema(BaseSchema):
    current_password = fields.String(required=True, load_only=True,
                                     validate=validate.Length(1, 1024))
    new_password = fields.String(required=True, load_only=True,
                                 validate=NEW_PASSWORD)


class AccountDeletionSchema(BaseSchema):
    password = fields.String(required=True, load_only=True, validate=validate.Length(1, 1024))


class LogoutSchema(BaseSchema):
    refresh_token = fields.String(validate=validate.Length(1, 4096))


class UserRefSchema(OutputSchema):
    id = fields.Integer()
    username = fields.String()


class UserBriefSchema(UserRefSchema):
    role = fields.String(metadata={"enum": list(ROLES)})


class UserSchema(UserBriefSchema):
    email = fields.String()
    is_active = fields.Boolean()
    created_at = Timestamp()


class QuotaSchema(OutputSchema):
    limit = fields.Integer(metadata={"description": "tokens a period"})
    period = fields.String(metadata={"enum": ["day", "week", "month"]})
    used = fields.Integer(metadata={"description": "tokens spent this period"})
    remaining = fields.Integer()
    resets_at = Timestamp(metadata={"description": "when the next period starts (UTC)"})


class AccountSchema(UserSchema):
    quota = fields.Nested(QuotaSchema, allow_none=True,
                          metadata={"description": "null: no token quota"})


class AccessTokenSchema(OutputSchema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()


class TokenPairSchema(AccessTokenSchema):
    refresh_token = fields.String()


class LoginResultSchema(TokenPairSchema):
    user = fields.Nested(UserBriefSchema)
