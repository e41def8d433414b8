from flask import current_app
from marshmallow import ValidationError, fields, validate, validates

from .base import BaseSchema, OutputSchema, StrictBoolean, Timestamp
from .conversations import must_be_configured


class SendMessageSchema(BaseSchema):
    conversation_id = fields.String(required=True, validate=validate.Length(1, 64))
    content = fields.String(required=True)
    tools_enabled = StrictBoolean(load_default=True)
    parent_id = fields.String(allow_none=True, validate=validate.Length(1, 64), metadata={
        "description": "the assistant message this one follows (an edit: the edited message's "
                       "parent_id); null: a new first message; absent: the active branch's "
                       "last answer"})

    @validates("content")
    def content_fits(self, value, **_kwargs):
        if not value.strip():
            raise ValidationError("Must not be blank.")
        limit = current_app.config["MAX_MESSAGE_CHARS"]
        if len(value) > limit:
            raise ValidationError(f"Longer than maximum length {limit}.")


class RegenerateSchema(BaseSchema):
    tools_enabled = StrictBoolean(load_default=True)
    model = fields.String(metadata={"description": "one of GLM_MODELS, for this answer only; "
                                                   "the conversation's by default"})

    @validates("model")
    def model_is_configured(self, value, **_kwargs):
        must_be_configured(value)


class IdempotencyHeaderSchema(BaseSchema):
    """The headers of a request that starts an answer (the others are ignored)."""

    # \Z, not $: in Python "$" also matches before a last newline (the document's pattern
    # is read as ECMAScript, where it does not).
    key = fields.String(data_key="Idempotency-Key", validate=validate.Regexp(
        r"[ -~]{1,255}\Z", error="Must be 1 to 255 printable ASCII characters."), metadata={
            "pattern": "^[ -~]{1,255}$",
            "description": "a repeat of the same key by the same user within "
                           "IDEMPOTENCY_TTL_HOURS (24) stores nothing and calls no provider: "
                           "`POST /` answers the first request's result, `/stream` re-attaches "
                           "to its answer from the first event; the same key with another "
                           "request -> 422"})


class FollowQuerySchema(BaseSchema):
    after = fields.Integer(strict=False, validate=validate.Range(0, 2**31 - 1), metadata={
        "description": "send the events after this one (as the Last-Event-ID header does)"})


class MessageListQuerySchema(BaseSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    before = fields.String(validate=validate.Length(1, 64),
                           metadata={"description": "a message id: page further back"})
    leaf = fields.String(validate=validate.Length(1, 64),
                         metadata={"description": "a message id: list the branch that ends "
                                                  "at it instead of the active branch"})
    view = fields.String(load_default="branch", validate=validate.OneOf(["branch", "tree"]),
                         metadata={"description": "`tree`: every message of the conversation"})


class ToolCallRecordSchema(OutputSchema):
    id = fields.String()
    name = fields.String()
    arguments = fields.Raw()
    result = fields.Raw(allow_none=True)
    status = fields.String(metadata={"enum": ["ok", "error"]})
    duration_ms = fields.Float()


class UsageSchema(OutputSchema):
    prompt_tokens = fields.Integer()
    completion_tokens = fields.Integer()
    total_tokens = fields.Integer()


class MessageSchema(OutputSchema):
    id = fields.String()
    conversation_id = fields.String()
    parent_id = fields.String(allow_none=True, metadata={
        "description": "the message this one follows; null for a first message"})
    sibling_ids = fields.List(fields.String(), metadata={
        "description": "messages with the same parent, itself included, oldest first"})
    role = fields.String(metadata={"enum": ["user", "assistant"]})
    content = fields.String()
    reasoning_content = fields.String(allow_none=True)
    tool_calls = fields.List(fields.Nested(ToolCallRecordSchema))
    status = fields.String(metadata={"enum": ["completed", "incomplete", "error",
                                              "in_progress"]})
    error = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True, metadata={
        "description": "the machine code of the answer's failure; null otherwise"})
    model = fields.String(allow_none=True)
    finish_reason = fields.String(allow_none=True)
    usage = fields.Nested(UsageSchema, allow_none=True)
    created_at = Timestamp()


class MessagePageSchema(OutputSchema):
    items = fields.List(fields.Nested(MessageSchema))
    total = fields.Integer()
    has_more = fields.Boolean()


class StoppedSchema(OutputSchema):
    message = fields.Nested(MessageSchema)


class ExchangeSchema(OutputSchema):
    user_message = fields.Nested(MessageSchema)
    assistant_message = fields.Nested(MessageSchema)
