"""One exchange with GLM: store the user's message and the answer's row (`in_progress`), ask
the model (running tools it calls), store the answer at the end — completed, incomplete or
error. services/answers.py runs it as a job of its own."""
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from sqlalchemy import bindparam, inspect, select, update

from .. import strict_json
from ..errors import CODE_BY_STATUS, ApiError, NotFound, RateLimited, UpstreamError
from ..extensions import db
from ..glm import Finish, ReasoningDelta, TextDelta, ToolCallRequest
from ..models import Message
from ..models.message import new_message_id, without_nul
from ..models.timestamps import utcnow
from ..texts import say
from . import answer_slots, conversations, history, messages, quotas, titles, tree, usage

log = logging.getLogger(__name__)

# Why an answer was ended before the model finished: its finish_reason, and the code of its
# last event when that is an error (docs/API.md §4, "How answers end").
STOPPED, DISCONNECTED, INTERRUPTED = "stopped", "disconnected", "interrupted"
ERROR_CODE_OF = {INTERRUPTED: "answer_interrupted"}
# How soon a stop is seen while a tool runs.
TOOL_STOP_POLL_SECONDS = 0.05


@dataclass(eq=False)
class Exchange:
    """Everything one answer needs, loaded before the model is called, so no database
    connection is held while it streams (the language its stored texts are written in too: a
    reader greenlet has no request); and what the answer has gathered so far."""

    conversation_id: str
    model: str
    temperature: float
    max_tokens: int
    thinking: bool
    wire: list
    tools: list | None
    user_message: Message
    assistant_message_id: str
    user_id: int
    language: str
    slots: object = None
    slot_renewed_at: float = field(default_factory=time.monotonic)
    started_at: object = None
    text: list = field(default_factory=list)
    reasoning: list = field(default_factory=list)
    tool_calls: list = field(default_factory=list)
    usage: dict = field(default_factory=lambda: dict.fromkeys(
        ("prompt_tokens", "completion_tokens", "total_tokens"), 0))
    provider_calls: list = field(default_factory=list)  # usage.ProviderCall, one per round
    finish_reason: str | None = None
    status: str = "completed"
    error: str | None = None
    error_code: str | None = None
    cancelled: bool = False
    stop_reason: str | None = None
    stream: object = None
    # The conversation's first answer: the title its first message gave it, for the model's
    # title to replace (services/titles.py); events from other threads for the answer's stream.
    automatic_title: str | None = None
    side_events: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self, reason=STOPPED):
        """Stopped, nobody listening, or the worker is going: hang up on the provider now, give
        up a running tool and keep what arrived. The first reason given is the one kept."""
        with self.lock:
            if self.cancelled:
                return
            self.cancelled = True
            self.stop_reason = reason
            self.status = "incomplete"
            self.error_code = ERROR_CODE_OF.get(reason)
            if self.stream is not None:
                self.stream.close()

    def keep_slot(self):
        if self.slots is not None and time.monotonic() - self.slot_renewed_at > \
                answer_slots.RENEW_AFTER_SECONDS:
            self.slots.renew(self.user_id, self.assistant_message_id)
            self.slot_renewed_at = time.monotonic()

    def release_slot(self):
        if self.slots is not None:
            self.slots.release(self.user_id, self.assistant_message_id)
            self.slots = None

    def fail(self, error):
        if not self.cancelled:
            self.status = "error"
            self.error_code = CODE_BY_STATUS[error.status]
            self.error = say(error.text_key, self.language)
            if error.details and error.details.get("provider_message"):
                self.error += f": {error.details['provider_message']}"


# `parent_id` not given: the new message follows the active branch's last answer.
FOLLOW_BRANCH = object()


def begin(user_id, conversation_id, content, tools_enabled, parent_id=FOLLOW_BRANCH, **setup):
    """A new user message (after `parent_id`: an assistant message, or None for a new first
    message) and its answer. `setup`: see `start`."""
    conversation = conversations.answer_settings(user_id, conversation_id)
    if parent_id is not FOLLOW_BRANCH and parent_id is not None:
        tree.answer_to_follow(conversation.id, parent_id)
    return start(user_id, conversation, partial(ask_new, content, parent_id), tools_enabled,
                 None, **setup)


def begin_regeneration(user_id, message_id, tools_enabled, model, **setup):
    """Another answer to a stored user message (`message_id` is it, or an answer to it),
    stored beside the earlier ones; `model` instead of the conversation's, when given."""
    named = messages.get_owned(user_id, message_id)
    conversation = conversations.answer_settings(user_id,
                                                 tree.question_of(named).conversation_id)
    return start(user_id, conversation, partial(ask_again, named.id), tools_enabled, model,
                 **setup)


def start(user_id, conversation, ask, tools_enabled, model, *, config, registry, limiter,
          slots, language, opening, quota, meter):
    """Check the user's limits, let `ask` store (or find) the user message and prepare the
    answer, whose texts are written in `language`. Refused (429) before anything is
    stored. `opening` opens the answer's job: `reserve(answer_id)` before the transaction
    that stores the answer (so that no round trip to Redis is made inside it: on SQLite it
    holds the only writer's lock), `add(answer_id, question_id)` in it, `undo(answer_id)` when
    it fails. Over its `quota` (429 quota_exceeded), nothing is stored and nothing counted."""
    quotas.check(meter, quota, user_id, utcnow())
    if config["MESSAGE_RATE_LIMIT"]:
        limiter.take(config["MESSAGE_RATE_LIMIT"], "messages", user_id)
    answer_id = new_message_id()
    if not config["MAX_CONCURRENT_ANSWERS"]:
        slots = None
    if slots is not None:
        slots.acquire(user_id, answer_id, config["MAX_CONCURRENT_ANSWERS"])
    try:
        opening.reserve(answer_id)
        try:
            question, branch, automatic_title, model, started_at = open_answer(
                conversation, ask, model, answer_id, opening.add)
        except BaseException:
            db.session.rollback()
            opening.undo(answer_id)
            raise
    except BaseException:
        if slots is not None:
            slots.release(user_id, answer_id)
        raise
    wire = history.build_wire_messages(
        system_prompt=conversation.system_prompt,
        history=[m for m in branch if m.status not in ("error", "in_progress")],
        new_content=question.content,
        context=history.context_tokens(config["GLM_MODEL_FIGURES"], model),
        max_tokens=conversation.max_tokens, tool_result_chars=config["TOOL_RESULT_MAX_CHARS"])
    exchange = Exchange(
        conversation_id=conversation.id, model=model,
        temperature=conversation.temperature, max_tokens=conversation.max_tokens,
        thinking=conversation.thinking_enabled, wire=wire,
        tools=registry.functions if tools_enabled else None,
        user_message=question, assistant_message_id=answer_id, user_id=user_id,
        language=language, slots=slots, started_at=started_at, automatic_title=automatic_title)
    if question in db.session:  # a stored question, asked again
        db.session.expunge(question)
    # Release the connection before the model is asked: a stream may last minutes.
    db.session.close()
    return exchange


# Each `ask` runs under the conversation's lock (the first statement updates its row, which
# locks the tree) and returns the user message to answer (a new one not stored yet: it is
# stored with its answer), the branch before it (every message of it, failed answers too,
# root first, as tree.branch_rows gives it) and the automatic title it gave the conversation,
# if any. A conversation deleted since it was looked up is not found: it has no row left to
# lock.

def ask_new(content, parent_id, conversation):
    found, current = conversations.count_messages_at(conversation.id, 2)
    if not found:
        raise NotFound()
    if parent_id is FOLLOW_BRANCH:
        parent_id, earlier = tree.history_to_follow(conversation.id, current)
    else:
        if parent_id is not None:
            # Again under the lock: it may have been deleted since.
            tree.answer_to_follow(conversation.id, parent_id)
        earlier = tree.branch_rows(conversation.id, parent_id)
    title = None
    if not any(m.role == "user" for m in earlier):
        title = titles.automatic_title(content)
        if not conversations.retitle(conversation.id, title):
            title = None
    question = Message(id=new_message_id(), conversation_id=conversation.id, role="user",
                       content=content, status="completed", tool_calls=[], parent_id=parent_id,
                       created_at=utcnow())
    return question, earlier, title


def ask_again(message_id, conversation):
    if not conversations.count_messages(conversation.id, 1):
        raise NotFound()
    # Again under the lock, as stored now (not as loaded before): the message, its question
    # or the question's place may have changed with a delete since.
    named = db.session.scalar(select(Message).where(Message.id == message_id)
                              .execution_options(populate_existing=True))
    if named is None:
        raise NotFound()
    question = tree.question_of(named)
    return question, tree.branch_rows(conversation.id, question.parent_id), None


MESSAGES = Message.__table__
# Every column but `usage`: Python's None would be stored as JSON's null, not as NULL.
STORED_COLUMNS = ("id", "conversation_id", "parent_id", "role", "content", "reasoning_content",
                  "tool_calls", "status", "error", "error_code", "model", "finish_reason",
                  "created_at")
INSERT_MESSAGES = MESSAGES.insert()


def row_of(message):
    return {name: getattr(message, name) for name in STORED_COLUMNS}


def open_answer(conversation, ask, model, answer_id, on_open):
    """Store the user's message (or find it) and the answer's row, `in_progress`, which ends
    the active branch: (the question, the branch before it, the automatic title given, the
    model, the answer's start).
    `on_open(answer_id, question_id)` adds what else must be stored with them (the job's row,
    the request's Idempotency-Key). A question deleted while its answer is written hands the
    answer, as any child, to what it followed (messages.delete)."""
    question, branch, automatic_title = ask(conversation)
    model = model or conversation.model
    started_at = max(utcnow(), question.created_at + timedelta(microseconds=1))
    answer = Message(id=answer_id, conversation_id=conversation.id, role="assistant",
                     content="", status="in_progress", tool_calls=[], model=model,
                     parent_id=question.id, created_at=started_at)
    # One statement for both rows, without the ORM's unit of work.
    rows = [row_of(answer)]
    if inspect(question).transient:
        rows.insert(0, row_of(question))
    db.session.connection().execute(INSERT_MESSAGES, rows)
    on_open(answer_id, question.id)
    conversations.move_current_to(conversation.id, answer_id)
    messages.attach_siblings_of(question)
    db.session.commit()
    return question, branch, automatic_title, model, started_at


def run(exchange, glm, registry, tool_context, max_rounds, limiter):
    """Yield ("thinking"|"text"|"tool_call"|"tool_result", data) as the answer unfolds. Raises
    ApiError when the provider fails; the exchange keeps the partial answer. The tools the
    model runs count in the user's tool budget (TOOL_RATE_LIMIT), as direct runs do."""
    for round_number in range(max_rounds + 1):
        if exchange.cancelled:
            return
        offered = exchange.tools if round_number < max_rounds else None
        round_text, calls = [], []
        stream = glm.stream_chat(
            model=exchange.model, messages=exchange.wire, temperature=exchange.temperature,
            max_tokens=exchange.max_tokens, thinking=exchange.thinking, tools=offered)
        # Answered: the provider bills this call, however it ends.
        billed = usage.ProviderCall(exchange.model, list(exchange.wire), offered)
        exchange.provider_calls.append(billed)
        with exchange.lock:
            exchange.stream = stream
            if exchange.cancelled:
                stream.close()
                billed.end()
                return
        try:
            for event in until_cancelled(exchange, stream):
                exchange.keep_slot()
                if isinstance(event, TextDelta):
                    exchange.text.append(event.text)
                    round_text.append(event.text)
                    billed.written.append(event.text)
                    yield "text", {"delta": event.text}
                elif isinstance(event, ReasoningDelta):
                    exchange.reasoning.append(event.text)
                    billed.written.append(event.text)
                    yield "thinking", {"delta": event.text}
                elif isinstance(event, ToolCallRequest):
                    calls.append(event)
                    billed.written.append(event.arguments)
                elif isinstance(event, Finish):
                    billed.usage = event.usage
                    record_finish(exchange, event)
        finally:
            billed.end()
        # Calls the model makes when no tools were offered (the last round) are not run.
        if not calls or offered is None:
            return
        exchange.wire.append({"role": "assistant", "content": "".join(round_text) or None,
                              "tool_calls": [history.wire_call(call.id, call.name, call.arguments)
                                             for call in calls]})
        for position, call in enumerate(calls):
            if exchange.cancelled:
                return
            arguments, problem = parse_arguments(call.arguments)
            yield "tool_call", {"id": call.id, "name": call.name,
                                "arguments": arguments if arguments is not None else {}}
            admit = partial(admit_tool_run, limiter, tool_context.config, exchange.user_id,
                            position)
            record = unless_stopped(exchange, call, arguments, partial(
                run_tool, registry, tool_context, call, arguments, problem, admit))
            exchange.tool_calls.append(record)
            yield "tool_result", {key: record[key] for key in
                                  ("id", "name", "result", "status", "duration_ms")}
            exchange.wire.append({"role": "tool", "tool_call_id": call.id,
                                  "content": history.tool_result_text(
                                      record["result"],
                                      tool_context.config["TOOL_RESULT_MAX_CHARS"])})


def unless_stopped(exchange, call, arguments, run_one_tool):
    """The tool's record; or, when the answer is stopped while the tool runs, the tool given up
    (it ends unheard in its own thread) and recorded as the error result "stopped"."""
    started = time.perf_counter()
    outcome = {}
    finished = threading.Event()

    def run_it():
        try:
            outcome["record"] = run_one_tool()
        finally:
            finished.set()

    threading.Thread(target=run_it, daemon=True).start()
    while not finished.wait(TOOL_STOP_POLL_SECONDS):
        if exchange.cancelled:
            return {"id": call.id, "name": call.name,
                    "arguments": arguments if arguments is not None else {},
                    "result": "stopped", "status": "error",
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1)}
    return outcome["record"]


def until_cancelled(exchange, stream):
    """The stream's events; once the exchange is cancelled, the broken upstream it leaves
    behind is the expected end, not a provider failure."""
    try:
        yield from stream
    except ApiError:
        if not exchange.cancelled:
            raise


def record_finish(exchange, finish):
    exchange.finish_reason = finish.reason
    for key in exchange.usage:
        exchange.usage[key] += finish.usage.get(key, 0)
    if finish.reason == "length":
        exchange.status = "incomplete"
    elif finish.reason in ("sensitive", "network_error"):
        raise UpstreamError(details={"provider_error": f"finish_reason {finish.reason}",
                                     "provider_message": finish.reason})


def parse_arguments(raw):
    """(the arguments, None), or (None, why not): they must be a JSON object of strict JSON,
    as a request body must; NaN stored in a message would make its conversation's message
    list unreadable JSON."""
    try:
        arguments = strict_json.loads(raw or "{}")
    except (ValueError, RecursionError) as error:
        return None, f"arguments are not a valid JSON object: {error}"
    if not isinstance(arguments, dict):
        return None, "arguments are not a valid JSON object"
    if strict_json.nested_deeper_than(arguments):
        return None, f"arguments are nested more than {strict_json.MAX_DEPTH} levels deep"
    return arguments, None


def admit_tool_run(limiter, config, user_id, position):
    """Raises RateLimited for a call past the round's cap, or when the user's tool budget is
    spent (the same counter as POST /api/tools/{name}/execute); else counts this run."""
    if position >= config["TOOL_MAX_CALLS_PER_ROUND"]:
        raise RateLimited("too_many_tool_calls", details={
            "max_calls_per_round": config["TOOL_MAX_CALLS_PER_ROUND"]})
    if config["TOOL_RATE_LIMIT"]:
        limiter.take(config["TOOL_RATE_LIMIT"], "tools", user_id)


def run_tool(registry, tool_context, call, arguments, problem, admit):
    """A failing or refused tool becomes an error result the model sees, never a crash."""
    started = time.perf_counter()
    record = {"id": call.id, "name": call.name,
              "arguments": arguments if arguments is not None else {}}
    if arguments is None:
        result, status = {"error": problem, "arguments": call.arguments}, "error"
    else:
        try:
            admit()
            result = registry.execute(call.name, arguments, tool_context)["result"]
            status = "ok"
        except ApiError as error:
            result = {"error": say(error.text_key, tool_context.language), "code": error.status}
            if error.details:
                result["details"] = error.details
            status = "error"
        except Exception:
            log.exception("tool %s failed", call.name)
            result, status = {"error": "the tool failed unexpectedly"}, "error"
    record.update(result=result, status=status,
                  duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return record


ENDED = tuple(name for name in STORED_COLUMNS if name not in (
    "id", "conversation_id", "parent_id", "role", "created_at")) + ("usage",)
# The answer's end, and its row as it is then, in one statement built once; the other only
# while the answer is in progress (not ended by another worker meanwhile).
STORE_END = (update(MESSAGES).where(MESSAGES.c.id == bindparam("answer_id"))
             .values(**{name: bindparam(f"new_{name}") for name in ENDED})
             .returning(*MESSAGES.c))
STORE_RUNNING_END = STORE_END.where(MESSAGES.c.status == "in_progress")


def finish(exchange, running_only=False):
    """Write the answer's end into its row; the caller commits. (The message as stored, True),
    or, when it was deleted meanwhile (its conversation perhaps), (as it would have been,
    False); with `running_only`, also False when its row is no longer `in_progress`, and
    nothing written."""
    exchange.release_slot()
    values = {"content": without_nul("".join(exchange.text)),
              "reasoning_content": without_nul("".join(exchange.reasoning) or None),
              "tool_calls": without_nul(exchange.tool_calls), "status": exchange.status,
              "error": without_nul(exchange.error), "error_code": exchange.error_code,
              "model": exchange.model, "usage": exchange.usage,
              "finish_reason": exchange.stop_reason or exchange.finish_reason}
    stored = db.session.connection().execute(STORE_RUNNING_END if running_only else STORE_END, {
        "answer_id": exchange.assistant_message_id,
        **{f"new_{name}": value for name, value in values.items()}}).first()
    if stored is None:
        if not running_only:
            log.info("answer %s was deleted while it was written",
                     exchange.assistant_message_id)
        message = Message(id=exchange.assistant_message_id, role="assistant",
                          conversation_id=exchange.conversation_id,
                          parent_id=exchange.user_message.id, created_at=exchange.started_at,
                          **values)
        message.sibling_ids = [message.id]
        return message, False
    return messages.attach_siblings_of(Message(**stored._mapping)), True
