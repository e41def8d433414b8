"""The quota check, weighed (`make bench QUOTA=1`): CPU of `quotas.check` for a user with a
monthly quota and a counter for every day of the month so far, in this process (the worker's
share: for SQLite the query's whole cost, for PostgreSQL the client's), against the database
and, with REDIS_URL, against the total cached in Redis; beside it, in the same run, a whole
send through the app (the GLM simulator answering five chunks), so that the check's share of
a send shows. Target: the check adds at most 0.3 ms of CPU to a send."""
import os
import time
from datetime import timedelta

import flask_migrate

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import TokenCounter, User
from chatapi.models.timestamps import utcnow
from chatapi.models.user import username_key
from chatapi.quota_text import Quota
from chatapi.services import quotas, tokens

CHECKS = 3000
SENDS = 150
TARGET_MS = 0.3


def cpu_per_call(call, times):
    call()  # warm: compiled statements, connections
    started = time.process_time()
    for _ in range(times):
        call()
    return (time.process_time() - started) / times


def app_on(database_url, simulator_port, redis_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "JWT_SECRET_KEY": "b" * 64,
                      "REDIS_URL": redis_url, "ZHIPUAI_API_KEY": "bench-key",
                      "GLM_BASE_URL": f"http://127.0.0.1:{simulator_port}/api/paas/v4",
                      "MESSAGE_RATE_LIMIT": None, "MAX_CONCURRENT_ANSWERS": 0,
                      "TOKEN_QUOTA": "1000000000 per month", "LOG_LEVEL": "WARNING",
                      "RATELIMIT_KEY_PREFIX": f"chatapi-bench-{os.getpid()}"})
    with app.app_context():
        flask_migrate.upgrade()
    return app


def weigh(database_url, simulator_port, redis_url, log):
    app = app_on(database_url, simulator_port, None)
    figures = {}
    with app.app_context():
        name = f"quota{time.time_ns()}"
        user = User(username=name[:32], username_key=username_key(name[:32]),
                    email=f"{name}@example.com", password_hash="x")
        db.session.add(user)
        db.session.commit()
        today = utcnow().date()
        for day in range(40):
            db.session.add(TokenCounter(user_id=user.id, day=today - timedelta(days=day),
                                        used=1000))
        db.session.commit()
        quota, now = Quota(1_000_000_000, "month"), utcnow()
        log(f"quota check: {CHECKS} checks against the database")
        meter = app.extensions["chatapi.token_meter"]
        figures["database"] = cpu_per_call(lambda: quotas.check(meter, quota, user.id, now),
                                           CHECKS)
        figures["none"] = cpu_per_call(lambda: quotas.check(meter, None, user.id, now), CHECKS)
        if redis_url:
            cached = quotas.token_meter(redis_client_for(redis_url), app.config)
            log(f"quota check: {CHECKS} checks against the total cached in Redis")
            figures["redis"] = cpu_per_call(lambda: quotas.check(cached, quota, user.id, now),
                                            CHECKS)
        headers = {"Authorization": "Bearer "
                   + tokens.issue_tokens(user, app.config)["access_token"]}
    client = app.test_client()
    conversation = client.post("/api/conversations/", json={}, headers=headers)
    conversation_id = conversation.get_json()["data"]["id"]

    def send():
        response = client.post("/api/messages/", headers=headers, json={
            "conversation_id": conversation_id, "content": "[[chunks:5]]"})
        assert response.status_code == 201, response.get_data(as_text=True)

    log(f"quota check: {SENDS} whole sends, for scale")
    figures["send"] = cpu_per_call(send, SENDS)
    return figures


def redis_client_for(url):
    import redis
    return redis.Redis.from_url(url)


def rows(figures):
    out = [("quota check, counters in the database", us(figures["database"]),
            f"≤ {TARGET_MS * 1000:.0f} µs")]
    if "redis" in figures:
        out.append(("quota check, period total cached in Redis", us(figures["redis"]),
                    f"≤ {TARGET_MS * 1000:.0f} µs"))
    out += [("no quota (the check returns at once)", us(figures["none"]), ""),
            ("a whole send through the app (5 chunks; its quota check included)",
             us(figures["send"]), ""),
            ("database check ÷ send", f"{figures['database'] / figures['send']:.1%}", "")]
    return out


def us(seconds):
    return f"{seconds * 1e6:.0f} µs"


def table(figures):
    return "\n".join(["Quota check"] + [f"  {name:<78} {value:<10} {target}"
                                        for name, value, target in rows(figures)])


def markdown(figures, meta, kept_in):
    return "\n".join([
        f"## Quota check, {kept_in}", "",
        f"{meta['date']}; {meta['nproc']} cores, Python {meta['python']}, database "
        f"{meta['database']}. CPU of this process per check ({CHECKS} checks; a monthly quota, "
        "a counter for each of the last 40 days) and per whole send through the app "
        f"({SENDS} sends, GLM simulator).", "",
        "| figure | CPU | target |", "|---|---|---|",
        *(f"| {name} | {value} | {target} |" for name, value, target in rows(figures))])
