"""What a tool is (name, category, description, JSON Schema, handler, time limit) and what its
handler may know of its surroundings. The registry and every category module import this;
it imports neither."""
from dataclasses import dataclass, field
from typing import Any, Callable

from jsonschema import Draft202012Validator

from ..errors import ValidationFailed


@dataclass(frozen=True)
class ToolContext:
    """What a handler may know of its surroundings: settings, the caller's language ("zh" or
    "en"), the GLM client, and `compute(function, *arguments)`, which runs CPU-heavy work off
    the event loop (the compute pool). Never Flask's request."""

    config: Any
    language: str = "zh"
    glm: Any = None
    compute: Callable = None


@dataclass(frozen=True)
class Tool:
    """`time_limit(config)` gives the seconds one run may take at most: the bound the handler
    itself enforces (its fetch, compute or sandbox deadline), listed in /api/tools; None for
    a tool its input caps keep fast instead."""

    name: str
    category: str
    description: str
    parameters: dict
    handler: Callable[[dict, ToolContext], Any]
    time_limit: Callable[[Any], float] | None = None
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        Draft202012Validator.check_schema(self.parameters)
        object.__setattr__(self, "validator", Draft202012Validator(self.parameters))

    def describe(self, config):
        return {"name": self.name, "category": self.category, "description": self.description,
                "parameters": self.parameters,
                "time_limit_seconds": self.time_limit(config) if self.time_limit else None}

    def as_function(self):
        """The definition offered to GLM (`tools` in the chat request)."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}

    def arguments_checked(self, arguments):
        """Validated arguments with the schema's top-level defaults filled in; unknown
        arguments are dropped (as unknown request fields are everywhere)."""
        if not isinstance(arguments, dict):
            raise ValidationFailed(details={"_schema": ["arguments must be a JSON object"]})
        details = {}
        for error in self.validator.iter_errors(arguments):
            details.setdefault(field_of(error), []).append(error.message)
        if details:
            raise ValidationFailed(details=details)
        properties = self.parameters.get("properties", {})
        checked = {name: value for name, value in arguments.items() if name in properties}
        for name, spec in properties.items():
            if name not in checked and "default" in spec:
                checked[name] = spec["default"]
        return checked


def field_of(error):
    if error.path:
        return ".".join(str(part) for part in error.path)
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return missing[0] if missing else "_schema"
    return "_schema"
