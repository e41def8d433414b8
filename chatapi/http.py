"""Per-request plumbing: request ids, the limits on a request's head, and the one access-log
line per request."""
import logging
import re
import time
import uuid

from flask import current_app, g, request

from .errors import HeaderFieldsTooLarge, UriTooLong

log = logging.getLogger("chatapi.access")

CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# What a client could use to forge or hide a log line: C0 and C1 controls (newlines, CR, ESC
# sequences, DEL), line and paragraph separators, and invisible format characters such as the
# bidirectional overrides; the backslash too, so that an escape in the log is always ours.
UNPRINTABLE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f"
                         "\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")


def printable(text):
    """`text` on one line, its unprintable characters written as Python escapes (\\n, \\x1b,
    \\u2028)."""
    return UNPRINTABLE.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"),
                           text)


def start_request():
    g.started = time.perf_counter()
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if CLIENT_REQUEST_ID.match(given) else uuid.uuid4().hex


def refuse_oversized_head():
    """Refused before anything reads them: gunicorn's own limits are set above these
    (gunicorn.conf.py), so that the client gets the envelope rather than gunicorn's page."""
    target = request.environ.get("RAW_URI") or request.full_path  # as sent, when gunicorn says
    if len(target) > current_app.config["MAX_URL_LENGTH"]:
        raise UriTooLong()
    head = sum(len(name) + len(value) + 4 for name, value in request.headers.items())
    if head > current_app.config["MAX_HEADERS_LENGTH"]:
        raise HeaderFieldsTooLarge()


def finish_request(response):
    response.headers["X-Request-ID"] = g.get("request_id", "")
    duration_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    # The path only: query strings may carry search terms, never logged with tokens or bodies.
    # The client chose the method and path: written escaped, they cannot start a line of their own.
    log.info("%s %s %s %.1fms request_id=%s", printable(request.method),
             printable(request.path), response.status_code, duration_ms,
             g.get("request_id", "-"))
    return response


def init_app(app):
    app.before_request(start_request)
    app.before_request(refuse_oversized_head)
    app.after_request(finish_request)
