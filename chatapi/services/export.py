"""A conversation as a file (docs/API.md §3, "Export and import"): every message of every
branch in the import format, or the active branch as a Markdown document to read."""
import heapq
import json
import re
import unicodedata
from urllib.parse import quote

from sqlalchemy import select

from ..extensions import db
from ..models import Message
from ..models.timestamps import iso_utc
from ..schemas.transfer import FORMAT_VERSION


def messages_of(conversation_id):
    return db.session.scalars(select(Message).where(
        Message.conversation_id == conversation_id)).all()


def parents_first(messages):
    """Every message after its parent, otherwise oldest first (the id breaking ties): the
    order the file lists them in. A message whose parent is not in the conversation (gone)
    counts as a first message."""
    by_id = {message.id: message for message in messages}
    children = {}
    ready = []
    for message in messages:
        if message.parent_id in by_id:
            children.setdefault(message.parent_id, []).append(message)
        else:
            ready.append((message.created_at, message.id, message))
    heapq.heapify(ready)
    ordered = []
    while ready:
        _created, _id, message = heapq.heappop(ready)
        ordered.append(message)
        for child in children.get(message.id, ()):
            heapq.heappush(ready, (child.created_at, child.id, child))
    return ordered


def as_file(conversation):
    """The import format: {version, conversation, messages} (to dump with ExportFileSchema).
    An answer still being written is written as `incomplete`: what the file holds of it is
    all it will ever hold."""
    messages = parents_first(messages_of(conversation.id))
    known = {message.id for message in messages}
    return {"version": FORMAT_VERSION, "conversation": conversation,
            "messages": [file_message(message, known) for message in messages]}


def file_message(message, known):
    return {"id": message.id,
            "parent_id": message.parent_id if message.parent_id in known else None,
            "role": message.role, "content": message.content,
            "reasoning_content": message.reasoning_content,
            "tool_calls": message.tool_calls or [],
            "status": "incomplete" if message.status == "in_progress" else message.status,
            "error": message.error, "error_code": message.error_code,
            "model": message.model, "finish_reason": message.finish_reason,
            "usage": message.usage, "created_at": message.created_at}


def active_branch(conversation):
    """The active branch, first message first."""
    by_id = {message.id: message for message in messages_of(conversation.id)}
    branch = []
    at = by_id.get(conversation.current_message_id)
    while at is not None and len(branch) <= len(by_id):
        branch.append(at)
        at = by_id.get(at.parent_id)
    return branch[::-1]


def as_markdown(conversation):
    lines = [f"# {one_line(conversation.title)}", "",
             f"- Model: {conversation.model}",
             f"- Created: {iso_utc(conversation.created_at)}",
             f"- Updated: {iso_utc(conversation.updated_at)}"]
    if conversation.project_id:
        lines.append(f"- Project: {one_line(conversation.project_id)}")
    if conversation.system_prompt:
        lines += ["", "## System prompt", "", quoted(conversation.system_prompt)]
    for message in active_branch(conversation):
        lines += ["", *markdown_message(message)]
    return "\n".join(lines) + "\n"


def markdown_message(message):
    who = "User" if message.role == "user" else "Assistant"
    heading = [who, iso_utc(message.created_at)]
    if message.role == "assistant" and message.model:
        heading.insert(1, message.model)
    lines = [f"## {' · '.join(heading)}", ""]
    if message.reasoning_content:
        lines += ["<details><summary>Thinking</summary>", "",
                  quoted(message.reasoning_content), "", "</details>", ""]
    for call in message.tool_calls or []:
        lines += markdown_tool_call(call)
    if message.content:
        lines += [message.content, ""]
    if message.status != "completed":
        status = "incomplete" if message.status == "in_progress" else message.status
        lines += [f"*({status}{': ' + one_line(message.error) if message.error else ''})*", ""]
    return lines[:-1] if lines[-1] == "" else lines


def markdown_tool_call(call):
    took = (f", {call['duration_ms']} ms" if isinstance(call.get("duration_ms"), (int, float))
            else "")
    return [f"**Tool call `{call.get('name')}`** ({call.get('status')}{took})", "",
            "Arguments:", "", *fenced(pretty(call.get("arguments")), "json"), "",
            "Result:", "", *result_block(call.get("result")), ""]


def result_block(result):
    """A tool's text output as it was printed; any other result as JSON."""
    return fenced(result, "text") if isinstance(result, str) else fenced(pretty(result), "json")


def pretty(value):
    return json.dumps(value, ensure_ascii=False, indent=2)


def fenced(text, language):
    """`text` in a code fence longer than any run of backticks in it, so it cannot end early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", text, fence]


def quoted(text):
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def one_line(text):
    return " ".join(text.split())


# A filename for Content-Disposition: the title, as ASCII for the plain `filename` (other
# characters become `_`), in full as UTF-8 for `filename*` (RFC 6266).
UNSAFE_IN_FILENAMES = re.compile(r"[^A-Za-z0-9._ -]+")


def attachment(title, extension):
    full = f"{safe_name(title)}.{extension}"
    ascii_name = UNSAFE_IN_FILENAMES.sub("_", unicodedata.normalize("NFKD", safe_name(title))
                                         .encode("ascii", "ignore").decode("ascii")).strip(" ._")
    if not ascii_name.replace("_", ""):
        ascii_name = "conversation"
    return (f'attachment; filename="{ascii_name[:100]}.{extension}"; '
            f"filename*=UTF-8''{quote(full, safe='')}")


def safe_name(title):
    """The title without what no file name may hold (path separators, controls)."""
    name = "".join(" " if unicodedata.category(character)[0] in "CZ" or character in '/\\:*?"<>|'
                   else character for character in title)
    return " ".join(name.split())[:150] or "conversation"
