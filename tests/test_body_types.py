"""Booleans and numbers in a request body are JSON types: nothing is read into them ("yes",
"on", 1 as true; "0.5" as a number; 1.0 or true as an integer). The fields are found in the
OpenAPI document, which is generated from the schemas that validate the bodies, so a field
added later is checked without touching this file. Query strings are text by nature and keep
their parsing, but garbage there is still a 422."""
import pytest

from .security.conftest import assert_error

PATH_VALUES = {"conversation_id": "conv_aaaaaaaaaaaaaaaaaaaaaa",
               "message_id": "msg_aaaaaaaaaaaaaaaaaaaaaa", "name": "calculator"}
CHECKED_TYPES = ("boolean", "integer", "number")
LIKE_JSON = ["yes", "true", [], {}, None]


def valid_value(prop):
    if prop["type"] == "boolean":
        return False
    return prop.get("minimum", 1)


def wrong_values(prop):
    """JSON values of another type that a lenient parser reads as this one."""
    valid = valid_value(prop)
    if prop["type"] == "boolean":
        return ["on", "off", "no", "1", "0", 1, 0, 1.0, "False", *LIKE_JSON]
    if prop["type"] == "integer":
        return [float(valid), str(valid), f"{valid}.0", True, False, valid + 0.5, *LIKE_JSON]
    return [str(valid), "0.5", f"{valid}e0", True, False, *LIKE_JSON]


def typed_body_fields(spec):
    """(method, path, field, its property) for every boolean and number field of every
    request body."""
    schemas = spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            for field, prop in schema.get("properties", {}).items():
                if prop.get("type") in CHECKED_TYPES and not prop.get("readOnly"):
                    url = path.format(**PATH_VALUES)
                    yield method, url, field, prop


@pytest.fixture
def body_fields(client):
    return list(typed_body_fields(client.get("/api/openapi.json").json))


def field_errors(client, headers, method, url, field, value):
    response = client.open(url, method=method.upper(), headers=headers, json={field: value})
    if response.status_code != 422:
        return None
    return response.json["error"]["details"].get(field)


def test_every_known_boolean_and_number_body_field_is_found(body_fields):
    found = {(method, url, field) for method, url, field, _prop in body_fields}
    for method in ("post", "put"):
        url = "/api/conversations/" if method == "post" else (
            "/api/conversations/conv_aaaaaaaaaaaaaaaaaaaaaa")
        for field in ("temperature", "max_tokens", "thinking_enabled"):
            assert (method, url, field) in found
    assert ("post", "/api/messages/", "tools_enabled") in found
    assert ("post", "/api/messages/stream", "tools_enabled") in found


def test_a_value_of_the_right_type_is_accepted_in_every_field(client, auth_headers, body_fields):
    """The control for the next test: the field alone makes no complaint about itself."""
    for method, url, field, prop in body_fields:
        value = valid_value(prop)
        assert field_errors(client, auth_headers, method, url, field, value) is None, (
            method, url, field, value)


def test_a_value_of_another_json_type_is_422_naming_the_field_in_every_field(
        client, auth_headers, body_fields):
    accepted = []
    for method, url, field, prop in body_fields:
        for value in wrong_values(prop):
            if not field_errors(client, auth_headers, method, url, field, value):
                accepted.append((method, url, field, value))
    assert accepted == []


@pytest.mark.parametrize("field,value", [
    ("thinking_enabled", "yes"), ("thinking_enabled", "on"), ("thinking_enabled", 1),
    ("temperature", "0.5"), ("temperature", True), ("max_tokens", 1.0), ("max_tokens", "1"),
    ("max_tokens", True)])
def test_a_lenient_value_stores_nothing(client, auth_headers, field, value):
    response = client.post("/api/conversations/", headers=auth_headers, json={field: value})
    body = assert_error(response, 422, "validation_error")
    assert list(body["error"]["details"]) == [field]
    listed = client.get("/api/conversations/", headers=auth_headers).json["data"]
    assert listed["total"] == 0


def test_tools_enabled_yes_is_422_on_both_message_endpoints(client, auth_headers):
    conversation = client.post("/api/conversations/", headers=auth_headers, json={}).json["data"]
    for url in ("/api/messages/", "/api/messages/stream"):
        response = client.post(url, headers=auth_headers, json={
            "conversation_id": conversation["id"], "content": "hi", "tools_enabled": "yes"})
        body = assert_error(response, 422, "validation_error")
        assert list(body["error"]["details"]) == ["tools_enabled"]
    messages = client.get(f"/api/messages/{conversation['id']}", headers=auth_headers)
    assert messages.json["data"]["total"] == 0


@pytest.mark.parametrize("url,field", [
    ("/api/conversations/?page=abc", "page"), ("/api/conversations/?page=1.5", "page"),
    ("/api/conversations/?page_size=true", "page_size"),
    ("/api/conversations/?page_size=", "page_size"),
    ("/api/messages/conv_aaaaaaaaaaaaaaaaaaaaaa?limit=yes", "limit"),
    ("/api/messages/conv_aaaaaaaaaaaaaaaaaaaaaa?limit=1e2", "limit")])
def test_garbage_in_a_numeric_query_parameter_is_422(client, auth_headers, url, field):
    body = assert_error(client.get(url, headers=auth_headers), 422, "validation_error")
    assert field in body["error"]["details"]


def test_numeric_query_parameters_are_still_read_from_text(client, auth_headers):
    response = client.get("/api/conversations/?page=2&page_size=5", headers=auth_headers)
    assert response.status_code == 200
    assert (response.json["data"]["page"], response.json["data"]["page_size"]) == (2, 5)
