"""gunicorn's own answers, to requests it cannot hand to the app (a malformed request line or
header, a head past gunicorn's limits), in the API's envelope rather than gunicorn's HTML page.

gunicorn has no setting for that body: its worker writes it with `gunicorn.util.write_error`,
which each of our workers replaces at start (gunicorn.conf.py). The status stays gunicorn's.
The request could not be read, so neither could its Accept-Language: the text is the default
language's."""
import json

from gunicorn import util

from .errors import code_for
from .security_headers import HEADERS
from .texts import DEFAULT_LANGUAGE, say


def write_error(sock, status_int, reason, _mesg):
    code = code_for(status_int)
    # gunicorn's 400s are about HTTP itself, not the JSON body the usual bad_request text means.
    text_key = "malformed_request" if code == "bad_request" else code
    body = json.dumps({"success": False, "message": say(text_key, DEFAULT_LANGUAGE),
                       "error": {"code": code, "details": {}}}, ensure_ascii=False).encode()
    headers = {"Connection": "close", "Content-Type": "application/json",
               "Content-Length": str(len(body)), **HEADERS, "Cache-Control": "no-store"}
    head = f"HTTP/1.1 {status_int} {reason}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install():
    util.write_error = write_error
