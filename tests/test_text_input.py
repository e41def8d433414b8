"""Text a database cannot store (NUL, which PostgreSQL refuses in text; a lone surrogate, which
is valid JSON as an escape but not Unicode) is a 422 naming the field, never a 500."""
import pytest

from .conftest import PASSWORD

NUL = "\\u0000"
LONE_SURROGATE = "\\ud800"


def post_raw(client, url, json_text, headers=None):
    return client.post(url, data=json_text, content_type="application/json", headers=headers)


@pytest.mark.parametrize("escape", [NUL, LONE_SURROGATE])
@pytest.mark.parametrize("field", ["title", "project_id", "system_prompt"])
def test_conversation_text_that_cannot_be_stored_is_422(client, auth_headers, escape, field):
    response = post_raw(client, "/api/conversations/", f'{{"{field}": "a{escape}b"}}',
                        auth_headers)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert list(response.json["error"]["details"]) == [field]


@pytest.mark.parametrize("escape", [NUL, LONE_SURROGATE])
def test_message_content_that_cannot_be_stored_is_422(client, auth_headers, conversation_id,
                                                      escape):
    body = f'{{"conversation_id": "{conversation_id}", "content": "hi{escape}"}}'
    for url in ("/api/messages/", "/api/messages/stream"):
        response = post_raw(client, url, body, auth_headers)
        assert response.status_code == 422
        assert list(response.json["error"]["details"]) == ["content"]
    listed = client.get(f"/api/messages/{conversation_id}", headers=auth_headers).json
    assert listed["data"]["total"] == 0


@pytest.mark.parametrize("escape", [NUL, LONE_SURROGATE])
def test_register_with_text_that_cannot_be_stored_is_422(client, escape):
    response = post_raw(client, "/api/auth/register",
                        f'{{"username": "carol", "email": "carol@example.com", '
                        f'"password": "long enough{escape}"}}')
    assert response.status_code == 422
    assert list(response.json["error"]["details"]) == ["password"]


@pytest.mark.parametrize("escape", [NUL, LONE_SURROGATE])
def test_login_with_text_that_cannot_be_stored_is_422(client, user, escape):
    response = post_raw(client, "/api/auth/login",
                        f'{{"username": "alice{escape}", "password": "{PASSWORD}"}}')
    assert response.status_code == 422
    assert list(response.json["error"]["details"]) == ["username"]


@pytest.mark.parametrize("query", ["q=a%00b", "project_id=%00"])
def test_conversation_filters_that_cannot_be_stored_are_422(client, auth_headers, query):
    response = client.get(f"/api/conversations/?{query}", headers=auth_headers)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/conversations/conv_a%00b"), ("PUT", "/api/conversations/conv_a%00b"),
    ("DELETE", "/api/conversations/conv_a%00b"), ("GET", "/api/messages/conv_a%00b"),
    ("DELETE", "/api/messages/msg_a%00b")])
def test_an_id_with_nul_in_the_path_is_404(client, auth_headers, method, path):
    response = client.open(path, method=method, json={}, headers=auth_headers)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("url", ["/api/messages/", "/api/messages/stream"])
def test_nul_in_what_the_model_and_its_tools_produce_is_stored_as_a_replacement_character(
        chat, client, auth_headers, conversation_id, url):
    # The model calls json_query with a NUL in its arguments, and the tool's result holds it.
    marker = '[[tool:json_query {"data": {"k\\u0000": "v\\u0000"}, "expression": "*"}]]'
    response = chat.post(url, json={"conversation_id": conversation_id, "content": marker},
                         headers=auth_headers)
    assert response.status_code in (200, 201)
    response.get_data()  # the whole stream
    listed = client.get(f"/api/messages/{conversation_id}", headers=auth_headers).json["data"]
    call = listed["items"][1]["tool_calls"][0]
    assert call["arguments"]["data"] == {"k\ufffd": "v\ufffd"}
    assert call["result"] == {"result": ["v\ufffd"]}
    assert listed["items"][1]["status"] == "completed"
