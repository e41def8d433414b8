"""The OpenAPI document says what a client receives: every error status an operation can
answer, in the error envelope, and success bodies with their always-present fields."""
import pytest

ERROR_ENVELOPE = "#/components/schemas/ErrorEnvelope"


@pytest.fixture
def spec(client):
    return client.get("/api/openapi.json").json


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield f"{method.upper()} {path}", operation


def response_schema_ref(spec, response):
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response["content"]["application/json"]["schema"]["$ref"]


def test_every_error_status_of_every_operation_is_the_error_envelope(spec):
    for label, operation in operations(spec):
        assert "default" not in operation["responses"], label
        errors = {status: response for status, response in operation["responses"].items()
                  if int(status) >= 400}
        assert {"500", "503"} <= set(errors), label
        for response in errors.values():
            assert response_schema_ref(spec, response) == ERROR_ENVELOPE, label


@pytest.mark.parametrize("label,statuses", [
    ("POST /api/auth/register", {"400", "409", "413", "422"}),
    ("POST /api/auth/login", {"400", "401", "403", "413", "422", "429"}),
    ("GET /api/auth/me", {"401"}),
    ("POST /api/auth/password", {"400", "401", "413", "422", "429"}),
    ("DELETE /api/auth/me", {"400", "401", "413", "422", "429"}),
    ("GET /api/conversations/", {"401", "422"}),
    ("PUT /api/conversations/{conversation_id}", {"400", "401", "404", "413", "422"}),
    ("DELETE /api/messages/{message_id}", {"401", "404"}),
    ("POST /api/messages/", {"400", "401", "404", "413", "422", "429", "502", "503", "504"}),
    ("POST /api/messages/stream", {"400", "401", "404", "413", "422", "429"}),
    ("POST /api/tools/{name}/execute", {"400", "401", "404", "413", "422", "429", "502", "504"}),
])
def test_operations_document_the_errors_they_answer(spec, label, statuses):
    documented = dict(operations(spec))[label]["responses"]
    assert statuses <= set(documented)


def test_public_operations_do_not_claim_401_from_a_token(spec):
    assert "401" not in spec["paths"]["/api/health"]["get"]["responses"]
    assert "401" not in spec["paths"]["/api/auth/register"]["post"]["responses"]


def test_success_envelopes_require_their_data_and_a_true_success(spec):
    schemas = spec["components"]["schemas"]
    envelope = schemas["ConversationEnvelope"]
    assert set(envelope["required"]) == {"success", "data"}
    assert envelope["properties"]["success"]["enum"] == [True]
    assert schemas["ErrorEnvelope"]["properties"]["success"]["enum"] == [False]
    message = schemas["Message"]
    assert set(message["required"]) == set(message["properties"])
    assert message["properties"]["reasoning_content"]["nullable"] is True
    assert message["properties"]["created_at"]["format"] == "date-time"


def test_the_stream_documents_its_events(spec):
    content = spec["paths"]["/api/messages/stream"]["post"]["responses"]["200"]["content"]
    event = content["text/event-stream"]["schema"]
    assert event["properties"]["event"]["enum"] == [
        "start", "thinking", "text", "tool_call", "tool_result", "title", "done", "error"]
    assert event["required"] == ["event", "data"]


def test_every_operation_has_a_summary(spec):
    for label, operation in operations(spec):
        assert operation.get("summary", "").strip(), label
