"""/api/tools: one registry, the same definitions the model is offered."""
import pytest

from chatapi.tools import CATEGORIES

URL = "/api/tools/"
CONTRACT = {
    "crawler": {"web_search", "fetch_webpage", "extract_links"},
    "code": {"run_python", "regex_test"},
    "data": {"calculator", "unit_convert", "json_query", "csv_analyze"},
    "weather": {"current_weather", "weather_forecast"},
}


def test_list_has_the_eleven_tools_of_the_contract(client, auth_headers):
    response = client.get(URL, headers=auth_headers)
    assert response.status_code == 200
    data = response.json["data"]
    assert data["total"] == 11 == len(data["tools"])
    assert set(data["categorized"]) == set(CATEGORIES) == set(CONTRACT)
    for category, names in CONTRACT.items():
        assert {tool["name"] for tool in data["categorized"][category]} == names
    for tool in data["tools"]:
        assert set(tool) == {"name", "category", "description", "parameters",
                             "time_limit_seconds"}
        assert tool["description"] and tool["parameters"]["type"] == "object"
        for name, spec in tool["parameters"]["properties"].items():
            assert spec.get("description"), (tool["name"], name)


def test_each_tool_lists_the_time_limit_its_own_deadlines_give_it(make_app, auth_headers):
    client = make_app(FETCH_TIMEOUT=3.0, COMPUTE_TIMEOUT=4.0, WEATHER_TIMEOUT=5.0,
                      WEB_SEARCH_TIMEOUT=6.0).test_client()
    tools = client.get(URL, headers=auth_headers).json["data"]["tools"]
    assert {tool["name"]: tool["time_limit_seconds"] for tool in tools} == {
        "web_search": 6.0, "fetch_webpage": 7.0, "extract_links": 7.0, "run_python": 35.0,
        "regex_test": 4.0, "calculator": None, "unit_convert": None, "json_query": 4.0,
        "csv_analyze": 4.0, "current_weather": 5.0, "weather_forecast": 5.0}
    one = client.get(URL + "current_weather", headers=auth_headers).json["data"]
    assert one["time_limit_seconds"] == 5.0


def test_list_without_trailing_slash(client, auth_headers):
    assert client.get("/api/tools", headers=auth_headers).json["data"]["total"] == 11


@pytest.mark.parametrize("category", CATEGORIES)
def test_category_filter_keeps_all_four_keys(client, auth_headers, category):
    data = client.get(URL, query_string={"category": category}, headers=auth_headers).json["data"]
    assert {tool["name"] for tool in data["tools"]} == CONTRACT[category]
    assert data["total"] == len(CONTRACT[category])
    assert set(data["categorized"]) == set(CATEGORIES)
    assert all(not tools for name, tools in data["categorized"].items() if name != category)


def test_unknown_category_is_422_listing_the_valid_ones(client, auth_headers):
    response = client.get(URL, query_string={"category": "music"}, headers=auth_headers)
    assert response.status_code == 422
    message = response.json["error"]["details"]["category"][0]
    assert all(category in message for category in CATEGORIES)


def test_get_one_tool(client, auth_headers):
    response = client.get(URL + "calculator", headers=auth_headers)
    assert response.status_code == 200
    assert response.json["data"]["name"] == "calculator"
    assert response.json["data"]["category"] == "data"


def test_unknown_tool_is_404_on_get_and_execute(client, auth_headers):
    assert client.get(URL + "nope", headers=auth_headers).status_code == 404
    response = client.post(URL + "nope/execute", json={}, headers=auth_headers)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_execute_answers_tool_result_and_duration(client, auth_headers):
    response = client.post(URL + "calculator/execute", json={"expression": "2+3"},
                           headers=auth_headers)
    assert response.status_code == 200
    data = response.json["data"]
    assert data["tool"] == "calculator" and data["duration_ms"] >= 0
    assert data["result"]["result"] == 5


def test_arguments_that_break_the_schema_are_422_per_field(client, auth_headers):
    response = client.post(URL + "weather_forecast/execute",
                           json={"city": 5, "days": 17}, headers=auth_headers)
    assert response.status_code == 422
    assert {"city", "days"} <= set(response.json["error"]["details"])
    missing = client.post(URL + "calculator/execute", json={}, headers=auth_headers)
    assert missing.status_code == 422 and "expression" in missing.json["error"]["details"]


def test_execute_body_must_be_a_json_object(client, auth_headers):
    response = client.post(URL + "calculator/execute", data="[1]",
                           content_type="application/json", headers=auth_headers)
    assert response.status_code == 400


def test_tools_require_a_token(client):
    assert client.get(URL).status_code == 401
    assert client.post(URL + "calculator/execute", json={"expression": "1"}).status_code == 401


def test_the_model_is_offered_the_same_definitions(app, client, auth_headers):
    listed = {tool["name"]: tool for tool in client.get(URL, headers=auth_headers).json["data"][
        "tools"]}
    offered = app.extensions["chatapi.tools"].functions
    assert len(offered) == 11
    for definition in offered:
        function = definition["function"]
        assert definition["type"] == "function"
        assert listed[function["name"]]["parameters"] == function["parameters"]
        assert listed[function["name"]]["description"] == function["description"]
