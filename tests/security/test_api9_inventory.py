"""OWASP API9:2023 Improper Inventory Management.

The published inventory, `GET /api/openapi.json`, lists exactly the operations the URL map
serves (no undocumented route, no documented route that is gone), and what it says about
authentication is what the routes enforce. Besides the operations, only the document itself and
the public page of the interactive docs (/api/docs and its files, all GET) are served. Outside
`/api/` only the web client is served: `/` and its files under `/web/`, each a GET route of its
own (no static folder, no path argument, no debug or leftover routes).
With WEB_CLIENT=off nothing is served outside `/api/`."""
from chatapi.apidocs import BLUEPRINT as DOCS_PAGES
from chatapi.web import BLUEPRINT as WEB_CLIENT

from .conftest import call, routes

PATH_VALUES = {"conversation_id": "conv_aaaaaaaaaaaaaaaaaaaaaa",
               "message_id": "msg_aaaaaaaaaaaaaaaaaaaaaa", "name": "calculator"}
DOCUMENT = "api-docs.openapi_json"


def documented_operations(client):
    document = client.get("/api/openapi.json").get_json()
    return {(path, method.upper()): operation
            for path, operations in document["paths"].items()
            for method, operation in operations.items() if method != "parameters"}


def is_operation(route):
    return route.endpoint != DOCUMENT and not route.endpoint.startswith(
        (f"{DOCS_PAGES}.", f"{WEB_CLIENT}."))


def openapi_path(route):
    return route.rule.replace("<", "{").replace(">", "}")


def test_the_openapi_document_lists_exactly_the_routes_of_the_url_map(app, client):
    served = {(openapi_path(route), route.method) for route in routes(app)
              if is_operation(route)}
    assert set(documented_operations(client)) == served


def test_the_documented_authentication_is_the_enforced_one(app, client):
    documented = documented_operations(client)
    for route in filter(is_operation, routes(app)):
        security = documented[(openapi_path(route), route.method)]["security"]
        refused = call(client, route, **PATH_VALUES).status_code == 401
        assert refused == (security == [{"bearerAuth": []}]), (str(route), security)
        assert refused or security == [], (str(route), security)


def test_the_routes_besides_the_operations_are_public_gets_of_the_document_and_the_docs(
        app, client):
    others = [route for route in routes(app) if not is_operation(route)]
    assert {route.rule for route in others} >= {"/api/openapi.json", "/api/docs", "/",
                                                "/web/js/main.js"}
    for route in others:
        assert route.method == "GET" and not route.arguments, str(route)
        assert route.rule.startswith(("/api/openapi.json", "/api/docs", "/web/")) or (
            route.rule == "/"), str(route)
        assert call(client, route).status_code == 200, str(route)


def test_outside_the_api_only_the_web_client_is_served(app, client):
    outside = [route for route in routes(app) if not route.rule.startswith("/api/")]
    assert outside and all(route.endpoint.startswith(f"{WEB_CLIENT}.") for route in outside)
    assert "static" not in app.view_functions
    for path in ("/static/app.js", "/web/", "/web/index.html", "/console", "/admin", "/debug",
                 "/.env"):
        assert client.get(path).status_code == 404, path


def test_nothing_is_served_outside_the_api_without_the_web_client(make_app):
    app = make_app(WEB_CLIENT=False)
    client = app.test_client()
    assert all(route.rule.startswith("/api/") for route in routes(app))
    for path in ("/", "/web/js/main.js", "/static/app.js", "/console", "/.env"):
        assert client.get(path).status_code == 404, path
