"""OWASP API9:2023 Improper Inventory Management.

The published inventory, `GET /api/openapi.json`, lists exactly the operations the URL map
serves (no undocumented route, no documented route that is gone), and what it says about
authentication is what the routes enforce. Nothing is served outside `/api/` (no static
folder, no debug or leftover routes)."""
from .conftest import call, routes

PATH_VALUES = {"conversation_id": "conv_aaaaaaaaaaaaaaaaaaaaaa",
               "message_id": "msg_aaaaaaaaaaaaaaaaaaaaaa", "name": "calculator"}
DOCUMENT = "api-docs.openapi_json"


def documented_operations(client):
    document = client.get("/api/openapi.json").get_json()
    return {(path, method.upper()): operation
            for path, operations in document["paths"].items()
            for method, operation in operations.items() if method != "parameters"}


def openapi_path(route):
    return route.rule.replace("<", "{").replace(">", "}")


def test_the_openapi_document_lists_exactly_the_routes_of_the_url_map(app, client):
    served = {(openapi_path(route), route.method) for route in routes(app)
              if route.endpoint != DOCUMENT}
    assert set(documented_operations(client)) == served


def test_the_documented_authentication_is_the_enforced_one(app, client):
    documented = documented_operations(client)
    for route in routes(app):
        if route.endpoint == DOCUMENT:
            continue
        security = documented[(openapi_path(route), route.method)]["security"]
        refused = call(client, route, **PATH_VALUES).status_code == 401
        assert refused == (security == [{"bearerAuth": []}]), (str(route), security)
        assert refused or security == [], (str(route), security)


def test_nothing_is_served_outside_the_api(app, client):
    assert all(route.rule.startswith("/api/") for route in routes(app))
    assert "static" not in app.view_functions
    for path in ("/", "/static/app.js", "/console", "/admin", "/debug", "/.env"):
        assert client.get(path).status_code == 404, path
