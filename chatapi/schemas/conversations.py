from flask import current_app
from marshmallow import ValidationError, fields, validate, validates

from ..models.conversation import DEFAULT_TITLE
from .base import BaseSchema, OutputSchema, StrictBoolean, StrictFloat, StrictInteger, Timestamp


def configured_models():
    return current_app.config["GLM_MODELS"]


class ConversationInputSchema(BaseSchema):
    """What a client may set; missing fields take the seed's defaults on create."""

    project_id = fields.String(allow_none=True, validate=validate.Length(max=64))
    title = fields.String(validate=validate.Length(1, 200), metadata={
        "default": DEFAULT_TITLE,
        "description": "a title sent here is the user's: no title is made for the conversation"})
    model = fields.String(load_default=lambda: configured_models()[0],
                          metadata={"description": "one of GLM_MODELS; the first by default"})
    system_prompt = fields.String(allow_none=True, validate=validate.Length(max=20000))
    temperature = StrictFloat(load_default=1.0, validate=validate.Range(0.0, 1.0))
    max_tokens = StrictInteger(load_default=65536, validate=validate.Range(1, 131072))
    thinking_enabled = StrictBoolean(load_default=False)
    pinned = StrictBoolean(load_default=False, metadata={"description": "listed first"})
    archived = StrictBoolean(load_default=False, metadata={
        "description": "left out of the list unless it asks for archived=true"})

    @validates("model")
    def model_is_configured(self, value, **_kwargs):
        must_be_configured(value)


def must_be_configured(model):
    if model not in configured_models():
        raise ValidationError(f"Must be one of: {', '.join(configured_models())}.")


class ConversationUpdateSchema(ConversationInputSchema):
    """Loaded with partial=True: only the fields a client sends change, defaults don't apply."""

    current_message_id = fields.String(validate=validate.Length(1, 64), metadata={
        "description": "switch branch: the active branch becomes the one through this message, "
                       "down to its newest descendant"})


class ConversationSchema(OutputSchema):
    id = fields.String()
    user_id = fields.Integer()
    project_id = fields.String(allow_none=True)
    title = fields.String()
    model = fields.String()
    system_prompt = fields.String(allow_none=True)
    temperature = fields.Float()
    max_tokens = fields.Integer()
    thinking_enabled = fields.Boolean()
    pinned = fields.Boolean()
    archived = fields.Boolean()
    message_count = fields.Integer()
    current_message_id = fields.String(allow_none=True, metadata={
        "description": "the last message of the active branch; null when empty"})
    created_at = Timestamp()
    updated_at = Timestamp()


class ConversationListQuerySchema(BaseSchema):
    project_id = fields.String(validate=validate.Length(max=64))
    q = fields.String(validate=validate.Length(1, 200),
                      metadata={"description": "title contains (case-insensitive)"})
    archived = fields.Boolean(load_default=False, metadata={
        "description": "true: only the archived conversations; false (default): the others"})
    page = fields.Integer(load_default=1, validate=validate.Range(1, 1_000_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class ConversationPageSchema(OutputSchema):
    items = fields.List(fields.Nested(ConversationSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()
