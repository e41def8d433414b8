"""The service's app plus one view for the bench: `GET /api/bench/floor` behind the same
token check as every other view, answering a constant page. Its CPU per request is what
Flask, gunicorn's gevent worker and the token check cost: the floor under every endpoint."""
from flask import Response
from flask_jwt_extended import jwt_required

from wsgi import app

FLOOR_PAGE = b'{"success":true,"data":{"items":[]}}'


@jwt_required()
def floor():
    return Response(FLOOR_PAGE, mimetype="application/json")


app.add_url_rule("/api/bench/floor", "bench_floor", floor)
