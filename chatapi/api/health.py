from flask import current_app
from .blueprint import Blueprint
from marshmallow import fields

from ..errors import UpstreamUnavailable
from ..schemas.base import OutputSchema
from ..schemas.envelope import envelope
from ..services import health
from .security import public

blp = Blueprint("health", __name__, url_prefix="/api", description="Operations")


class HealthSchema(OutputSchema):
    status = fields.String()
    database = fields.String()
    version = fields.String()


@blp.route("/health")
@public
@blp.response(200, envelope(HealthSchema))
def check_health():
    """Check that the service and its database are up"""
    report = health.report(current_app.config["VERSION"])
    if report["database"] != "ok":
        raise UpstreamUnavailable("database_unavailable", data=HealthSchema().dump(report))
    return {"data": report}
