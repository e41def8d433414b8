"""A ChatGPT data export's conversations.json imported (docs/API.md §3, "What a ChatGPT export
becomes"), from tests/fixtures/chatgpt/conversations.json: three conversations as ChatGPT
writes them, with the hidden root and system nodes, the user's custom instructions, an
edited question and a regenerated answer, an image, thinking, code run by the python tool
(once failing) and a browser search."""
import copy
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chatapi.extensions import db
from chatapi.models import Conversation, Message

FIXTURE = Path(__file__).parent / "fixtures" / "chatgpt" / "conversations.json"
IMPORT = "/api/conversations/import"


def chatgpt_export():
    return json.loads(FIXTURE.read_text())


def post(client, headers, document):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return client.post(IMPORT, data=body, headers=headers, content_type="application/json")


def messages(client, headers, conversation_id, view="tree"):
    response = client.get(f"/api/messages/{conversation_id}?view={view}", headers=headers)
    return response.get_json()["data"]["items"]


@pytest.fixture
def imported(client, auth_headers):
    response = post(client, auth_headers, FIXTURE.read_bytes())
    assert response.status_code == 201, response.get_json()
    ids = response.get_json()["data"]["conversations"]
    assert len(ids) == 3
    return ids


def conversation(client, headers, conversation_id):
    return client.get(f"/api/conversations/{conversation_id}",
                      headers=headers).get_json()["data"]


def test_branches_become_siblings_and_the_current_node_the_active_branch(
        client, auth_headers, imported):
    trip = conversation(client, auth_headers, imported[0])
    assert trip["title"] == "Trip to Kyoto" and trip["model"] == "glm-5"
    assert trip["created_at"] == "2024-12-06T08:00:00.123Z"
    assert trip["updated_at"] == "2024-12-06T08:02:15.123Z"
    assert trip["system_prompt"] == (
        "The user provided the following information about themselves: I live in Osaka and "
        "travel on a budget.\n\nThe user provided the additional info about how they would "
        "like you to respond: Keep answers short.")
    every = messages(client, auth_headers, imported[0])
    assert [(m["role"], m["content"][:20]) for m in every] == [
        ("user", "Plan a 3-day trip to"), ("assistant", "Day 1: Fushimi Inari"),
        ("user", "Make it cheaper."), ("assistant", "Use the ¥700 city bu"),
        ("assistant", "Walk between temples"), ("user", "Make it cheaper, and"),
        ("assistant", "Day 4: Nara Park (fr")]
    first_answer, cheaper, edited = every[1], every[2], every[5]
    assert every[0]["parent_id"] is None  # the root and system nodes are bridged
    assert cheaper["sibling_ids"] == [cheaper["id"], edited["id"]]
    assert cheaper["parent_id"] == edited["parent_id"] == first_answer["id"]
    assert every[3]["sibling_ids"] == [every[3]["id"], every[4]["id"]]
    assert every[4]["model"] == "gpt-4o-mini" and every[3]["finish_reason"] == "stop"
    assert every[0]["created_at"] == "2024-12-06T08:00:01.123Z"
    active = messages(client, auth_headers, imported[0], view="branch")
    assert [m["id"] for m in active] == [every[0]["id"], first_answer["id"], edited["id"],
                                         every[6]["id"]]
    assert trip["current_message_id"] == every[6]["id"] and trip["message_count"] == 7


def test_an_answer_with_thinking_and_tools_becomes_one_assistant_message(
        client, auth_headers, imported):
    question, answer, weather, search = messages(client, auth_headers, imported[1])
    assert question["content"] == (
        "[image]\n\nWhat numbers are in this chart? Compute their mean.")
    assert answer["role"] == "assistant" and answer["parent_id"] == question["id"]
    assert answer["reasoning_content"] == "Reading the chart\n\nThe bars read 3, 5 and 10."
    assert answer["content"] == "The chart shows 3, 5 and 10; their mean is **6.0**."
    assert answer["tool_calls"] == [{
        "id": "call_1", "name": "python",
        "arguments": {"code": "import numpy as np\nprint(np.mean([3, 5, 10]))"},
        "result": "6.0", "status": "ok", "duration_ms": None}]
    assert answer["model"] == "o3" and answer["status"] == "completed"
    assert weather["parent_id"] == answer["id"]
    assert search["tool_calls"][0]["name"] == "browser"
    assert search["tool_calls"][0]["arguments"] == {"input": 'search("Kyoto weather this week")'}
    assert search["tool_calls"][0]["result"].startswith("# 【0†Kyoto 7-day forecast")
    assert search["content"] == "Mostly 7–9°C, with rain on Tuesday【0†source】."
    assert search["status"] == "incomplete" and search["finish_reason"] == "length"


def test_a_failed_tool_run_is_an_error_call_and_archived_stays_archived(
        client, auth_headers, imported):
    study = conversation(client, auth_headers, imported[2])
    assert study["title"] == "学习计划：Python 数据分析" and study["archived"] is True
    question, answer = messages(client, auth_headers, imported[2])
    assert answer["tool_calls"][0]["status"] == "error"
    assert "FileNotFoundError" in answer["tool_calls"][0]["result"]
    assert answer["content"] == "没有找到 data.csv，请先上传文件。"
    listed = client.get("/api/conversations/?archived=true", headers=auth_headers)
    assert [item["id"] for item in listed.get_json()["data"]["items"]] == [imported[2]]


def test_the_export_of_an_imported_chatgpt_conversation_imports_again_the_same(
        client, auth_headers, imported):
    first = client.get(f"/api/conversations/{imported[1]}/export", headers=auth_headers)
    again = post(client, auth_headers, first.get_data())
    assert again.status_code == 201
    [copy_id] = again.get_json()["data"]["conversations"]
    second = client.get(f"/api/conversations/{copy_id}/export", headers=auth_headers)
    strip = [{key: value for key, value in message.items() if key not in ("id", "parent_id")}
             for message in first.get_json()["messages"]]
    assert strip == [{key: value for key, value in message.items()
                      if key not in ("id", "parent_id")}
                     for message in second.get_json()["messages"]]


def mapping_of(document, index=0):
    return document[index]["mapping"]


TRIP_ANSWER = "b9c8d7e6-2222-4f5e-8d7c-000000000004"
TRIP_QUESTION = "aaa21b3c-1111-4a2b-9c3d-000000000003"


def breaking(change):
    document = chatgpt_export()
    change(document)
    return document


def set_in(path, value):
    def change(document):
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


BAD_EXPORTS = [
    ("a dangling parent", set_in([0, "mapping", TRIP_ANSWER, "parent"], "gone"),
     f"0.mapping.{TRIP_ANSWER}.parent"),
    ("a cycle", set_in([0, "mapping", "client-created-root", "parent"], TRIP_ANSWER), None),
    ("a node its own parent", set_in([0, "mapping", TRIP_ANSWER, "parent"], TRIP_ANSWER),
     f"0.mapping.{TRIP_ANSWER}.parent"),
    ("an unknown role", set_in([0, "mapping", TRIP_ANSWER, "message", "author", "role"],
                               "critic"), f"0.mapping.{TRIP_ANSWER}.message.author.role"),
    ("parts not a list", set_in([0, "mapping", TRIP_ANSWER, "message", "content", "parts"],
                                "text"), f"0.mapping.{TRIP_ANSWER}.message.content.parts"),
    ("a time as text", set_in([1, "mapping", "11111111-0000-4000-8000-000000000002",
                               "message", "create_time"], "yesterday"),
     "1.mapping.11111111-0000-4000-8000-000000000002.message.create_time"),
    ("a huge time", set_in([0, "mapping", TRIP_QUESTION, "message", "create_time"], 1e300),
     f"0.mapping.{TRIP_QUESTION}.message.create_time"),
    ("a boolean time", set_in([0, "create_time"], True), "0.create_time"),
    ("an unknown current node", set_in([2, "current_node"], "nowhere"), "2.current_node"),
    ("a node id not its key", set_in([0, "mapping", TRIP_ANSWER, "id"], "other"),
     f"0.mapping.{TRIP_ANSWER}.id"),
    ("mapping not an object", set_in([1, "mapping"], []), "1.mapping"),
    ("a node not an object", set_in([1, "mapping", "client-created-root"], "root"),
     "1.mapping.client-created-root"),
    ("a title not text", set_in([2, "title"], {"zh": "x"}), "2.title"),
]


@pytest.mark.parametrize("change,field", [case[1:] for case in BAD_EXPORTS],
                         ids=[case[0] for case in BAD_EXPORTS])
def test_a_bad_chatgpt_export_is_422_naming_the_place_and_stores_nothing(
        client, auth_headers, change, field):
    before = [db.session.scalar(select(func.count()).select_from(model))
              for model in (Conversation, Message)]
    response = post(client, auth_headers, breaking(change))
    assert response.status_code == 422, response.get_json()
    details = response.get_json()["error"]["details"]
    if field is None:
        assert len(details) == 1
        [(place, [said])] = details.items()
        assert place.startswith("0.mapping.") and place.endswith(".parent")
        assert said == "Conversation 0 ('Trip to Kyoto'): The parents make a cycle."
    else:
        assert field in details, details
        assert details[field][0].startswith(f"Conversation {field.split('.')[0]}")
    assert [db.session.scalar(select(func.count()).select_from(model))
            for model in (Conversation, Message)] == before


def test_metadata_of_unexpected_shapes_is_passed_over(client, auth_headers):
    """ChatGPT's metadata is not checked: what is read from it must be of the right shape or
    is ignored."""
    document = chatgpt_export()
    answer = document[0]["mapping"][TRIP_ANSWER]["message"]
    answer["metadata"] = {"finish_details": "stop", "model_slug": {"name": "gpt-4o"}}
    tool = document[2]["mapping"]["22222222-0000-4000-8000-000000000003"]["message"]
    tool["metadata"] = {"aggregate_result": ["failed"]}
    document[0]["default_model_slug"] = "x" * 500
    document[0]["is_archived"] = None
    response = post(client, auth_headers, document)
    assert response.status_code == 201, response.get_json()
    trip, _chart, study = response.get_json()["data"]["conversations"]
    first_answer = messages(client, auth_headers, trip)[1]
    assert first_answer["model"] == "x" * 64 and first_answer["finish_reason"] is None
    assert messages(client, auth_headers, study)[1]["tool_calls"][0]["status"] == "ok"


def test_a_lone_surrogate_in_a_part_is_422_naming_it(client, auth_headers):
    text = FIXTURE.read_text().replace('"Make it cheaper."', '"Make it \\udc00cheaper."')
    response = post(client, auth_headers, text.encode())
    assert response.status_code == 422
    assert list(response.get_json()["error"]["details"]) == [
        "0.mapping.aaa21b3c-1111-4a2b-9c3d-000000000005.message.content.parts.0"]


def test_one_chatgpt_conversation_alone_and_an_empty_one_are_imported(client, auth_headers):
    document = chatgpt_export()
    empty = copy.deepcopy(document[2])
    empty["mapping"], empty["current_node"], empty["title"] = {}, None, None
    for body in (document[0], [empty]):
        response = post(client, auth_headers, body)
        assert response.status_code == 201, response.get_json()
    [empty_id] = response.get_json()["data"]["conversations"]
    made = db.session.get(Conversation, empty_id)
    assert made.title == "新会话" and made.message_count == 0 and made.current_message_id is None
