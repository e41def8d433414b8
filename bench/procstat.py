"""CPU time and memory of processes, read from /proc (Linux only), and the open-file limit."""
import os
import resource

TICKS = os.sysconf("SC_CLK_TCK")


def raise_open_files_limit():
    """Thousands of sockets per process; children inherit the limit through exec."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces and parentheses: split after its last ")".
        return stat.read().rpartition(")")[2].split()


def cpu_seconds(pid):
    """User + system CPU time of one process so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def own_cpu_seconds():
    times = os.times()
    return times.user + times.system


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children(pid):
    """Processes whose parent is `pid` (gunicorn's workers under its master)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat_fields(entry)[1]) == pid:
                    found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


class CpuMeter:
    """CPU seconds used by several processes (and this one) between start() and stop()."""

    def __init__(self, pids):
        self.pids = dict(pids)

    def read(self):
        readings = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        readings["client"] = own_cpu_seconds()
        return readings

    def start(self):
        self.started = self.read()

    def stop(self):
        ended = self.read()
        return {name: ended[name] - self.started[name] for name in ended}
