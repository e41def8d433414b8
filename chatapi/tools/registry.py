"""The tools, one definition each: the single source for /api/tools and for what the model
is offered."""
import logging
import time

from .. import strict_json
from ..errors import ApiError, NotFound
from . import code, crawler, data, weather

log = logging.getLogger(__name__)

CATEGORIES = ("crawler", "code", "data", "weather")


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

    def listing(self, config, category=None):
        chosen = [tool.describe(config) for tool in self.tools.values()
                  if category is None or tool.category == category]
        categorized = {name: [] for name in CATEGORIES}
        for tool in chosen:
            categorized[tool["category"]].append(tool)
        return {"tools": chosen, "categorized": categorized, "total": len(chosen)}

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
    return Registry([*crawler.TOOLS, *code.TOOLS, *data.TOOLS, *weather.TOOLS])
