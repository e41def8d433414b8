from datetime import timezone

from marshmallow import EXCLUDE, Schema, ValidationError, fields


def storable_text(value):
    """Text a database can hold: PostgreSQL refuses NUL in text, and a lone surrogate (valid
    JSON as an escape, not valid Unicode) cannot be encoded as UTF-8 at all."""
    if "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must be valid Unicode text (no lone surrogates).") from None


class BaseSchema(Schema):
    """Unknown and read-only fields in a request body are ignored, never applied (API.md §1);
    every string loaded must be storable text."""

    class Meta:
        unknown = EXCLUDE

    def on_bind_field(self, field_name, field_obj):
        if isinstance(field_obj, fields.String):
            field_obj.validators = [storable_text, *field_obj.validators]


class OutputSchema(BaseSchema):
    """What the API answers: every field is always present (null where it allows none), so the
    OpenAPI document lists each one as required. Never loaded."""

    def on_bind_field(self, field_name, field_obj):
        super().on_bind_field(field_name, field_obj)
        field_obj.required = True


class Timestamp(fields.DateTime):
    """ISO 8601 UTC with a `Z`, to the millisecond."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        utc = value.astimezone(timezone.utc)
        return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
