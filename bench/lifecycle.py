"""What starting and finishing one stream costs a worker, by stage (`make bench LIFECYCLE=1`,
or `python -m bench.lifecycle`): in this process, against the GLM simulator, streams of one
chunk are sent through the app (POST /api/messages/stream, the Flask test client) one after
another, with the message rate limit, the answer slots and a token quota on, into
conversations that already hold a few exchanges. Each stage's CPU is this process's per
thread (time.thread_time, the innermost stage charged), so a stage run by the answer's
thread or the ticker counts as much as one run by the request's; and every SQL statement and
Redis round trip is counted, by stage. The relaying (the model's stream, the SSE writes, the
ticker's batches) is shown apart: the target is for everything else. SQLite in a fresh file by
default; DATABASE_URL and REDIS_URL as for the app."""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from functools import wraps
from pathlib import Path

import flask_jwt_extended.view_decorators
import flask_migrate
from sqlalchemy import event

from chatapi import create_app
from chatapi.api import messages as messages_api
from chatapi.api import sse
from chatapi.extensions import db
from chatapi.models import User
from chatapi.models.user import username_key
from chatapi.schemas.messages import MessageSchema
from chatapi.services import (answers, chat, conversations, history, idempotency, quotas,
                              tokens, tree, usage)

from .servers import start_listener, stop

SENDS = 200
CONVERSATIONS = 10
WARM_EXCHANGES = 2
TARGET_MS = 3.0
# Stages that relay the model's answer: reported, not part of start + finish.
RELAYING = ("relay: the model's stream", "relay: SSE writes", "relay: ticker")
# The Flask test client building each request and reading its answer, in this process (a
# worker parses HTTP instead): reported, not part of start + finish.
CLIENT = "load client (not the app)"
APPLICATION = "request: parse, route, respond"
ORDER = ("request: auth", "request: parse, route, respond", "lookups", "quota + limits",
         "history: load branch", "history: wire messages", "store question + answer",
         "start the job", "model call setup", "job thread: bookkeeping", "finish: final write",
         "serialise", *RELAYING, CLIENT)


class Stages:
    """CPU, SQL statements and Redis round trips per stage, charged to the innermost stage of
    the thread that spent them."""

    def __init__(self):
        self.local = threading.local()
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.cpu = Counter()
            # Of it, inside the database driver's cursor.execute (SQLite's C, psycopg).
            self.driver = Counter()
            self.sql = Counter()
            self.redis = Counter()
            self.statements = defaultdict(Counter)

    def stack(self):
        if not hasattr(self.local, "stack"):
            # The load client runs on the main thread; the app's own threads (the answer's,
            # the ticker's) start in the app.
            main = threading.current_thread() is threading.main_thread()
            self.local.stack = [CLIENT if main else APPLICATION]
            self.local.stamp = time.thread_time()
        return self.local.stack

    def charge(self):
        stack, now = self.stack(), time.thread_time()
        with self.lock:
            self.cpu[stack[-1]] += now - self.local.stamp
        self.local.stamp = now

    def enter(self, stage):
        self.charge()
        self.local.stack.append(stage)

    def leave(self):
        self.charge()
        self.local.stack.pop()

    def current(self):
        return self.stack()[-1]

    def call(self, stage, function):
        @wraps(function)
        def staged(*args, **kwargs):
            self.enter(stage)
            try:
                return function(*args, **kwargs)
            finally:
                self.leave()
        return staged

    def generator(self, stage, function):
        """Each step of the generator `function` returns is charged to `stage`."""
        @wraps(function)
        def staged(*args, **kwargs):
            steps = function(*args, **kwargs)
            while True:
                self.enter(stage)
                try:
                    item = next(steps)
                except StopIteration:
                    return
                finally:
                    self.leave()
                yield item
        return staged

    def application(self, wsgi_app):
        """The WSGI app, its answer's body and its close charged to APPLICATION; the rest of
        the thread (the test client) to CLIENT."""
        called = self.call(APPLICATION, wsgi_app)

        def staged(environ, start_response):
            return StagedBody(self, called(environ, start_response))
        return staged

    def wrap(self, owner, name, stage, generator=False):
        function = getattr(owner, name)
        setattr(owner, name, (self.generator if generator else self.call)(stage, function))

    def count_sql(self, statement):
        stage = self.current()
        with self.lock:
            self.sql[stage] += 1
            self.statements[stage][" ".join(statement.split())[:150]] += 1
        self.local.cursor_started = time.thread_time()

    def cursor_done(self):
        spent = time.thread_time() - self.local.cursor_started
        with self.lock:
            self.driver[self.current()] += spent

    def count_redis(self, commands, stage=None):
        stage = stage or self.current()
        with self.lock:
            self.redis[stage] += 1
            self.statements[stage][f"redis {commands}"] += 1

    def flush(self):
        """Charge the CPU spent since the last stamp in this thread."""
        self.charge()


class StagedBody:
    def __init__(self, stages, body):
        self.stages, self.body = stages, body

    def __iter__(self):
        return self.stages.generator(APPLICATION, iter)(self.body)

    def close(self):
        if hasattr(self.body, "close"):
            self.stages.call(APPLICATION, self.body.close)()


def instrument(stages, app):
    """The stages, put around the project's own functions (as a profiler would)."""
    app.wsgi_app = stages.application(app.wsgi_app)
    stages.wrap(flask_jwt_extended.view_decorators, "verify_jwt_in_request", "request: auth")
    stages.wrap(conversations, "get_owned", "lookups")
    stages.wrap(conversations, "answer_settings", "lookups")
    stages.wrap(idempotency, "first_answer", "lookups")
    stages.wrap(quotas, "check", "quota + limits")
    limiter, slots = (app.extensions["chatapi.rate_limiter"],
                      app.extensions["chatapi.answer_slots"])
    stages.wrap(limiter, "take", "quota + limits")
    stages.wrap(slots, "acquire", "quota + limits")
    stages.wrap(tree, "leaf_first", "history: load branch")
    stages.wrap(history, "build_wire_messages", "history: wire messages")
    stages.wrap(chat, "open_answer", "store question + answer")
    stages.wrap(answers.Opening, "reserve", "store question + answer")
    stages.wrap(messages_api, "start_answer", "start the job")
    stages.wrap(answers.Answers, "run", "job thread: bookkeeping")
    stages.wrap(chat, "run", "relay: the model's stream", generator=True)
    glm = app.extensions["chatapi.glm"]
    stages.wrap(glm, "stream_chat", "model call setup")
    stages.wrap(answers.Answers, "store_end", "finish: final write")
    stages.wrap(usage.ProviderCall, "end", "finish: final write")
    stages.wrap(slots, "release", "finish: final write")
    stages.wrap(MessageSchema, "dump", "serialise")
    runtime = app.extensions["chatapi.answers"]
    runtime.dump = stages.call("serialise", runtime.dump)
    stages.wrap(answers, "to_json", "serialise")
    stages.wrap(sse, "written", "relay: SSE writes", generator=True)
    stages.wrap(answers.Answers, "tick_while_needed", "relay: ticker")

    def counted(_conn, _cursor, statement, _params, _context, executemany):
        stages.count_sql(("many: " if executemany else "") + statement)

    def executed(*_args):
        stages.cursor_done()

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", counted)
        event.listen(db.engine, "after_cursor_execute", executed)

    count_redis(stages)


def count_redis(stages):
    """Every round trip to Redis: a command, or a pipeline's batch."""
    import redis
    command, pipeline = redis.Redis.execute_command, redis.client.Pipeline.execute

    def counted_command(client, *args, **options):
        if isinstance(client, redis.client.Pipeline):
            return command(client, *args, **options)
        stages.count_redis(str(args[0]) + (f" {args[1]}" if args[0] == "EVALSHA" else ""))
        return command(client, *args, **options)

    def counted_pipeline(pipe, *args, **options):
        stages.count_redis("pipeline " + " ".join(str(c[0][0]) for c in pipe.command_stack))
        return pipeline(pipe, *args, **options)

    redis.Redis.execute_command = counted_command
    redis.client.Pipeline.execute = counted_pipeline


def app_on(database_url, simulator_port, redis_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "JWT_SECRET_KEY": "b" * 64,
                      "REDIS_URL": redis_url, "ZHIPUAI_API_KEY": "bench-key",
                      "GLM_BASE_URL": f"http://127.0.0.1:{simulator_port}/api/paas/v4",
                      "MESSAGE_RATE_LIMIT": "1000000 per minute", "MAX_CONCURRENT_ANSWERS": 3,
                      "TOKEN_QUOTA": "1000000000 per month", "LOG_LEVEL": "WARNING",
                      "RATELIMIT_KEY_PREFIX": f"chatapi-lifecycle-{os.getpid()}"})
    with app.app_context():
        flask_migrate.upgrade()
    return app


def weigh(database_url, simulator_port, redis_url, log, sends=SENDS):
    """{"cpu"|"driver"|"sql"|"redis": {stage: per send}, "statements": {stage: {text: per send}},
    "process": CPU of the whole process per send, "sends": how many}."""
    app = app_on(database_url, simulator_port, redis_url)
    with app.app_context():
        name = f"life{time.time_ns()}"[:32]
        user = User(username=name, username_key=username_key(name),
                    email=f"{name}@example.com", password_hash="x")
        db.session.add(user)
        db.session.commit()
        headers = {"Authorization": "Bearer "
                   + tokens.issue_tokens(user, app.config)["access_token"]}
    client = app.test_client()
    stages = Stages()
    instrument(stages, app)
    conversation_ids = [
        client.post("/api/conversations/", json={}, headers=headers).get_json()["data"]["id"]
        for _ in range(CONVERSATIONS)]

    def send(number):
        response = client.post("/api/messages/stream", headers=headers, json={
            "conversation_id": conversation_ids[number % CONVERSATIONS],
            "content": f"question {number} [[chunks:1]]"})
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and "event: done" in body, body[-500:]
        runtime.wait_idle()

    runtime = Idle(app.extensions["chatapi.answers"])
    log(f"lifecycle: {CONVERSATIONS * WARM_EXCHANGES} warm-up sends")
    for number in range(CONVERSATIONS * WARM_EXCHANGES):
        send(number)
    time.sleep(0.5)  # the titles of the first answers, asked in threads of their own
    log(f"lifecycle: {sends} sends of one chunk each")
    stages.flush()
    stages.reset()
    started = time.process_time()
    for number in range(sends):
        send(number)
    process = (time.process_time() - started) / sends
    stages.flush()
    return {"cpu": {k: v / sends for k, v in stages.cpu.items()},
            "driver": {k: v / sends for k, v in stages.driver.items()},
            "sql": {k: v / sends for k, v in stages.sql.items()},
            "redis": {k: v / sends for k, v in stages.redis.items()},
            "statements": {stage: {text: n / sends for text, n in counter.items()}
                           for stage, counter in stages.statements.items()},
            "process": process, "sends": sends, "speed": machine_speed()}


class Idle:
    """Waits until the answer's thread has let go of the job, so that one send's finish is
    not charged to the next."""

    def __init__(self, runtime):
        self.runtime = runtime

    def wait_idle(self):
        deadline = time.monotonic() + 10
        while self.runtime.jobs and time.monotonic() < deadline:
            time.sleep(0.0005)


def machine_speed():
    """CPU of a fixed pure-Python loop, to compare figures taken on different machines."""
    started = time.thread_time()
    total = 0
    for number in range(1_000_000):
        total += number
    return time.thread_time() - started


def ordered(figures):
    known = [stage for stage in ORDER if stage in figures["cpu"] or stage in figures["sql"]]
    return known + sorted(set(figures["cpu"]) - set(known))


def rows(figures):
    out = []
    for stage in ordered(figures):
        out.append((stage, figures["cpu"].get(stage, 0.0), figures["driver"].get(stage, 0.0),
                    figures["sql"].get(stage, 0.0), figures["redis"].get(stage, 0.0)))
    return out


def totals(figures):
    kept = [row for row in rows(figures) if row[0] not in (*RELAYING, CLIENT)]
    return tuple(sum(row[column] for row in kept) for column in (1, 2, 3, 4))


def table(figures, kept_in=""):
    lines = [f"Stream lifecycle{', ' + kept_in if kept_in else ''}: per send "
             f"({figures['sends']} sends of one chunk)",
             f"  {'stage':<34} {'CPU':>9} {'driver':>9} {'SQL':>6} {'Redis':>6}"]
    for stage, cpu, driver, sql, redis_calls in rows(figures):
        lines.append(f"  {stage:<34} {cpu * 1e3:>6.2f} ms {driver * 1e3:>6.2f} ms {sql:>6.1f} "
                     f"{redis_calls:>6.1f}")
    cpu, driver, sql, redis_calls = totals(figures)
    lines.append(f"  {'start + finish (no relaying)':<34} {cpu * 1e3:>6.2f} ms "
                 f"{driver * 1e3:>6.2f} ms {sql:>6.1f} {redis_calls:>6.1f}   "
                 f"target ≤ {TARGET_MS:g} ms")
    lines.append(f"  {'whole process (time.process_time)':<34} "
                 f"{figures['process'] * 1e3:>6.2f} ms")
    lines.append(f"  {'machine: 10⁶ additions in Python':<34} {figures['speed'] * 1e3:>6.0f} ms")
    return "\n".join(lines)


def statements(figures):
    lines = ["Statements per send, by stage"]
    for stage in ordered(figures):
        for text, count in sorted(figures["statements"].get(stage, {}).items(),
                                  key=lambda item: -item[1]):
            lines.append(f"  {count:>5.2f}  {stage:<26} {text}")
    return "\n".join(lines)


def markdown(figures, meta, kept_in):
    cpu, driver, sql, redis_calls = totals(figures)
    return "\n".join([
        f"## Stream lifecycle, {kept_in}", "",
        f"{meta['date']}; {meta['nproc']} cores, Python {meta['python']}. CPU of this "
        f"process per send by stage ({figures['sends']} streams of one chunk, GLM simulator, "
        "rate limit, answer slots and quota on), of it the CPU inside the database driver's "
        "cursor.execute (SQLite's C library, psycopg), SQL statements and Redis round trips; "
        f"10⁶ additions in Python took {figures['speed'] * 1e3:.0f} ms on this machine.", "",
        "| stage | CPU | of it, driver | SQL | Redis |", "|---|---|---|---|---|",
        *(f"| {stage} | {c * 1e3:.2f} ms | {d * 1e3:.2f} ms | {s:.1f} | {r:.1f} |"
          for stage, c, d, s, r in rows(figures)),
        f"| **start + finish** (target ≤ {TARGET_MS:g} ms) | **{cpu * 1e3:.2f} ms** | "
        f"**{driver * 1e3:.2f} ms** | **{sql:.1f}** | **{redis_calls:.1f}** |"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=SENDS)
    parser.add_argument("--statements", action="store_true",
                        help="also list every SQL statement and Redis command, by stage")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="chatapi-lifecycle-"))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}"
    redis_url = os.environ.get("REDIS_URL")

    def log(text):
        print(f"bench: {text}", file=sys.stderr, flush=True)

    process, port = start_listener("tests.glm_simulator")
    try:
        figures = weigh(database_url, port, redis_url, log, args.sends)
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
    kept_in = ("PostgreSQL" if database_url.startswith("postgres") else "SQLite") + (
        " + Redis" if redis_url else "")
    print(table(figures, kept_in))
    if args.statements:
        print(statements(figures))


if __name__ == "__main__":
    main()
