"""Big ChatGPT data exports for the import's gunicorn test and bench: the conversations of
tests/fixtures/chatgpt/conversations.json again and again (each a conversation of its own:
node ids only need to be unique within one) until the file reaches the size asked for."""
import json
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "chatgpt" / "conversations.json"


def big_export(size):
    """(conversations.json of at least `size` bytes, how many conversations it holds, how
    many nodes with a message)."""
    templates = json.loads(FIXTURE.read_text())
    conversations, length, nodes = [], 2, 0
    while length < size:
        template = templates[len(conversations) % len(templates)]
        number = len(conversations)
        conversation = {**template, "title": f"{template['title']} #{number}",
                        "id": f"{template['id'][:-6]}{number:06d}",
                        "conversation_id": f"{template['id'][:-6]}{number:06d}"}
        conversations.append(conversation)
        length += len(json.dumps(conversation, ensure_ascii=False).encode()) + 2
        nodes += sum(1 for node in template["mapping"].values() if node["message"])
    return json.dumps(conversations, ensure_ascii=False).encode(), len(conversations), nodes
