"""data tools."""
TOOLS = []
