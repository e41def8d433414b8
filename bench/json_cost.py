"""JSON endpoints, weighed (part of `make bench`; alone with `JSON=1`): one gevent worker's CPU
per request with 50 keep-alive clients, for

- `floor`: `GET /api/bench/floor` (bench/floor_app.py), a constant page behind the token
  check: what Flask, the gevent worker and the check cost, under every endpoint;
- `list`: `GET /api/conversations/`, a page of 20 of the user's 50;
- `messages`: `GET /api/messages/{id}`, a conversation whose active branch is 100 messages;
- `search`: `GET /api/search?q=message 4`, a page of 20 hits;

each through this code ("after") and through the commit before issue 21's work ("before", in
a temporary git worktree), both on one database, in turns. CPU per request is the worker's
CPU (from /proc) over the requests answered. A cProfile run of each then splits it by stage:
the token check (auth), the conversation's owner look-up, the rest of the service (query),
the schema dump and JSON encoding (serialise), and everything else (framework: gunicorn,
Flask, flask-smorest, webargs). Two workers' throughput is reported beside one worker's, with
the load client's own CPU."""
import os
import pstats
import shutil
import statistics
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, event, insert, update

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import Conversation, Message
from chatapi.models.timestamps import utcnow
from tests.message_trees import linear

from . import profiling, seed
from .procstat import CpuMeter, children
from .rest import hammer
from .servers import JWT_SECRET, PROJECT, log_errors, start_service

# The last commit before issue 21's work.
BEFORE = "fa564cb"
SIDES = ("before", "after")
CLIENTS = 50
CONVERSATIONS = 50
BRANCH = 100
SEARCH = "message 4"
TARGETS_MS = {("list", "SQLite"): 0.8, ("list", "PostgreSQL"): 1.2,
              ("messages", "SQLite"): 1.5, ("messages", "PostgreSQL"): 2.0,
              ("search", "SQLite"): 2.0, ("search", "PostgreSQL"): 2.0}
P99_TARGET = 0.060
APP = "bench.floor_app:app"

# Stages by the functions whose cumulative time they are: (file's path ends with, function).
AUTH = [("flask_jwt_extended/view_decorators.py", "verify_jwt_in_request")]
LOOKUPS = [("chatapi/services/conversations.py", "get_owned"),
           ("chatapi/services/conversations.py", "owned_row")]
SERVICES = [("chatapi/services/conversations.py", "list_page"),
            ("chatapi/services/messages.py", "list_page"),
            ("chatapi/services/search.py", "search")]
DUMPS = [("chatapi/schemas/base.py", "dump"), ("marshmallow/schema.py", "dump")]
ENCODE = [("flask/json/provider.py", "response")]
WHOLE = [("gunicorn/workers/base_async.py", "handle_request")]


def paths(conversation_ids):
    return {"floor": "/api/bench/floor", "list": "/api/conversations/",
            "messages": f"/api/messages/{conversation_ids[0]}",
            "search": "/api/search?q=" + SEARCH.replace(" ", "%20")}


def fill_branch(database_url, conversation_id):
    """BRANCH messages in one branch, written straight into the database (as bench/trees.py)."""
    rows, branch = linear(conversation_id, BRANCH, utcnow() - timedelta(days=1))
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Message), rows)
            connection.execute(update(Conversation).where(Conversation.id == conversation_id)
                               .values(current_message_id=branch[-1], message_count=BRANCH))
    finally:
        engine.dispose()


def statements_per_request(database_url, token, endpoints):
    """{endpoint: SQL statements it sends}, counted in this process on the same database
    (tests/test_round_trips.py holds them to these numbers)."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "JWT_SECRET_KEY": JWT_SECRET,
                      "REDIS_URL": os.environ.get("REDIS_URL"), "SEARCH_RATE_LIMIT": None,
                      "LOG_LEVEL": "WARNING"})
    sent = []
    counts = {}
    headers = {"Authorization": f"Bearer {token}"}
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *_args: sent.append(1))
        client = app.test_client()
        for endpoint, path in endpoints.items():
            if endpoint == "floor":
                continue
            client.get(path, headers=headers)
            sent.clear()
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, (path, answer.get_data(as_text=True))
            counts[endpoint] = len(sent)
        db.engine.dispose()
    return counts


def checkout(workdir):
    """A worktree of BEFORE, with this bench's floor app and profiler (its .venv is this
    project's)."""
    path = Path(workdir) / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), BEFORE], cwd=PROJECT,
                   check=True, capture_output=True, timeout=120)
    for name in ("floor_app.py", "gunicorn_profile.py"):
        shutil.copy(PROJECT / "bench" / name, path / "bench" / name)
    return path


def remove_checkout(path):
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=PROJECT,
                   capture_output=True, timeout=120)


async def measured_hammer(port, path, token, worker_pids, seconds):
    meter = CpuMeter({f"worker{i}": pid for i, pid in enumerate(worker_pids)})
    meter.start()
    began = time.monotonic()
    figures = await hammer(port, path, token, CLIENTS, seconds)
    elapsed = time.monotonic() - began
    used = meter.stop()
    worker_cpu = sum(value for name, value in used.items() if name.startswith("worker"))
    return {**figures, "cpu_ms": worker_cpu / max(figures["requests"], 1) * 1000,
            "client_share": used["client"] / elapsed,
            "worker_share": worker_cpu / elapsed}


def stage_split(profile_file):
    """{stage: share of the worker's request handling} from a cProfile dump."""
    stats = pstats.Stats(str(profile_file)).stats

    def cumulative(wanted):
        return sum(cumulative_time for (path, _line, function), (_, _, _, cumulative_time, _)
                   in stats.items()
                   if any(path.endswith(suffix) and function == name
                          for suffix, name in wanted))

    whole = cumulative(WHOLE) or 1.0
    auth, lookups = cumulative(AUTH), cumulative(LOOKUPS)
    query = max(0.0, cumulative(SERVICES) - lookups)
    # Ours calls marshmallow's only where it cannot compile; either one, never both, is whole.
    dump = max(cumulative(DUMPS[:1]), cumulative(DUMPS[1:]))
    serialise = dump + cumulative(ENCODE)
    framework = max(0.0, whole - auth - lookups - query - serialise)
    return {"auth": auth / whole, "look-ups": lookups / whole, "query": query / whole,
            "serialise": serialise / whole, "framework": framework / whole}


async def profiled(side, endpoint, path, token, seconds, workdir):
    """The stage split from a profile of one client's requests, timed by the worker's CPU: with
    many at once, a function waiting on the database would count the CPU of every request that
    ran meanwhile."""
    output = Path(workdir) / f"json-{side.name}-{endpoint}.prof"
    profiling.start(side.worker)
    await hammer(side.port, path, token, 1, seconds)
    if not profiling.stop(side.worker, side.profile_output):
        return None
    shutil.move(side.profile_output, output)
    return stage_split(output)


class Side:
    def __init__(self, name, master, worker, port, profile_output):
        self.name, self.master, self.worker, self.port = name, master, worker, port
        self.profile_output = profile_output


async def weigh(env, database_url, workdir, started, log, seconds, rounds=3):
    """{"endpoints": {endpoint: {side: figures}}, "two_workers": ..., "errors": [...]}."""
    before = checkout(workdir)
    try:
        sides = []
        for name, project in zip(SIDES, (before, PROJECT)):
            output = Path(workdir) / f"worker-{name}.prof"
            master, worker, port = start_service(
                {**env, "BENCH_PROFILE_OUTPUT": str(output), "BENCH_PROFILE_CLOCK": "cpu"},
                Path(workdir) / f"json-{name}.log",
                project=project, app=APP)
            started.append(master)
            sides.append(Side(name, master, worker, port, output))
        token = await seed.new_user(sides[1].port, "json")
        conversation_ids = await seed.conversations(sides[1].port, token, CONVERSATIONS)
        fill_branch(database_url, conversation_ids[0])
        endpoints = paths(conversation_ids)
        statements = statements_per_request(database_url, token, endpoints)
        log(f"JSON endpoints: {len(endpoints)} × {len(SIDES)} sides, {rounds} rounds of "
            f"{seconds:g} s, {CLIENTS} keep-alive clients")
        runs = {endpoint: {side.name: [] for side in sides} for endpoint in endpoints}
        for _ in range(rounds):
            for endpoint, path in endpoints.items():
                for side in sides:
                    runs[endpoint][side.name].append(await measured_hammer(
                        side.port, path, token, [side.worker], seconds))
        figures = {endpoint: {name: summary(side_runs) for name, side_runs in by_side.items()}
                   for endpoint, by_side in runs.items()}
        log("JSON endpoints: a cProfile run of each, for the stages")
        for endpoint, path in endpoints.items():
            for side in sides:
                figures[endpoint][side.name]["stages"] = await profiled(
                    side, endpoint, path, token, seconds, workdir)
        errors = [error for side in sides
                  for error in log_errors(Path(workdir) / f"json-{side.name}.log")]
    finally:
        remove_checkout(before)
    log("JSON endpoints: two workers")
    master, _worker, port = start_service(env, Path(workdir) / "json-two.log", workers=2,
                                          app=APP)
    started.append(master)
    workers = children(master.pid)
    two = {endpoint: await measured_hammer(port, endpoints[endpoint], token, workers, seconds)
           for endpoint in ("list", "messages")}
    errors += log_errors(Path(workdir) / "json-two.log")
    return {"endpoints": figures, "two_workers": two, "errors": errors,
            "statements": statements}


def summary(runs):
    """The run of median CPU per request, with every run's CPU."""
    ordered = sorted(runs, key=lambda run: run["cpu_ms"])
    middle = ordered[len(ordered) // 2]
    return {**middle, "cpu_runs": [run["cpu_ms"] for run in runs],
            "cpu_median": statistics.median(run["cpu_ms"] for run in runs)}


def markdown(results, meta):
    database = meta["database"]
    figures = results["endpoints"]
    lines = [f"## JSON endpoints, {database}", "",
             f"{meta['date']}, {meta['mode']} run; {meta['nproc']} cores, Python "
             f"{meta['python']}, database {database}. One gunicorn gevent worker per side, "
             f"{CLIENTS} keep-alive clients, each side in turns; *before* is commit {BEFORE}. "
             "CPU per request: the worker's CPU over the requests it answered (median of "
             "the rounds); its split by stage is the shares of a cProfile run (timed by the "
             "worker's CPU, one client) applied to it.", "",
             "| endpoint | side | CPU / request | target | req/s | p50 | p99 | answers per "
             "client, fewest–most | auth | look-ups | query | serialise | framework |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for endpoint, by_side in figures.items():
        target = TARGETS_MS.get((endpoint, database))
        for side in SIDES:
            run = by_side[side]
            stages = run.get("stages") or {}
            met = ""
            if side == "after" and target is not None:
                met = " met" if run["cpu_median"] <= target and (run["p99"] or 1) <= P99_TARGET \
                    else " NOT MET"
            lines.append(
                f"| {endpoint} | {side} | {run['cpu_median']:.2f} ms | "
                f"{f'≤ {target} ms, p99 ≤ 60 ms' if target else ''}{met} | {run['rps']:.0f} | "
                f"{run['p50'] * 1000:.1f} ms | {run['p99'] * 1000:.1f} ms | "
                f"{run['fewest']}–{run['most']} | "
                + " | ".join(f"{stages[stage] * run['cpu_median']:.2f}" if stage in stages
                             else "n/a" for stage in
                             ("auth", "look-ups", "query", "serialise", "framework")) + " |")
    lines += ["", "Stages in ms of worker CPU per request. Runs of CPU per request (ms): "
              + "; ".join(f"{endpoint} {side} "
                          + ", ".join(f"{value:.2f}" for value in by_side[side]["cpu_runs"])
                          for endpoint, by_side in figures.items() for side in SIDES), ""]
    lines += ["SQL statements per request (after): " + ", ".join(
        f"{endpoint} {count}" for endpoint, count in results["statements"].items())
        + "; the floor's one is the token check's, which every endpoint counts too. With "
        "Redis, the token's revocation is one Redis round trip beside it.", ""]
    lines += ["| two workers | req/s (one worker) | CPU / request, both workers | "
              "load client's CPU |", "|---|---:|---:|---:|"]
    for endpoint, run in results["two_workers"].items():
        one = figures[endpoint]["after"]
        lines.append(f"| {endpoint} | {run['rps']:.0f} ({one['rps']:.0f}) | "
                     f"{run['cpu_ms']:.2f} ms | {run['client_share']:.0%} of a core |")
    return "\n".join(lines) + "\n"
