from marshmallow import INCLUDE, fields, validate

from ..tools import CATEGORIES
from .base import BaseSchema, OutputSchema


class ToolListQuerySchema(BaseSchema):
    category = fields.String(validate=validate.OneOf(CATEGORIES))


class ToolSchema(OutputSchema):
    name = fields.String()
    category = fields.String()
    description = fields.String()
    parameters = fields.Dict(metadata={"description": "JSON Schema of the arguments"})


class CategorizedToolsSchema(OutputSchema):
    crawler = fields.List(fields.Nested(ToolSchema))
    code = fields.List(fields.Nested(ToolSchema))
    data = fields.List(fields.Nested(ToolSchema))
    weather = fields.List(fields.Nested(ToolSchema))


class ToolListSchema(OutputSchema):
    tools = fields.List(fields.Nested(ToolSchema))
    categorized = fields.Nested(CategorizedToolsSchema)
    total = fields.Integer()


class ToolArgumentsSchema(BaseSchema):
    """The arguments object, passed whole to the tool's own JSON Schema."""

    class Meta:
        unknown = INCLUDE


class ToolRunSchema(OutputSchema):
    tool = fields.String()
    result = fields.Raw()
    duration_ms = fields.Float()
