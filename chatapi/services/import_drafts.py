"""What services.imports and services.chatgpt_import build while they read a file: a draft
per conversation, and the file's failures."""
from dataclasses import dataclass, field

# A file with more failures than this is told about its first ones.
MAX_REPORTED = 100


@dataclass
class Draft:
    """One conversation to store: its columns, its messages parents first (each with the
    file's `key` and `parent_key`), and the key of the active branch's end."""

    fields: dict
    messages: list = field(default_factory=list)
    current_key: str | None = None


class Problems:
    """Every failure of a file, field path -> messages, named by conversation."""

    def __init__(self):
        self.details = {}

    def add(self, path, message):
        if len(self.details) < MAX_REPORTED:
            self.details.setdefault(path or "_schema", []).append(message)

    def add_marshmallow(self, messages, prefix, said=""):
        for path, texts in flattened(messages, prefix):
            for text in texts:
                self.add(path, said + text)

    def __bool__(self):
        return bool(self.details)


def flattened(messages, prefix):
    """marshmallow's nested errors as (dotted path, [messages]); `_schema` names its parent."""
    if isinstance(messages, dict):
        for key, inner in messages.items():
            path = prefix if key == "_schema" else joined(prefix, key)
            yield from flattened(inner, path)
    else:
        yield prefix, [text for text in messages if isinstance(text, str)] or [str(messages)]


def joined(prefix, key):
    return f"{prefix}.{key}" if prefix else str(key)
