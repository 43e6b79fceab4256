"""The machine a benchmark runs on: the environment every worker gets (threads, allocator) and how
busy the rest of the machine was while an impl was timed (Linux /proc)."""
from __future__ import annotations

import os

from conformance.bench.rows import number
from impls import threads as worker_threads

# glibc's malloc gives a freed buffer of 128 KB to 32 MB back to the kernel or keeps it, depending on
# what the process freed before (its dynamic mmap threshold), so the same NumPy call page-faults its
# buffers in at every call in one process and not in another.  The frameworks bring caching
# allocators; NumPy has none.  "fixed" (the default) keeps freed memory (up to 1 GB at the top of
# the heap) for the next call whatever came before; "default" runs glibc's own dynamic thresholds.
# The measurements behind it: docs/SPEED_NOTES.md, "Page faults".
MALLOC_SETTINGS = {
    "fixed": "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824"
             ":glibc.malloc.top_pad=67108864",
    "default": "",
}


def worker_environment(threads, malloc="fixed") -> dict:
    """The environment a benchmark worker adds to ours: its thread counts and allocator settings."""
    if malloc not in MALLOC_SETTINGS:
        raise ValueError("malloc: expected one of %s, got %r" % (", ".join(MALLOC_SETTINGS), malloc))
    env = worker_threads.environment(threads) if threads else {}
    tunables = MALLOC_SETTINGS[malloc]
    if tunables:  # after the caller's own tunables, so that ours win for the same names
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [os.environ.get("GLIBC_TUNABLES", ""), tunables]))
    return env


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BUSY_SHARE = 0.05  # above this share of the CPU taken by others while timed, a row is flagged


class CpuWatch:
    """The CPU time this machine spent outside the timed worker while it was timed (Linux /proc).

    ``/proc/stat`` counts every core's busy and stolen time; the worker's own threads
    (``/proc/<pid>/stat``) and this orchestrating process (``os.times``) are subtracted, so what is
    left is other processes (a build, another benchmark, a browser) and the kernel's own threads.
    A benchmark timed while they ran is not what it says (issue 18: another framework's spinning
    thread pool made a 0.033 ms call read 16 ms); the rows say how much there was, and the report
    flags rows above ``BUSY_SHARE``.  In clock ticks (10 ms), so one short round says little; a
    row sums all its rounds.  Empty where /proc is missing.
    """

    def __init__(self, worker):
        self.pid = worker.process.pid if worker.process is not None else None
        self.start = self._snapshot()

    def _snapshot(self):
        try:
            with open("/proc/stat") as handle:
                fields = [int(v) for v in handle.readline().split()[1:]]
            own = sum(os.times()[:2]) * _CLOCK_TICKS
            if self.pid is not None:
                with open("/proc/%d/stat" % self.pid) as handle:
                    stat = handle.read().rsplit(")", 1)[1].split()
                own += int(stat[11]) + int(stat[12])  # utime, stime: every thread of the worker
        except (OSError, ValueError, IndexError):
            return None
        user, nice, system, idle, iowait, irq, softirq = fields[:7]
        steal = fields[7] if len(fields) > 7 else 0
        return {"busy": user + nice + system + irq + softirq, "steal": steal, "own": own,
                "all": user + nice + system + idle + iowait + irq + softirq + steal}

    def stop(self):
        end = self._snapshot()
        if self.start is None or end is None:
            return None
        return {key: end[key] - self.start[key] for key in end}

    @staticmethod
    def shares(watches) -> dict:
        """``other_cpu_share`` and ``steal_share`` over several watched turns (empty when unknown)."""
        if not watches or any(w is None for w in watches):
            return {"other_cpu_share": "", "steal_share": ""}
        total = sum(w["all"] for w in watches)
        if total <= 0:
            return {"other_cpu_share": "", "steal_share": ""}
        other = max(0.0, sum(w["busy"] - w["own"] for w in watches))
        return {"other_cpu_share": other / total, "steal_share": sum(w["steal"] for w in watches) / total}


def busy_rows(rows) -> list:
    """The ok rows timed while other processes took more than ``BUSY_SHARE`` of the CPU."""
    return [row for row in rows if row.get("status") == "ok"
            and (number(row.get("other_cpu_share")) or 0.0) > BUSY_SHARE]


def busy_line(rows) -> str:
    """A warning when some rows were timed on a busy machine, else an empty string."""
    busy = busy_rows(rows)
    if not busy:
        return ""
    timed = sum(row.get("status") == "ok" for row in rows)
    worst = max(number(row.get("other_cpu_share")) for row in busy)
    return ("warning: %d of %d timed rows were timed while other processes took more than %d%% of the CPU "
            "(up to %.0f%%): their times and ratios are not this code's alone; rerun on an idle machine"
            % (len(busy), timed, round(100 * BUSY_SHARE), 100 * worst))
