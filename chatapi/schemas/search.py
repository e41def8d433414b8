import base64
import binascii
from datetime import datetime, timezone

from marshmallow import ValidationError, fields, validate

from ..models.conversation import ID_FORMAT as CONVERSATION_ID
from ..models.message import ID_FORMAT as MESSAGE_ID
from .base import BaseSchema, OutputSchema, Timestamp


def not_blank(value):
    if not value.strip():
        raise ValidationError("Must not be blank.")


class Cursor(fields.Field):
    """Where a page ended, (created_at, id), as an opaque URL-safe text; anything not made
    here is refused."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        created_at, row_id = value
        text = f"{created_at.isoformat()}|{row_id}".encode()
        return base64.urlsafe_b64encode(text).decode().rstrip("=")

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            moment, row_id = text.split("|")
            created_at = datetime.fromisoformat(moment)
            # In UTC now, as the query compares it: a time of year 1 east of UTC (or 9999
            # west) is in no year a datetime holds.
            created_at = (created_at.astimezone(timezone.utc) if created_at.tzinfo
                          else None)
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError):
            raise ValidationError("Not a cursor this API gave.") from None
        if created_at is None or not (CONVERSATION_ID.fullmatch(row_id)
                                      or MESSAGE_ID.fullmatch(row_id)):
            raise ValidationError("Not a cursor this API gave.")
        return created_at, row_id


class SearchQuerySchema(BaseSchema):
    q = fields.String(required=True, validate=[validate.Length(1, 200), not_blank], metadata={
        "description": "the text to find: case-insensitive substring, any script"})
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 50))
    before = Cursor(metadata={"type": "string",
                              "description": "`next` of the previous page"})


class SearchItemSchema(OutputSchema):
    conversation_id = fields.String()
    conversation_title = fields.String()
    message_id = fields.String(allow_none=True, metadata={
        "description": "null when the conversation's title matched"})
    role = fields.String(allow_none=True, metadata={"enum": ["user", "assistant", None]})
    snippet = fields.String(metadata={
        "description": "HTML: about 60 characters around the first match, escaped, the match "
                       "in <mark>...</mark>, … where cut"})
    created_at = Timestamp(metadata={
        "description": "the message's time, or the conversation's creation for a title"})


class SearchPageSchema(OutputSchema):
    items = fields.List(fields.Nested(SearchItemSchema))
    next = Cursor(allow_none=True, metadata={
        "type": "string", "description": "`before` for the next page; null on the last"})
