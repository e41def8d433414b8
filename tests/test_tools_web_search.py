"""web_search through the same SDK client and key as chat, against the GLM simulator."""
import time

import pytest

URL = "/api/tools/web_search/execute"


@pytest.fixture
def searcher(make_app, glm_simulator):
    glm_simulator.reset()
    return make_app(ZHIPUAI_API_KEY="test-key",
                    GLM_BASE_URL=glm_simulator.base_url).test_client()


def searches(glm_simulator):
    return [r for r in glm_simulator.requests() if r["path"].endswith("/web_search")]


def test_results_have_title_url_snippet_and_published(searcher, auth_headers, glm_simulator):
    response = searcher.post(URL, json={"query": "flask streaming", "count": 3},
                             headers=auth_headers)
    assert response.status_code == 200, response.json
    data = response.json["data"]
    assert data["tool"] == "web_search" and data["duration_ms"] >= 0
    results = data["result"]["results"]
    assert len(results) == 3
    for result in results:
        assert set(result) == {"title", "url", "snippet", "published"}
        assert result["url"].startswith("http")
    sent = searches(glm_simulator)[-1]
    assert sent["body"]["search_query"] == "flask streaming" and sent["body"]["count"] == 3
    assert sent["body"]["search_engine"] == "search_std"
    assert sent["headers"]["Authorization"] == "present"


def test_count_defaults_to_10(searcher, auth_headers):
    response = searcher.post(URL, json={"query": "x"}, headers=auth_headers)
    assert len(response.json["data"]["result"]["results"]) == 10


@pytest.mark.parametrize("arguments,field", [
    ({}, "query"), ({"query": ""}, "query"), ({"query": "x", "count": 0}, "count"),
    ({"query": "x", "count": 21}, "count"), ({"query": "x", "count": "5"}, "count"),
])
def test_bad_arguments_are_422(searcher, auth_headers, arguments, field):
    response = searcher.post(URL, json=arguments, headers=auth_headers)
    assert response.status_code == 422 and field in response.json["error"]["details"]


def test_without_a_key_the_tool_is_503(client, auth_headers):
    response = client.post(URL, json={"query": "x"}, headers=auth_headers)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "upstream_unavailable"


@pytest.mark.parametrize("status,expected", [(500, 502), (401, 502), (429, 503)])
def test_provider_errors_map_to_upstream_statuses(searcher, auth_headers, status, expected):
    response = searcher.post(URL, json={"query": f"x [[http:{status}]]"}, headers=auth_headers)
    assert response.status_code == expected


def test_a_stalled_search_times_out_with_504(make_app, glm_simulator, auth_headers):
    app = make_app(ZHIPUAI_API_KEY="test-key", GLM_BASE_URL=glm_simulator.base_url,
                   WEB_SEARCH_TIMEOUT=1.0)
    started = time.perf_counter()
    response = app.test_client().post(URL, json={"query": "x [[stall:30]]"},
                                      headers=auth_headers)
    assert response.status_code == 504
    assert response.json["error"]["code"] == "upstream_timeout"
    # The simulator would answer after 30 s: well before is the 1-second timeout at work.
    assert time.perf_counter() - started < 15
