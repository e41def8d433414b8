"""crawler tools."""
TOOLS = []
