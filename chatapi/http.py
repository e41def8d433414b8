"""Per-request plumbing: request ids, the security headers, the one access-log line per
request, and the limits on a request's head. The first three are a WSGI middleware around the
whole app (every answer gets them, errors included), working on the raw WSGI environ and header
list: as Flask hooks reading `request`, `g` and werkzeug's Headers they cost a fifth of the
CPU of the cheapest authenticated request."""
import logging
import re
import time
import uuid

from flask import current_app, request

from .errors import HeaderFieldsTooLarge, UriTooLong
from .security_headers import secured

log = logging.getLogger("chatapi.access")

CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# What a client could use to forge or hide a log line: C0 and C1 controls (newlines, CR, ESC
# sequences, DEL), line and paragraph separators, and invisible format characters such as the
# bidirectional overrides; the backslash too, so that an escape in the log is always ours.
UNPRINTABLE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f"
                         "\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")
# The WSGI environ's keys of header fields that are not HTTP_* (werkzeug's EnvironHeaders).
BARE_HEADERS = ("CONTENT_TYPE", "CONTENT_LENGTH")


def printable(text):
    """`text` on one line, its unprintable characters written as Python escapes (\\n, \\x1b,
    \\u2028)."""
    return UNPRINTABLE.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"),
                           text)


def request_id_of(wsgi_environ):
    given = wsgi_environ.get("HTTP_X_REQUEST_ID", "")
    # fullmatch: `$` would let a final newline through, and the list goes to the server as is.
    return given if CLIENT_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def path_of(wsgi_environ):
    """The path as Flask's `request.path` reads it: PATH_INFO's bytes as UTF-8."""
    path = wsgi_environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    return "/" + path.lstrip("/")


class RequestPlumbing:
    """Gives every answer its X-Request-ID (the client's, when it is one we can echo safely)
    and the security headers, and logs one line when the answer starts: method, path (never
    the query string: it may carry search terms), status, the time to that start."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, wsgi_environ, start_response):
        started = time.perf_counter()
        request_id = request_id_of(wsgi_environ)

        def start(status, headers, exc_info=None):
            headers = secured(headers)
            headers.append(("X-Request-ID", request_id))
            if log.isEnabledFor(logging.INFO):
                # The client chose the method and path: written escaped, they cannot start a
                # line of their own.
                log.info("%s %s %s %.1fms request_id=%s",
                         printable(wsgi_environ.get("REQUEST_METHOD", "").upper()),
                         printable(path_of(wsgi_environ)), status.split(" ", 1)[0],
                         (time.perf_counter() - started) * 1000, request_id)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(wsgi_environ, start)


def head_length(wsgi_environ):
    """The header fields' size as sent (`Name: value` and CRLF), from the WSGI environ as
    werkzeug's EnvironHeaders reads it, without building its names."""
    length = 0
    for key, value in wsgi_environ.items():
        if key.startswith("HTTP_"):
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                length += len(key) - 5 + len(value) + 4
        elif key in BARE_HEADERS and value:
            length += len(key) + len(value) + 4
    return length


def refuse_oversized_head():
    """Refused before anything reads them: gunicorn's own limits are set above these
    (gunicorn.conf.py), so that the client gets the envelope rather than gunicorn's page."""
    wsgi_environ = request.environ
    target = wsgi_environ.get("RAW_URI") or request.full_path  # as sent, when gunicorn says
    if len(target) > current_app.config["MAX_URL_LENGTH"]:
        raise UriTooLong()
    if head_length(wsgi_environ) > current_app.config["MAX_HEADERS_LENGTH"]:
        raise HeaderFieldsTooLarge()


def init_app(app):
    app.wsgi_app = RequestPlumbing(app.wsgi_app)
    app.before_request(refuse_oversized_head)
