"""Export a conversation as a file, import conversations from one (docs/API.md §3, "Export
and import")."""
from flask import Response, current_app, request
from flask_jwt_extended import current_user

from .. import cooperative_json, strict_json
from ..language import request_language
from ..schemas.envelope import envelope
from ..schemas.transfer import (ConversationFileSchema, ExportFileSchema, ExportQuerySchema,
                                ImportedSchema, MessageFileSchema)
from ..services import conversations, export, imports
from ..texts import say
from .blueprint import Blueprint, raw_body
from .security import login_required

blp = Blueprint("transfer", __name__, url_prefix="/api/conversations",
                description="Conversations as files: export and import")

MARKDOWN = "text/markdown"
EXPORT_RESPONSE = {"200": {"description": "the file, with `Content-Disposition: attachment`",
                           "content": {
                               "application/json": {
                                   "schema": {"$ref": "#/components/schemas/ExportFile"}},
                               "text/markdown": {"schema": {"type": "string"}}}}}
IMPORT_BODY = {"required": True, "description": (
    "an export `json` (ExportFile), a JSON list of them, or a ChatGPT data export's "
    "conversations.json (a list of conversations with `mapping`); at most IMPORT_MAX_BYTES "
    "(50 MiB) and IMPORT_MAX_MESSAGES (100,000) messages"),
    "content": {"application/json": {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/ExportFile"},
        {"type": "array", "items": {"type": "object"}}]}}}}


@blp.route("/<conversation_id>/export", methods=["GET"])
@login_required
@blp.errors(404)
@blp.arguments(ExportQuerySchema, location="query")
@blp.response(200, ExportFileSchema, description="the file, with `Content-Disposition: "
                                                 "attachment`")
@blp.doc(responses=EXPORT_RESPONSE)
def export_conversation(query, conversation_id):
    """Export a conversation as a file: `json` to import again, `markdown` to read"""
    conversation = conversations.get_owned(current_user.id, conversation_id)
    if query["format"] == "markdown":
        body, mimetype = export.as_markdown(conversation), MARKDOWN
    else:
        body, mimetype = strict_json.dumps(dumped(export.as_file(conversation)),
                                           ensure_ascii=False), "application/json"
    return Response(body, mimetype=mimetype, headers={
        "Content-Disposition": export.attachment(conversation.title, "md" if query["format"]
                                                 == "markdown" else "json")})


def dumped(file):
    """ExportFileSchema's dump, one message at a time between pauses (a conversation may hold
    many thousands)."""
    pause, schema = cooperative_json.Pauses(), MessageFileSchema()
    messages = []
    for message in file["messages"]:
        messages.append(schema.dump(message))
        pause()
    return {"version": file["version"],
            "conversation": ConversationFileSchema().dump(file["conversation"]),
            "messages": messages}


@blp.route("/import", methods=["POST"])
@login_required
@blp.errors(400, 413, 422, 429)
@blp.doc(requestBody=IMPORT_BODY)
@blp.response(201, envelope(ImportedSchema))
def import_conversations():
    """Import conversations: from an export `json`, or a ChatGPT data export"""
    config = current_app.config
    if config["IMPORT_RATE_LIMIT"]:
        current_app.extensions["chatapi.rate_limiter"].take(
            config["IMPORT_RATE_LIMIT"], "imports", current_user.id)
    pause = cooperative_json.Pauses()
    with imports.one_at_a_time():
        raw = raw_body(request, config["IMPORT_MAX_BYTES"], pause)
        ids = imports.import_file(current_user.id, raw, config["GLM_MODELS"],
                                  config["IMPORT_MAX_MESSAGES"], pause)
    return {"message": say("conversations_imported", request_language()),
            "data": {"conversations": ids}}
