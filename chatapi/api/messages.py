from flask import Response, current_app, stream_with_context
from flask_jwt_extended import current_user

from ..language import request_language
from ..schemas.envelope import envelope
from ..schemas.messages import (ExchangeSchema, MessageListQuerySchema, MessagePageSchema,
                                RegenerateSchema, SendMessageSchema)
from ..services import chat, messages
from ..texts import say
from . import sse
from .blueprint import Blueprint
from .security import login_required
from .tools import tool_context

STREAM_RESPONSE = {"description": "Server-Sent Events: start, thinking, text, tool_call, "
                                  "tool_result, then done or error",
                   "content": {"text/event-stream": {"schema": sse.EVENT_SCHEMA}}}

blp = Blueprint("messages", __name__, url_prefix="/api/messages",
                description="Messages and answers from GLM")


def exchange_setup():
    """What every exchange is started with, beside what the request says."""
    return {"config": current_app.config, "registry": current_app.extensions["chatapi.tools"],
            "limiter": current_app.extensions["chatapi.rate_limiter"],
            "slots": current_app.extensions["chatapi.answer_slots"],
            "language": request_language()}


def begin_exchange(body):
    return chat.begin(current_user.id, body["conversation_id"], body["content"],
                      body["tools_enabled"], body.get("parent_id", chat.FOLLOW_BRANCH),
                      **exchange_setup())


def begin_regeneration(message_id, body):
    return chat.begin_regeneration(current_user.id, message_id, body["tools_enabled"],
                                   body.get("model"), **exchange_setup())


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
@blp.arguments(SendMessageSchema)
@blp.response(201, envelope(ExchangeSchema))
def send_message(body):
    """Send a message and get the model's whole answer"""
    return whole_answer(begin_exchange(body))


@blp.route("/stream", methods=["POST"])
@login_required
@blp.errors(404, 429)
@blp.arguments(SendMessageSchema)
@blp.doc(responses={200: STREAM_RESPONSE})
def stream_message(body):
    """Send a message and stream the model's answer as Server-Sent Events"""
    return streamed_answer(begin_exchange(body))


@blp.route("/<message_id>/regenerate", methods=["POST"])
@login_required
@blp.errors(404, 429, 502, 504)
@blp.arguments(RegenerateSchema, required=False)
@blp.response(201, envelope(ExchangeSchema))
def regenerate(body, message_id):
    """Answer a user message again (the id of the message or of an answer to it)"""
    return whole_answer(begin_regeneration(message_id, body))


@blp.route("/<message_id>/regenerate/stream", methods=["POST"])
@login_required
@blp.errors(404, 429)
@blp.arguments(RegenerateSchema, required=False)
@blp.doc(responses={200: STREAM_RESPONSE})
def regenerate_stream(body, message_id):
    """Answer a user message again, streamed as Server-Sent Events"""
    return streamed_answer(begin_regeneration(message_id, body))


def whole_answer(exchange):
    """201 with both messages once the answer is stored; when the model failed, its error with
    both messages (the partial answer stored) in `data`."""
    error = chat.run_to_end(exchange_runner(exchange))
    if error is not None:
        exchange.fail(error)
    both = {"user_message": exchange.user_message, "assistant_message": chat.finish(exchange)}
    if error is not None:
        error.data = ExchangeSchema().dump(both)
        raise error
    return {"data": both}


def streamed_answer(exchange):
    events = sse.relay(exchange, exchange_runner(exchange), chat.finish,
                       current_app.config["SSE_PING_SECONDS"])
    return Response(stream_with_context(events), mimetype="text/event-stream",
                    headers=sse.HEADERS)


@blp.route("/<message_id>", methods=["DELETE"])
@login_required
@blp.errors(404)
@blp.response(200, envelope())
def delete_message(message_id):
    """Delete a message"""
    messages.delete(messages.get_owned(current_user.id, message_id))
    return {"message": say("message_deleted", request_language())}
