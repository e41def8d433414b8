"""OWASP API10:2023 Unsafe Consumption of APIs.

What the model (a third-party API) asks for is untrusted input: a tool call naming a private
or metadata URL is refused like a user's, before any connection; a tool result cannot carry
the service's secrets back; and what goes back to the model from an upstream page is cut at
TOOL_RESULT_MAX_CHARS. Malformed or schema-breaking tool-call arguments, unknown tools and an
endless tool loop are covered in tests/test_chat.py
(test_invalid_tool_arguments_become_an_error_result,
test_tool_schema_violations_become_an_error_result, test_several_tool_calls_are_stored_in_order,
test_the_round_limit_stops_an_endless_tool_loop); garbage from Open-Meteo in
tests/test_tools_weather.py (test_garbage_from_upstream_is_502); GLM's own failures in
tests/test_chat.py (test_provider_http_errors_store_the_user_message_and_an_error_answer)."""
import json

import pytest

from ..conftest import JWT_TEST_SECRET
from .conftest import chat_requests

API_KEY = "zhipu-secret-" + "k" * 24


def tool_marker(name, **arguments):
    return f"[[tool:{name} {json.dumps(arguments)}]]"


@pytest.fixture
def model_app(make_app, glm_simulator, site):
    glm_simulator.reset()
    return make_app(ZHIPUAI_API_KEY=API_KEY, GLM_BASE_URL=glm_simulator.base_url,
                    GLM_READ_TIMEOUT=5.0, FETCH_ALLOWED_HOSTS=[site.host],
                    TOOL_RESULT_MAX_CHARS=300, TOOL_MAX_CALLS_PER_ROUND=20)


@pytest.fixture
def ask(model_app, auth_headers):
    client = model_app.test_client()
    conversation = client.post("/api/conversations/", headers=auth_headers,
                               json={}).get_json()["data"]["id"]

    def send(content):
        response = client.post("/api/messages/", headers=auth_headers, json={
            "conversation_id": conversation, "content": content})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["data"]["assistant_message"]
    return send


def test_the_model_asking_for_private_addresses_gets_refusals_and_nothing_is_connected(
        ask, listener, connections):
    urls = [f"http://127.0.0.1:{listener.port}/", f"http://[::1]:{listener.port}/",
            "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
            "http://[::ffff:192.168.0.1]/", "file:///etc/passwd"]
    answer = ask("".join(tool_marker(tool, url=url) for url in urls
                         for tool in ("fetch_webpage", "extract_links")))
    assert answer["status"] == "completed"
    assert len(answer["tool_calls"]) == 2 * len(urls)
    for call in answer["tool_calls"]:
        assert call["status"] == "error", call
        assert call["result"]["code"] == 422 and call["result"]["details"]["url"]
    assert listener.connections == 0
    assert [address for address in connections.loopback if address[1] == listener.port] == []


def test_a_tool_result_cannot_carry_the_services_secrets(ask, monkeypatch):
    monkeypatch.setenv("JWT_SECRET_KEY", JWT_TEST_SECRET)
    monkeypatch.setenv("ZHIPUAI_API_KEY", API_KEY)
    answer = ask(tool_marker("run_python", code="import os\nprint(dict(os.environ))"))
    call = answer["tool_calls"][0]
    if call["result"].get("code") == 503:
        pytest.skip("this host cannot run the bubblewrap sandbox")
    assert call["status"] == "ok" and call["result"]["exit_code"] == 0
    carried = json.dumps(answer)
    assert JWT_TEST_SECRET not in carried and API_KEY not in carried


def test_what_goes_back_to_the_model_from_a_page_is_cut_at_tool_result_max_chars(
        ask, site, glm_simulator):
    answer = ask(tool_marker("fetch_webpage", url=site.url("/long.txt")))
    assert answer["tool_calls"][0]["status"] == "ok"
    assert len(answer["tool_calls"][0]["result"]["text"]) == 5000
    sent_back = chat_requests(glm_simulator)[-1]["body"]["messages"][-1]
    assert sent_back["role"] == "tool"
    assert sent_back["content"].endswith("…(truncated)")
    assert len(sent_back["content"]) == 300 + len("…(truncated)")
