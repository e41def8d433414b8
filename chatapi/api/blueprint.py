"""flask-smorest's Blueprint with a stricter JSON body (any body that is present must be a
JSON object of strict JSON, else 400, whatever Content-Type the client sent; its text Unicode,
else 422 naming where; at most MAX_CONTENT_LENGTH bytes, else 413, whether or not it declared
its length), and with every error status an operation can answer documented in its OpenAPI
responses."""
from http import HTTPStatus

import flask_smorest
from gunicorn.http.errors import NoMoreData, ParseException
from webargs import core
from webargs.flaskparser import FlaskParser, abort
from werkzeug.exceptions import RequestEntityTooLarge

from .. import strict_json

# Any operation: an unexpected failure (500), or the database unreachable or its pool
# exhausted (503).
EVERY_OPERATION_ERRORS = (500, 503)
# A bearer token missing, malformed, expired or revoked, or its account deactivated.
BEARER_ERRORS = (401,)
# A body that is not a JSON object (400), over MAX_CONTENT_LENGTH (413), or failing its schema.
BODY_ERRORS = (400, 413, 422)
QUERY_ERRORS = (422,)


# A big body is read this much at a time, other requests running in between.
PIECE_BYTES = 1024 * 1024


def raw_body(req, max_bytes=None, pause=None):
    """The body's bytes: 413 past `max_bytes` (MAX_CONTENT_LENGTH when None), declared or
    chunked; 400 for a malformed chunked body. With `pause`, read a piece at a time, pausing
    between pieces: tens of megabytes already on the socket would be read in one go."""
    if max_bytes is not None:
        req.max_content_length = max_bytes
    try:
        if pause is None:
            raw = req.get_data(cache=True)
            too_large = past_the_cap(req, raw)
        else:
            raw, too_large = in_pieces(req, pause)
    except (ParseException, NoMoreData):  # gunicorn's, for a malformed or cut chunked body
        abort(400, messages={"json": ["Malformed chunked body."]})
    if too_large:
        raise RequestEntityTooLarge()
    return raw


class JsonObjectParser(FlaskParser):
    def _raw_load_json(self, req):
        raw = raw_body(req)
        if not raw.strip():
            return core.missing
        try:
            # Integers over 4,300 digits and very deep nesting raise ValueError and
            # RecursionError too.
            body = strict_json.loads(raw.decode("utf-8"))
        except strict_json.LoneSurrogate as error:
            # Valid JSON syntax, but not text: no database, encoder or tool can take it.
            abort(422, messages={"json": {strict_json.path_text(error.path) or "_schema": [
                "Must be valid Unicode text (no lone surrogates)."]}})
        except (UnicodeDecodeError, ValueError, RecursionError):
            abort(400, messages={"json": ["Invalid JSON body."]})
        if not isinstance(body, dict):
            abort(400, messages={"json": ["The body must be a JSON object."]})
        return body


def in_pieces(req, pause):
    """(the body, whether it is past the cap). A declared length is read through Werkzeug's
    stream, which ends there (413 at once past the cap); a chunked body from the server's,
    which ends with the body, to one byte past the cap."""
    limit = req.max_content_length
    if req.content_length is not None:
        stream, left = req.stream, req.content_length
    else:
        stream, left = req.environ["wsgi.input"], None if limit is None else limit + 1
    pieces, read = [], 0
    while left is None or read < left:
        piece = stream.read(PIECE_BYTES if left is None else min(PIECE_BYTES, left - read))
        if not piece:
            break
        pieces.append(piece)
        read += len(piece)
        pause()
    return b"".join(pieces), limit is not None and read > limit


def past_the_cap(req, raw):
    """Werkzeug refuses a declared Content-Length over the cap, but cuts a body without one
    (chunked) at the cap silently: one more byte from the server's stream tells them apart."""
    return (req.content_length is None and req.max_content_length is not None
            and len(raw) >= req.max_content_length
            and bool(req.environ["wsgi.input"].read(1)))


def error_statuses(doc, doc_info):
    """What an operation's auth and arguments imply it may fail with, plus what its view
    declared with `Blueprint.errors`. (`doc` is the operation documented so far: its request
    body and parameters are there.)"""
    statuses = set(EVERY_OPERATION_ERRORS) | set(doc_info.get("errors", ()))
    if doc_info.get("manual_doc", {}).get("security"):
        statuses.update(BEARER_ERRORS)
    if "requestBody" in doc:
        statuses.update(BODY_ERRORS)
    if doc.get("parameters"):
        statuses.update(QUERY_ERRORS)
    return statuses


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonObjectParser()

    def arguments(self, schema, *args, **kwargs):
        """A schema given as a class is made an instance here, once: webargs would make one
        for every request (a schema instance holds no state between loads)."""
        return super().arguments(schema() if isinstance(schema, type) else schema,
                                 *args, **kwargs)

    @staticmethod
    def errors(*statuses):
        """Error statuses a view answers beyond those its auth and arguments imply (404 for an
        absent resource, 409, 429, the upstream ones...); each is documented with the error
        envelope."""
        def decorator(view):
            view._apidoc = {**getattr(view, "_apidoc", {}),
                            "errors": (*getattr(view, "_apidoc", {}).get("errors", ()),
                                       *statuses)}
            return view
        return decorator

    @staticmethod
    def _prepare_response_doc(doc, doc_info, *, api, spec, **kwargs):
        responses = doc_info.setdefault("response", {}).setdefault("responses", {})
        for status in sorted(error_statuses(doc, doc_info)):
            # A reference to the response flask-smorest registers per status: the error
            # envelope (chatapi.schemas.envelope.ErrorEnvelopeSchema).
            responses.setdefault(status, [HTTPStatus(status).name])
        return flask_smorest.Blueprint._prepare_response_doc(
            doc, doc_info, api=api, spec=spec, **kwargs)
