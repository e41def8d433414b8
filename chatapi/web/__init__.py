"""The reference web client at `/`: plain ES modules, a style sheet and two vendored libraries
(marked, DOMPurify) under chatapi/web/static, served as they are (no build step, no CDN).
`WEB_CLIENT=off` leaves it out, and `/` answers 404 as every unknown path does.

Every file is a route of its own, listed when the blueprint is made, so the URL map names
exactly what is served (tests/security checks it) and no path can reach outside the folder.
The page and its files carry their own Content-Security-Policy (every other answer keeps
`default-src 'none'`, chatapi/security_headers.py): scripts, styles and connections from this
origin only, no inline script or style, and `form-action 'none'` because every form is sent by
script: a form submitted natively (the scripts failed to load) must not put a password in a URL."""
from pathlib import Path

from flask import Blueprint, send_from_directory

BLUEPRINT = "web_client"
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
          "frame-ancestors 'none'")
STATIC = Path(__file__).parent / "static"
PREFIX = "/web"
SERVED_SUFFIXES = {".js", ".css", ".svg"}
# Vendored files live under a folder named with their version: another version is another URL,
# so a browser may keep them for a year. Ours keep one URL and are revalidated (ETag).
VENDOR = "vendor/"
YEAR = 365 * 86400

blp = Blueprint(BLUEPRINT, __name__)


def served_files():
    return sorted(path.relative_to(STATIC).as_posix() for path in STATIC.rglob("*")
                  if path.is_file() and path.suffix in SERVED_SUFFIXES)


def with_policy(response, cache_control):
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["Cache-Control"] = cache_control
    return response


@blp.get("/")
def page():
    return with_policy(send_from_directory(STATIC, "index.html", max_age=None), "no-cache")


def file_view(name):
    if name.startswith(VENDOR):
        def view():
            return with_policy(send_from_directory(STATIC, name, max_age=YEAR),
                               f"public, max-age={YEAR}, immutable")
    else:
        def view():
            return with_policy(send_from_directory(STATIC, name, max_age=None), "no-cache")
    return view


def endpoint_of(name):
    return "file_" + "".join(char if char.isalnum() else "_" for char in name)


for _name in served_files():
    blp.add_url_rule(f"{PREFIX}/{_name}", endpoint_of(_name), file_view(_name), methods=["GET"])


def init_app(app):
    if app.config["WEB_CLIENT"]:
        app.register_blueprint(blp)
