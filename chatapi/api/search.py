from flask import current_app
from flask_jwt_extended import current_user

from ..schemas.envelope import envelope
from ..schemas.search import SearchPageSchema, SearchQuerySchema
from ..services import search as search_service
from .blueprint import Blueprint
from .security import login_required

blp = Blueprint("search", __name__, url_prefix="/api/search",
                description="Search the calling user's messages and conversation titles")


@blp.route("/", methods=["GET"])
@login_required
@blp.errors(429)
@blp.arguments(SearchQuerySchema, location="query")
@blp.response(200, envelope(SearchPageSchema))
def search(query):
    """Find a text in the caller's messages and conversation titles, newest first

    Case-insensitive substring in any script (no word splitting). Messages of archived
    conversations are found too; an answer still being written is found once it ends. A
    query of one or two characters looks through the caller's newest 5,000 messages (and
    conversations) only."""
    limit = current_app.config["SEARCH_RATE_LIMIT"]
    if limit:
        current_app.extensions["chatapi.rate_limiter"].take(limit, "searches", current_user.id)
    return {"data": search_service.search(current_user.id, query["q"], query["limit"],
                                          query.get("before"))}
