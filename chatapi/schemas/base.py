from datetime import timezone

from marshmallow import EXCLUDE, Schema, fields


class BaseSchema(Schema):
    """Unknown and read-only fields in a request body are ignored, never applied (API.md §1)."""

    class Meta:
        unknown = EXCLUDE


class Timestamp(fields.DateTime):
    """ISO 8601 UTC with a `Z`, to the millisecond."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        utc = value.astimezone(timezone.utc)
        return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
