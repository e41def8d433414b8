from functools import partial

from flask import current_app, request
from flask_jwt_extended import current_user

from ..language import request_language
from ..schemas.envelope import envelope
from ..errors import ValidationFailed, error_with_code
from ..schemas.messages import (ExchangeSchema, FollowQuerySchema, IdempotencyHeaderSchema,
                                MessageListQuerySchema, MessagePageSchema, RegenerateSchema,
                                SendMessageSchema, StoppedSchema)
from ..services import chat, idempotency, messages, quotas, titles
from ..texts import say
from . import sse
from .blueprint import Blueprint
from .security import login_required
from .tools import tool_context

blp = Blueprint("messages", __name__, url_prefix="/api/messages",
                description="Messages and answers from GLM")
# Instances, not classes: webargs would make one for every request that starts an answer.
SEND_BODY, KEY_HEADER = SendMessageSchema(), IdempotencyHeaderSchema()


def exchange_setup(keyed):
    """What every exchange is started with, beside what the request says; `keyed`: the
    request's Idempotency-Key, stored with the answer's row."""
    language = request_language()
    remember_key = None if keyed is None else partial(idempotency.remember, keyed)
    return {"config": current_app.config, "registry": current_app.extensions["chatapi.tools"],
            "limiter": current_app.extensions["chatapi.rate_limiter"],
            "slots": current_app.extensions["chatapi.answer_slots"],
            "language": language, "opening": answers().opening(language, remember_key),
            "quota": quotas.quota_of(current_user, current_app.config["TOKEN_QUOTA"]),
            "meter": current_app.extensions["chatapi.token_meter"]}


def begin_exchange(headers, body):
    """(the exchange started, None), or (None, the first answer) for a repeated key."""
    def begin(keyed):
        return chat.begin(current_user.id, body["conversation_id"], body["content"],
                          body["tools_enabled"], body.get("parent_id", chat.FOLLOW_BRANCH),
                          **exchange_setup(keyed))
    return idempotency.begin_once(keyed_request(headers, idempotency.SEND, body), begin)


def begin_regeneration(headers, message_id, body):
    def begin(keyed):
        return chat.begin_regeneration(current_user.id, message_id, body["tools_enabled"],
                                       body.get("model"), **exchange_setup(keyed))
    return idempotency.begin_once(
        keyed_request(headers, idempotency.REGENERATE, body, message_id), begin)


def keyed_request(headers, kind, body, message_id=None):
    if "key" not in headers:
        return None
    return idempotency.keyed_request(current_user.id, headers["key"], kind, body,
                                     current_app.config["IDEMPOTENCY_TTL_HOURS"], message_id)


def exchange_runner(exchange):
    glm = current_app.extensions["chatapi.glm"]
    registry = current_app.extensions["chatapi.tools"]
    context = tool_context(exchange.language, exchange.user_id)
    rounds = current_app.config["TOOL_MAX_ROUNDS"]
    limiter = current_app.extensions["chatapi.rate_limiter"]
    return lambda: chat.run(exchange, glm, registry, context, rounds, limiter)


@blp.route("/<conversation_id>", methods=["GET"])
@login_required
@blp.errors(404)
@blp.arguments(MessageListQuerySchema, location="query")
@blp.response(200, envelope(MessagePageSchema))
def list_messages(query, conversation_id):
    """List the messages of a conversation"""
    return {"data": messages.list_page(current_user.id, conversation_id, **query)}


@blp.route("/", methods=["POST"])
@login_required
@blp.errors(404, 429, 502, 504)
@blp.arguments(SEND_BODY)
@blp.arguments(KEY_HEADER, location="headers")
@blp.response(201, envelope(ExchangeSchema))
def send_message(body, headers):
    """Send a message and get the model's whole answer"""
    return whole_answer(*begin_exchange(headers, body))


@blp.route("/stream", methods=["POST"])
@login_required
@blp.errors(404, 429)
@blp.arguments(SEND_BODY)
@blp.arguments(KEY_HEADER, location="headers")
@blp.doc(responses={200: sse.STREAM_RESPONSE})
def stream_message(body, headers):
    """Send a message and stream the model's answer as Server-Sent Events"""
    return streamed_answer(*begin_exchange(headers, body))


@blp.route("/<message_id>/regenerate", methods=["POST"])
@login_required
@blp.errors(404, 429, 502, 504)
@blp.arguments(RegenerateSchema, required=False)
@blp.arguments(KEY_HEADER, location="headers")
@blp.response(201, envelope(ExchangeSchema))
def regenerate(body, headers, message_id):
    """Answer a user message again (the id of the message or of an answer to it)"""
    return whole_answer(*begin_regeneration(headers, message_id, body))


@blp.route("/<message_id>/regenerate/stream", methods=["POST"])
@login_required
@blp.errors(404, 429)
@blp.arguments(RegenerateSchema, required=False)
@blp.arguments(KEY_HEADER, location="headers")
@blp.doc(responses={200: sse.STREAM_RESPONSE})
def regenerate_stream(body, headers, message_id):
    """Answer a user message again, streamed as Server-Sent Events"""
    return streamed_answer(*begin_regeneration(headers, message_id, body))


def whole_answer(exchange, first):
    """201 with both messages once the answer is stored; when the model failed, its error with
    both messages (the partial answer stored) in `data`. A repeated key: the same, of the
    first request's answer."""
    if first is not None:
        return repeated_whole_answer(first)
    job = start_answer(exchange)
    job.attach()
    try:
        job.wait()
    finally:
        job.detach()
    if job.unstored is not None:
        raise job.unstored
    both = {"user_message": exchange.user_message,
            "assistant_message": messages.answer_as_stored(job.id)}
    if job.failure is not None:
        job.failure.data = ExchangeSchema().dump(both)
        raise job.failure
    return {"data": both}


def repeated_whole_answer(first):
    """Once the first answer is stored, as a first request is answered: 404 when its messages
    were deleted since."""
    user_id = current_user.id  # the session is closed while the first answer runs
    answers().wait_until_ended(first.answer_id, request_language())
    answer = messages.answer_owned(user_id, first.answer_id)
    question = messages.get_owned(user_id, first.user_message_id)
    both = {"assistant_message": messages.answer_as_stored(answer.id),
            "user_message": messages.attach_siblings([question])[0]}
    if both["assistant_message"].status == "error":
        raise error_with_code(both["assistant_message"].error_code,
                              data=ExchangeSchema().dump(both))
    return {"data": both}


def streamed_answer(exchange, first):
    if first is not None:
        messages.answer_owned(current_user.id, first.answer_id)
        return reattach(first.answer_id, 0)
    job = start_answer(exchange)
    return sse.response(job.follow(0, current_app.config["SSE_PING_SECONDS"]))


def start_answer(exchange):
    job = answers().start(exchange, exchange_runner(exchange), {
        "user_message": answers().dump(exchange.user_message),
        "assistant_message_id": exchange.assistant_message_id})
    if exchange.automatic_title is not None and current_app.config["AUTO_TITLE"]:
        titles.start(current_app._get_current_object(), exchange,
                     current_app.extensions["chatapi.glm"],
                     current_app.extensions["chatapi.token_meter"])
    return job


def answers():
    return current_app.extensions["chatapi.answers"]


@blp.route("/<message_id>/stream", methods=["GET"])
@login_required
@blp.errors(404)
@blp.arguments(FollowQuerySchema, location="query")
@blp.doc(parameters=[{"in": "header", "name": "Last-Event-ID", "required": False,
                      "schema": {"type": "integer", "minimum": 0},
                      "description": "send the events after this one"}],
         responses={200: sse.STREAM_RESPONSE})
def follow_answer(query, message_id):
    """Re-attach to an answer's events: those after Last-Event-ID, then live to its end"""
    answer = messages.answer_owned(current_user.id, message_id)
    return reattach(answer.id, query.get("after", last_event_id(
        request.headers.get("Last-Event-ID"))))


def reattach(answer_id, after):
    return sse.response(answers().follow(answer_id, after, current_app.config[
        "SSE_PING_SECONDS"], request_language()))


def last_event_id(header):
    if header is None:
        return 0
    if not header.isascii() or not header.strip().isdigit() or int(header) > 2**31 - 1:
        raise ValidationFailed(details={"Last-Event-ID": [
            "Must be a non-negative integer: the id of the last event received."]})
    return int(header)


@blp.route("/<message_id>/stop", methods=["POST"])
@login_required
@blp.errors(404, 422)
@blp.response(200, envelope(StoppedSchema))
def stop_answer(message_id):
    """Stop an answer wherever it runs; its text so far is kept"""
    answer = messages.answer_owned(current_user.id, message_id)
    if answer.status == "in_progress":
        answers().stop(answer.id)
    return {"message": say("answer_stopped", request_language()),
            "data": {"message": messages.answer_as_stored(answer.id)}}


@blp.route("/<message_id>", methods=["DELETE"])
@login_required
@blp.errors(404)
@blp.response(200, envelope())
def delete_message(message_id):
    """Delete a message (an answer being written is stopped first)"""
    message = messages.get_owned(current_user.id, message_id)
    if message.status == "in_progress":
        answers().stop(message.id)
        message = messages.get_owned(current_user.id, message_id)  # as its end left it
    messages.delete(message)
    return {"message": say("message_deleted", request_language())}
