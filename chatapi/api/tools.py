from flask import current_app
from flask_jwt_extended import current_user

from ..language import request_language
from ..schemas.envelope import envelope
from ..schemas.tools import (ToolArgumentsSchema, ToolListQuerySchema, ToolListSchema,
                             ToolRunSchema, ToolSchema)
from ..tools import ToolContext
from .blueprint import Blueprint
from .security import login_required

blp = Blueprint("tools", __name__, url_prefix="/api/tools", description="Tools")


def registry():
    return current_app.extensions["chatapi.tools"]


def tool_context(language, user_id):
    return ToolContext(config=current_app.config, language=language,
                       glm=current_app.extensions["chatapi.glm"],
                       compute=current_app.extensions["chatapi.compute"].for_owner(user_id))


@blp.route("/", methods=["GET"])
@login_required
@blp.arguments(ToolListQuerySchema, location="query")
@blp.response(200, envelope(ToolListSchema))
def list_tools(query):
    """List the tools, optionally of one category"""
    return {"data": registry().listing(current_app.config, query.get("category"))}


@blp.route("/<name>", methods=["GET"])
@login_required
@blp.errors(404)
@blp.response(200, envelope(ToolSchema))
def get_tool(name):
    """Get a tool's description and parameters"""
    return {"data": registry().get(name).describe(current_app.config)}


@blp.route("/<name>/execute", methods=["POST"])
@login_required
@blp.errors(404, 429, 502, 503, 504)
@blp.arguments(ToolArgumentsSchema)
@blp.response(200, envelope(ToolRunSchema))
def execute_tool(arguments, name):
    """Run a tool with the given arguments"""
    limit = current_app.config["TOOL_RATE_LIMIT"]
    if limit:
        current_app.extensions["chatapi.rate_limiter"].take(limit, "tools", current_user.id)
    context = tool_context(request_language(), current_user.id)
    return {"data": registry().execute(name, arguments, context)}
