from flask import current_app

from ..schemas.envelope import envelope
from ..schemas.models import ModelListSchema
from ..services import models
from .blueprint import Blueprint
from .security import login_required

blp = Blueprint("models", __name__, url_prefix="/api/models", description="Models")


@blp.route("/", methods=["GET"])
@login_required
@blp.response(200, envelope(ModelListSchema))
def list_models():
    """List the models a conversation may use, with their limits"""
    return {"data": models.listing(current_app.config)}
