"""weather tools."""
TOOLS = []
