from .registry import CATEGORIES, Registry, default_registry
from .tool import Tool, ToolContext

__all__ = ["CATEGORIES", "Registry", "Tool", "ToolContext", "default_registry"]
