from marshmallow import fields, validate

from .base import BaseSchema, OutputSchema

API_GROUPS = ["day", "model", "conversation"]


class UsageQuerySchema(BaseSchema):
    from_ = fields.Date(data_key="from", format="%Y-%m-%d", metadata={
        "description": "first day (UTC, YYYY-MM-DD), inclusive; default 29 days before `to`"})
    to = fields.Date(format="%Y-%m-%d", metadata={
        "description": "last day (UTC, YYYY-MM-DD), inclusive; default today"})
    group_by = fields.String(load_default="day", validate=validate.OneOf(API_GROUPS))


class TokenTotalsSchema(OutputSchema):
    prompt_tokens = fields.Integer()
    completion_tokens = fields.Integer()
    total_tokens = fields.Integer()
    messages = fields.Integer(metadata={"description": "answers the calls were made for"})


class UsageGroupSchema(TokenTotalsSchema):
    key = fields.String(allow_none=True, metadata={
        "description": "the day, the model or the conversation id"})


class UsageReportSchema(OutputSchema):
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    group_by = fields.String(metadata={"enum": API_GROUPS})
    groups = fields.List(fields.Nested(UsageGroupSchema))
    total = fields.Nested(TokenTotalsSchema)
