"""The tools: one definition each (name, category, description, JSON Schema, timeout, handler),
the single source for /api/tools and for what the model is offered."""
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from jsonschema import Draft202012Validator

from .. import strict_json
from ..errors import ApiError, NotFound, ValidationFailed

log = logging.getLogger(__name__)

CATEGORIES = ("crawler", "code", "data", "weather")


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
    name: str
    category: str
    description: str
    parameters: dict
    handler: Callable[[dict, ToolContext], Any]
    timeout: float = 10.0
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        Draft202012Validator.check_schema(self.parameters)
        object.__setattr__(self, "validator", Draft202012Validator(self.parameters))

    def describe(self):
        return {"name": self.name, "category": self.category, "description": self.description,
                "parameters": self.parameters}

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


class Registry:
    def __init__(self, tools):
        self.tools = {tool.name: tool for tool in tools}
        unknown = {tool.category for tool in tools} - set(CATEGORIES)
        assert not unknown, f"unknown tool categories {unknown}"
        # What the model is offered, built once: every answer sends the same list.
        self.functions = [tool.as_function() for tool in tools]

    def get(self, name):
        tool = self.tools.get(name)
        if tool is None:
            raise NotFound()
        return tool

    def listing(self, category=None):
        chosen = [tool for tool in self.tools.values()
                  if category is None or tool.category == category]
        categorized = {name: [] for name in CATEGORIES}
        for tool in chosen:
            categorized[tool.category].append(tool.describe())
        return {"tools": [tool.describe() for tool in chosen], "categorized": categorized,
                "total": len(chosen)}

    def execute(self, name, arguments, context):
        tool = self.get(name)
        checked = tool.arguments_checked(arguments)
        started = time.perf_counter()
        result = tool.handler(checked, context)
        try:
            # Text that is not Unicode (a search engine's answer may hold a lone surrogate)
            # could be neither stored nor streamed: replaced.
            result = strict_json.checked(result)
        except strict_json.NotStrictJSON:
            log.error("tool %s answered NaN or Infinity", name)
            raise ApiError() from None
        return {"tool": name, "result": result,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1)}


def default_registry():
    from . import code, crawler, data, weather
    return Registry([*crawler.TOOLS, *code.TOOLS, *data.TOOLS, *weather.TOOLS])
