from marshmallow import fields

from .base import OutputSchema


class ModelSchema(OutputSchema):
    id = fields.String(metadata={"description": "the `model` value a conversation takes"})
    context_window = fields.Integer(metadata={
        "description": "tokens the model reads and writes in one call (history, question and "
                       "answer together)"})
    max_output_tokens = fields.Integer(metadata={
        "description": "the most tokens one answer may have"})
    supports_thinking = fields.Boolean(metadata={
        "description": "whether `thinking_enabled` has an effect"})
    supports_tools = fields.Boolean(metadata={
        "description": "whether the model can call tools (`tools_enabled`)"})
    default = fields.Boolean(metadata={
        "description": "the model a new conversation gets when it names none"})


class ModelListSchema(OutputSchema):
    models = fields.List(fields.Nested(ModelSchema))
