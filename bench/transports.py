"""The GLM transport, weighed: the same streams through two workers that differ only in
GLM_TRANSPORT, measured in turns (A B A B ...) so that whatever else the machine is doing
falls on both alike. Worker CPU time (from /proc) per relayed chunk, not wall time."""
import os
import statistics

from .measure import us_per_chunk

TRANSPORTS = ("httptools", "httpx")


async def compare(benches, load, rounds):
    """`benches` {transport: Bench}; one warm-up run each (pools, imports, the SDK client),
    then `rounds` measured runs each, interleaved."""
    for bench in benches.values():
        await bench.service(load)
    runs = {transport: [] for transport in benches}
    # The machine's 1-minute load average around the runs: what else competed for the cores.
    busy = [os.getloadavg()[0]]
    for _ in range(rounds):
        for transport, bench in benches.items():
            runs[transport].append(await bench.service(load))
    busy.append(os.getloadavg()[0])
    return {"load": load.label, "rounds": rounds, "runs": runs, "busy": busy}


def summary(runs):
    figures = [us_per_chunk(run, "worker") for run in runs]
    return {"median": statistics.median(figures), "low": min(figures), "high": max(figures),
            "each": figures,
            "ttft_p50": statistics.median(run["ttft_p50"] for run in runs),
            "ttft_p99": statistics.median(run["ttft_p99"] for run in runs),
            "failed": sum(run["failed"] for run in runs),
            "inexact": sum(run["completed"] - run["exact"] for run in runs)}


def rows_of(comparison):
    """One row per transport, and the saving of httptools against httpx: of the medians,
    and of each round's pair (lowest, median, highest)."""
    sides = {transport: summary(runs) for transport, runs in comparison["runs"].items()}
    rows = []
    for transport, side in sides.items():
        each = ", ".join(f"{figure:.0f}" for figure in side["each"])
        rows.append((transport, f"{side['median']:.1f} µs",
                     f"{side['low']:.0f}–{side['high']:.0f} µs ({each})",
                     f"{side['ttft_p50'] * 1000:.1f} / {side['ttft_p99'] * 1000:.1f} ms",
                     f"{side['failed']} failed, {side['inexact']} inexact"))
    saving = 1 - sides["httptools"]["median"] / sides["httpx"]["median"]
    pairs = sorted(1 - ours / theirs for ours, theirs in
                   zip(sides["httptools"]["each"], sides["httpx"]["each"]))
    return rows, saving, (pairs[0], statistics.median(pairs), pairs[-1])


def saving_text(saving, pairs):
    return (f"httptools saves {saving:.1%} of httpx's worker CPU per chunk (medians); "
            f"round by round {pairs[0]:.0%} to {pairs[2]:.0%}, median {pairs[1]:.1%}")


def table(comparisons):
    return "\n".join(load_table(comparison) for comparison in comparisons)


def load_table(comparison):
    rows, saving, pairs = rows_of(comparison)
    lines = [f"GLM transport: {comparison['load']}, {comparison['rounds']} runs each, "
             "interleaved; worker CPU per relayed chunk",
             *(f"  {transport:<10} median {median:>9}  runs {spread}  TTFT p50/p99 {ttft}  "
               f"{streams}" for transport, median, spread, ttft, streams in rows),
             f"  {saving_text(saving, pairs)} (the bar to keep httptools: 20 %)",
             "  machine load average {:.1f} before, {:.1f} after".format(*comparison["busy"])]
    return "\n".join(lines)


def markdown(comparisons, meta):
    return "\n".join([
        "## GLM transport", "",
        f"{meta['date']}, {meta['mode']} run; {meta['nproc']} cores, Python {meta['python']}, "
        f"database {meta['database']}. Two gunicorn gevent workers that differ only in "
        "`GLM_TRANSPORT`; per load one warm-up run each, then runs each in turns. Worker CPU "
        "time per relayed chunk.",
        *(load_markdown(comparison) for comparison in comparisons)])


def load_markdown(comparison):
    rows, saving, pairs = rows_of(comparison)
    return "\n".join([
        "", f"### {comparison['load']}, {comparison['rounds']} runs each", "",
        "Load average of the machine {:.1f} before, {:.1f} after.".format(*comparison["busy"]),
        "",
        "| transport | median | runs (low–high, each) | TTFT p50 / p99 (medians) | streams |",
        "|---|---:|---|---|---|",
        *(f"| {transport} | {median} | {spread} | {ttft} | {streams} |"
          for transport, median, spread, ttft, streams in rows), "",
        f"{saving_text(saving, pairs)} (the bar to keep httptools: 20 %)."])
