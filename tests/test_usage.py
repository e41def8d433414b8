"""Usage (docs/API.md §9): a row per call the provider answered, with the tokens it reported
(the GLM simulator's own figures) or an estimate when the stream was cut first; totals by day,
model and conversation for the caller (`GET /api/usage`) and for operators (`flask usage
report`)."""
import csv
import io
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from chatapi.extensions import db
from chatapi.models import UsageRecord
from chatapi.models.timestamps import utcnow

from .test_chat import chat_requests, send, stream

TOKENS = ("prompt_tokens", "completion_tokens", "total_tokens")
TOOL_ROUND = '[[tool:calculator {"expression": "6*7"}]]'


@pytest.fixture
def chat(chat_app):
    return chat_app(GLM_READ_TIMEOUT=2.0, GLM_MODELS=["glm-5", "glm-4.5-air"]).test_client()


def new_conversation(client, headers, **fields):
    response = client.post("/api/conversations/", json=fields, headers=headers)
    assert response.status_code == 201
    return response.json["data"]["id"]


def rows(user_id=None):
    db.session.expire_all()
    query = select(UsageRecord).order_by(UsageRecord.id)
    if user_id is not None:
        query = query.where(UsageRecord.user_id == user_id)
    return db.session.scalars(query).all()


def reported(glm_simulator):
    """The usage the simulator reported, one per chat call, in order."""
    return [request.get("usage") for request in chat_requests(glm_simulator)]


def totals(usages):
    return {key: sum(usage[key] for usage in usages) for key in TOKENS}


def usage_report(client, headers, **query):
    response = client.get("/api/usage/", query_string=query, headers=headers)
    assert response.status_code == 200, response.json
    return response.json["data"]


def test_every_provider_call_is_a_row_with_the_tokens_the_provider_reported(
        chat, auth_headers, user, glm_simulator):
    first = new_conversation(chat, auth_headers)
    second = new_conversation(chat, auth_headers, model="glm-4.5-air")
    assert send(chat, auth_headers, first, "hello").status_code == 201
    events = stream(chat, auth_headers, first, TOOL_ROUND)  # two calls: the tool's, the answer
    assert events[-1][0] == "done"
    answer_id = events[-1][1]["assistant_message"]["id"]
    assert chat.post(f"/api/messages/{answer_id}/regenerate",
                     headers=auth_headers).status_code == 201
    assert send(chat, auth_headers, second, "hi").status_code == 201

    usages = reported(glm_simulator)
    # The regeneration answers the tool question again: two calls too.
    assert len(usages) == 6 and None not in usages
    stored = rows(user.id)
    assert [{key: getattr(row, key) for key in TOKENS} for row in stored] == usages
    assert [row.model for row in stored] == ["glm-5"] * 5 + ["glm-4.5-air"]
    assert [row.conversation_id for row in stored] == [first] * 5 + [second]
    assert not any(row.estimated for row in stored)
    assert stored[1].message_id == stored[2].message_id == answer_id  # one answer, two calls
    assert {row.day for row in stored} == {utcnow().date()}

    by_model = usage_report(chat, auth_headers, group_by="model")
    assert by_model["groups"] == [
        {"key": "glm-4.5-air", **totals(usages[5:]), "messages": 1},
        {"key": "glm-5", **totals(usages[:5]), "messages": 3}]
    assert by_model["total"] == {**totals(usages), "messages": 4}
    by_conversation = usage_report(chat, auth_headers, group_by="conversation")
    assert {group["key"]: group["total_tokens"] for group in by_conversation["groups"]} == {
        first: totals(usages[:5])["total_tokens"], second: usages[5]["total_tokens"]}
    by_day = usage_report(chat, auth_headers)
    today = utcnow().date()
    assert by_day["group_by"] == "day"
    assert (by_day["from"], by_day["to"]) == (str(today - timedelta(days=29)), str(today))
    assert by_day["groups"] == [{"key": str(today), **totals(usages), "messages": 4}]


def test_a_stream_cut_before_its_usage_is_estimated_and_marked(chat, auth_headers, user,
                                                               glm_simulator):
    conversation_id = new_conversation(chat, auth_headers)
    response = send(chat, auth_headers, conversation_id, "[[chunks:6]][[drop:3]]")
    assert response.status_code == 502
    assert reported(glm_simulator) == [None]
    [row] = rows(user.id)
    assert row.estimated is True
    assert row.completion_tokens >= 1 and row.prompt_tokens >= 1
    assert row.total_tokens == row.prompt_tokens + row.completion_tokens
    assert row.message_id == response.json["data"]["assistant_message"]["id"]


def test_a_call_the_provider_refused_costs_nothing(chat, auth_headers, user, glm_simulator):
    conversation_id = new_conversation(chat, auth_headers)
    assert send(chat, auth_headers, conversation_id, "[[http:500]]").status_code == 502
    assert len(chat_requests(glm_simulator)) == 1
    assert rows(user.id) == []


def test_a_stopped_answer_counts_what_it_cost(chat_app, auth_headers, user):
    app = chat_app(GLM_READ_TIMEOUT=30.0)
    client = app.test_client()
    conversation_id = new_conversation(client, auth_headers)
    started = client.post("/api/messages/stream", headers=auth_headers, buffered=False,
                          json={"conversation_id": conversation_id,
                                "content": "[[chunks:4]][[stall_after:2]][[stall:600]]"})
    body = started.response
    seen = b""
    for piece in body:
        seen += piece
        if seen.count(b"event: text") >= 2:
            break
    answer_id = seen.split(b'"assistant_message_id":"')[1].split(b'"')[0].decode()
    stopped = client.post(f"/api/messages/{answer_id}/stop", headers=auth_headers)
    assert stopped.status_code == 200
    assert stopped.json["data"]["message"]["finish_reason"] == "stopped"
    started.close()
    [row] = rows(user.id)
    assert row.estimated and row.message_id == answer_id and row.completion_tokens >= 1


def test_usage_is_the_callers_only(chat, client, auth_headers, other_headers, user,
                                   other_user):
    mine = new_conversation(chat, auth_headers)
    theirs = new_conversation(chat, other_headers)
    assert send(chat, auth_headers, mine, "hello").status_code == 201
    assert send(chat, other_headers, theirs, "hello there, a longer one").status_code == 201
    [my_row] = rows(user.id)
    assert len(rows(other_user.id)) == 1
    mine_report = usage_report(client, auth_headers, group_by="conversation")
    assert [group["key"] for group in mine_report["groups"]] == [mine]
    assert mine_report["total"]["total_tokens"] == my_row.total_tokens


def test_the_range_is_inclusive_and_defaults_to_the_last_30_days(client, auth_headers, user):
    today = utcnow().date()
    for days_ago, tokens in ((0, 1), (29, 10), (30, 100), (400, 1000)):
        day = today - timedelta(days=days_ago)
        db.session.add(UsageRecord(user_id=user.id, conversation_id=None, message_id=None,
                                   model="glm-5", prompt_tokens=tokens, completion_tokens=0,
                                   total_tokens=tokens, estimated=False, day=day,
                                   created_at=utcnow() - timedelta(days=days_ago)))
    db.session.commit()
    assert usage_report(client, auth_headers)["total"]["total_tokens"] == 11
    first = str(today - timedelta(days=30))
    assert usage_report(client, auth_headers, **{"from": first, "to": first})["groups"] == [
        {"key": first, "prompt_tokens": 100, "completion_tokens": 0, "total_tokens": 100,
         "messages": 0}]
    everything = usage_report(client, auth_headers, **{"from": "2000-01-01"})
    assert everything["total"]["total_tokens"] == 1111
    assert everything["from"] == "2000-01-01" and everything["to"] == str(today)


@pytest.mark.parametrize("query, field", [
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-02-30"}, "to"),
    ({"from": "2026-13-01"}, "from"),
    ({"from": "2026-05-02", "to": "2026-05-01"}, "from"),
    ({"from": "3000-01-01"}, "from"),  # after today, the default `to`
    ({"group_by": "user"}, "group_by"),
    ({"group_by": ""}, "group_by"),
    ({"to": "20260101"}, "to"),
    ({"from": "2026-W01"}, "from"),
])
def test_a_bad_query_is_422_naming_the_field(client, auth_headers, query, field):
    response = client.get("/api/usage/", query_string=query, headers=auth_headers)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["details"]


def test_usage_needs_a_token(client):
    assert client.get("/api/usage/").status_code == 401


def seed_rows(user, other_user):
    today = utcnow().date()
    spent = ((user, "glm-5", 30, "msg_a"), (user, "glm-4.5", 5, "msg_b"),
             (other_user, "glm-5", 700, "msg_c"))
    for owner, model, tokens, answer in spent:
        db.session.add(UsageRecord(user_id=owner.id, conversation_id="conv_x",
                                   message_id=answer, model=model, prompt_tokens=tokens,
                                   completion_tokens=1, total_tokens=tokens + 1,
                                   estimated=False, day=today, created_at=utcnow()))
    db.session.commit()
    return today


def test_the_operators_report_totals_every_user_as_a_table_and_as_csv(runner, user, other_user):
    seed_rows(user, other_user)
    table = runner.invoke(args=["usage", "report"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[1].split() == ["user", "prompt_tokens", "completion_tokens", "total_tokens",
                                "messages"]
    assert lines[2].split() == ["alice", "35", "2", "37", "2"]
    assert lines[3].split() == ["bob", "700", "1", "701", "1"]
    assert lines[4].split() == ["total", "735", "3", "738", "3"]

    table_csv = runner.invoke(args=["usage", "report", "--format", "csv", "--group-by", "model",
                                    "--user", "alice"])
    assert table_csv.exit_code == 0, table_csv.output
    assert list(csv.reader(io.StringIO(table_csv.output))) == [
        ["model", "prompt_tokens", "completion_tokens", "total_tokens", "messages"],
        ["glm-4.5", "5", "1", "6", "1"], ["glm-5", "30", "1", "31", "1"]]


@pytest.mark.parametrize("args, says", [
    (["--from", "someday"], "--from"),
    (["--from", "2026-05-02", "--to", "2026-05-01"], "--from"),
    (["--user", "nobody"], "no user named 'nobody'"),
    (["--group-by", "week"], "--group-by"),
    (["--format", "xml"], "--format"),
])
def test_the_operators_report_refuses_bad_options(runner, args, says):
    result = runner.invoke(args=["usage", "report", *args])
    assert result.exit_code != 0
    assert says in result.output


def test_the_report_of_a_day_without_usage_is_empty(runner, user):
    result = runner.invoke(args=["usage", "report", "--from", str(date(2001, 1, 1)),
                                 "--to", "2001-01-02", "--format", "csv"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "user,prompt_tokens,completion_tokens,total_tokens,messages"]


def test_the_first_days_of_year_one_have_a_shorter_default_range(client, auth_headers, runner):
    report = usage_report(client, auth_headers, to="0001-01-10")
    assert (report["from"], report["to"]) == ("0001-01-01", "0001-01-10")
    result = runner.invoke(args=["usage", "report", "--to", "0001-01-01"])
    assert result.exit_code == 0, result.output
    assert "usage from 0001-01-01 to 0001-01-01" in result.output


def test_csv_cells_a_spreadsheet_would_take_for_formulas_are_quoted(runner, make_user):
    account = make_user("-A1")
    db.session.add(UsageRecord(user_id=account.id, conversation_id=None, message_id="msg_x",
                               model="glm-5", prompt_tokens=1, completion_tokens=1,
                               total_tokens=2, estimated=False, day=utcnow().date(),
                               created_at=utcnow()))
    db.session.commit()
    result = runner.invoke(args=["usage", "report", "--format", "csv"])
    assert result.exit_code == 0
    assert list(csv.reader(io.StringIO(result.output)))[1] == ["'-A1", "1", "1", "2", "1"]
