"""One measured run: streams against one target while CPU and memory of the processes
involved are read from /proc; the run's figures as a dict."""
import asyncio
import time

from .load import run_streams
from .procstat import CpuMeter, cpu_seconds, rss_mb
from .rest import percentile

BUSY_CORE = 0.80


class Monitor:
    """Samples one process every `interval`: peak RSS, and peak CPU over a sliding second."""

    def __init__(self, pid, interval=0.1, max_samples=20_000):
        self.pid = pid
        self.interval = interval
        self.max_samples = max_samples
        self.peak_rss = 0.0
        self.peak_cpu = 0.0
        self.stopped = asyncio.Event()

    async def run(self):
        window = []
        for _ in range(self.max_samples):
            now, cpu = time.monotonic(), cpu_seconds(self.pid)
            self.peak_rss = max(self.peak_rss, rss_mb(self.pid))
            window = [(t, c) for t, c in window if now - t <= 1.0] + [(now, cpu)]
            if now - window[0][0] >= 0.5:
                self.peak_cpu = max(self.peak_cpu, (cpu - window[0][1]) / (now - window[0][0]))
            try:
                await asyncio.wait_for(self.stopped.wait(), self.interval)
                return
            except asyncio.TimeoutError:
                continue


async def measured(requests, port, kind, ramp, timeout, expected, processes, watch=None,
                   alongside=()):
    """Run the streams; `processes` {name: pid} are metered, `watch` (a pid) sampled, and
    `alongside` (objects with async run() and a `stopped` event) run for the duration."""
    meter = CpuMeter(processes)
    monitor = Monitor(watch) if watch else None
    helpers = [*alongside, *([monitor] if monitor else [])]
    tasks = [asyncio.create_task(helper.run()) for helper in helpers]
    meter.start()
    started = time.perf_counter()
    streams = await run_streams(port, requests, kind, ramp, timeout)
    wall = time.perf_counter() - started
    cpu = meter.stop()
    for helper in helpers:
        helper.stopped.set()
    await asyncio.gather(*tasks)
    return summarize(streams, expected, cpu, wall, monitor)


def summarize(streams, expected, cpu, wall, monitor):
    completed = [s for s in streams if s.error is None and s.final is not None]
    ttfts = [s.ttft for s in completed if s.ttft is not None]
    chunks = sum(len(s.deltas) for s in streams)
    errors = sorted({s.error for s in streams if s.error})
    result = {
        "streams": len(streams), "completed": len(completed),
        "failed": len(streams) - len(completed),
        "exact": sum(1 for s in completed if s.text == s.final == expected),
        "ttft_p50": percentile(ttfts, 0.50), "ttft_p99": percentile(ttfts, 0.99),
        "chunks": chunks, "wall": wall, "chunks_per_s": chunks / wall,
        "cpu": cpu, "cpu_share": {name: used / wall for name, used in cpu.items()},
        "errors": errors[:5],
    }
    if monitor:
        result["peak_rss_mb"] = monitor.peak_rss
        result["peak_cpu_share"] = monitor.peak_cpu
    return result


def us_per_chunk(result, process):
    return result["cpu"][process] / result["chunks"] * 1e6 if result["chunks"] else None


def busy_warnings(label, result, names=("client", "simulator")):
    return [f"WARNING {label}: {name} used {result['cpu_share'][name]:.0%} of a core "
            f"(> {BUSY_CORE:.0%}): it may be the bottleneck"
            for name in names if result["cpu_share"].get(name, 0) > BUSY_CORE]
