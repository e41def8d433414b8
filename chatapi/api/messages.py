from flask import Response, current_app, stream_with_context
from flask_jwt_extended import current_user

from ..language import request_language
from ..schemas.envelope import envelope
from ..schemas.messages import (ExchangeSchema, MessageListQuerySchema, MessagePageSchema,
                                SendMessageSchema)
from ..services import chat, messages
from ..texts import say
from . import sse
from .blueprint import Blueprint
from .security import login_required
from .tools import tool_context

blp = Blueprint("messages", __name__, url_prefix="/api/messages",
                description="Messages and answers from GLM")


def begin_exchange(body):
    return chat.begin(current_user.id, body["conversation_id"], body["content"],
                      body["tools_enabled"], config=current_app.config,
                      registry=current_app.extensions["chatapi.tools"],
                      limiter=current_app.extensions["chatapi.rate_limiter"],
                      slots=current_app.extensions["chatapi.answer_slots"],
                      language=request_language())


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
    exchange = begin_exchange(body)
    error = chat.run_to_end(exchange_runner(exchange))
    if error is not None:
        exchange.fail(error)
    both = {"user_message": exchange.user_message, "assistant_message": chat.finish(exchange)}
    if error is not None:
        error.data = ExchangeSchema().dump(both)
        raise error
    return {"data": both}


@blp.route("/stream", methods=["POST"])
@login_required
@blp.errors(404, 429)
@blp.arguments(SendMessageSchema)
@blp.doc(responses={200: {"description": "Server-Sent Events: start, thinking, text, "
                                         "tool_call, tool_result, then done or error",
                          "content": {"text/event-stream": {"schema": sse.EVENT_SCHEMA}}}})
def stream_message(body):
    """Send a message and stream the model's answer as Server-Sent Events"""
    exchange = begin_exchange(body)
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
