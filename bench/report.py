"""The run's figures as one table (stdout) and as RESULTS.md, where each database keeps its
own section so that a SQLite and a PostgreSQL run sit side by side."""
import datetime
import os
import platform
import re

from .measure import us_per_chunk


def database_kind(url):
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


def machine(database_url, mode):
    return {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "nproc": os.cpu_count(), "python": platform.python_version(),
            "database": database_kind(database_url), "mode": mode}


def ms(seconds):
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def share(fraction):
    return f"{fraction:.0%} of a core"


def _difference(service, direct, key):
    if service[key] is None or direct[key] is None:
        return None, None
    return service[key] - direct[key], service[key] / direct[key]


def stream_rows(name, run, target_all=False):
    rows = [(name, "streams completed", f"{run['completed']}/{run['streams']}",
             f"{run['streams']}/{run['streams']}" if target_all else "",
             run["completed"] == run["streams"] if target_all else None),
            (name, "streams failed", str(run["failed"]), "0" if target_all else "",
             run["failed"] == 0 if target_all else None),
            (name, "texts exact", f"{run['exact']}/{run['completed']}", "all",
             run["exact"] == run["completed"])]
    if run["errors"]:
        rows.append((name, "errors seen", "; ".join(run["errors"]), "", None))
    return rows


def ttft_rows(name, service, direct, via="service", targets=(None, None)):
    rows = []
    for key, label, target in (("ttft_p50", "p50", targets[0]), ("ttft_p99", "p99", targets[1])):
        overhead, ratio = _difference(service, direct, key)
        rows.append((name, f"TTFT {label} {via} / direct simulator",
                     f"{ms(service[key])} / {ms(direct[key])}", "", None))
        rows.append((name, f"TTFT {label} overhead ({via} − direct), ratio",
                     f"{ms(overhead)}, ×{ratio:.2f}" if ratio else "n/a",
                     f"≤ {target * 1000:g} ms" if target else "",
                     (overhead is not None and overhead <= target) if target else None))
    return rows


def cpu_rows(name, runs):
    return [(name, f"CPU share during {label}: client, simulator",
             f"{share(run['cpu_share']['client'])}, {share(run['cpu_share']['simulator'])}",
             "≤ 80 % each", max(run["cpu_share"]["client"], run["cpu_share"]["simulator"]) <= 0.8)
            for label, run in runs.items()]


def rows_of(results):
    many, fast = results["many"], results["fast"]
    rows = [("many", "load", many["load"], "", None),
            *stream_rows("many", many["service"], target_all=True),
            *ttft_rows("many", many["service"], many["direct"], targets=(None, 0.100)),
            ("many", "worker CPU per relayed chunk",
             f"{us_per_chunk(many['service'], 'worker'):.0f} µs", "", None),
            ("many", "worker CPU, peak 1 s window", share(many["service"]["peak_cpu_share"]),
             "", None),
            ("many", "worker peak RSS", f"{many['service']['peak_rss_mb']:.0f} MB", "≤ 300 MB",
             many["service"]["peak_rss_mb"] <= 300),
            ("many", "GET /api/health p50 / p99 (probes, failures)",
             f"{ms(many['health']['p50'])} / {ms(many['health']['p99'])} "
             f"({many['health']['probes']}, {many['health']['failures']})", "p99 < 100 ms",
             many["health"]["p99"] is not None and many["health"]["p99"] < 0.1
             and not many["health"]["failures"]),
            *cpu_rows("many", {"direct": many["direct"], "service": many["service"]})]
    service_us = us_per_chunk(fast["service"], "worker")
    relay_us = us_per_chunk(fast["relay"], "relay")
    rows += [("fast", "load", fast["load"], "", None),
             *stream_rows("fast", fast["service"], target_all=True),
             *ttft_rows("fast", fast["service"], fast["direct"], targets=(0.005, 0.040)),
             ("fast", "worker CPU per relayed chunk", f"{service_us:.0f} µs", "≤ 80 µs",
              service_us <= 80),
             ("fast", "bare relay CPU per chunk; service ÷ bare",
              f"{relay_us:.0f} µs; ×{service_us / relay_us:.1f}", "≤ ×1.7",
              service_us / relay_us <= 1.7),
             *stream_rows("fast relay", fast["relay"]),
             *ttft_rows("fast relay", fast["relay"], fast["direct"], via="bare relay"),
             ("fast", "worker CPU, peak 1 s window", share(fast["service"]["peak_cpu_share"]),
              "", None),
             ("fast", "worker peak RSS", f"{fast['service']['peak_rss_mb']:.0f} MB", "", None),
             *cpu_rows("fast", {"direct": fast["direct"], "service": fast["service"],
                                "relay": fast["relay"]}),
             *long_rows(fast["long"])]
    rows += saturation_rows(results["saturation"], service_us)
    storm = results["rest"]["logins"]
    rows.append(("logins", f"GET /api/health p50 / p99 quiet → during {storm['clients']} "
                           f"concurrent logins ({storm['logins_per_s']:.1f} logins/s)",
                 f"{ms(storm['quiet']['p50'])} / {ms(storm['quiet']['p99'])} → "
                 f"{ms(storm['busy']['p50'])} / {ms(storm['busy']['p99'])}"
                 + (f", {storm['failures']} logins failed" if storm["failures"] else ""),
                 "", None))
    rest = results["rest"]
    # A page is the newest 100 of the active branch; the walk to it reads the whole branch.
    labels = [("linear", f"GET /api/messages/{{id}}, 1,000 messages in one branch "
                         f"({rest['linear']['branch']} active)"),
              ("branched", f"GET /api/messages/{{id}}, 1,000 messages in 50 branches "
                           f"({rest['branched']['branch']} active)")]
    for name, label in labels:
        figures = rest[name]
        rows.append(("json", f"{label}: req/s, p50, p99 (50 keep-alive clients)",
                     f"{figures['rps']:.0f}/s, {ms(figures['p50'])}, {ms(figures['p99'])}"
                     + (f", {figures['failures']} failed" if figures["failures"] else ""),
                     "", None))
    return rows


def long_rows(long):
    """The relaying alone: streams so long that their start and finish weigh little per
    chunk."""
    service_us = us_per_chunk(long["service"], "worker")
    relay_us = us_per_chunk(long["relay"], "relay")
    failed = long["service"]["failed"] + long["relay"]["failed"]
    return [("fast long", "load", long["load"], "", None),
            ("fast long", "worker CPU per relayed chunk; bare relay; service ÷ bare",
             f"{service_us:.0f} µs; {relay_us:.0f} µs; ×{service_us / relay_us:.1f}"
             + (f"; {failed} streams failed" if failed else ""), "", None)]


def saturation_rows(steps, service_us):
    rows = [("saturation", "estimate: 1e6 ÷ fast µs per chunk", f"{1e6 / service_us:.0f} chunks/s",
             "", None)]
    for step in steps:
        rows.append(("saturation", f"{step['streams']} streams, offered {step['offered']} chunks/s",
                     f"worker {share(step['worker_peak'])} (peak), "
                     f"{step['us_per_chunk']:.0f} µs/chunk, TTFT p99 {ms(step['ttft_p99'])}, "
                     f"{step['failed']} failed; client {step['client']:.0%}, "
                     f"simulator {step['simulator']:.0%}"
                     + (f" → stop: {step['stop']}" if "stop" in step else ""), "", None))
    last = steps[-1]
    if "stop" not in last:
        measured = f"> {last['offered']} chunks/s (never saturated within the steps)"
    elif len(steps) > 1:
        measured = (f"between {steps[-2]['offered']} and {last['offered']} chunks/s offered "
                    f"({last['stop']})")
    else:
        measured = f"≤ {last['offered']} chunks/s offered ({last['stop']})"
    rows.append(("saturation", "measured", measured, "", None))
    return rows


def _mark(met):
    return "" if met is None else ("met" if met else "NOT MET")


def table(results, meta):
    rows = rows_of(results)
    # Long values without a target (saturation steps, errors) run on past the target column.
    widths = [max(len(row[0]) for row in rows), max(len(row[1]) for row in rows),
              max(len(row[2]) for row in rows if row[3])]
    title = (f"ChatAPI bench ({meta['mode']}) {meta['date']}: {meta['nproc']} cores, "
             f"Python {meta['python']}, {meta['database']}")
    lines = [title, "=" * len(title)]
    for section, figure, value, target, met in rows:
        lines.append(f"{section:<{widths[0]}}  {figure:<{widths[1]}}  {value:<{widths[2]}}  "
                     f"{target}{'  ' + _mark(met) if met is not None else ''}".rstrip())
    lines += profile_lines(results.get("profile"))
    lines += results["warnings"]
    lines += service_log_lines(results["service_log"])
    return "\n".join(lines)


def service_log_lines(errors, markdown=False):
    if not errors:
        return []
    return ["", "most frequent errors in the service's log:",
            *((f"- `{line}`" if markdown else f"  {line}") for line in errors)]


def profile_lines(profile, markdown=False):
    if not profile:
        return []
    if "skipped" in profile:
        return ["", f"worker profile: {profile['skipped']}"]
    lines = ["", f"worker profile (cProfile in the worker, {profile['chunks']} chunks relayed, "
                 f"{profile['own_seconds']:.2f} s of own time in all; {profile['load']}). "
                 "Functions that hand over to gevent's hub (switch, wait, sleep) count the time "
                 "spent parked there, and a greenlet's cumulative time includes the time other "
                 "greenlets ran while it was switched out; own time of the rest is CPU."]
    for heading, ranked in (("own time", profile["own"]),
                            ("cumulative time", profile["cumulative"])):
        lines += ["", f"top {len(ranked)} by {heading}:"]
        if markdown:
            lines += ["", "| seconds | calls | function |", "|---:|---:|---|"]
        for function, seconds, calls in ranked:
            lines.append(f"| {seconds:.3f} | {calls} | `{function}` |" if markdown
                         else f"  {seconds:8.3f} s {calls:9d}  {function}")
    return lines


def markdown_section(results, meta):
    rows = rows_of(results)
    lines = [f"## {meta['database']}", "",
             f"{meta['date']}, {meta['mode']} run; {meta['nproc']} cores, Python "
             f"{meta['python']}, database {meta['database']}; one gunicorn gevent worker.", "",
             "| profile | figure | value | target | |", "|---|---|---|---|---|"]
    lines += [f"| {section} | {figure} | {value} | {target} | {_mark(met)} |"
              for section, figure, value, target, met in rows]
    lines += profile_lines(results.get("profile"), markdown=True)
    if results["warnings"]:
        lines += ["", *(f"- {warning}" for warning in results["warnings"])]
    lines += service_log_lines(results["service_log"], markdown=True)
    return "\n".join(lines)


HEADER = """# ChatAPI benchmark results

Written by `make bench` (`python -m bench.run`); each database's section is replaced by the
next full run on it. Loopback only; the service, the GLM simulator and the load client share
the machine's cores. Streams start spread evenly over the stated ramp.
"""


def write_markdown(path, results, meta):
    write_section(path, meta["database"], markdown_section(results, meta))


def write_section(path, name, text):
    """Replace the section between two `<!-- name -->` markers, or append it."""
    marker = f"<!-- {name} -->"
    section = f"{marker}\n{text}\n{marker}"
    old = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(marker) + ".*?" + re.escape(marker), re.S)
    new = pattern.sub(lambda _: section, old) if pattern.search(old) else (
        old.rstrip("\n") + "\n\n" + section)
    path.write_text(new + ("" if new.endswith("\n") else "\n"))
