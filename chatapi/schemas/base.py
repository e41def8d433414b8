from datetime import timezone

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from .dumping import compile_dumper


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
    """Unknown and read-only fields in a request body are ignored, never applied (docs/API.md §1);
    every string loaded must be storable text. Request bodies take their booleans and numbers
    as StrictBoolean, StrictInteger and StrictFloat (below): JSON types, nothing read into them;
    query strings, all text, keep marshmallow's parsing."""

    class Meta:
        unknown = EXCLUDE

    def on_bind_field(self, field_name, field_obj):
        if isinstance(field_obj, fields.String):
            field_obj.validators = [storable_text, *field_obj.validators]

    def dump(self, obj, *, many=None):
        """What marshmallow's dump gives, through a loop compiled on first use
        (chatapi/schemas/dumping.py)."""
        dumper = self.__dict__.get("_compiled_dump", missing_dumper)
        if dumper is missing_dumper:
            dumper = self._compiled_dump = compile_dumper(self)
        if dumper is None:
            return super().dump(obj, many=many)
        return dumper(obj, self.many if many is None else bool(many))


# Not compiled yet (None: compiled, and marshmallow's own dump is needed).
missing_dumper = object()


class StrictBoolean(fields.Boolean):
    """JSON `true` or `false` only: fields.Boolean also reads "yes", "on", 1 and "1" as true."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class StrictNumberMixin:
    """A JSON number only: marshmallow's number fields also read the text "0.5" (and Integer
    without `strict` reads 1.0). `json_types`: what the JSON parser gives for such a number;
    bool is an int to Python, never to JSON."""

    json_types = (int, float)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, self.json_types):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictInteger(StrictNumberMixin, fields.Integer):
    json_types = (int,)


class StrictFloat(StrictNumberMixin, fields.Float):
    pass


class OutputSchema(BaseSchema):
    """What the API answers: every field is always present (null where it allows none), so the
    OpenAPI document lists each one as required. Never loaded."""

    def on_bind_field(self, field_name, field_obj):
        super().on_bind_field(field_name, field_obj)
        field_obj.required = True


class Timestamp(fields.DateTime):
    """ISO 8601 UTC with a `Z`, to the millisecond."""

    # Its _serialize depends on the value alone: the compiled dump may call it directly.
    compiled_dump = True

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is not timezone.utc:
            value = value.astimezone(timezone.utc)
        # As stored (UTC), the isoformat ends with "+00:00": written as "Z".
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
