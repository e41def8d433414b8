from flask_jwt_extended import current_user

from ..schemas.envelope import envelope
from ..schemas.usage import UsageQuerySchema, UsageReportSchema
from ..services import usage
from .blueprint import Blueprint
from .security import login_required

blp = Blueprint("usage", __name__, url_prefix="/api/usage",
                description="Tokens spent on the models")


@blp.route("/", methods=["GET"])
@login_required
@blp.arguments(UsageQuerySchema, location="query")
@blp.response(200, envelope(UsageReportSchema))
def usage_report(query):
    """Total the caller's tokens by day, model or conversation"""
    first, last = usage.date_range(query.get("from_"), query.get("to"))
    groups, total = usage.report(query["group_by"], first, last, current_user.id)
    return {"data": {"from_": first, "to": last, "group_by": query["group_by"],
                     "groups": groups, "total": total}}
