from flask_jwt_extended import current_user

from ..language import request_language
from ..schemas.conversations import (ConversationInputSchema, ConversationListQuerySchema,
                                     ConversationPageSchema, ConversationSchema,
                                     ConversationUpdateSchema)
from ..schemas.envelope import envelope
from ..services import conversations
from ..texts import say
from .blueprint import Blueprint
from .security import login_required

blp = Blueprint("conversations", __name__, url_prefix="/api/conversations",
                description="Conversations of the calling user")


@blp.route("/", methods=["GET"])
@login_required
@blp.arguments(ConversationListQuerySchema, location="query")
@blp.response(200, envelope(ConversationPageSchema))
def list_conversations(query):
    """List the calling user's conversations"""
    return {"data": conversations.list_page(current_user.id, **query)}


@blp.route("/", methods=["POST"])
@login_required
@blp.arguments(ConversationInputSchema)
@blp.response(201, envelope(ConversationSchema))
def create_conversation(fields):
    """Create a conversation"""
    return {"message": say("conversation_created", request_language()),
            "data": conversations.create(current_user.id, fields)}


@blp.route("/<conversation_id>", methods=["GET"])
@login_required
@blp.errors(404)
@blp.response(200, envelope(ConversationSchema))
def get_conversation(conversation_id):
    """Get a conversation"""
    return {"data": conversations.get_owned(current_user.id, conversation_id)}


@blp.route("/<conversation_id>", methods=["PUT"])
@login_required
@blp.errors(404)
@blp.arguments(ConversationUpdateSchema(partial=True))
@blp.response(200, envelope(ConversationSchema))
def update_conversation(fields, conversation_id):
    """Update a conversation: only the fields sent change"""
    conversation = conversations.get_owned(current_user.id, conversation_id)
    return {"message": say("conversation_updated", request_language()),
            "data": conversations.update(conversation, fields)}


@blp.route("/<conversation_id>", methods=["DELETE"])
@login_required
@blp.errors(404)
@blp.response(200, envelope())
def delete_conversation(conversation_id):
    """Delete a conversation and its messages"""
    conversations.delete(conversations.get_owned(current_user.id, conversation_id))
    return {"message": say("conversation_deleted", request_language())}
