"""Per-request plumbing: request ids and the one access-log line per request."""
import logging
import re
import time
import uuid

from flask import g, request

log = logging.getLogger("chatapi.access")

CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def start_request():
    g.started = time.perf_counter()
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if CLIENT_REQUEST_ID.match(given) else uuid.uuid4().hex


def finish_request(response):
    response.headers["X-Request-ID"] = g.get("request_id", "")
    duration_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    # The path only: query strings may carry search terms, never logged with tokens or bodies.
    log.info("%s %s %s %.1fms request_id=%s", request.method, request.path,
             response.status_code, duration_ms, g.get("request_id", "-"))
    return response


def init_app(app):
    app.before_request(start_request)
    app.after_request(finish_request)
