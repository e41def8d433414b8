"""The import of a big ChatGPT export, weighed (`make bench IMPORT=1`): one gunicorn gevent
worker takes a generated ~30 MB conversations.json (tests/chatgpt_exports.py) while a client
asks `/api/health` again and again on a connection of its own; the health latencies during
the import beside those of the idle worker, and the import's own time. Target: health p99
≤ 100 ms while the import runs (the parse, the checks and the batched inserts give way to
other requests every few milliseconds)."""
import os
import threading
import time

import requests

from tests.chatgpt_exports import big_export

from .servers import JWT_SECRET, start_service, stop, upgrade_database

SIZE = 30 * 1024 * 1024
IDLE_PROBES = 200
TARGET_P99_MS = 100.0


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def health_latencies(base, session, until):
    """Seconds per `/api/health`, asked one after another until `until()` is true."""
    latencies = []
    while not until():
        started = time.perf_counter()
        response = session.get(f"{base}/api/health", timeout=30)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return latencies


def account(base):
    name = f"importer{time.time_ns() % 10**9}"
    requests.post(f"{base}/api/auth/register", timeout=30, json={
        "username": name, "email": f"{name}@example.com", "password": "bench passphrase"})
    login = requests.post(f"{base}/api/auth/login", timeout=30, json={
        "username": name, "password": "bench passphrase"})
    return {"Authorization": f"Bearer {login.json()['data']['access_token']}"}


def weigh(database_url, workdir, started, log):
    env = {"DATABASE_URL": database_url, "JWT_SECRET_KEY": JWT_SECRET, "FLASK_APP": "wsgi.py",
           "REGISTER_LIMIT": "off", "LOG_LEVEL": "WARNING",
           "BENCH_PROFILE_OUTPUT": str(workdir / "worker.prof")}
    env = {**os.environ, **env}
    upgrade_database(env)
    master, _worker, port = start_service(env, workdir / "gunicorn.log")
    started.append(master)
    base = f"http://127.0.0.1:{port}"
    headers = account(base)
    log(f"import: making a {SIZE // 2**20} MiB ChatGPT export")
    body, conversations, nodes = big_export(SIZE)
    session = requests.Session()
    idle = health_latencies_n(base, session, IDLE_PROBES)
    outcome = {}

    def post():
        began = time.perf_counter()
        response = requests.post(f"{base}/api/conversations/import", data=body, timeout=600,
                                 headers={**headers, "Content-Type": "application/json"})
        outcome.update(status=response.status_code, seconds=time.perf_counter() - began,
                       ids=len(response.json().get("data", {}).get("conversations", [])))

    log(f"import: posting {len(body) / 2**20:.1f} MiB ({conversations} conversations, "
        f"{nodes} nodes) while asking /api/health")
    poster = threading.Thread(target=post)
    poster.start()
    busy = health_latencies(base, session, lambda: not poster.is_alive())
    poster.join()
    stored = sum(requests.get(f"{base}/api/conversations/?page_size=1&archived={archived}",
                              headers=headers, timeout=30).json()["data"]["total"]
                 for archived in ("false", "true"))
    stop(master)
    started.remove(master)
    return {"size": len(body), "conversations": conversations, "nodes": nodes,
            "status": outcome.get("status"), "seconds": outcome.get("seconds"),
            "returned": outcome.get("ids"), "stored": stored, "idle": idle, "busy": busy}


def health_latencies_n(base, session, count):
    asked = []
    return health_latencies(base, session, lambda: asked.append(1) or len(asked) > count)


def rows(figures):
    def ms(values, fraction):
        return f"{percentile(values, fraction) * 1000:.1f} ms"

    busy, idle = figures["busy"], figures["idle"]
    met = percentile(busy, 0.99) * 1000 <= TARGET_P99_MS
    return [
        ("file", f"{figures['size'] / 2**20:.1f} MiB, {figures['conversations']} conversations, "
                 f"{figures['nodes']} nodes with a message", ""),
        ("import answer", f"{figures['status']} in {figures['seconds']:.1f} s; "
                          f"{figures['returned']} ids, {figures['stored']} stored", ""),
        ("health while idle p50 / p99 / max",
         f"{ms(idle, 0.5)} / {ms(idle, 0.99)} / {max(idle) * 1000:.1f} ms", ""),
        (f"health during the import p50 / p99 / max ({len(busy)} requests)",
         f"{ms(busy, 0.5)} / {ms(busy, 0.99)} / {max(busy) * 1000:.1f} ms",
         f"p99 ≤ {TARGET_P99_MS:.0f} ms {'✓' if met else '✗'}"),
    ]


def table(figures):
    return "\n".join(["Import of a ChatGPT export"] + [
        f"  {name:<62} {value:<48} {target}" for name, value, target in rows(figures)])


def markdown(figures, meta):
    return "\n".join([
        f"## Import of a ChatGPT export, {meta['database']}", "",
        f"{meta['date']}; {meta['nproc']} cores, Python {meta['python']}, database "
        f"{meta['database']}. One gunicorn gevent worker; one client posts the file while "
        "another asks `/api/health` one request after another on a kept-alive connection.",
        "", "| figure | value | target |", "|---|---|---|",
        *(f"| {name} | {value} | {target} |" for name, value, target in rows(figures))])
