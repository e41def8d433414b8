"""Conversation export and import (docs/API.md §3, "Export and import"): our own file format,
which the export writes and the import reads with the same schemas, and the shapes read from
a ChatGPT data export's conversations.json."""
from datetime import datetime, timezone

from marshmallow import ValidationError, fields, validate

from ..models.conversation import DEFAULT_TITLE
from .base import BaseSchema, OutputSchema, StrictBoolean, StrictFloat, StrictInteger, Timestamp

FORMAT_VERSION = 1
ROLES = ("user", "assistant")
STATUSES = ("completed", "incomplete", "error")
# Times a file may hold: what ChatGPT's seconds since 1970 can say, up to the year 9999.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 1, 1, tzinfo=timezone.utc)
# A count of tokens, a duration: anything a database integer or a double holds sensibly.
LARGEST_COUNT = 2**31 - 1
# The most items a list in one message (or ChatGPT node) may hold. IMPORT_MAX_MESSAGES bounds
# the messages, not what is inside one: a single message of a 50 MB file could hold millions
# of tool calls or parts, each read, checked and stored without a pause in between. A live
# answer makes at most TOOL_MAX_ROUNDS x TOOL_MAX_CALLS_PER_ROUND calls (50).
MAX_ITEMS = 1000
# The longest text of a message (its content, its thinking). A live message is at most
# MAX_MESSAGE_CHARS (a question) or what max_tokens lets the model write; the database indexes
# the text as it is written, in one statement (SQLite's FTS5 triggers run in the worker: one
# message of 40 MB held it 19 s).
MAX_TEXT_CHARS = 1_000_000


class FileTimestamp(Timestamp):
    """Written as every time the API shows; read as ISO 8601, a time without a zone as UTC."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        moment = super()._deserialize(value, attr, data, **kwargs)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        try:
            moment = moment.astimezone(timezone.utc)
        except OverflowError:  # year 1 an hour east of UTC is in year 0
            moment = None
        if moment is None or not EARLIEST <= moment < LATEST:
            raise ValidationError("Must be a time between 1970 and 9999.")
        return moment


class ShortList(fields.List):
    """A list of at most MAX_ITEMS items, refused before its items are read."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list) and len(value) > MAX_ITEMS:
            raise ValidationError(f"More than {MAX_ITEMS} items.")
        return super()._deserialize(value, attr, data, **kwargs)


class ExportQuerySchema(BaseSchema):
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "markdown"]),
                           metadata={"description": "`json` (the import format, default) or "
                                                    "`markdown` (the active branch, to read)"})


class ToolCallFileSchema(BaseSchema):
    id = fields.String(required=True, validate=validate.Length(1, 64))
    name = fields.String(required=True, validate=validate.Length(1, 64))
    arguments = fields.Raw(required=True, metadata={"description": "any JSON value"})
    result = fields.Raw(allow_none=True, load_default=None)
    status = fields.String(required=True, validate=validate.OneOf(["ok", "error"]))
    duration_ms = StrictFloat(allow_none=True, load_default=None,
                              validate=validate.Range(0, LARGEST_COUNT))


class UsageFileSchema(BaseSchema):
    prompt_tokens = StrictInteger(required=True, validate=validate.Range(0, LARGEST_COUNT))
    completion_tokens = StrictInteger(required=True, validate=validate.Range(0, LARGEST_COUNT))
    total_tokens = StrictInteger(required=True, validate=validate.Range(0, LARGEST_COUNT))


class MessageFileSchema(BaseSchema):
    """One message of the file; `id` and `parent_id` only link the file's messages (the import
    gives each a new id)."""

    id = fields.String(required=True, validate=validate.Length(1, 64))
    parent_id = fields.String(allow_none=True, load_default=None,
                              validate=validate.Length(1, 64))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = fields.String(load_default="", validate=validate.Length(max=MAX_TEXT_CHARS))
    reasoning_content = fields.String(allow_none=True, load_default=None,
                                      validate=validate.Length(max=MAX_TEXT_CHARS))
    tool_calls = ShortList(fields.Nested(ToolCallFileSchema), load_default=list)
    status = fields.String(load_default="completed", validate=validate.OneOf(STATUSES))
    error = fields.String(allow_none=True, load_default=None)
    error_code = fields.String(allow_none=True, load_default=None,
                               validate=validate.Regexp(r"[a-z_]{1,32}\Z"))
    model = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=64))
    finish_reason = fields.String(allow_none=True, load_default=None,
                                  validate=validate.Length(max=32))
    usage = fields.Nested(UsageFileSchema, allow_none=True, load_default=None)
    created_at = FileTimestamp(required=True)


class ConversationFileSchema(BaseSchema):
    title = fields.String(load_default=DEFAULT_TITLE, validate=validate.Length(1, 200))
    model = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=64),
                          metadata={"description": "one of GLM_MODELS is kept; another (or "
                                                   "none) becomes the first of GLM_MODELS"})
    system_prompt = fields.String(allow_none=True, load_default=None,
                                  validate=validate.Length(max=20000))
    temperature = StrictFloat(load_default=1.0, validate=validate.Range(0.0, 1.0))
    max_tokens = StrictInteger(load_default=65536, validate=validate.Range(1, 131072))
    thinking_enabled = StrictBoolean(load_default=False)
    project_id = fields.String(allow_none=True, load_default=None,
                               validate=validate.Length(max=64))
    pinned = StrictBoolean(load_default=False)
    archived = StrictBoolean(load_default=False)
    current_message_id = fields.String(allow_none=True, load_default=None, metadata={
        "description": "the file's id of the active branch's last message"})
    created_at = FileTimestamp(load_default=None)
    updated_at = FileTimestamp(load_default=None)


class ExportFileHeadSchema(BaseSchema):
    """The file without its messages, which are read one at a time."""

    version = StrictInteger(required=True, validate=validate.Equal(
        FORMAT_VERSION, error="Must be {other}: the only version of this format."))
    conversation = fields.Nested(ConversationFileSchema, required=True)
    messages = fields.List(fields.Raw(), required=True)


class ExportFileSchema(OutputSchema):
    """What `GET /api/conversations/{id}/export?format=json` answers (no envelope)."""

    version = fields.Integer(metadata={"enum": [FORMAT_VERSION]})
    conversation = fields.Nested(ConversationFileSchema)
    messages = fields.List(fields.Nested(MessageFileSchema), metadata={
        "description": "every message of every branch, each after its parent"})


class ImportedSchema(OutputSchema):
    conversations = fields.List(fields.String(), metadata={
        "description": "the new conversations' ids, in the file's order"})


# A ChatGPT data export's conversations.json. Only what the import uses is read; every other
# key is left alone.

class EpochSeconds(fields.Field):
    """Seconds since 1970 (ChatGPT's `create_time`), a JSON number, as an aware datetime."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("Must be a number of seconds since 1970.")
        if not 0 <= value < LATEST.timestamp():
            raise ValidationError("Must be a time between 1970 and 9999.")
        return datetime.fromtimestamp(value, timezone.utc)


class ChatGPTAuthorSchema(BaseSchema):
    role = fields.String(required=True, validate=validate.OneOf(
        ["system", "user", "assistant", "tool"]))
    name = fields.String(allow_none=True, load_default=None)


class ChatGPTContentSchema(BaseSchema):
    content_type = fields.String(required=True)
    parts = ShortList(fields.Raw(allow_none=True), allow_none=True, load_default=list)
    # code, execution_output; tether_browsing_display; reasoning_recap
    text = fields.String(allow_none=True, load_default=None)
    result = fields.String(allow_none=True, load_default=None)
    content = fields.String(allow_none=True, load_default=None)
    language = fields.String(allow_none=True, load_default=None)
    # thoughts: [{summary, content}]
    thoughts = ShortList(fields.Dict(), allow_none=True, load_default=list)
    # user_editable_context: the user's custom instructions
    user_profile = fields.String(allow_none=True, load_default=None)
    user_instructions = fields.String(allow_none=True, load_default=None)


class ChatGPTMessageSchema(BaseSchema):
    author = fields.Nested(ChatGPTAuthorSchema, required=True)
    create_time = EpochSeconds(allow_none=True, load_default=None)
    content = fields.Nested(ChatGPTContentSchema, required=True)
    status = fields.String(allow_none=True, load_default=None)
    metadata = fields.Dict(allow_none=True, load_default=dict)
    recipient = fields.String(allow_none=True, load_default="all")


class ChatGPTNodeSchema(BaseSchema):
    """`children` is not read (each node's `parent` says the same), so not walked either."""

    id = fields.String(load_default=None)
    message = fields.Nested(ChatGPTMessageSchema, allow_none=True, load_default=None)
    parent = fields.String(allow_none=True, load_default=None)


class ChatGPTConversationSchema(BaseSchema):
    """A conversation without its nodes, which are read one at a time."""

    title = fields.String(allow_none=True, load_default=None)
    create_time = EpochSeconds(allow_none=True, load_default=None)
    update_time = EpochSeconds(allow_none=True, load_default=None)
    mapping = fields.Dict(keys=fields.String(), required=True)
    current_node = fields.String(allow_none=True, load_default=None)
    default_model_slug = fields.String(allow_none=True, load_default=None)
    is_archived = StrictBoolean(allow_none=True, load_default=False)
