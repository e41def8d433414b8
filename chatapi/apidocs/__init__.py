"""The interactive API docs at /api/docs: Swagger UI showing /api/openapi.json, served by the
service itself from the files the pinned `flask-swagger-ui` package installs (Swagger UI's own
dist build; its blueprint, whose page uses an inline script, is not used). No CDN: the page
works offline.

Every other answer of the service is inert data under `default-src 'none'`
(chatapi/security_headers.py). This page and its files get a policy of their own that lets the
page run scripts and styles from the service only, with no inline script: Swagger UI is started
by static/api-docs.js, which reads the document's URL from the page."""
from importlib.resources import files

from flask import Blueprint, make_response, render_template, send_from_directory, url_for

BLUEPRINT = "interactive_docs"
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

SWAGGER_DIST = files("flask_swagger_ui") / "dist"
SWAGGER_VERSION = (SWAGGER_DIST / "VERSION").read_text().strip().lstrip("v")
# The dist files the page loads. Their URLs carry Swagger UI's version, so a browser may keep
# them for a year: another version is another URL.
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "index.css", "favicon-32x32.png",
                 "favicon-16x16.png")
VENDOR_PREFIX = f"/api/docs/assets/swagger-ui-{SWAGGER_VERSION}"
STATIC = files(__package__) / "static"

blp = Blueprint(BLUEPRINT, __name__, template_folder="templates")


def with_policy(response):
    response.headers["Content-Security-Policy"] = POLICY
    return response


@blp.get("/api/docs")
def page():
    return with_policy(make_response(render_template(
        "api-docs.html", openapi_url=url_for("api-docs.openapi_json"),
        swagger=lambda name: url_for(f"{BLUEPRINT}.{endpoint_of(name)}"))))


@blp.get("/api/docs/assets/api-docs.js")
def initializer():
    # Ours, under a fixed URL: the browser asks again each time and mostly gets a 304.
    response = send_from_directory(STATIC, "api-docs.js", max_age=None)
    response.headers["Cache-Control"] = "no-cache"
    return with_policy(response)


def endpoint_of(name):
    return "swagger_" + name.replace("-", "_").replace(".", "_")


def vendor_file(name):
    def view():
        response = send_from_directory(SWAGGER_DIST, name, max_age=365 * 86400)
        response.cache_control.immutable = True
        return with_policy(response)
    return view


for _name in SWAGGER_FILES:
    blp.add_url_rule(f"{VENDOR_PREFIX}/{_name}", endpoint_of(_name), vendor_file(_name),
                     methods=["GET"])


def init_app(app):
    app.register_blueprint(blp)
