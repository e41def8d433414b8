"""The one place where every failure becomes the error envelope (docs/API.md §1)."""
import logging
import sqlite3

from flask import jsonify
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from .language import request_language
from .texts import say

log = logging.getLogger(__name__)

CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    422: "validation_error",
    429: "rate_limited",
    431: "header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
    502: "upstream_error",
    503: "upstream_unavailable",
    504: "upstream_timeout",
}


class ApiError(Exception):
    """An expected failure: services raise it, the handler renders it."""

    status = 500
    code = None  # the envelope's code when it is not the status's (CODE_BY_STATUS)

    def __init__(self, text_key=None, details=None, data=None, headers=None):
        super().__init__(text_key)
        self.text_key = text_key or CODE_BY_STATUS[self.status]
        self.details = details
        self.data = data
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class UriTooLong(ApiError):
    status = 414


class HeaderFieldsTooLarge(ApiError):
    status = 431


class ValidationFailed(ApiError):
    status = 422


class RateLimited(ApiError):
    status = 429


class UpstreamError(ApiError):
    status = 502


class UpstreamUnavailable(ApiError):
    status = 503


class UpstreamTimeout(ApiError):
    status = 504


class DatabaseUnavailable(ApiError):
    """The database did not answer, or no pooled connection came free in time: the client
    may try again shortly."""

    status = 503

    def __init__(self):
        super().__init__("database_unavailable", headers={"Retry-After": "5"})


# SQLSTATE classes of a database that cannot serve right now, not of a faulty statement:
# connection exception, insufficient resources (too many connections), operator intervention
# (shutting down, starting up) and a statement canceled (DB_STATEMENT_TIMEOUT passed, or an
# operator's pg_cancel_backend).
UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "57014")


def database_unreachable(error):
    """True when a DBAPIError is a failure of the connection itself: the server is down,
    restarting or unreachable, or the connection broke mid-query."""
    if error.connection_invalidated:
        return True
    if not hasattr(error.orig, "sqlstate"):
        return False  # not a PostgreSQL driver error (SQLite reports SQL errors this way too)
    sqlstate = error.orig.sqlstate
    return sqlstate is None or sqlstate.startswith(UNAVAILABLE_SQLSTATES)


def database_busy(error):
    """True when SQLite gave up waiting for another writer's lock (its busy timeout)."""
    return isinstance(error.orig, sqlite3.OperationalError) and "locked" in str(error.orig)


def code_for(status):
    return CODE_BY_STATUS.get(status) or ("internal_error" if status >= 500 else "bad_request")


def error_with_code(code, data=None):
    """The failure whose envelope has `code` (a stored answer's error_code), told again."""
    error = ApiError(code, data=data)
    error.status = next((status for status, known in CODE_BY_STATUS.items() if known == code),
                        UpstreamError.status)
    return error


def error_response(status, text_key=None, details=None, data=None, headers=None, code=None):
    code = code or code_for(status)
    body = {
        "success": False,
        "message": say(text_key or code, request_language()),
        "error": {"code": code, "details": details or {}},
    }
    if data is not None:
        body["data"] = data
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def validation_details(messages):
    """webargs nests field errors under their location ({"json": {...}, "query": {...}});
    clients want field -> [messages]."""
    details = {}
    for location_errors in messages.values():
        if isinstance(location_errors, dict):
            details.update(location_errors)
        else:
            details.setdefault("_schema", []).extend(location_errors)
    return details


def handle_api_error(error):
    return error_response(error.status, error.text_key, error.details, error.data, error.headers,
                          error.code)


def handle_http_exception(error):
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    headers = dict(data.get("headers") or {})
    if status == 422 and "messages" in data:
        return error_response(422, details=validation_details(data["messages"]))
    if status == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return error_response(status, headers=headers)


def api_error_for(error):
    """The ApiError a client is shown for any exception, wherever it ends a request or an
    answer (the envelope, a stream's last event, a stored answer's error): an ApiError as
    raised; 503 when the database is out of reach or its pool stayed taken (the worker is
    overloaded); else 500, logged with its stack. A provider's failures are ApiErrors already
    (502/503/504, chatapi/glm.py), so what is left is ours."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, PoolTimeout):
        log.warning("database pool exhausted: %s", type(error).__name__)
        return DatabaseUnavailable()
    if isinstance(error, DBAPIError) and (database_unreachable(error) or database_busy(error)):
        log.warning("database unavailable: %s: %s", type(error.orig).__name__, error.orig)
        return DatabaseUnavailable()
    log.error("unhandled error: %s", type(error).__name__, exc_info=error)
    return ApiError()


def handle_unexpected(error):
    return handle_api_error(api_error_for(error))


def register_error_handlers(app):
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
