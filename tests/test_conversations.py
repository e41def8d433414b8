import re

import pytest
from sqlalchemy import func, select

from chatapi.extensions import db
from chatapi.models import Conversation

URL = "/api/conversations/"


@pytest.fixture
def create(client, auth_headers):
    def create(headers=auth_headers, **fields):
        response = client.post(URL, json=fields, headers=headers)
        assert response.status_code == 201, response.json
        return response.json["data"]
    return create


def test_create_with_no_fields_takes_the_seed_defaults(client, user, auth_headers):
    response = client.post(URL, json={}, headers=auth_headers)
    assert response.status_code == 201
    assert response.json["message"] == "会话创建成功"
    data = response.json["data"]
    assert re.fullmatch(r"conv_[A-Za-z0-9_-]{16,}", data["id"])
    assert data == {
        "id": data["id"], "user_id": user.id, "project_id": None, "title": "新会话",
        "model": "glm-5", "system_prompt": None, "temperature": 1.0, "max_tokens": 65536,
        "thinking_enabled": False, "pinned": False, "archived": False, "message_count": 0,
        "current_message_id": None,
        "created_at": data["created_at"], "updated_at": data["updated_at"]}
    assert data["created_at"].endswith("Z")


def test_create_without_a_body_takes_the_defaults(client, auth_headers):
    assert client.post(URL, headers=auth_headers).status_code == 201


def test_default_model_is_the_first_configured(make_app, user):
    app = make_app(GLM_MODELS=["glm-4.6", "glm-5"])
    from chatapi.services import tokens
    with app.app_context():
        headers = {"Authorization": "Bearer " + tokens.issue_tokens(user, app.config)[
            "access_token"]}
    response = app.test_client().post(URL, json={}, headers=headers)
    assert response.json["data"]["model"] == "glm-4.6"


def test_create_with_every_field(create):
    fields = {"project_id": "p-1", "title": "Trip", "model": "glm-4.5-air",
              "system_prompt": "Be brief.", "temperature": 0.3, "max_tokens": 1024,
              "thinking_enabled": True}
    data = create(**fields)
    assert {key: data[key] for key in fields} == fields


@pytest.mark.parametrize("field,value", [
    ("temperature", -0.1), ("temperature", 1.1), ("temperature", "hot"),
    ("temperature", None), ("temperature", True),
    ("max_tokens", 0), ("max_tokens", 131073), ("max_tokens", 1.5), ("max_tokens", "100"),
    ("title", ""), ("title", "x" * 201), ("title", None), ("title", 5),
    ("system_prompt", "x" * 20001),
    ("project_id", "x" * 65),
    ("model", "gpt-4"), ("model", None),
    ("thinking_enabled", "maybe"),
])
def test_each_bound_is_422_naming_the_field(client, auth_headers, field, value):
    response = client.post(URL, json={field: value}, headers=auth_headers)
    assert response.status_code == 422
    assert list(response.json["error"]["details"]) == [field]


@pytest.mark.parametrize("field,value", [
    ("temperature", 0.0), ("temperature", 1.0), ("temperature", 0),
    ("max_tokens", 1), ("max_tokens", 131072),
    ("title", "x"), ("title", "题" * 200),
    ("system_prompt", "x" * 20000), ("system_prompt", None),
    ("project_id", "x" * 64), ("project_id", None),
])
def test_values_on_the_bounds_are_accepted(create, field, value):
    assert create(**{field: value})[field] == value


def test_unknown_model_lists_the_allowed_ones(client, auth_headers):
    response = client.post(URL, json={"model": "glm-3"}, headers=auth_headers)
    message = response.json["error"]["details"]["model"][0]
    for model in ("glm-5", "glm-4.6", "glm-4.5", "glm-4.5-air"):
        assert model in message


def test_read_only_fields_are_ignored_on_create_and_update(client, user, other_user,
                                                           auth_headers, create):
    sneaky = {"id": "conv_chosen_by_client", "user_id": other_user.id, "message_count": 42,
              "created_at": "2000-01-01T00:00:00Z", "updated_at": "2000-01-01T00:00:00Z"}
    data = create(title="mine", **sneaky)
    assert data["id"] != sneaky["id"] and data["user_id"] == user.id
    assert data["message_count"] == 0 and not data["created_at"].startswith("2000")
    updated = client.put(URL + data["id"], json={"title": "still mine", **sneaky},
                         headers=auth_headers).json["data"]
    assert updated["id"] == data["id"] and updated["user_id"] == user.id
    assert updated["message_count"] == 0 and updated["created_at"] == data["created_at"]
    assert updated["title"] == "still mine"


def test_get_returns_the_conversation(client, auth_headers, create):
    data = create(title="Hello")
    response = client.get(URL + data["id"], headers=auth_headers)
    assert response.status_code == 200
    assert response.json == {"success": True, "data": data}


def test_update_is_partial(client, auth_headers, create):
    data = create(title="Before", temperature=0.5, system_prompt="Be brief.")
    response = client.put(URL + data["id"], json={"temperature": 0.2}, headers=auth_headers)
    assert response.status_code == 200
    assert response.json["message"] == "会话更新成功"
    updated = response.json["data"]
    assert updated["temperature"] == 0.2
    assert updated["title"] == "Before" and updated["system_prompt"] == "Be brief."
    assert updated["updated_at"] > data["updated_at"]


def test_update_validates_like_create(client, auth_headers, create):
    data = create()
    response = client.put(URL + data["id"], json={"max_tokens": 0, "title": ""},
                          headers=auth_headers)
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"max_tokens", "title"}
    assert client.get(URL + data["id"], headers=auth_headers).json["data"] == data


def test_update_can_clear_optional_fields(client, auth_headers, create):
    data = create(project_id="p", system_prompt="x")
    updated = client.put(URL + data["id"], json={"project_id": None, "system_prompt": None},
                         headers=auth_headers).json["data"]
    assert updated["project_id"] is None and updated["system_prompt"] is None


def test_delete_removes_the_conversation(client, auth_headers, create):
    data = create()
    response = client.delete(URL + data["id"], headers=auth_headers)
    assert response.status_code == 200
    assert response.json == {"success": True, "message": "会话删除成功"}
    assert client.get(URL + data["id"], headers=auth_headers).status_code == 404
    assert db.session.get(Conversation, data["id"]) is None


def test_deleting_a_user_deletes_their_conversations(runner, create):
    create()
    create()
    assert runner.invoke(args=["users", "delete", "alice", "--yes"]).exit_code == 0
    assert db.session.scalar(select(func.count()).select_from(Conversation)) == 0


def test_another_users_malformed_and_missing_ids_are_the_same_404(
        client, auth_headers, other_headers, create):
    theirs = create(headers=other_headers)["id"]
    bodies = []
    for conversation_id in (theirs, "not-an-id", "conv_doesnotexist0000000", "x" * 300):
        for method, kwargs in (("get", {}), ("put", {"json": {"title": "stolen"}}),
                               ("delete", {})):
            response = getattr(client, method)(URL + conversation_id, headers=auth_headers,
                                               **kwargs)
            assert response.status_code == 404, (method, conversation_id)
            bodies.append(response.json)
    assert all(body == bodies[0] for body in bodies)
    assert client.get(URL + theirs, headers=other_headers).json["data"]["title"] == "新会话"


def test_list_shows_only_the_callers_conversations(client, auth_headers, other_headers,
                                                   create):
    mine = create(title="mine")
    create(headers=other_headers, title="theirs")
    data = client.get(URL, headers=auth_headers).json["data"]
    assert data["total"] == 1 and [item["id"] for item in data["items"]] == [mine["id"]]


def test_pagination_over_25_conversations(client, auth_headers, create):
    created = [create(title=f"c{i}")["id"] for i in range(25)]
    pages = [client.get(URL, query_string={"page": page, "page_size": 10},
                        headers=auth_headers).json["data"] for page in (1, 2, 3, 4)]
    assert [len(page["items"]) for page in pages] == [10, 10, 5, 0]
    assert all(page["total"] == 25 and page["page_size"] == 10 for page in pages)
    assert [page["page"] for page in pages] == [1, 2, 3, 4]
    seen = [item["id"] for page in pages for item in page["items"]]
    assert len(seen) == len(set(seen)) == 25
    assert seen == list(reversed(created))


def test_list_defaults_to_page_1_of_20(client, auth_headers, create):
    for _ in range(21):
        create()
    data = client.get(URL, headers=auth_headers).json["data"]
    assert (data["page"], data["page_size"], len(data["items"]), data["total"]) == (1, 20, 20, 21)


def test_list_without_trailing_slash_answers_directly(client, auth_headers, create):
    create()
    response = client.get("/api/conversations", headers=auth_headers)
    assert response.status_code == 200 and response.json["data"]["total"] == 1
    assert client.post("/api/conversations", json={}, headers=auth_headers).status_code == 201


@pytest.mark.parametrize("query,field", [
    ({"page": 0}, "page"), ({"page": "x"}, "page"), ({"page": -1}, "page"),
    ({"page_size": 0}, "page_size"), ({"page_size": 101}, "page_size"),
    ({"page_size": "ten"}, "page_size"), ({"project_id": "x" * 65}, "project_id"),
])
def test_bad_paging_is_422(client, auth_headers, query, field):
    response = client.get(URL, query_string=query, headers=auth_headers)
    assert response.status_code == 422
    assert list(response.json["error"]["details"]) == [field]


def test_project_filter(client, auth_headers, create):
    a = create(project_id="alpha")["id"]
    create(project_id="beta")
    create()
    data = client.get(URL, query_string={"project_id": "alpha"}, headers=auth_headers).json
    assert data["data"]["total"] == 1 and data["data"]["items"][0]["id"] == a


def test_q_filters_titles_case_insensitively_in_any_script(client, auth_headers, create):
    create(title="Trip to Paris")
    create(title="PARIS budget")
    create(title="Ärger über Straßen")
    create(title="Москва")
    create(title="100% done_ok")
    create(title="1000 doneXok")
    create(title="京都旅行の計画")
    create(title="北京旅行计划")

    def titles(q):
        data = client.get(URL, query_string={"q": q}, headers=auth_headers).json["data"]
        assert data["total"] == len(data["items"])
        return sorted(item["title"] for item in data["items"])

    assert titles("paris") == ["PARIS budget", "Trip to Paris"]
    assert titles("ÜBER") == ["Ärger über Straßen"]
    assert titles("москва") == ["Москва"]
    assert titles("0% d") == ["100% done_ok"]
    # Text with no case (digits, CJK): found as it is, on either database.
    assert titles("100") == ["100% done_ok", "1000 doneXok"]
    assert titles("京都") == ["京都旅行の計画"]
    assert titles("done_") == ["100% done_ok"]
    # A text no character of which folds (SQLite's instr() path): a 500 on PostgreSQL once.
    assert titles("旅行") == sorted(["北京旅行计划", "京都旅行の計画"])
    assert titles("nothing") == []


def test_q_and_project_filter_together_and_total_counts_the_filtered_set(
        client, auth_headers, create):
    for i in range(3):
        create(project_id="p", title=f"report {i}")
    create(project_id="q", title="report x")
    create(project_id="p", title="other")
    data = client.get(URL, query_string={"project_id": "p", "q": "REPORT", "page_size": 2},
                      headers=auth_headers).json["data"]
    assert data["total"] == 3 and len(data["items"]) == 2


def test_an_update_moves_a_conversation_to_the_top(client, auth_headers, create):
    first, second, third = (create(title=str(i))["id"] for i in range(3))
    order = [item["id"] for item in client.get(URL, headers=auth_headers).json["data"]["items"]]
    assert order == [third, second, first]
    client.put(URL + first, json={"title": "touched"}, headers=auth_headers)
    order = [item["id"] for item in client.get(URL, headers=auth_headers).json["data"]["items"]]
    assert order == [first, third, second]


def test_equal_timestamps_keep_a_stable_order(client, user, auth_headers, create):
    ids = [create()["id"] for _ in range(6)]
    same = db.session.get(Conversation, ids[0]).updated_at
    for conversation in db.session.scalars(select(Conversation)):
        conversation.updated_at = same
    db.session.commit()
    pages = [[item["id"] for item in client.get(
        URL, query_string={"page": page, "page_size": 2}, headers=auth_headers
    ).json["data"]["items"]] for page in (1, 2, 3)]
    flat = [conversation_id for page in pages for conversation_id in page]
    assert flat == sorted(ids, reverse=True)


def test_ids_are_unique_over_1000_creates(client, auth_headers):
    ids = {client.post(URL, json={}, headers=auth_headers).json["data"]["id"]
           for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"conv_[A-Za-z0-9_-]{16,}", conversation_id) for conversation_id in ids)


def test_list_requires_a_token(client):
    assert client.get(URL).status_code == 401
