"""Answers as jobs, weighed (`make bench JOBS=1`):

- worker CPU per relayed chunk of the *fast* profile, events kept (written to the database, or
  Redis with REDIS_URL), beside the first version's path (the commit before answers became
  jobs, checked out into a temporary git worktree), both on one database, in turns;
- with `concurrent` answers running on two workers: time from a re-attach
  (`GET /api/messages/{id}/stream`, `Last-Event-ID: 1`) to its first event, and from
  `POST /api/messages/{id}/stop` to its 200 (each lands on either worker, so about half are
  stopped across workers), p50 and p99."""
import asyncio
import subprocess
import time
from pathlib import Path

from . import seed, transports
from .http import build_request, call, connect
from .load import EventReader, Stream, service_requests
from .rest import percentile
from .servers import PROJECT, log_errors, start_service

# The last commit before answers became jobs: the first version's streaming path.
FIRST_VERSION = "98c4d37"
SIDES = ("jobs", "first version")


def first_version_checkout(workdir):
    """A worktree of FIRST_VERSION (its .venv is this project's: the same requirements)."""
    path = Path(workdir) / "first-version"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), FIRST_VERSION],
                   cwd=PROJECT, check=True, capture_output=True, timeout=120)
    return path


def remove_checkout(path):
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=PROJECT,
                   capture_output=True, timeout=120)


async def weigh_cpu(bench_class, env, simulator, workdir, load, rounds, started, log):
    """The fast profile through both sides in turns: {side: [run, ...]}, load averages."""
    checkout = first_version_checkout(workdir)
    try:
        benches = {}
        for side, project in zip(SIDES, (PROJECT, checkout)):
            master, worker, port = start_service(env, workdir / f"gunicorn-{side}.log",
                                                 project=project)
            started.append(master)
            benches[side] = bench_class(simulator, (worker, port))
            benches[side].token = await seed.new_user(port, "jobs")
        log(f"answers as jobs: {load.label}, {rounds} runs each in turns")
        comparison = await transports.compare(benches, load, rounds)
    finally:
        remove_checkout(checkout)
    comparison["errors"] = [error for side in SIDES
                            for error in log_errors(workdir / f"gunicorn-{side}.log")]
    return comparison


class RunningAnswer:
    """One streamed answer kept open: its id once `start` came, its text events counted."""

    def __init__(self):
        self.stream = Stream()
        self.answer_id = None
        self.events = 0
        self.ended = asyncio.Event()

    def feed(self, reader, data):
        reader.feed(data)
        for line in data.split(b"\n"):
            if line.startswith(b"data: {\"user_message\"") and self.answer_id is None:
                self.answer_id = line.split(b"\"assistant_message_id\":\"")[1].split(b"\"")[0]
            elif line.startswith(b"event: "):
                self.events += 1
        if self.stream.final is not None or self.stream.error is not None:
            self.ended.set()


async def keep_answering(port, request, answer):
    connection = await connect(port)
    reader = EventReader(answer.stream, "service", connection)
    waiter = connection.send(request, on_body=lambda data: answer.feed(reader, data))
    try:
        await waiter
    finally:
        answer.ended.set()
        connection.close()


async def first_event_after(port, token, answer_id):
    """Seconds from sending a re-attach to the first byte of its first event."""
    connection = await connect(port)
    got = asyncio.get_running_loop().create_future()
    try:
        request = build_request("GET", f"/api/messages/{answer_id}/stream", port, token=token)
        request = request.replace(b"\r\n\r\n", b"\r\nLast-Event-ID: 1\r\n\r\n", 1)
        sent = time.perf_counter()
        connection.send(request, on_body=lambda data: got.done() or got.set_result(
            time.perf_counter()))
        return await asyncio.wait_for(got, 60) - sent
    finally:
        connection.close()


async def stop_latency(port, token, answer_id):
    connection = await connect(port)
    try:
        sent = time.perf_counter()
        status, _ = await call(connection, port, "POST", f"/api/messages/{answer_id}/stop",
                               token=token, timeout=60)
        if status != 200:
            raise RuntimeError(f"stop answered {status}")
        return time.perf_counter() - sent
    finally:
        connection.close()


async def in_batches(calls, size=10):
    results = []
    for start in range(0, len(calls), size):
        results += await asyncio.gather(*(make() for make in calls[start:start + size]))
    return results


async def weigh_latency(env, workdir, concurrent, started, log):
    """`concurrent` long answers on two workers; re-attach and stop latencies (seconds)."""
    master, _, port = start_service(env, workdir / "gunicorn-latency.log", workers=2)
    started.append(master)
    token = await seed.new_user(port, "stops")
    conversations = await seed.conversations(port, token, concurrent)
    requests = service_requests(port, "[[chunks:3000]][[delay:50]]", conversations, token)
    answers = [RunningAnswer() for _ in requests]
    log(f"answers as jobs: {concurrent} answers on two workers, re-attaching and stopping")
    tasks = [asyncio.create_task(keep_answering(port, request, answer))
             for request, answer in zip(requests, answers)]
    deadline = time.monotonic() + 120
    while any(answer.events < 4 for answer in answers) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    ids = [answer.answer_id.decode() for answer in answers if answer.answer_id]
    redis_memory = redis_memory_of(env.get("REDIS_URL"), ids)
    reattach = await in_batches([lambda i=i: first_event_after(port, token, i) for i in ids])
    stops = await in_batches([lambda i=i: stop_latency(port, token, i) for i in ids])
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 120)
    ended_done = sum(1 for answer in answers if answer.stream.final is not None)
    return {"answers": len(ids), "reattach": reattach, "stop": stops, "ended_done": ended_done,
            "redis": redis_memory, "errors": log_errors(workdir / "gunicorn-latency.log")}


def redis_memory_of(url, answer_ids, prefix="chatapi"):
    """What Redis holds for each running answer (its hash and its stream of events, by
    MEMORY USAGE), on average, and the events each held then; None without REDIS_URL."""
    if not url or not answer_ids:
        return None
    import redis
    client = redis.Redis.from_url(url)
    held, events = 0, 0
    for answer_id in answer_ids:
        key = f"{prefix}:answer:{answer_id}"
        held += (client.memory_usage(key, samples=0) or 0) + (
            client.memory_usage(key + ":events", samples=0) or 0)
        events += client.xlen(key + ":events")
    return {"bytes": held / len(answer_ids), "events": events / len(answer_ids)}


def rows(comparison, latency):
    sides = {side: transports.summary(runs) for side, runs in comparison["runs"].items()}
    jobs, first = sides["jobs"]["median"], sides["first version"]["median"]
    out = [(f"{side}: worker CPU per chunk, median of {comparison['rounds']}",
            f"{summary['median']:.1f} µs ({summary['low']:.0f}–{summary['high']:.0f}), "
            f"TTFT p50 {summary['ttft_p50'] * 1000:.1f} ms, {summary['failed']} failed, "
            f"{summary['inexact']} inexact", "")
           for side, summary in sides.items()]
    out.append(("jobs ÷ first version", f"×{jobs / first:.2f}", "≤ ×1.25"))
    for name, label, target in (("reattach", "re-attach to first event", 0.050),
                                ("stop", "stop to 200", 0.500)):
        figures = latency[name]
        out.append((f"{label} p50 / p99 ({latency['answers']} running answers)",
                    f"{percentile(figures, 0.5) * 1000:.1f} ms / "
                    f"{percentile(figures, 0.99) * 1000:.1f} ms", f"p99 ≤ {target * 1000:.0f} ms"))
    out.append(("stopped streams that ended with done", f"{latency['ended_done']}/"
                f"{latency['answers']}", "all"))
    if latency.get("redis"):
        memory = latency["redis"]
        out.append(("Redis memory per running answer (its hash and event stream)",
                    f"{memory['bytes'] / 1024:.1f} KiB at {memory['events']:.0f} events "
                    f"({memory['bytes'] / max(memory['events'], 1):.0f} B an event)", ""))
    out.append(("machine load average before, after",
                "{:.1f}, {:.1f}".format(*comparison["busy"]), ""))
    return out


def table(comparison, latency, load):
    lines = [f"Answers as jobs: {load.label}"]
    lines += [f"  {name:<58} {value:<60} {target}" for name, value, target in
              rows(comparison, latency)]
    return "\n".join(lines)


def markdown(comparison, latency, load, meta, kept_in):
    return "\n".join([
        f"## Answers as jobs, events in {kept_in}", "",
        f"{meta['date']}, {meta['mode']} run; {meta['nproc']} cores, Python {meta['python']}, "
        f"database {meta['database']}. CPU: {load.label}, one gevent worker per side, runs "
        f"in turns; the first version is commit {FIRST_VERSION}. Latencies: two workers, "
        "ten requests at a time.", "",
        "| figure | value | target |", "|---|---|---|",
        *(f"| {name} | {value} | {target} |" for name, value, target in
          rows(comparison, latency))])


async def weigh(bench_class, plan, env, simulator, workdir, started, log):
    comparison = await weigh_cpu(bench_class, env, simulator, workdir, plan.fast,
                                 plan.transport_rounds, started, log)
    latency = await weigh_latency(env, workdir, plan.jobs_concurrent, started, log)
    return comparison, latency
