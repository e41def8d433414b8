"""GLM failing in every way docs/GLM.md lists, on both ways of sending a message: the
user message is stored, an assistant message with status `error` holds the partial text and
a readable reason, and the client gets the documented status (POST) or last event (stream).
tests/test_chat.py has the first cases of several of these; this is the whole table."""
import pytest

from ..glm_simulator import DEFAULT_REPLY, ERROR_CODES, STREAM_ERROR
from ..servers import free_port
from ..test_chat import parse_events
from .conftest import stored

ENGLISH = {"Accept-Language": "en"}
READ_TIMEOUT = 1.0
STATUS_OF = {"upstream_error": 502, "upstream_unavailable": 503, "upstream_timeout": 504}
REASON_OF = {"upstream_error": "The upstream service failed",
             "upstream_unavailable": "The upstream service is unavailable",
             "upstream_timeout": "The upstream service timed out"}
IN_STREAM_MESSAGE = "系统检测到输入或生成内容可能包含不安全或敏感内容"
assert IN_STREAM_MESSAGE.encode() in STREAM_ERROR


def provider(status, code=None):
    default_code, message = ERROR_CODES[status]
    return {"provider_status": status, "provider_code": code or default_code,
            "provider_message": message}


# (content of the user message, error code, text chunks the client gets before the failure,
#  what error.details must hold)
FAILURES = [
    pytest.param("[[http:400]][[code:1301]]", "upstream_error", 0, provider(400, "1301"),
                 id="http-400-content-filter"),
    pytest.param("[[http:400]]", "upstream_error", 0, provider(400), id="http-400-bad-request"),
    pytest.param("[[http:401]]", "upstream_error", 0, provider(401), id="http-401-key"),
    pytest.param("[[http:429]]", "upstream_unavailable", 0, provider(429),
                 id="http-429-rate-limit"),
    pytest.param("[[http:429]][[code:1113]]", "upstream_unavailable", 0, provider(429, "1113"),
                 id="http-429-no-balance"),
    pytest.param("[[http:500]]", "upstream_error", 0, provider(500), id="http-500"),
    pytest.param("[[http:503]]", "upstream_unavailable", 0, provider(503), id="http-503"),
    pytest.param("[[chunks:5]][[stream_error:2]]", "upstream_error", 2,
                 {"provider_code": "1301", "provider_message": IN_STREAM_MESSAGE},
                 id="error-chunk-mid-stream"),
    pytest.param("[[chunks:10]][[drop:0]]", "upstream_error", 0, {},
                 id="dropped-before-the-first-chunk"),
    pytest.param("[[chunks:10]][[drop:4]]", "upstream_error", 4, {},
                 id="dropped-mid-stream"),
    pytest.param("[[stall:3]]", "upstream_timeout", 0, {}, id="stall-before-the-first-chunk"),
    pytest.param("[[chunks:3]][[stall:3]][[stall_after:1]]", "upstream_timeout", 1, {},
                 id="stall-mid-stream"),
    pytest.param("[[malformed_chunk]]", "upstream_error", 0,
                 {"provider_error": "malformed stream chunk"}, id="malformed-chunk"),
    pytest.param("[[no_finish]]", "upstream_error", 3,
                 {"provider_error": "stream ended without finish_reason"}, id="no-finish"),
    pytest.param("[[finish:sensitive]]", "upstream_error", 3, {"provider_message": "sensitive"},
                 id="finish-sensitive"),
    pytest.param("[[finish:network_error]]", "upstream_error", 3,
                 {"provider_message": "network_error"}, id="finish-network-error"),
]


@pytest.fixture
def glm_client(make_app, glm_simulator):
    glm_simulator.reset()
    return make_app(ZHIPUAI_API_KEY="test-key", GLM_BASE_URL=glm_simulator.base_url,
                    GLM_READ_TIMEOUT=READ_TIMEOUT).test_client()


def assert_stored_as_error(conversation_id, content, code, partial_text, details):
    count, rows = stored(conversation_id)
    assert count == len(rows) == 2
    user, answer = rows
    assert (user.role, user.status, user.content) == ("user", "completed", content)
    assert (answer.role, answer.status) == ("assistant", "error")
    assert answer.content == partial_text
    assert answer.error.startswith(REASON_OF[code])
    if details.get("provider_message"):
        assert details["provider_message"] in answer.error
    return answer


def partial_text(content, chunks):
    """What the simulator sent before failing: chunk i of `[[chunks:N]]` is "w{i} ", and
    without that marker the default reply comes in three chunks."""
    if "[[chunks:" in content:
        return "".join(f"w{i} " for i in range(chunks))
    return DEFAULT_REPLY if chunks == 3 else ""


def assert_details(given, expected):
    assert {key: given.get(key) for key in expected} == expected


@pytest.mark.parametrize("content,code,chunks,details", FAILURES)
def test_send_stores_an_error_answer_and_answers_the_documented_status(
        glm_client, auth_headers, conversation_id, content, code, chunks, details):
    response = glm_client.post("/api/messages/", headers={**auth_headers, **ENGLISH},
                               json={"conversation_id": conversation_id, "content": content})
    assert response.status_code == STATUS_OF[code]
    body = response.json
    assert body["success"] is False and body["error"]["code"] == code
    assert body["message"] == REASON_OF[code]
    assert_details(body["error"]["details"], details)
    answer = assert_stored_as_error(conversation_id, content, code,
                                    partial_text(content, chunks), details)
    assert body["data"]["user_message"]["content"] == content
    assert body["data"]["assistant_message"]["id"] == answer.id
    assert body["data"]["assistant_message"]["error"] == answer.error


@pytest.mark.parametrize("content,code,chunks,details", FAILURES)
def test_stream_stores_an_error_answer_and_ends_with_an_error_event(
        glm_client, auth_headers, conversation_id, content, code, chunks, details):
    response = glm_client.post("/api/messages/stream", headers={**auth_headers, **ENGLISH},
                               json={"conversation_id": conversation_id, "content": content})
    assert response.status_code == 200
    events = parse_events(response.get_data(as_text=True))
    assert [kind for kind, _ in events] == ["start"] + ["text"] * chunks + ["error"]
    start, error = events[0][1], events[-1][1]
    assert start["user_message"]["content"] == content
    assert error["code"] == code and error["message"] == REASON_OF[code]
    received = "".join(data["delta"] for kind, data in events if kind == "text")
    answer = assert_stored_as_error(conversation_id, content, code, received, details)
    assert error["assistant_message"]["id"] == start["assistant_message_id"] == answer.id
    assert error["assistant_message"]["status"] == "error"
    assert error["assistant_message"]["content"] == received == partial_text(content, chunks)
    assert error["assistant_message"]["error"] == answer.error


@pytest.mark.parametrize("path", ["/api/messages/", "/api/messages/stream"])
def test_an_unreachable_glm_is_503_with_the_user_message_kept(
        make_app, auth_headers, conversation_id, path):
    nowhere = f"http://127.0.0.1:{free_port()}/api/paas/v4"
    glm_client = make_app(ZHIPUAI_API_KEY="test-key", GLM_BASE_URL=nowhere).test_client()
    response = glm_client.post(path, headers={**auth_headers, **ENGLISH},
                               json={"conversation_id": conversation_id, "content": "hello"})
    if path.endswith("stream"):
        events = parse_events(response.get_data(as_text=True))
        assert [kind for kind, _ in events] == ["start", "error"]
        assert events[-1][1]["code"] == "upstream_unavailable"
    else:
        assert response.status_code == 503
        assert response.json["error"]["code"] == "upstream_unavailable"
        assert response.json["error"]["details"]["provider_error"] == "APIConnectionError"
    assert_stored_as_error(conversation_id, "hello", "upstream_unavailable", "", {})


def test_a_length_cut_answer_is_stored_incomplete_on_the_stream_too(
        glm_client, auth_headers, conversation_id):
    response = glm_client.post("/api/messages/stream", headers=auth_headers, json={
        "conversation_id": conversation_id, "content": "[[finish:length]]"})
    events = parse_events(response.get_data(as_text=True))
    assert [kind for kind, _ in events] == ["start", "text", "text", "text", "done"]
    done = events[-1][1]["assistant_message"]
    assert done["status"] == "incomplete" and done["finish_reason"] == "length"
    count, rows = stored(conversation_id)
    assert count == 2 and [m.status for m in rows] == ["completed", "incomplete"]
