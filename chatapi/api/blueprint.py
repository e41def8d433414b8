"""flask-smorest's Blueprint with a stricter JSON body: any body that is present must be a
JSON object (else 400), whatever Content-Type the client sent, and at most
MAX_CONTENT_LENGTH bytes (else 413), whether or not it declared its length."""
import flask_smorest
from webargs import core
from webargs.flaskparser import FlaskParser, abort
from werkzeug.exceptions import RequestEntityTooLarge


class JsonObjectParser(FlaskParser):
    def _raw_load_json(self, req):
        raw = req.get_data(cache=True)
        if past_the_cap(req, raw):
            raise RequestEntityTooLarge()
        if not raw.strip():
            return core.missing
        body = core.parse_json(raw)
        if not isinstance(body, dict):
            abort(400, messages={"json": ["The body must be a JSON object."]})
        return body


def past_the_cap(req, raw):
    """Werkzeug refuses a declared Content-Length over the cap, but cuts a body without one
    (chunked) at the cap silently: one more byte from the server's stream tells them apart."""
    return (req.content_length is None and req.max_content_length is not None
            and len(raw) >= req.max_content_length
            and bool(req.environ["wsgi.input"].read(1)))


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonObjectParser()
