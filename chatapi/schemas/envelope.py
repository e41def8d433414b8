"""The success envelope, made once for each payload schema so the OpenAPI document shows
exactly what a client receives."""
from functools import cache

from marshmallow import fields

from .base import BaseSchema


def only(value):
    """How the OpenAPI document shows a constant boolean."""
    return {"type": "boolean", "enum": [value]}


@cache
def envelope(data_schema=None):
    base_name = data_schema.__name__.removesuffix("Schema") if data_schema else "Message"
    name = f"{base_name}Envelope"
    attributes = {"success": fields.Constant(True, required=True, metadata=only(True)),
                  "message": fields.String()}
    if data_schema is not None:
        attributes["data"] = fields.Nested(data_schema, required=True)
    return type(name, (BaseSchema,), attributes)


class ErrorBodySchema(BaseSchema):
    code = fields.String(required=True)
    details = fields.Dict(keys=fields.String(), required=True)


class ErrorEnvelopeSchema(BaseSchema):
    success = fields.Constant(False, required=True, metadata=only(False))
    message = fields.String(required=True)
    error = fields.Nested(ErrorBodySchema, required=True)
    data = fields.Raw()
