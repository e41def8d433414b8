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
    time_limit_seconds = fields.Float(allow_none=True, metadata={"description": (
        "the longest one run takes before it ends with 504 upstream_timeout (for run_python, "
        "the script's timeout plus its teardown; the script's own end is timed_out in the "
        "result); null when the input caps keep the tool fast")})


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
