"""One conversation of a ChatGPT data export (conversations.json) as a draft for
services.imports: its `mapping` tree becomes our message tree (docs/API.md §3, "What a ChatGPT
export becomes").

- A user node becomes a user message: its text parts joined, an image `[image]`, another
  attachment `[attachment]` (or its text, when it has one).
- The nodes of one answer become one assistant message: ChatGPT writes an answer that used a
  tool as a chain (assistant -> tool -> assistant ...), with its thinking in nodes of its own.
  An assistant node addressed to a tool (`recipient` python, browser, ...) is a tool call
  (`arguments`: `{"code": ...}` for code, else `{"input": ...}`), the tool node after it that
  call's `result`; `thoughts` become `reasoning_content`; the text addressed to the user is
  the `content`.
- Skipped: nodes without a message (the root), system nodes, hidden ones
  (`is_visually_hidden_from_conversation`), `reasoning_recap` and nodes with nothing to show.
  The user's custom instructions (`user_editable_context`) become the system prompt. A skipped
  node's children follow its nearest kept ancestor, so the tree stays whole.
"""
from marshmallow import ValidationError

from ..models.conversation import DEFAULT_TITLE
from ..models.timestamps import utcnow
from ..schemas.transfer import MAX_TEXT_CHARS, ChatGPTConversationSchema, ChatGPTNodeSchema
from .import_drafts import Draft, joined

TOOL_FAILED = ("failed_with_in_kernel_exception", "failed", "cancelled", "timeout")
# ChatGPT's finish_details.type -> ours.
FINISH_REASONS = {"stop": "stop", "max_tokens": "length", "interrupted": "interrupted"}
MAX_SYSTEM_PROMPT = 20000
# Made once: a schema's nested schemas are made on its first load, per instance.
CONVERSATION_SCHEMA = ChatGPTConversationSchema()
NODE_SCHEMA = ChatGPTNodeSchema()


def read(item, prefix, said, problems, models, pause):
    """The draft (services.imports.Draft) of one ChatGPT conversation, or None with its
    failures added to `problems`."""
    try:
        head = CONVERSATION_SCHEMA.load(item)
    except ValidationError as error:
        problems.add_marshmallow(error.messages, prefix, said)
        return None
    nodes = {}
    for key, raw in head["mapping"].items():
        path = joined(prefix, f"mapping.{key}")
        try:
            node = NODE_SCHEMA.load(raw)
        except ValidationError as error:
            problems.add_marshmallow(error.messages, path, said)
            continue
        finally:
            pause()
        if node["id"] is not None and node["id"] != key:
            problems.add(f"{path}.id", said + "Must be the node's key in mapping.")
        nodes[key] = node
    if len(nodes) < len(head["mapping"]):
        return None
    for key, path in tree_problems(nodes):
        problems.add(joined(prefix, f"mapping.{key}.{path[0]}"), said + path[1])
    current = head["current_node"]
    if current is not None and current not in nodes:
        problems.add(joined(prefix, "current_node"), said + "Names no node of mapping.")
    if problems:
        return None
    draft = Tree(head, nodes, models, pause).draft()
    for message in draft.messages:  # an answer's text is joined from many nodes
        for name in ("content", "reasoning_content"):
            if len(message[name] or "") > MAX_TEXT_CHARS:
                problems.add(joined(prefix, f"mapping.{message['key']}.message.content"),
                             said + f"The message's {name} is longer than {MAX_TEXT_CHARS} "
                                    "characters.")
    return draft


def tree_problems(nodes):
    """(key, (field, message)) for each parent that is missing, the node itself, or part of
    a cycle."""
    found = []
    for key, node in nodes.items():
        parent = node["parent"]
        if parent == key:
            found.append((key, ("parent", "A node cannot follow itself.")))
        elif parent is not None and parent not in nodes:
            found.append((key, ("parent", "Names no node of mapping.")))
    if found:
        return found
    settled = set()
    for start in nodes:
        path, on_path, at = [], set(), start
        while at is not None and at not in settled:
            if at in on_path:
                return [(at, ("parent", "The parents make a cycle."))]
            path.append(at)
            on_path.add(at)
            at = nodes[at]["parent"]
        settled.update(path)
    return []


def parents_first(nodes):
    """The node keys, each after its parent, siblings oldest first."""
    children = {}
    for key, node in nodes.items():
        children.setdefault(node["parent"], []).append(key)

    def newest_first(keys):
        return sorted(keys, key=lambda key: age(key, nodes[key]), reverse=True)

    order, stack = [], newest_first(children.get(None, []))
    while stack:
        key = stack.pop()
        order.append(key)
        stack.extend(newest_first(children.get(key, [])))
    return order


def age(key, node):
    message = node["message"]
    moment = message["create_time"] if message else None
    return (moment is not None, moment.timestamp() if moment else 0.0, key)


class Tree:
    def __init__(self, head, nodes, models, pause):
        self.head, self.nodes, self.pause = head, nodes, pause
        self.models = models
        self.started = head["create_time"] or head["update_time"] or utcnow()
        self.messages = []  # the draft's messages, parents first
        self.message_at = {}  # node key -> the message it became or joined (skipped: None)
        self.anchor = {}  # node key -> the nearest kept node at or above it
        self.open_answer = {}  # the last node of an answer -> that answer, while it may grow
        self.system_prompt = None

    def draft(self):
        for key in parents_first(self.nodes):
            self.place(key)
            self.pause()
        for message in self.messages:
            message["content"] = "\n\n".join(message.pop("texts"))
            message["reasoning_content"] = "\n\n".join(message.pop("thoughts")) or None
        current = self.head["current_node"]
        current_message = self.message_at.get(self.anchor.get(current)) if current else None
        fields = {"title": title_of(self.head["title"]), "model": self.models[0],
                  "system_prompt": self.system_prompt, "temperature": 1.0,
                  "max_tokens": 65536, "thinking_enabled": False, "project_id": None,
                  "pinned": False, "archived": self.head["is_archived"] is True,
                  "created_at": self.started,
                  "updated_at": self.head["update_time"] or self.started}
        return Draft(fields, self.messages, current_message["key"] if current_message else None)

    def place(self, key):
        node = self.nodes[key]
        parent = node["parent"]
        above = self.anchor.get(parent) if parent is not None else None
        message = node["message"]
        kind = kind_of(message)
        if kind == "context":
            self.system_prompt = context_text(message["content"])
        if kind in ("skip", "context") or not shows_something(message, kind):
            self.anchor[key] = above
            return
        self.anchor[key] = key
        follows = self.message_at.get(above)
        answer = self.open_answer.pop(above, None)
        if kind == "user":
            self.message_at[key] = self.new_message(key, follows, "user", message)
            self.message_at[key]["texts"].append(user_text(message["content"]))
            return
        if answer is None:
            answer = self.new_message(key, follows, "assistant", message)
        self.message_at[key] = answer
        self.open_answer[key] = answer
        add_to_answer(answer, message, self.head["default_model_slug"])

    def new_message(self, key, follows, role, message):
        created = message["create_time"] or (follows["created_at"] if follows else self.started)
        made = {"key": key, "parent_key": follows["key"] if follows else None, "role": role,
                "texts": [], "thoughts": [], "tool_calls": [], "status": "completed",
                "error": None, "error_code": None, "model": None, "finish_reason": None,
                "usage": None, "created_at": created}
        self.messages.append(made)
        return made


def kind_of(message):
    if message is None or message["author"]["role"] == "system":
        return "skip"
    if message["content"]["content_type"] == "user_editable_context":
        return "context"
    if (message["metadata"] or {}).get("is_visually_hidden_from_conversation") is True:
        return "skip"
    if message["content"]["content_type"] == "reasoning_recap":
        return "skip"
    return "user" if message["author"]["role"] == "user" else "answer"


def shows_something(message, kind):
    content = message["content"]
    if kind == "user":
        return bool(user_text(content))
    return bool(parts_text(content) or content["text"] or content["result"]
                or content["thoughts"] or message["author"]["role"] == "tool")


def title_of(title):
    return " ".join((title or "").split())[:200] or DEFAULT_TITLE


def context_text(content):
    said = [text for text in (content["user_profile"], content["user_instructions"]) if text]
    return "\n\n".join(said)[:MAX_SYSTEM_PROMPT] or None


def part_text(part):
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        if part.get("content_type") == "image_asset_pointer":
            return "[image]"
        if isinstance(part.get("text"), str):
            return part["text"]
        return "[attachment]"
    return ""


def parts_text(content):
    return "\n\n".join(text for text in map(part_text, content["parts"] or []) if text)


def user_text(content):
    return parts_text(content) or content["text"] or ""


def tool_output(content):
    if content["content_type"] == "execution_output":
        return content["text"] or ""
    if content["content_type"] == "tether_browsing_display":
        return content["result"] or ""
    return parts_text(content) or content["text"] or content["result"] or ""


def add_to_answer(answer, message, default_model):
    """What one assistant or tool node adds to the answer it belongs to."""
    content, metadata = message["content"], message["metadata"] or {}
    role, recipient = message["author"]["role"], message["recipient"] or "all"
    slug = metadata.get("model_slug")
    if role == "tool":
        record_tool_output(answer, message["author"]["name"] or "tool", tool_output(content),
                           metadata)
        return
    answer["model"] = ((slug if isinstance(slug, str) else None) or answer["model"]
                       or default_model or None)
    answer["model"] = answer["model"][:64] if answer["model"] else None
    if content["content_type"] == "thoughts":
        answer["thoughts"] += [thought_text(thought) for thought in content["thoughts"] or []
                               if thought_text(thought)]
        return
    text = parts_text(content) or content["text"] or ""
    if recipient != "all":
        arguments = {"code": text} if content["content_type"] == "code" else {"input": text}
        answer["tool_calls"].append({
            "id": f"call_{len(answer['tool_calls']) + 1}", "name": recipient[:64],
            "arguments": arguments, "result": None, "status": "ok", "duration_ms": None})
        return
    if content["content_type"] == "code" and text:
        text = f"```{content.get('language') or ''}\n{text}\n```"
    if text:
        answer["texts"].append(text)
    finish = object_in(metadata, "finish_details").get("type")
    finish = finish if isinstance(finish, str) else None
    answer["finish_reason"] = FINISH_REASONS.get(finish, answer["finish_reason"])
    if finish in ("max_tokens", "interrupted") or message["status"] in (
            "in_progress", "finished_partial_completion"):
        answer["status"] = "incomplete"


def object_in(metadata, key):
    """metadata[key] when it is an object (ChatGPT's metadata is not checked), else {}."""
    value = metadata.get(key)
    return value if isinstance(value, dict) else {}


def thought_text(thought):
    said = [thought.get(name) for name in ("summary", "content")]
    return "\n\n".join(text for text in said if isinstance(text, str) and text)


def record_tool_output(answer, name, output, metadata):
    """The result of the answer's last call still waiting for one, or a call of its own."""
    waiting = [call for call in answer["tool_calls"] if call["result"] is None]
    if waiting:
        call = waiting[-1]
    else:
        call = {"id": f"call_{len(answer['tool_calls']) + 1}", "name": name[:64],
                "arguments": {}, "result": None, "status": "ok", "duration_ms": None}
        answer["tool_calls"].append(call)
    call["result"] = output
    if object_in(metadata, "aggregate_result").get("status") in TOOL_FAILED:
        call["status"] = "error"
