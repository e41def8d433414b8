"""code tools."""
TOOLS = []
