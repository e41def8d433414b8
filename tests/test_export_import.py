"""Export and import of conversations (docs/API.md §3, "Export and import"): the file a client
downloads, the round trip through our own format, the failures of a bad file (422 naming the
place, nothing stored) and the import's own body and message limits."""
import io
import threading
import json
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from chatapi.extensions import db
from chatapi.models import Conversation, Message, TokenCounter, UsageRecord
from chatapi.services import tokens

from .conftest import bearer

IMPORT = "/api/conversations/import"
ENGLISH = {"Accept-Language": "en"}


def export(client, headers, conversation_id, file_format=None):
    query = f"?format={file_format}" if file_format else ""
    return client.get(f"/api/conversations/{conversation_id}/export{query}", headers=headers)


def post_import(client, headers, document, **more):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return client.post(IMPORT, data=body, headers={**headers, **more},
                       content_type="application/json")


def stored_counts():
    return (db.session.scalar(select(func.count()).select_from(Conversation)),
            db.session.scalar(select(func.count()).select_from(Message)))


def tree(client, headers, conversation_id, view="tree"):
    response = client.get(f"/api/messages/{conversation_id}?view={view}&limit=1000",
                          headers=headers)
    return response.get_json()["data"]["items"]


class Talk:
    """A conversation made through the API, the GLM simulator answering."""

    def __init__(self, client, headers, **fields):
        self.client, self.headers = client, headers
        created = client.post("/api/conversations/", headers=headers, json=fields)
        self.id = created.get_json()["data"]["id"]

    def send(self, content, **more):
        response = self.client.post("/api/messages/", headers=self.headers, json={
            "conversation_id": self.id, "content": content, **more})
        return response.get_json()["data"]

    def regenerate(self, message_id):
        response = self.client.post(f"/api/messages/{message_id}/regenerate",
                                    headers=self.headers, json={})
        return response.get_json()["data"]


@pytest.fixture
def talk(chat, auth_headers):
    """A conversation with every kind of message: thinking, a tool call, a regenerated answer,
    an edited question, an answer that failed."""
    talk = Talk(chat, auth_headers, title="数学 & maths: 6×7?", system_prompt="Be brief.",
                thinking_enabled=True, project_id="p-1", pinned=True, temperature=0.5)
    first = talk.send('[[think:2]][[tool:calculator {"expression": "6*7"}]][[reply:It is 42.]]')
    talk.regenerate(first["assistant_message"]["id"])
    failed = talk.send("[[http:500]]", parent_id=first["assistant_message"]["id"])
    assert failed["assistant_message"]["status"] == "error"
    talk.send("and 7*8? [[reply:56]]", parent_id=first["assistant_message"]["id"])
    return talk


def test_the_json_export_is_a_file_with_every_message_of_every_branch_parents_first(
        chat, auth_headers, talk):
    response = export(chat, auth_headers, talk.id)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="')
    ascii_name = disposition.split('filename="')[1].split('"')[0]
    assert ascii_name.isascii() and ascii_name.endswith(".json") and "/" not in ascii_name
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "数学 & maths 6×7.json"
    document = response.get_json()
    assert set(document) == {"version", "conversation", "messages"} and document["version"] == 1
    conversation = document["conversation"]
    assert conversation["title"] == "数学 & maths: 6×7?" and conversation["pinned"] is True
    assert conversation["thinking_enabled"] is True and conversation["project_id"] == "p-1"
    assert "id" not in conversation and "user_id" not in conversation
    stored = tree(chat, auth_headers, talk.id)
    assert len(document["messages"]) == len(stored) == 7
    assert {message["id"] for message in document["messages"]} == {m["id"] for m in stored}
    seen = set()
    for message in document["messages"]:
        assert message["parent_id"] is None or message["parent_id"] in seen
        seen.add(message["id"])
    by_id = {message["id"]: message for message in document["messages"]}
    answer = next(m for m in document["messages"] if m["tool_calls"])
    assert answer["reasoning_content"] and answer["tool_calls"][0]["name"] == "calculator"
    assert answer["tool_calls"][0]["result"]["result"] == 42
    assert any(m["status"] == "error" and m["error"] for m in document["messages"])
    assert by_id[conversation["current_message_id"]]["content"] == "56"


def test_the_markdown_export_is_the_active_branch_to_read(chat, auth_headers, talk):
    response = export(chat, auth_headers, talk.id, "markdown")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert response.headers["Content-Disposition"].endswith(".md")
    text = response.get_data(as_text=True)
    assert text.startswith("# 数学 & maths: 6×7?\n")
    assert "> Be brief." in text
    assert "<details><summary>Thinking</summary>" in text
    assert "**Tool call `calculator`** (ok" in text and '"expression": "6*7"' in text
    assert "```json" in text
    assert "and 7*8?" in text and "\n56\n" in text
    # The failed answer is on another branch: not in the document.
    assert "(error" not in text and "[[http:500]]" not in text


def test_a_fence_in_a_tool_result_does_not_end_its_block(app, client, auth_headers):
    created = post_import(client, auth_headers, file_with([
        message("m1", None, "user", "run it"),
        message("m2", "m1", "assistant", "done", tool_calls=[{
            "id": "call_1", "name": "run_python", "arguments": {"code": "print('```')"},
            "result": "```\n# not a heading", "status": "ok", "duration_ms": 3.5}])]))
    conversation_id = created.get_json()["data"]["conversations"][0]
    text = export(client, auth_headers, conversation_id, "markdown").get_data(as_text=True)
    assert "````text\n```\n# not a heading\n````" in text


def normalised(document):
    """The document with each message id replaced by its position in the file."""
    position = {message["id"]: index for index, message in enumerate(document["messages"])}
    messages = [{**message, "id": position[message["id"]],
                 "parent_id": position.get(message["parent_id"])}
                for message in document["messages"]]
    conversation = {**document["conversation"],
                    "current_message_id": position.get(
                        document["conversation"]["current_message_id"])}
    return {**document, "conversation": conversation, "messages": messages}


def test_export_import_export_gives_the_same_document_but_the_ids(chat, auth_headers, talk):
    first = export(chat, auth_headers, talk.id).get_json()
    imported = post_import(chat, auth_headers, first, **ENGLISH)
    assert imported.status_code == 201, imported.get_json()
    assert imported.get_json()["message"] == "Imported"
    [new_id] = imported.get_json()["data"]["conversations"]
    assert new_id != talk.id
    second = export(chat, auth_headers, new_id).get_json()
    assert not {m["id"] for m in first["messages"]} & {m["id"] for m in second["messages"]}
    assert normalised(second) == normalised(first)
    listed = chat.get(f"/api/conversations/{new_id}", headers=auth_headers).get_json()["data"]
    assert listed["message_count"] == 7
    assert listed["current_message_id"] == second["conversation"]["current_message_id"]
    branch = tree(chat, auth_headers, new_id, view="branch")
    assert [m["content"] for m in branch][-1] == "56"


def test_the_list_form_and_the_caller_as_owner(client, auth_headers, user):
    one = file_with([message("a", None, "user", "hi")], title="one")
    two = file_with([message("a", None, "user", "hello")], title="two")
    response = post_import(client, auth_headers, [one, two])
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["message"] == "导入成功"
    ids = response.get_json()["data"]["conversations"]
    rows = [db.session.get(Conversation, conversation_id) for conversation_id in ids]
    assert [row.title for row in rows] == ["one", "two"]
    assert all(row.user_id == user.id and row.title_by_user for row in rows)


def test_imported_messages_are_not_usage(chat, auth_headers, talk):
    document = export(chat, auth_headers, talk.id).get_json()
    usage_rows = db.session.scalar(select(func.count()).select_from(UsageRecord))
    counters = db.session.scalars(select(TokenCounter.used)).all()
    assert post_import(chat, auth_headers, document).status_code == 201
    assert db.session.scalar(select(func.count()).select_from(UsageRecord)) == usage_rows
    assert db.session.scalars(select(TokenCounter.used)).all() == counters


def test_another_users_or_a_malformed_id_is_404_and_a_bad_format_422(
        chat, auth_headers, other_headers, talk):
    for headers, conversation_id in ((other_headers, talk.id), (auth_headers, "conv_x\x00"),
                                     (auth_headers, "nope")):
        response = export(chat, headers, conversation_id)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
    response = export(chat, auth_headers, talk.id, "pdf")
    assert response.status_code == 422
    assert "format" in response.get_json()["error"]["details"]


def message(key, parent, role, content, **fields):
    return {"id": key, "parent_id": parent, "role": role, "content": content,
            "created_at": "2026-01-02T03:04:05.678Z", **fields}


def file_with(messages, current=None, **conversation):
    return {"version": 1, "conversation": {"title": "imported", **conversation,
                                           "current_message_id": current},
            "messages": messages}


GOOD = [message("m1", None, "user", "q"), message("m2", "m1", "assistant", "a")]
BAD_FILES = [
    ("wrong version", {**file_with(GOOD), "version": 2}, "version"),
    ("no messages list", {"version": 1, "conversation": {}}, "messages"),
    ("unknown role", file_with([message("m1", None, "system", "x")]), "messages.0.role"),
    ("dangling parent", file_with([message("m1", "zz", "user", "x")]), "messages.0.parent_id"),
    ("child before parent", file_with([message("m2", "m1", "assistant", "a"),
                                       message("m1", None, "user", "q")]),
     "messages.0.parent_id"),
    ("a cycle", file_with([message("m1", "m2", "user", "q"),
                           message("m2", "m1", "assistant", "a")]), "messages.0.parent_id"),
    ("itself as parent", file_with([message("m1", "m1", "user", "q")]), "messages.0.parent_id"),
    ("duplicate id", file_with([*GOOD, message("m2", "m1", "assistant", "b")]), "messages.2.id"),
    ("wrong type", file_with([message("m1", None, "user", 5)]), "messages.0.content"),
    ("a number for a boolean", file_with(GOOD, pinned=1), "conversation.pinned"),
    ("huge max_tokens", file_with(GOOD, max_tokens=10**30), "conversation.max_tokens"),
    ("huge usage", file_with([message("m1", None, "assistant", "a", usage={
        "prompt_tokens": 10**20, "completion_tokens": 1, "total_tokens": 1})]),
     "messages.0.usage.prompt_tokens"),
    ("bad timestamp", file_with([message("m1", None, "user", "q", created_at="yesterday")]),
     "messages.0.created_at"),
    ("a time before 1970", file_with([message("m1", None, "user", "q",
                                              created_at="0001-01-01T00:30:00+01:00")]),
     "messages.0.created_at"),
    ("a time past 9999", file_with(GOOD, created_at="9999-12-31T23:59:59Z"),
     "conversation.created_at"),
    ("an object as id", file_with([message({"a": 1}, None, "user", "q")]), "messages.0.id"),
    ("a number for a timestamp", file_with([message("m1", None, "user", "q", created_at=1e300)]),
     "messages.0.created_at"),
    ("unknown current", file_with(GOOD, current="m9"), "conversation.current_message_id"),
    ("NUL in a title", file_with(GOOD, title="a\x00b"), "conversation.title"),
    ("a tool call without a name", file_with([message("m1", None, "assistant", "a", tool_calls=[
        {"id": "c", "arguments": {}, "status": "ok"}])]), "messages.0.tool_calls.0.name"),
    ("not an object in a list", [file_with(GOOD), 7], "1"),
    ("an empty list", [], "_schema"),
]


@pytest.mark.parametrize("document,field", [case[1:] for case in BAD_FILES],
                         ids=[case[0] for case in BAD_FILES])
def test_a_bad_file_is_422_naming_the_field_and_stores_nothing(
        client, auth_headers, document, field):
    before = stored_counts()
    response = post_import(client, auth_headers, [file_with(GOOD), document]
                           if isinstance(document, dict) else document)
    assert response.status_code == 422, response.get_json()
    details = response.get_json()["error"]["details"]
    wanted = field if not isinstance(document, dict) else f"1.{field}"
    assert wanted in details, details
    assert stored_counts() == before


def test_a_failure_names_the_conversation_by_index_and_title(client, auth_headers):
    response = post_import(client, auth_headers, [
        file_with(GOOD, title="fine"),
        file_with([message("m1", "nowhere", "user", "q")], title="Broken one")])
    details = response.get_json()["error"]["details"]
    assert details == {"1.messages.0.parent_id": [
        "Conversation 1 ('Broken one'): Names no message of this file."]}


@pytest.mark.parametrize("body,status", [
    (b'{"version": 1, "conversation": {}, "messages": [', 400),
    (b"[NaN]", 400),
    (b"\xff\xfe", 400),
    (b"", 422),
    (b'{"version": 1, "conversation": {"title": "\\ud800"}, "messages": []}', 422),
])
def test_bodies_that_are_no_json_text_are_refused(client, auth_headers, body, status):
    before = stored_counts()
    response = post_import(client, auth_headers, body)
    assert response.status_code == status, response.get_json()
    assert stored_counts() == before
    if status == 422 and body:
        assert "conversation.title" in response.get_json()["error"]["details"]


def test_a_file_cannot_set_the_owner_or_ids_of_existing_rows(
        client, auth_headers, other_headers, other_user):
    theirs = post_import(client, other_headers, file_with(GOOD)).get_json()["data"]
    [their_id] = theirs["conversations"]
    their_messages = [m["id"] for m in tree(client, other_headers, their_id)]
    hostile = file_with([message(their_messages[0], None, "user", "mine now", user_id=1,
                                 conversation_id=their_id)], current=their_messages[0],
                        id=their_id, user_id=other_user.id)
    hostile["conversation"]["current_message_id"] = their_messages[0]
    response = post_import(client, auth_headers, hostile)
    assert response.status_code == 201, response.get_json()
    [mine] = response.get_json()["data"]["conversations"]
    assert mine != their_id
    assert db.session.get(Conversation, mine).user_id != other_user.id
    assert [m["content"] for m in tree(client, other_headers, their_id)] == ["q", "a"]
    assert tree(client, auth_headers, mine)[0]["id"] not in their_messages


def test_an_unconfigured_model_becomes_the_default(client, auth_headers):
    response = post_import(client, auth_headers, file_with(GOOD, model="gpt-9-ultra"))
    [conversation_id] = response.get_json()["data"]["conversations"]
    assert db.session.get(Conversation, conversation_id).model == "glm-5"


def test_over_import_max_messages_is_413_and_stores_nothing(make_app, user):
    app = make_app(IMPORT_MAX_MESSAGES=2)
    headers = bearer(tokens.issue_tokens(user, app.config)["access_token"])
    client = app.test_client()
    before = stored_counts()
    response = post_import(client, headers, [file_with(GOOD), file_with(GOOD[:1])])
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert "IMPORT_MAX_MESSAGES" in response.get_json()["error"]["details"]["_schema"][0]
    assert stored_counts() == before
    assert post_import(client, headers, file_with(GOOD)).status_code == 201
    empty = file_with([])
    assert post_import(client, headers, [empty, empty]).status_code == 201
    assert post_import(client, headers, [empty, empty, empty]).status_code == 413


def padded(size):
    """Our file with one message, `size` bytes long (its text at most 1,000,000 characters,
    the rest whitespace)."""
    document = file_with([message("m1", None, "user", "")])
    empty = len(json.dumps(document).encode())
    document["messages"][0]["content"] = "x" * min(size - empty, 1_000_000)
    body = json.dumps(document).encode()
    body += b" " * (size - len(body))
    assert len(body) == size
    return body


def test_the_import_has_its_own_body_limit_and_every_other_route_keeps_1_mib(
        client, auth_headers):
    two_mib = 2 * 1024 * 1024
    response = post_import(client, auth_headers, padded(two_mib))
    assert response.status_code == 201, response.get_json()
    other = client.post("/api/conversations/", data=b" " * two_mib, headers=auth_headers,
                        content_type="application/json")
    assert other.status_code == 413


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_import_max_bytes_is_413_declared_or_chunked(make_app, user, chunked):
    app = make_app(IMPORT_MAX_BYTES=4096)
    headers = bearer(tokens.issue_tokens(user, app.config)["access_token"])
    client = app.test_client()
    before = stored_counts()
    assert post_import(client, headers, padded(4096)).status_code == 201
    body = padded(4097)
    if chunked:
        # Without Content-Length, as gunicorn hands a chunked body to the app.
        response = client.post(IMPORT, input_stream=io.BytesIO(body), headers=headers,
                               content_type="application/json", environ_overrides={
                                   "CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked",
                                   "wsgi.input_terminated": True})
    else:
        response = post_import(client, headers, body)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert stored_counts() == (before[0] + 1, before[1] + 1)


def test_imports_past_import_rate_limit_are_429_and_store_nothing(make_app, user):
    app = make_app(IMPORT_RATE_LIMIT="2 per hour")
    headers = bearer(tokens.issue_tokens(user, app.config)["access_token"])
    client = app.test_client()
    assert [post_import(client, headers, file_with(GOOD)).status_code
            for _ in range(2)] == [201, 201]
    before = stored_counts()
    refused = post_import(client, headers, file_with(GOOD))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert stored_counts() == before


class HeldBody(io.RawIOBase):
    """A request body that is not all there until `release` is set: its import holds its
    worker's one import slot meanwhile."""

    def __init__(self, body, reading, release):
        self.body, self.reading, self.release = io.BytesIO(body), reading, release

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.body.tell()

    def seek(self, offset, whence=io.SEEK_SET):
        return self.body.seek(offset, whence)

    def readinto(self, buffer):
        self.reading.set()
        self.release.wait()
        return self.body.readinto(buffer)


def test_a_second_import_while_one_runs_in_the_process_is_503_import_busy(app, client,
                                                                          auth_headers):
    body = json.dumps(file_with(GOOD, title="held")).encode()
    reading, release = threading.Event(), threading.Event()
    held = {}
    first = threading.Thread(target=lambda: held.update(response=app.test_client().post(
        IMPORT, input_stream=HeldBody(body, reading, release), headers=auth_headers,
        content_type="application/json", content_length=len(body))))
    first.start()
    try:
        assert reading.wait(60)
        before = stored_counts()
        busy = post_import(client, auth_headers, file_with(GOOD, title="second"))
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
        assert busy.get_json()["error"]["code"] == "import_busy"
        assert stored_counts() == before
    finally:
        release.set()
        first.join(60)
    assert held["response"].status_code == 201, held["response"].get_json()
    # The slot is free again.
    assert post_import(client, auth_headers, file_with(GOOD, title="third")).status_code == 201
