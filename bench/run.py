"""`make bench [QUICK=1]`: the simulator, the bare relay and ChatAPI (one gunicorn gevent
worker) on loopback; streams, probes and keep-alive clients against them; one table printed,
and RESULTS.md written (full runs). Every process it starts is stopped in `finally`."""
import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import (imports, jobs, json_cost, lifecycle, profiling, quota, report, search, seed,
               transports, trees)
from .load import expected_text, relay_requests, service_requests, simulator_requests
from .measure import busy_warnings, measured
from .procstat import raise_open_files_limit
from .rest import HealthProbe, hammer, login_storm
from .servers import (log_errors, service_env, start_listener, start_service, stop,
                      upgrade_database)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass
class Load:
    streams: int
    chunks: int
    delay_ms: int
    # Stream starts are spread evenly over this many seconds (an arrival rate, not one burst).
    ramp: float

    @property
    def content(self):
        return f"[[chunks:{self.chunks}]][[delay:{self.delay_ms}]]"

    @property
    def timeout(self):
        return self.ramp + 3 * self.chunks * self.delay_ms / 1000 + 30

    @property
    def label(self):
        return (f"{self.streams} streams × {self.chunks} chunks at "
                f"{1000 / self.delay_ms:g} chunks/s, ramp {self.ramp:g} s")


@dataclass
class Plan:
    many: Load
    fast: Load
    # Streams long enough that their start and finish weigh little per chunk: the relaying
    # alone, service beside the bare relay.
    long: Load
    saturation_streams: tuple
    # Seconds every stream of a saturation step runs at once, after the last one started.
    saturation_hold: float
    rest_seconds: float
    profile: bool
    # `--transports`: measured runs of *fast* per GLM transport (after a warm-up run each),
    # then three of `crowd`, where many more connections are open and kept alive at once.
    transport_rounds: int
    crowd: Load
    # `--jobs`: answers running at once while re-attaches and stops are timed.
    jobs_concurrent: int


PLANS = {
    "full": Plan(many=Load(1000, 100, 200, 10.0), fast=Load(100, 200, 20, 1.0),
                 long=Load(50, 1000, 10, 1.0),
                 saturation_streams=(10, 15, 25, 40, 60, 100, 150, 225, 340, 500),
                 saturation_hold=3.0,
                 rest_seconds=5.0, profile=True, transport_rounds=9,
                 crowd=Load(400, 25, 100, 4.0), jobs_concurrent=100),
    "quick": Plan(many=Load(200, 20, 200, 2.0), fast=Load(50, 100, 20, 0.5),
                  long=Load(20, 300, 10, 0.5),
                  saturation_streams=(10, 25, 60, 150), saturation_hold=1.5,
                  rest_seconds=2.0, profile=False, transport_rounds=3,
                  crowd=Load(200, 20, 200, 2.0), jobs_concurrent=20),
}


class Bench:
    def __init__(self, simulator, service, relay=(None, None)):
        (self.simulator_pid, self.simulator_port) = simulator
        (self.worker_pid, self.port) = service
        (self.relay_pid, self.relay_port) = relay
        self.token = None

    async def direct(self, load):
        requests = simulator_requests(self.simulator_port, load.content, load.streams)
        return await measured(requests, self.simulator_port, "glm", load.ramp, load.timeout,
                              expected_text(load.chunks), {"simulator": self.simulator_pid})

    async def relay(self, load):
        requests = relay_requests(self.relay_port, load.content, load.streams)
        return await measured(requests, self.relay_port, "service", load.ramp, load.timeout,
                              expected_text(load.chunks),
                              {"relay": self.relay_pid, "simulator": self.simulator_pid},
                              watch=self.relay_pid)

    async def service(self, load, conversations=None, alongside=()):
        conversations = conversations or await seed.conversations(self.port, self.token,
                                                                  load.streams)
        requests = service_requests(self.port, load.content, conversations, self.token)
        return await measured(requests, self.port, "service", load.ramp, load.timeout,
                              expected_text(load.chunks),
                              {"worker": self.worker_pid, "simulator": self.simulator_pid},
                              watch=self.worker_pid, alongside=alongside)


async def profile_many(bench, load):
    health = HealthProbe(bench.port)
    direct = await bench.direct(load)
    service = await bench.service(load, alongside=[health])
    return {"load": load.label, "direct": direct, "service": service,
            "health": health.summary()}


async def profile_fast(bench, load, long):
    return {"load": load.label, "direct": await bench.direct(load),
            "service": await bench.service(load), "relay": await bench.relay(load),
            "long": {"load": long.label, "service": await bench.service(long),
                     "relay": await bench.relay(long)}}


async def profile_worker(bench, load, output):
    """A separate *fast* run under cProfile, so the profiler's cost does not colour the
    figures above."""
    conversations = await seed.conversations(bench.port, bench.token, load.streams)
    profiling.start(bench.worker_pid)
    result = await bench.service(load, conversations)
    if not profiling.stop(bench.worker_pid, output):
        return {"skipped": "the worker wrote no profile (see gunicorn.log)"}
    total, own, cumulative = profiling.rank(output)
    return {"load": load.label, "own_seconds": total, "own": own, "cumulative": cumulative,
            "chunks": result["chunks"]}


async def saturation(bench, plan):
    """Raise the number of 50 chunks/s streams until the worker's core is full, a stream
    fails, or TTFT p99 degrades: more than doubles and grows by over 250 ms (with few streams
    p99 is the slowest one, so a lone straggler must not end the ladder); at most
    len(plan.saturation_streams) steps. Streams start at 50 a second whatever the step, so
    that what grows is the chunk rate, not the arrivals."""
    steps, first_p99 = [], None
    for streams in plan.saturation_streams:
        ramp = streams / 50
        chunks = round(50 * (ramp + plan.saturation_hold))
        result = await bench.service(Load(streams, chunks, 20, ramp))
        step = {"streams": streams, "offered": streams * 50, "delivered": result["chunks_per_s"],
                "worker_peak": result["peak_cpu_share"], "ttft_p99": result["ttft_p99"],
                "failed": result["failed"], "client": result["cpu_share"]["client"],
                "simulator": result["cpu_share"]["simulator"],
                "us_per_chunk": result["cpu"]["worker"] / max(result["chunks"], 1) * 1e6}
        steps.append(step)
        first_p99 = first_p99 or result["ttft_p99"]
        if result["peak_cpu_share"] >= 0.95:
            step["stop"] = "worker CPU ≥ 95 %"
        elif result["failed"]:
            step["stop"] = f"{result['failed']} streams failed"
        elif result["ttft_p99"] and result["ttft_p99"] > max(2 * first_p99, first_p99 + 0.25):
            step["stop"] = "TTFT p99 degraded"
        if "stop" in step:
            break
    return steps


async def rest(bench, database_url, seconds):
    token = await seed.new_user(bench.port, "rest")
    conversations = await seed.conversations(bench.port, token, 50)
    branches = trees.fill(database_url, conversations[1], conversations[2])
    results = {
        "logins": await login_storm(bench, seconds),
    }
    for name, conversation_id in (("linear", conversations[1]), ("branched", conversations[2])):
        results[name] = {**await hammer(bench.port, f"/api/messages/{conversation_id}", token,
                                        50, seconds),
                         "branch": branches[name]}
    return results


async def measure_everything(bench, plan, database_url, workdir, log):
    bench.token = await seed.new_user(bench.port, "streams")
    results = {}
    log(f"many: {plan.many.label}")
    results["many"] = await profile_many(bench, plan.many)
    log(f"fast: {plan.fast.label}")
    results["fast"] = await profile_fast(bench, plan.fast, plan.long)
    if plan.profile:
        log("profiling the worker with cProfile during another fast run")
        results["profile"] = await profile_worker(bench, plan.fast, workdir / "worker.prof")
    log("saturation: stepping up concurrent 50 chunks/s streams")
    results["saturation"] = await saturation(bench, plan)
    log(f"keep-alive JSON endpoints, 50 clients, {plan.rest_seconds:g} s each")
    results["rest"] = await rest(bench, database_url, plan.rest_seconds)
    results["warnings"] = [
        *busy_warnings("many/direct", results["many"]["direct"]),
        *busy_warnings("many/service", results["many"]["service"]),
        *busy_warnings("fast/direct", results["fast"]["direct"]),
        *busy_warnings("fast/service", results["fast"]["service"]),
        *busy_warnings("fast/relay", results["fast"]["relay"]),
    ]
    return results


async def bench_everything(plan, simulator, database_url, workdir, started, log):
    """One service and the bare relay through every profile: (results, service log errors)."""
    relay, relay_port = start_listener("bench.bare_relay", "--upstream",
                                       f"127.0.0.1:{simulator[1]}")
    started.append(relay)
    env = service_env(database_url, simulator[1], workdir / "worker.prof")
    log(f"flask db upgrade on {report.database_kind(database_url)}")
    upgrade_database(env)
    master, worker, port = start_service(env, workdir / "gunicorn.log")
    started.append(master)
    bench = Bench(simulator, (worker, port), (relay.pid, relay_port))
    results = await measure_everything(bench, plan, database_url, workdir, log)
    results["service_log"] = log_errors(workdir / "gunicorn.log")
    results["json"], json_errors = await weigh_json(plan, simulator, database_url, workdir,
                                                    started, log)
    results["lifecycle"], _ = await weigh_lifecycle(plan, simulator, database_url, workdir,
                                                    started, log)
    return results, results["service_log"] + json_errors


async def weigh_transports(plan, simulator, database_url, workdir, started, log):
    """One service per GLM transport, side by side on one database: (comparisons, errors)."""
    env = service_env(database_url, simulator[1], workdir / "worker.prof")
    log(f"flask db upgrade on {report.database_kind(database_url)}")
    upgrade_database(env)
    benches = {}
    for transport in transports.TRANSPORTS:
        master, worker, port = start_service({**env, "GLM_TRANSPORT": transport},
                                             workdir / f"gunicorn-{transport}.log")
        started.append(master)
        benches[transport] = Bench(simulator, (worker, port))
        benches[transport].token = await seed.new_user(port, "streams")
    comparison = []
    for load, rounds in ((plan.fast, plan.transport_rounds), (plan.crowd, 3)):
        log(f"GLM transports: {load.label}, {rounds} runs each in turns")
        comparison.append(await transports.compare(benches, load, rounds))
    errors = [error for transport in transports.TRANSPORTS
              for error in log_errors(workdir / f"gunicorn-{transport}.log")]
    return comparison, errors


async def weigh_jobs(plan, simulator, database_url, workdir, started, log):
    """Answers as jobs beside the first version, and their stop and re-attach latencies."""
    env = {**service_env(database_url, simulator[1], workdir / "worker.prof"),
           "REGISTER_LIMIT": "off"}
    log(f"flask db upgrade on {report.database_kind(database_url)}")
    upgrade_database(env)
    comparison, latency = await jobs.weigh(Bench, plan, env, simulator, workdir, started, log)
    return (comparison, latency, plan.fast), comparison["errors"] + latency["errors"]


async def weigh_json(plan, simulator, database_url, workdir, started, log):
    """The JSON endpoints' CPU per request, before issue 21 and now, by stage."""
    env = service_env(database_url, simulator[1], workdir / "worker.prof")
    log(f"flask db upgrade on {report.database_kind(database_url)}")
    upgrade_database(env)
    results = await json_cost.weigh(env, database_url, workdir, started, log,
                                    plan.rest_seconds)
    return results, results["errors"]


async def weigh_quota(plan, simulator, database_url, workdir, started, log):
    """The quota check beside a whole send, in this process."""
    return quota.weigh(database_url, simulator[1], os.environ.get("REDIS_URL"), log), []


async def weigh_lifecycle(plan, simulator, database_url, workdir, started, log):
    """One stream's start and finish, by stage, in this process."""
    return lifecycle.weigh(database_url, simulator[1], os.environ.get("REDIS_URL"), log), []


async def weigh_import(plan, simulator, database_url, workdir, started, log):
    """A 30 MB ChatGPT export imported while /api/health is asked."""
    figures = imports.weigh(database_url, workdir, started, log)
    return figures, [] if figures["status"] == 201 else [f"import answered {figures['status']}"]


async def weigh_search(plan, simulator, database_url, workdir, started, log):
    """One user's searches among 200,000 messages, in this process."""
    return search.weigh(database_url, log), []


async def main_async(args):
    mode = "quick" if args.quick else "full"
    plan = PLANS[mode]
    workdir = Path(tempfile.mkdtemp(prefix="chatapi-bench-"))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}"

    def log(text):
        print(f"bench: {text}", file=sys.stderr, flush=True)

    started = []
    failed = True
    try:
        process, simulator_port = start_listener("tests.glm_simulator")
        started.append(process)
        run = (weigh_transports if args.transports else weigh_jobs if args.jobs else
               weigh_quota if args.quota else weigh_lifecycle if args.lifecycle else
               weigh_import if args.imports else weigh_search if args.search else
               weigh_json if args.json else bench_everything)
        results, errors = await run(plan, (process.pid, simulator_port), database_url,
                                    workdir, started, log)
        failed = bool(errors)
    finally:
        for process in reversed(started):
            stop(process)
        if failed:
            log(f"kept {workdir} (gunicorn.log) for a look")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta = report.machine(database_url, mode)
    output = args.output or (None if args.quick else RESULTS)
    kept_in = meta["database"] + (" + Redis" if os.environ.get("REDIS_URL") else "")
    if args.json:
        print(*report.service_log_lines(errors), sep="\n")
        write_json(results, meta, output)
    elif args.imports:
        print(imports.table(results))
        if output:
            report.write_section(Path(output), f"Import, {meta['database']}",
                                 imports.markdown(results, meta))
    elif args.search:
        print(search.table(results))
        if output:
            report.write_section(Path(output), f"Search, {meta['database']}",
                                 search.markdown(results, meta))
    elif args.quota:
        print(quota.table(results))
        if output:
            report.write_section(Path(output), f"Quota check, {kept_in}",
                                 quota.markdown(results, meta, kept_in))
    elif args.lifecycle:
        write_lifecycle(results, meta, kept_in, output)
    elif args.jobs:
        print(jobs.table(*results))
        print(*report.service_log_lines(errors), sep="\n")
        if output:
            kept_in = "Redis" if os.environ.get("REDIS_URL") else meta["database"]
            report.write_section(Path(output), f"Answers as jobs, events in {kept_in}",
                                 jobs.markdown(*results, meta, kept_in))
    elif args.transports:
        print(transports.table(results))
        print(*report.service_log_lines(errors), sep="\n")
        if output:
            report.write_section(Path(output), "GLM transport", transports.markdown(results, meta))
    else:
        print(report.table(results, meta))
        if output:
            report.write_markdown(Path(output), results, meta)
        write_json(results["json"], meta, output)
        write_lifecycle(results["lifecycle"], meta, kept_in, output)
    if output:
        log(f"wrote {output}")


def write_json(results, meta, output):
    print(json_cost.markdown(results, meta))
    if output:
        report.write_section(Path(output), f"JSON endpoints, {meta['database']}",
                             json_cost.markdown(results, meta))


def write_lifecycle(results, meta, kept_in, output):
    print(lifecycle.table(results, kept_in))
    if output:
        report.write_section(Path(output), f"Stream lifecycle, {kept_in}",
                             lifecycle.markdown(results, meta, kept_in))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="scaled-down profiles, about 3 minutes; writes no RESULTS.md")
    parser.add_argument("--transports", action="store_true",
                        help="only the fast profile, through each GLM_TRANSPORT in turns")
    parser.add_argument("--jobs", action="store_true",
                        help="answers as jobs beside the first version; stop and re-attach "
                             "latencies")
    parser.add_argument("--quota", action="store_true",
                        help="the quota check's CPU beside a whole send's")
    parser.add_argument("--lifecycle", action="store_true",
                        help="one stream's start and finish: CPU, SQL statements and Redis "
                             "round trips by stage")
    parser.add_argument("--import", dest="imports", action="store_true",
                        help="a 30 MB ChatGPT export imported while /api/health is asked")
    parser.add_argument("--search", action="store_true",
                        help="one user's searches among 200,000 messages of 200 users")
    parser.add_argument("--json", action="store_true",
                        help="the JSON endpoints' worker CPU per request by stage, before "
                             "issue 21 and now, and two workers beside one")
    parser.add_argument("--output", help="write the results as Markdown here")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
