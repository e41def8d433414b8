"""OWASP API4:2023 Unrestricted Resource Consumption.

Every size and time limit a client can reach: the body size (MAX_CONTENT_LENGTH, 413, also
without a Content-Length; the import's own IMPORT_MAX_BYTES), the message length
(MAX_MESSAGE_CHARS, 422, nothing stored, the model not asked), page sizes and other field
bounds (422), run_python's time limit and output cap (SANDBOX_OUTPUT_BYTES), the fetch tools'
byte cap (FETCH_MAX_BYTES) and time limit (FETCH_TIMEOUT), and tool inputs built to be
expensive (refused quickly). Each limit is also shown to let the largest allowed value
through. Per-user rate limits for messages and tools and the concurrent-stream cap are tested
where they are built, not here; the import's message limit (IMPORT_MAX_MESSAGES) in
tests/test_export_import.py."""
import io
import json
import time

import pytest
from sqlalchemy import func, select

from chatapi.extensions import db
from chatapi.models import Conversation, Message, User
from chatapi.services import tokens

from ..conftest import bearer
from .conftest import assert_error, chat_requests, routes, stored_rows

MIB = 1024 * 1024


def counts():
    db.session.expire_all()
    return [db.session.scalar(select(func.count()).select_from(model))
            for model in (User, Conversation, Message)]


# Routes with a body limit of their own instead of MAX_CONTENT_LENGTH.
OWN_LIMITS = {"/api/conversations/import": "IMPORT_MAX_BYTES"}


def body_routes(app, client):
    """The routes that read a JSON body, as the OpenAPI document says (but those with a limit
    of their own)."""
    document = client.get("/api/openapi.json").get_json()
    documented = {(path, method.upper()) for path, operations in document["paths"].items()
                  for method, operation in operations.items() if "requestBody" in operation}
    return [route for route in routes(app) if route.rule not in OWN_LIMITS
            and (route.rule.replace("<", "{").replace(">", "}"), route.method) in documented]


def oversized(size=MIB + 1):
    padding = "x" * (size - len('{"title": ""}'))
    return ('{"title": "%s"}' % padding).encode()


def chunked(body):
    """A body sent without Content-Length (Transfer-Encoding: chunked), as gunicorn hands it
    to the app: a stream the server ends."""
    return {"input_stream": io.BytesIO(body), "environ_overrides": {
        "CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input_terminated": True}}


def test_a_body_over_max_content_length_is_413_on_every_route_that_reads_one(
        app, chat_client, exchange, auth_headers):
    before, rows = counts(), stored_rows(exchange.conversation["id"])
    checked = body_routes(app, chat_client)
    assert len(checked) >= 8
    values = {"conversation_id": exchange.conversation["id"], "name": "calculator",
              "message_id": exchange.assistant_message["id"]}
    for route in checked:
        for body in ({"data": oversized()}, chunked(oversized())):
            response = chat_client.open(route.url(**values), method=route.method,
                                        headers=auth_headers, content_type="application/json",
                                        **body)
            assert_error(response, 413, "payload_too_large")
    assert counts() == before and stored_rows(exchange.conversation["id"]) == rows


def test_the_import_reads_past_max_content_length_up_to_import_max_bytes_and_no_further(
        make_app, user):
    app = make_app(IMPORT_MAX_BYTES=2 * MIB)
    client = app.test_client()
    headers = bearer(tokens.issue_tokens(user, app.config)["access_token"])
    before = counts()

    def import_of(size):
        body = json.dumps({"version": 1, "conversation": {}, "messages": []}).encode()
        return body + b" " * (size - len(body))

    for body in ({"data": import_of(2 * MIB + 1)}, chunked(import_of(2 * MIB + 1))):
        response = client.post("/api/conversations/import", headers=headers,
                               content_type="application/json", **body)
        assert_error(response, 413, "payload_too_large")
    assert counts() == before
    for body in ({"data": import_of(2 * MIB)}, chunked(import_of(2 * MIB))):
        response = client.post("/api/conversations/import", headers=headers,
                               content_type="application/json", **body)
        assert response.status_code == 201, response.get_json()
    assert counts()[1] == before[1] + 2


@pytest.mark.parametrize("sent", ["with content-length", "chunked"])
def test_a_body_of_exactly_max_content_length_is_read(client, auth_headers, sent):
    body = oversized(MIB).replace(b'"title"', b'"other"')
    response = client.post("/api/conversations/", headers=auth_headers,
                           content_type="application/json",
                           **(chunked(body) if sent == "chunked" else {"data": body}))
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("path", ["/api/messages/", "/api/messages/stream"])
def test_a_message_over_max_message_chars_is_422_stores_nothing_and_asks_no_model(
        chat_client, exchange, auth_headers, glm_simulator, path):
    rows, asked = stored_rows(exchange.conversation["id"]), len(chat_requests(glm_simulator))
    response = chat_client.post(path, headers=auth_headers, json={
        "conversation_id": exchange.conversation["id"], "content": "字" * 32001})
    body = assert_error(response, 422, "validation_error")
    assert "content" in body["error"]["details"]
    assert stored_rows(exchange.conversation["id"]) == rows
    assert len(chat_requests(glm_simulator)) == asked


def test_a_message_of_exactly_max_message_chars_is_answered(chat_client, exchange, auth_headers):
    response = chat_client.post("/api/messages/", headers=auth_headers, json={
        "conversation_id": exchange.conversation["id"], "content": "字" * 32000})
    assert response.status_code == 201, response.get_json()


def test_max_message_chars_is_the_configured_one(make_app, user, auth_headers):
    client = make_app(MAX_MESSAGE_CHARS=10).test_client()
    conversation = client.post("/api/conversations/", headers=auth_headers, json={})
    response = client.post("/api/messages/", headers=auth_headers, json={
        "conversation_id": conversation.get_json()["data"]["id"], "content": "x" * 11})
    assert_error(response, 422, "validation_error")
    assert counts()[2] == 0


@pytest.mark.parametrize("query,field", [
    ("page_size=101", "page_size"), ("page_size=0", "page_size"), ("page_size=-1", "page_size"),
    ("page_size=abc", "page_size"), ("page_size=1e3", "page_size"),
    ("page_size=99999999999999999999", "page_size"), ("page=0", "page"),
    ("page=1000001", "page"), ("q=" + "x" * 201, "q"), ("project_id=" + "p" * 65, "project_id"),
])
def test_conversation_list_bounds_are_422(client, auth_headers, query, field):
    response = client.get(f"/api/conversations/?{query}", headers=auth_headers)
    assert field in assert_error(response, 422, "validation_error")["error"]["details"]


@pytest.mark.parametrize("query", ["limit=1001", "limit=0", "limit=-5", "limit=10000000000"])
def test_message_list_limit_over_1000_or_under_1_is_422(client, auth_headers, conversation_id,
                                                        query):
    response = client.get(f"/api/messages/{conversation_id}?{query}", headers=auth_headers)
    assert "limit" in assert_error(response, 422, "validation_error")["error"]["details"]


@pytest.mark.parametrize("query,field", [
    ("q=" + "x" * 201, "q"), ("q=", "q"), ("limit=51&q=abc", "limit"), ("limit=0&q=abc", "limit"),
    ("limit=abc&q=abc", "limit"), ("q=abc&before=not-a-cursor", "before"),
])
def test_search_bounds_are_422(client, auth_headers, query, field):
    response = client.get(f"/api/search?{query}", headers=auth_headers)
    assert field in assert_error(response, 422, "validation_error")["error"]["details"]


def test_the_largest_pages_are_served(client, auth_headers, conversation_id):
    assert client.get("/api/conversations/?page_size=100&page=1000000",
                      headers=auth_headers).status_code == 200
    assert client.get(f"/api/messages/{conversation_id}?limit=1000",
                      headers=auth_headers).status_code == 200
    assert client.get("/api/search?limit=50&q=" + "x" * 200,
                      headers=auth_headers).status_code == 200


@pytest.mark.parametrize("fields", [
    {"max_tokens": 131073}, {"system_prompt": "x" * 20001}, {"title": "x" * 201},
    {"project_id": "p" * 65},
])
def test_conversation_fields_over_their_bounds_are_422_and_store_nothing(client, auth_headers,
                                                                         fields):
    before = counts()
    response = client.post("/api/conversations/", headers=auth_headers, json=fields)
    assert set(assert_error(response, 422, "validation_error")["error"]["details"]) == set(fields)
    assert counts() == before


def run_python(client, headers, **arguments):
    response = client.post("/api/tools/run_python/execute", headers=headers, json=arguments)
    if response.status_code == 503:
        pytest.skip("this host cannot run the bubblewrap sandbox (503)")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["result"]


def test_run_python_over_its_time_limit_is_killed_with_timed_out(client, auth_headers):
    started = time.perf_counter()
    result = run_python(client, auth_headers, code="while True:\n    pass\n", timeout=1)
    assert result["timed_out"] is True and result["exit_code"] == -9
    assert time.perf_counter() - started < 3.5


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_run_python_output_over_sandbox_output_bytes_is_cut_and_the_run_ended_at_once(
        make_app, user, auth_headers, stream):
    client = make_app(SANDBOX_OUTPUT_BYTES=4096).test_client()
    code = (f"import sys, time\nsys.{stream}.write('y' * 1_000_000)\nsys.{stream}.flush()\n"
            "time.sleep(30)\n")
    started = time.perf_counter()
    result = run_python(client, auth_headers, code=code, timeout=20)
    assert result["truncated"] is True and result[stream] == "y" * 4096
    assert result["timed_out"] is False and result["exit_code"] == -9
    assert time.perf_counter() - started < 5


@pytest.fixture
def fetching(make_app, auth_headers, site):
    def fetch(path, tool="fetch_webpage", **config):
        app = make_app(FETCH_ALLOWED_HOSTS=[site.host], **config)
        return app.test_client().post(f"/api/tools/{tool}/execute", headers=auth_headers,
                                      json={"url": site.url(path), "max_chars": 100000})
    return fetch


def test_fetch_reads_at_most_fetch_max_bytes(fetching):
    response = fetching("/long.txt", FETCH_MAX_BYTES=1000)
    assert response.status_code == 200, response.get_json()
    result = response.get_json()["data"]["result"]
    assert result["text"] == ("word " * 200) and result["truncated"] is True
    whole = fetching("/long.txt", FETCH_MAX_BYTES=5000).get_json()["data"]["result"]
    assert len(whole["text"]) == 5000 and whole["truncated"] is False


@pytest.mark.parametrize("tool", ["fetch_webpage", "extract_links"])
def test_a_20_mb_page_is_cut_at_fetch_max_bytes_quickly(fetching, tool):
    started = time.perf_counter()
    response = fetching("/huge", tool, FETCH_MAX_BYTES=100_000)
    assert response.status_code == 200, response.get_json()
    if tool == "fetch_webpage":
        result = response.get_json()["data"]["result"]
        assert result["truncated"] is True and 0 < len(result["text"]) <= 100_000
    assert time.perf_counter() - started < 3


@pytest.mark.parametrize("path", ["/forever", "/silent", "/no-answer"])
def test_a_fetch_is_504_at_fetch_timeout(fetching, path):
    started = time.perf_counter()
    assert_error(fetching(path, FETCH_TIMEOUT=0.5), 504, "upstream_timeout")
    # Bounded, not timed: wide enough for a loaded machine, far short of the hang it guards.
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("tool,arguments,field", [
    ("calculator", {"expression": "9**9**9**9"}, "expression"),
    ("calculator", {"expression": "factorial(100000)"}, "expression"),
    ("json_query", {"data": [1], "expression": "|".join(["[@,@]|[]"] * 21)}, "expression"),
    ("regex_test", {"pattern": "(x+x+)+y", "text": "x" * 5000}, "pattern"),
    ("regex_test", {"pattern": "x{4294967294}", "text": "x"}, "pattern"),
    ("unit_convert", {"value": 1, "from_unit": "m**10**10**10", "to_unit": "m"}, "from_unit"),
    ("csv_analyze", {"csv": "a\n1\n", "max_rows": 10 ** 9}, "max_rows"),
    ("run_python", {"code": "x" * 100_001}, "code"),
])
def test_tool_inputs_built_to_be_expensive_are_refused_quickly(client, auth_headers, tool,
                                                               arguments, field):
    started = time.perf_counter()
    response = client.post(f"/api/tools/{tool}/execute", headers=auth_headers, json=arguments)
    assert field in assert_error(response, 422, "validation_error")["error"]["details"]
    # Refused before the work, which would take hours: any bound a loaded machine meets.
    assert time.perf_counter() - started < 20


def one_message_import(tool_calls=(), parts=None):
    """A file of one message: ours with `tool_calls`, or ChatGPT's with `parts`."""
    if parts is not None:
        return {"mapping": {"a": {"id": "a", "parent": None, "message": {
            "author": {"role": "user"}, "content": {"content_type": "text", "parts": parts}}}}}
    return {"version": 1, "conversation": {}, "messages": [{
        "id": "m1", "role": "assistant", "content": "x", "created_at": "2026-01-01T00:00:00Z",
        "tool_calls": list(tool_calls)}]}


def tool_call(arguments=None, result=None):
    return {"id": "c", "name": "n", "arguments": {} if arguments is None else arguments,
            "result": result, "status": "ok"}


# IMPORT_MAX_MESSAGES bounds the messages, not what one holds: these lists and values are
# read, checked and stored without a pause, so millions of them in one message of a 50 MB
# file held a gevent worker for half a minute (past GUNICORN_TIMEOUT: the worker killed).
@pytest.mark.parametrize("largest,over,field", [
    (one_message_import([tool_call()] * 1000), one_message_import([tool_call()] * 1001),
     "messages.0.tool_calls"),
    (one_message_import([tool_call([0] * 99_999)]),
     one_message_import([tool_call([0] * 100_000)]), "messages.0.tool_calls.0.arguments"),
    (one_message_import([tool_call(result=[{}] * 99_999)]),
     one_message_import([tool_call(result=[[{}] * 50_000] * 2)]),
     "messages.0.tool_calls.0.result"),
    (one_message_import(parts=["p"] * 1000), one_message_import(parts=["p"] * 1001),
     "mapping.a.message.content.parts"),
], ids=["tool calls", "arguments", "result", "chatgpt parts"])
def test_an_import_of_one_message_holding_too_many_values_is_422(
        client, auth_headers, largest, over, field):
    refused_then_largest_taken(client, auth_headers, largest, over, field, counted=True)


def test_an_import_whose_tool_calls_hold_too_many_values_in_all_is_413(client, auth_headers):
    """Under the limit of each call, past the limit of the whole file (1,000,000 values)."""
    before = counts()
    message = one_message_import([tool_call([0] * 99_999)])["messages"][0]
    document = {"version": 1, "conversation": {}, "messages": [
        {**message, "id": f"m{number}"} for number in range(11)]}
    response = client.post("/api/conversations/import", headers=auth_headers, json=document)
    body = assert_error(response, 413, "payload_too_large")
    assert "tool calls" in body["error"]["details"]["_schema"][0]
    assert counts() == before
    document["messages"] = document["messages"][:9]
    response = client.post("/api/conversations/import", headers=auth_headers, json=document)
    assert response.status_code == 201, response.get_json()


def chatgpt_answer_in_nodes(*texts):
    """A ChatGPT conversation: a question, then one answer written as a chain of nodes."""
    mapping = {"q": {"id": "q", "parent": None, "message": {
        "author": {"role": "user"}, "content": {"content_type": "text", "parts": ["q"]}}}}
    parent = "q"
    for number, text in enumerate(texts):
        key = f"a{number}"
        mapping[key] = {"id": key, "parent": parent, "message": {
            "author": {"role": "assistant"}, "content": {"content_type": "text", "parts": [text]}}}
        parent = key
    return {"mapping": mapping}


def ours_with_content(content):
    document = one_message_import()
    document["messages"][0]["content"] = content
    return document


# A message's text is indexed as it is written, in one statement: SQLite's FTS5 triggers
# run in the worker (one message of 40 MB held it 19 s).
@pytest.mark.parametrize("largest,over,field", [
    (ours_with_content("x" * 1_000_000), ours_with_content("x" * 1_000_001),
     "messages.0.content"),
    (chatgpt_answer_in_nodes("x" * 1_000_000),
     chatgpt_answer_in_nodes("x" * 600_000, "y" * 600_000), "mapping.a0.message.content"),
], ids=["ours", "chatgpt answer of two nodes"])
def test_an_imported_text_over_a_million_characters_is_422(client, auth_headers, largest, over,
                                                           field):
    refused_then_largest_taken(client, auth_headers, largest, over, field)


def refused_then_largest_taken(client, auth_headers, largest, over, field, counted=False):
    """`over` is 422 naming `field` and stores nothing; `largest` imports (`counted`: as one
    conversation of one message)."""
    before = counts()
    response = client.post("/api/conversations/import", headers=auth_headers, json=over)
    assert field in assert_error(response, 422, "validation_error")["error"]["details"]
    assert counts() == before
    response = client.post("/api/conversations/import", headers=auth_headers, json=largest)
    assert response.status_code == 201, response.get_json()
    if counted:
        assert counts()[1:] == [before[1] + 1, before[2] + 1]
