"""flask-smorest's Blueprint with a stricter JSON body: any body that is present must be a
JSON object (else 400), whatever Content-Type the client sent."""
import flask_smorest
from webargs import core
from webargs.flaskparser import FlaskParser, abort


class JsonObjectParser(FlaskParser):
    def _raw_load_json(self, req):
        raw = req.get_data(cache=True)
        if not raw.strip():
            return core.missing
        body = core.parse_json(raw)
        if not isinstance(body, dict):
            abort(400, messages={"json": ["The body must be a JSON object."]})
        return body


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonObjectParser()
