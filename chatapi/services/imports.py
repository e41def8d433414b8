"""Conversations imported from a file (docs/API.md §3, "Export and import"): our own export
(one, or a list of them) or a ChatGPT data export's conversations.json. The whole file is read
and checked before anything is written; then every row goes in, in batches, in one
transaction. Imported messages are history, not usage: no token counter moves."""
import threading
from contextlib import contextmanager

from marshmallow import ValidationError
from sqlalchemy import bindparam, insert, update

from .. import cooperative_json, strict_json
from ..errors import ApiError, BadRequest, ValidationFailed
from ..extensions import db
from ..models import Conversation, Message
from ..models.conversation import new_conversation_id
from ..models.message import new_message_id, without_nul
from ..models.timestamps import utcnow
from ..schemas.transfer import ExportFileHeadSchema, MessageFileSchema
from . import chatgpt_import
from .import_drafts import Draft, Problems, joined

# Made once: a schema's nested schemas are made on its first load, per instance.
HEAD_SCHEMA = ExportFileHeadSchema()
MESSAGE_SCHEMA = MessageFileSchema()
# Rows written per statement: a batch takes milliseconds, and the worker's other requests run
# between two.
BATCH_ROWS = 200
# ... and at most about this many characters of text: the database indexes the text as it is
# written (SQLite's FTS5 triggers run in this process: 200 messages of 250 kB held the worker
# 19 s in one statement).
BATCH_CHARS = 1_000_000
# The most values a tool call's `arguments` or `result` may hold, and all of the file's
# together. Each is parsed whole, then walked without a pause (a single one of millions would
# hold the worker for many seconds), and every value costs memory and time to check and
# store (millions in a 50 MB file: a minute and gigabytes). A tool's result is mostly text,
# one value however long.
MAX_TOOL_VALUES = 100_000
MAX_FILE_TOOL_VALUES = 1_000_000


class TooManyMessages(ApiError):
    status = 413

    def __init__(self, limit):
        super().__init__("import_too_many_messages", details={"_schema": [
            f"More than IMPORT_MAX_MESSAGES ({limit}) messages in the file."]})


class TooManyToolValues(ApiError):
    status = 413

    def __init__(self):
        super().__init__("import_too_many_tool_values", details={"_schema": [
            f"More than {MAX_FILE_TOOL_VALUES} values in the file's tool calls."]})


class ToolValues:
    """The values the file's tool calls hold, counted as they are read."""

    def __init__(self):
        self.left = MAX_FILE_TOOL_VALUES

    def too_many(self, value):
        """True when `value` holds more than MAX_TOOL_VALUES; TooManyToolValues when the
        file's tool calls now hold more than MAX_FILE_TOOL_VALUES."""
        held = strict_json.values_in(value, min(MAX_TOOL_VALUES, self.left))
        if held > self.left:
            raise TooManyToolValues()
        self.left -= held
        return held > MAX_TOOL_VALUES


# A file is parsed whole: hundreds of megabytes for the biggest (a 31 MB export takes 440 MB).
# One at a time in a process bounds that; another import meanwhile is told to come back.
RUNNING = threading.BoundedSemaphore(1)
BUSY_RETRY_SECONDS = 5


class ImportsBusy(ApiError):
    status = 503
    code = "import_busy"

    def __init__(self):
        super().__init__("import_busy", headers={"Retry-After": str(BUSY_RETRY_SECONDS)})


@contextmanager
def one_at_a_time():
    """While another import runs in this process: ImportsBusy (503, Retry-After)."""
    if not RUNNING.acquire(blocking=False):
        raise ImportsBusy()
    try:
        yield
    finally:
        RUNNING.release()


def import_file(user_id, raw, models, max_messages, pause=None):
    """The ids of the conversations made from `raw` (the file's bytes), in the file's order.
    `models`: GLM_MODELS (a conversation's model outside them becomes the first)."""
    pause = pause or cooperative_json.Pauses()
    with cooperative_json.collector_paused():
        body = parsed(raw, pause)
        try:
            drafts = read(body, models, max_messages, pause)
            return store(user_id, drafts, pause)
        finally:
            cooperative_json.release(body, pause)


def parsed(raw, pause):
    if not raw or raw.isspace():
        raise ValidationFailed(details={"_schema": ["No file: the body is empty."]})
    try:
        return cooperative_json.loads(cooperative_json.decoded(raw, pause), pause)
    except strict_json.LoneSurrogate as error:
        raise ValidationFailed(details={strict_json.path_text(error.path) or "_schema": [
            "Must be valid Unicode text (no lone surrogates)."]}) from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest() from None


def conversations_in(body):
    """(path prefix, what the file says of one conversation) for each of the file's."""
    if isinstance(body, list):
        return [(str(index), item) for index, item in enumerate(body)]
    return [("", body)]


def weight(item):
    """What one conversation counts toward IMPORT_MAX_MESSAGES: its messages (ChatGPT: its
    nodes), and at least one, so that a file of empty conversations is bounded too."""
    held = None
    if isinstance(item, dict):
        held = item.get("mapping") if "mapping" in item else item.get("messages")
    return max(1, len(held) if isinstance(held, (list, dict)) else 0)


def read(body, models, max_messages, pause):
    items = conversations_in(body)
    if not items:
        raise ValidationFailed(details={"_schema": ["The file holds no conversation."]})
    if sum(weight(item) for _prefix, item in items) > max_messages:
        raise TooManyMessages(max_messages)
    problems = Problems()
    drafts = []
    tool_values = ToolValues()
    for prefix, item in items:
        said = named(prefix, item)
        if not isinstance(item, dict):
            problems.add(prefix, said + "Must be a conversation (a JSON object).")
        elif "mapping" in item:
            drafts.append(chatgpt_import.read(item, prefix, said, problems, models, pause))
        else:
            drafts.append(read_export(item, prefix, said, problems, models, tool_values,
                                      pause))
    if problems:
        raise ValidationFailed("import_invalid", details=problems.details)
    return drafts


def named(prefix, item):
    """How a failure names its conversation in a file of several: index and title."""
    if not prefix:
        return ""
    title = item.get("title") if isinstance(item, dict) else None
    if not isinstance(title, str) and isinstance(item, dict) and isinstance(
            item.get("conversation"), dict):
        title = item["conversation"].get("title")
    title = " ".join(title.split())[:50] if isinstance(title, str) else None
    return f"Conversation {prefix}" + (f" ({title!r})" if title else "") + ": "


def read_export(item, prefix, said, problems, models, tool_values, pause):
    """One conversation in our own format (ExportFileSchema)."""
    try:
        head = HEAD_SCHEMA.load(item)
    except ValidationError as error:
        problems.add_marshmallow(error.messages, prefix, said)
        return None
    conversation = head["conversation"]
    every_id = {raw["id"] for raw in head["messages"]
                if isinstance(raw, dict) and isinstance(raw.get("id"), str)}
    seen = set()
    draft = Draft(conversation_columns(conversation, models))
    for index, raw in enumerate(head["messages"]):
        path = joined(prefix, f"messages.{index}")
        try:
            message = MESSAGE_SCHEMA.load(raw)
        except ValidationError as error:
            problems.add_marshmallow(error.messages, path, said)
            continue
        finally:
            pause()
        key, parent = message.pop("id"), message.pop("parent_id")
        if key in seen:
            problems.add(f"{path}.id", said + f"Duplicate id {key!r}.")
        elif parent is not None and parent not in seen:
            problems.add(f"{path}.parent_id", said + (
                "A message cannot follow itself." if parent == key else
                "Must come after its parent: the file lists parents first." if parent in every_id
                else "Names no message of this file."))
        for number, call in enumerate(message["tool_calls"]):
            for name in ("arguments", "result"):
                # Counted first: the depth's walk, storing and exporting go through every value.
                if tool_values.too_many(call[name]):
                    problems.add(f"{path}.tool_calls.{number}.{name}", said + (
                        f"More than {MAX_TOOL_VALUES} values."))
                elif strict_json.nested_deeper_than(call[name]):
                    problems.add(f"{path}.tool_calls.{number}.{name}", said + (
                        f"Nested deeper than {strict_json.MAX_DEPTH} levels."))
        seen.add(key)
        draft.messages.append({**message, "key": key, "parent_key": parent})
    current = conversation["current_message_id"]
    if current is not None and current not in every_id:
        problems.add(joined(prefix, "conversation.current_message_id"),
                     said + "Names no message of this file.")
    draft.current_key = current
    return draft


def conversation_columns(conversation, models):
    created = conversation["created_at"] or utcnow()
    return {"title": conversation["title"],
            "model": conversation["model"] if conversation["model"] in models else models[0],
            "system_prompt": conversation["system_prompt"],
            "temperature": conversation["temperature"],
            "max_tokens": conversation["max_tokens"],
            "thinking_enabled": conversation["thinking_enabled"],
            "project_id": conversation["project_id"], "pinned": conversation["pinned"],
            "archived": conversation["archived"], "created_at": created,
            "updated_at": conversation["updated_at"] or created}


def newest_leaf(messages):
    """Where the active branch ends when the file does not say: the newest first message's
    newest child, that one's newest child, and so on (as a branch switch lands)."""
    newest = {}
    for message in messages:
        parent = message["parent_key"]
        mark = (message["created_at"], message["key"])
        if parent not in newest or mark > newest[parent][0]:
            newest[parent] = (mark, message["key"])
    at = newest.get(None, (None, None))[1]
    while at in newest:
        at = newest[at][1]
    return at


MESSAGE_COLUMNS = ("role", "content", "reasoning_content", "tool_calls", "status", "error",
                   "error_code", "model", "finish_reason", "usage", "created_at")


def rows_of(user_id, draft, pause):
    """The conversation's row, its messages' rows and its (id, active branch end). Each
    message gets a new id; the ids, random as ever, are handed out in the file's order, so
    messages of one time keep the file's order (the export breaks ties by id)."""
    conversation_id = new_conversation_id()
    new_ids = sorted(new_message_id() for _message in draft.messages)
    id_of = {message["key"]: new_id for message, new_id in zip(draft.messages, new_ids)}
    messages = []
    for message in draft.messages:  # one conversation may hold all of a big file's messages
        messages.append({"id": id_of[message["key"]], "conversation_id": conversation_id,
                         "parent_id": id_of.get(message["parent_key"]),
                         **{name: without_nul(message[name]) for name in MESSAGE_COLUMNS}})
        pause()
    current = draft.current_key if draft.current_key is not None else newest_leaf(
        draft.messages)
    columns = {name: without_nul(value) for name, value in draft.fields.items()}
    conversation = {**columns, "id": conversation_id, "user_id": user_id,
                    "title_by_user": True, "message_count": len(messages),
                    "current_message_id": None}
    return conversation, messages, {"conversation_id": conversation_id,
                                    "current": id_of.get(current),
                                    "kept_updated_at": columns["updated_at"]}


def store(user_id, drafts, pause):
    conversations, messages, currents = [], [], []
    for draft in drafts:
        conversation, its_messages, current = rows_of(user_id, draft, pause)
        conversations.append(conversation)
        messages += its_messages
        currents.append(current)
        draft.messages = []  # the rows are copies: the draft's go now, a few at a time
        pause()
    try:
        in_batches(insert(Conversation), conversations, pause)
        in_batches(insert(Message), messages, pause)
        # The conversations first (the messages refer to them), their active branch once the
        # messages are there; `updated_at` as the file says, not now.
        in_batches(update(Conversation).where(Conversation.id == bindparam("conversation_id"))
                   .values(current_message_id=bindparam("current"),
                           updated_at=bindparam("kept_updated_at")), currents, pause)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    finally:
        cooperative_json.release(messages, pause, levels=1)
    return [conversation["id"] for conversation in conversations]


def in_batches(statement, rows, pause):
    batch, size = [], 0
    for row in rows:
        batch.append(row)
        size += text_size(row)
        if len(batch) == BATCH_ROWS or size >= BATCH_CHARS:
            # Core statements (not ORM bulk ones): executemany of plain rows.
            db.session.connection().execute(statement, batch)
            batch, size = [], 0
            pause()
    if batch:
        db.session.connection().execute(statement, batch)
        pause()


def text_size(row):
    return len(row.get("content") or "") + len(row.get("reasoning_content") or "")
