"""Token quotas (docs/API.md §9): TOKEN_QUOTA and each account's own, in UTC days, weeks and
months; over it, a send or a regeneration is 429 `quota_exceeded` with Retry-After before
anything is stored or the model is asked; /api/auth/me tells where the user stands. Counters
live in the database, their period totals in Redis too when the suite has one."""
import math
import os
from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import func, select

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import Message, TokenCounter, UsageRecord
from chatapi.models.timestamps import utcnow

from .conftest import app_config
from .test_chat import chat_requests, send

STORES = ["database", pytest.param("redis", marks=pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="the suite has no Redis (REDIS_URL)"))]


@pytest.fixture(params=STORES)
def quota_app(request, chat_app):
    """An app on the GLM simulator; TOKEN_QUOTA as the test asks (`make(quota)`)."""
    redis_url = os.environ.get("REDIS_URL") if request.param == "redis" else None

    def make(quota="1000 per day", **settings):
        return chat_app(TOKEN_QUOTA=quota, REDIS_URL=redis_url, MESSAGE_RATE_LIMIT=None,
                        **settings)
    return make


def spend(user, tokens, day=None):
    db.session.add(TokenCounter(user_id=user.id, day=day or utcnow().date(), used=tokens))
    db.session.commit()


def new_conversation(client, headers):
    return client.post("/api/conversations/", json={}, headers=headers).json["data"]["id"]


def message_count():
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Message))


def seconds_to_midnight():
    now = datetime.now(timezone.utc)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(), timezone.utc)
    return (midnight - now).total_seconds()


def me(client, headers):
    response = client.get("/api/auth/me", headers=headers)
    assert response.status_code == 200
    return response.json["data"]["quota"]


def test_me_tells_the_quota_and_a_send_spends_it(quota_app, auth_headers, user, glm_simulator):
    client = quota_app("1000 per day").test_client()
    tomorrow = utcnow().date() + timedelta(days=1)
    assert me(client, auth_headers) == {"limit": 1000, "period": "day", "used": 0,
                                        "remaining": 1000,
                                        "resets_at": f"{tomorrow}T00:00:00.000Z"}
    assert send(client, auth_headers, new_conversation(client, auth_headers),
                "hello").status_code == 201
    spent = chat_requests(glm_simulator)[0]["usage"]["total_tokens"]
    assert me(client, auth_headers)["used"] == spent
    assert me(client, auth_headers)["remaining"] == 1000 - spent


def test_one_token_left_still_sends_none_left_is_429_storing_nothing(
        quota_app, auth_headers, user, glm_simulator):
    client = quota_app("1000 per day").test_client()
    conversation_id = new_conversation(client, auth_headers)
    spend(user, 999)
    assert send(client, auth_headers, conversation_id, "hello").status_code == 201
    answer_id = db.session.scalar(select(Message.id).where(Message.role == "assistant"))
    assert me(client, auth_headers)["remaining"] == 0
    before, asked = message_count(), len(chat_requests(glm_simulator))

    refusals = [
        send(client, auth_headers, conversation_id, "again"),
        client.post("/api/messages/stream", headers=auth_headers,
                    json={"conversation_id": conversation_id, "content": "again"}),
        client.post(f"/api/messages/{answer_id}/regenerate", headers=auth_headers),
        client.post(f"/api/messages/{answer_id}/regenerate/stream", headers=auth_headers),
    ]
    for response in refusals:
        assert response.status_code == 429, response.get_data(as_text=True)
        assert response.json["error"]["code"] == "quota_exceeded"
        assert response.json["success"] is False
        wait = int(response.headers["Retry-After"])
        assert abs(wait - seconds_to_midnight()) <= 5, wait
        details = response.json["error"]["details"]
        assert details["limit"] == 1000 and details["period"] == "day"
        assert details["used"] >= 1000
    assert message_count() == before
    assert len(chat_requests(glm_simulator)) == asked


def test_a_direct_tool_run_spends_no_tokens_and_is_not_refused(quota_app, auth_headers, user):
    client = quota_app("10 per day").test_client()
    spend(user, 10)
    response = client.post("/api/tools/calculator/execute", headers=auth_headers,
                           json={"expression": "2+2"})
    assert response.status_code == 200, response.json


@pytest.mark.parametrize("quota, counted_from", [
    ("100 per day", lambda today: today),
    ("100 per week", lambda today: today - timedelta(days=today.weekday())),
    ("100 per month", lambda today: today.replace(day=1)),
])
def test_a_period_counts_from_its_first_utc_day(quota_app, auth_headers, user, quota,
                                                counted_from):
    client = quota_app(quota).test_client()
    start = counted_from(utcnow().date())
    spend(user, 60, start - timedelta(days=1))  # the period before
    spend(user, 30, start)
    status = me(client, auth_headers)
    assert (status["used"], status["remaining"]) == (30, 70)
    assert send(client, auth_headers, new_conversation(client, auth_headers),
                "hello").status_code == 201


def test_yesterdays_spending_does_not_count_today(quota_app, auth_headers, user):
    client = quota_app("100 per day").test_client()
    spend(user, 5000, utcnow().date() - timedelta(days=1))
    assert me(client, auth_headers)["used"] == 0
    assert send(client, auth_headers, new_conversation(client, auth_headers),
                "hello").status_code == 201


def test_an_accounts_own_quota_overrides_the_default(quota_app, auth_headers, user, runner):
    app = quota_app("100 per day")
    client = app.test_client()
    conversation_id = new_conversation(client, auth_headers)
    spend(user, 100)
    assert send(client, auth_headers, conversation_id, "x").status_code == 429

    cli = app.test_cli_runner()
    result = cli.invoke(args=["users", "set-quota", "alice", "none"])
    assert result.exit_code == 0 and "token quota of alice: none" in result.output
    assert me(client, auth_headers) is None
    assert send(client, auth_headers, conversation_id, "x").status_code == 201

    result = cli.invoke(args=["users", "set-quota", "alice", "5000 PER month"])
    assert result.exit_code == 0 and "5000 per month" in result.output
    assert me(client, auth_headers)["limit"] == 5000
    assert send(client, auth_headers, conversation_id, "x").status_code == 201

    result = cli.invoke(args=["users", "set-quota", "alice", "default"])
    assert result.exit_code == 0 and "alice: default (TOKEN_QUOTA" in result.output
    assert send(client, auth_headers, conversation_id, "x").status_code == 429


def test_an_account_can_have_a_quota_when_the_default_is_none(quota_app, auth_headers, user):
    app = quota_app("none")
    client = app.test_client()
    assert me(client, auth_headers) is None
    assert app.test_cli_runner().invoke(
        args=["users", "set-quota", "alice", "10 per day"]).exit_code == 0
    spend(user, 10)
    assert send(client, auth_headers, new_conversation(client, auth_headers),
                "x").status_code == 429


@pytest.mark.parametrize("bad", ["lots", "100", "100 per fortnight", "0 per day", "-5 per day",
                                 "1e6 per day", "100 per 2 days", "", "١٠٠ per day"])
def test_a_quota_that_does_not_parse_changes_nothing(quota_app, user, bad):
    app = quota_app("100 per day")
    db.session.get(type(user), user.id).token_quota = "7 per week"
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["users", "set-quota", "alice", "--", bad])
    assert result.exit_code != 0
    assert "is not a token quota" in result.output
    db.session.expire_all()
    assert db.session.get(type(user), user.id).token_quota == "7 per week"


def test_set_quota_of_an_unknown_account_says_so(runner):
    result = runner.invoke(args=["users", "set-quota", "nobody", "none"])
    assert result.exit_code != 0 and "no user named 'nobody'" in result.output


@pytest.mark.parametrize("bad", ["lots", "100 per fortnight", "0 per day", "12 per"])
def test_the_service_refuses_to_start_on_a_bad_token_quota(database_url, bad):
    with pytest.raises(ValueError, match=r"^TOKEN_QUOTA: .* is not a token quota"):
        create_app(app_config(database_url, TOKEN_QUOTA=bad))


def test_the_counters_equal_the_usage_rows(quota_app, auth_headers, user):
    client = quota_app("100000 per day").test_client()
    conversation_id = new_conversation(client, auth_headers)
    for content in ("one", '[[tool:calculator {"expression": "1+1"}]]', "[[chunks:5]][[drop:2]]"):
        send(client, auth_headers, conversation_id, content)
    db.session.expire_all()
    recorded = db.session.scalar(select(func.sum(UsageRecord.total_tokens)))
    counted = db.session.scalar(select(func.sum(TokenCounter.used)))
    assert recorded == counted == me(client, auth_headers)["used"] > 0
    assert math.isclose(recorded, counted)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the suite has no Redis (REDIS_URL)")
def test_a_day_that_starts_a_week_and_a_month_is_added_to_its_cached_total_once(make_app, user):
    """2025-12-01 is a Monday and a month's first day: its day's, week's and month's totals are
    one key in Redis."""
    app = make_app(REDIS_URL=os.environ["REDIS_URL"])
    meter = app.extensions["chatapi.token_meter"]
    monday_first = date(2025, 12, 1)
    assert meter.used(user.id, monday_first) == 0  # now cached
    meter.add(user.id, {monday_first: 100})
    db.session.commit()
    meter.added(user.id, {monday_first: 100})
    assert meter.used(user.id, monday_first) == 100
