"""The tools a model runs are bounded: at most TOOL_MAX_CALLS_PER_ROUND calls run per round, and
each run counts in the user's tool budget (TOOL_RATE_LIMIT), the same counter as direct runs.
What is refused goes back to the model as an error result, stored and streamed like any other."""
from .test_chat import chat_requests, kinds, stream

CALL = '[[tool:calculator {"expression": "6*7"}]]'


def results(events):
    return [data for kind, data in events if kind == "tool_result"]


def stored_calls(client, headers, conversation_id):
    listed = client.get(f"/api/messages/{conversation_id}", headers=headers).json["data"]
    return listed["items"][-1]["tool_calls"]


def test_calls_past_the_rounds_cap_get_an_error_result_and_do_not_run(
        chat_app, auth_headers, conversation_id, glm_simulator):
    chat = chat_app(TOOL_MAX_CALLS_PER_ROUND=3, TOOL_RATE_LIMIT=None).test_client()
    events = stream(chat, auth_headers, conversation_id, CALL * 5)
    assert kinds(events)[-1] == "done"
    ran = results(events)
    assert [result["status"] for result in ran] == ["ok"] * 3 + ["error"] * 2
    assert all(result["result"]["result"] == 42 for result in ran[:3])
    for refused in ran[3:]:
        assert refused["result"]["code"] == 429
        assert refused["result"]["details"] == {"max_calls_per_round": 3}
    assert stored_calls(chat, auth_headers, conversation_id) == [
        {**result, "arguments": {"expression": "6*7"}} for result in ran]
    # Every call, refused or not, has its tool message in what the model is sent next.
    follow_up = chat_requests(glm_simulator)[-1]["body"]["messages"]
    assert [message["role"] for message in follow_up[-5:]] == ["tool"] * 5


def test_the_default_cap_runs_ten_calls_of_two_hundred(chat_app, auth_headers,
                                                       conversation_id):
    chat = chat_app(TOOL_RATE_LIMIT=None).test_client()
    events = stream(chat, auth_headers, conversation_id, CALL * 200)
    statuses = [result["status"] for result in results(events)]
    assert statuses == ["ok"] * 10 + ["error"] * 190


def test_the_models_runs_count_in_the_users_tool_budget(chat_app, auth_headers,
                                                        conversation_id):
    chat = chat_app(TOOL_RATE_LIMIT="3 per minute").test_client()
    ran = results(stream(chat, auth_headers, conversation_id, CALL * 5))
    assert [result["status"] for result in ran] == ["ok"] * 3 + ["error"] * 2
    assert all(result["result"]["code"] == 429 for result in ran[3:])
    # The budget is the one direct runs spend.
    direct = chat.post("/api/tools/calculator/execute", headers=auth_headers,
                       json={"expression": "1+1"})
    assert direct.status_code == 429 and direct.json["error"]["code"] == "rate_limited"


def test_direct_runs_spend_the_budget_the_model_then_finds_spent(
        chat_app, auth_headers, conversation_id):
    chat = chat_app(TOOL_RATE_LIMIT="2 per minute").test_client()
    for _ in range(2):
        assert chat.post("/api/tools/calculator/execute", headers=auth_headers,
                         json={"expression": "1+1"}).status_code == 200
    ran = results(stream(chat, auth_headers, conversation_id, CALL))
    assert ran[0]["status"] == "error" and ran[0]["result"]["code"] == 429


def test_another_users_budget_is_not_spent(chat_app, auth_headers, other_headers,
                                           conversation_id):
    chat = chat_app(TOOL_RATE_LIMIT="2 per minute").test_client()
    stream(chat, auth_headers, conversation_id, CALL * 2)
    assert chat.post("/api/tools/calculator/execute", headers=other_headers,
                     json={"expression": "1+1"}).status_code == 200
