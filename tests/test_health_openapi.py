from chatapi import __version__
from chatapi.apidocs import BLUEPRINT as DOCS_PAGES
from chatapi.web import BLUEPRINT as WEB_CLIENT


def test_health_reports_the_database(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json == {"success": True,
                             "data": {"status": "ok", "database": "ok", "version": __version__}}


def test_health_is_503_when_the_database_is_unreachable(make_app):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://postgres@127.0.0.1:1/none")
    response = app.test_client().get("/api/health")
    assert response.status_code == 503
    assert response.json["success"] is False
    assert response.json["error"]["code"] == "upstream_unavailable"
    assert response.json["data"]["database"] == "unreachable"
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_an_exhausted_database_pool_is_503_with_retry_after(make_app, auth_headers):
    from chatapi.extensions import db
    app = make_app(DB_POOL_SIZE=1, DB_POOL_TIMEOUT=0.5)
    with app.app_context():
        held = db.engine.connect()
        try:
            response = app.test_client().get("/api/conversations/", headers=auth_headers)
        finally:
            held.close()
    assert response.status_code == 503
    assert response.json["error"]["code"] == "upstream_unavailable"
    assert response.headers["Retry-After"] == "5"
    assert app.test_client().get("/api/conversations/", headers=auth_headers).status_code == 200


def test_openapi_document_covers_every_route(app, client):
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {path for path in spec["paths"]}
    not_operations = ("api-docs.openapi_json", f"{DOCS_PAGES}.", f"{WEB_CLIENT}.")
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(not_operations):
            path = rule.rule.replace("<", "{").replace(">", "}")
            assert path in documented, path


def test_openapi_request_schema_is_the_validating_schema(client):
    spec = client.get("/api/openapi.json").json
    register = spec["paths"]["/api/auth/register"]["post"]
    ref = register["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"username", "email", "password"}
    assert schema["properties"]["password"]["minLength"] == 8
    assert schema["properties"]["password"]["maxLength"] == 128
    assert "201" in register["responses"]
    me = spec["paths"]["/api/auth/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/api/auth/login"]["post"]["security"] == []
