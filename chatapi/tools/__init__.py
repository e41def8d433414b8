from .registry import CATEGORIES, Registry, Tool, ToolContext, default_registry

__all__ = ["CATEGORIES", "Registry", "Tool", "ToolContext", "default_registry"]
