"""The benchmark's tables: the columns of a ``bench-<impl>-<device>.csv`` row, how a worker's reply
becomes one, and the reading and writing of those CSVs and of the rounds journal."""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from conformance import runner
from impls import bench as worker_bench

COLUMNS = ["impl", "impl_version", "device", "op", "mode", "dtype", "batch", "classes", "samples", "dim",
           "num_true", "median_s", "iqr_s", "iqr_over_median", "n", "noisy", "peak_mem_bytes", "mem_method",
           "status", "message", "ratio_to_fastest"]
# Fairness and reproducibility (issue 18): the threads each impl used, the quartiles behind the
# ratio's interval, and whether repeated runs of the grid agreed (see run_bench's ``repeat``).
COLUMNS += ["threads", "thread_settings", "q1_s", "q3_s", "ratio_low", "ratio_high", "reliable", "reliability_note"]
# The shape's first call after prepare, untimed by the samples: a compiled mode's compilation is in it.
COLUMNS += ["first_call_s"]
# Paired rounds (see run_bench): the median of each round's samples, in round order, and the run
# they belong to; ratio_to_fastest and its interval come from them (ratio_rounds: how many were paired).
COLUMNS += ["rounds", "round_medians_s", "bench_run", "ratio_rounds"]
# Whether the machine was quiet while the impl was timed (see machine.CpuWatch): the share of the CPU
# that other processes of this machine, and the hypervisor's other guests (steal), took meanwhile.
COLUMNS += ["other_cpu_share", "steal_share"]
# The NumPy contender's floor: its slowest unavoidable part, timed in the same worker (impls/numpy_floors.py).
COLUMNS += ["floor_s", "floor_part"]
# The allocator settings the worker ran with (see machine.MALLOC_SETTINGS).
COLUMNS += ["malloc"]
# How many of round_medians_s each pass through the grid took, in order (see rounds.PASSES), e.g. "3 3 4".
COLUMNS += ["pass_rounds"]
# The AVX-512 loops the worker's NumPy dispatched to ("none" without them; impls/numpy_dispatch.py):
# NumPy's float32 exp and log ran 2.2x and 3.5x as fast with them on this project's Intel VM, so the
# NumPy contender's times depend on them (the tests and the corpus pin NumPy without them).
COLUMNS += ["numpy_avx512"]
SPEC_COLUMNS = ("op", "mode", "dtype") + worker_bench.SHAPE_KEYS  # what a spec fills in
# The columns that name one measured configuration; ratio_to_fastest compares impls within it.
KEY_COLUMNS = ("device", "op", "mode", "dtype") + worker_bench.SHAPE_KEYS
# What a worker's ok reply carries into its row.
_REPLY_COLUMNS = ("median_s", "q1_s", "q3_s", "iqr_s", "iqr_over_median", "n", "noisy", "peak_mem_bytes",
                  "mem_method", "first_call_s", "floor_s", "floor_part")


def bench_path(out_dir, impl: str, device: str) -> Path:
    return Path(out_dir) / ("bench-%s-%s.csv" % (impl, device))


def result_row(impl, device, info, spec, reply: runner.Reply) -> dict:
    """A row of ``impl``'s CSV for ``spec``: its reply, and what the worker said of itself (``info``)."""
    row = {key: spec[key] for key in SPEC_COLUMNS}
    row.update(impl=impl, impl_version=(info or {}).get("version", ""), device=device,
               status=reply.status, message=reply.message)
    counts = (info or {}).get("threads") or {}
    row.update(threads=counts.get("threads"), thread_settings=counts.get("settings", ""))
    targets = (info or {}).get("numpy_avx512")
    row["numpy_avx512"] = "" if targets is None else " ".join(targets) or "none"  # "": not told
    if reply.status == "ok":
        row.update({key: reply.data.get(key) for key in _REPLY_COLUMNS})
    return row


def number(value):
    """A CSV cell as a float, or None where it holds none."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_rows_any(path) -> list:
    """Every row of a CSV as a dict (:func:`read_rows` keeps only rows with a status)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_rows(path) -> list:
    return [row for row in read_rows_any(path) if row.get("status")]


def read_run(folder, device) -> list:
    """Every bench row of one run's folder."""
    return [row for path in sorted(Path(folder).glob("bench-*-%s.csv" % device)) for row in read_rows(path)]


def write_rows(path, rows, columns):
    """Write a CSV atomically (a temporary file renamed over ``path``): never half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=path.name, dir=str(path.parent), suffix=".tmp")
    with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


# The rounds journal (``logs/rounds-<impl>-<device>.jsonl``): a line per spec and pass, its replies,
# from which ``--resume`` takes the passes an interrupted run had finished (see session.ImplBench).
def journal_path(out_dir, impl: str, device: str) -> Path:
    return Path(out_dir) / "logs" / ("rounds-%s-%s.jsonl" % (impl, device))


def journal_line(label, pass_index, run_id, replies) -> str:
    return json.dumps({"spec": label, "pass": pass_index, "run": run_id,
                       "replies": [[reply.status, reply.message, reply.data] for reply in replies]}) + "\n"


def read_journal(path) -> dict:
    """spec_label -> ``[pass 0, pass 1, ...]`` from a rounds journal, each pass ``{"run": the run that
    timed it, "replies": [runner.Reply, ...]}`` (the passes in a row from the first; a line cut short
    by an interruption is skipped)."""
    passes = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return passes
    for line in lines:
        try:
            entry = json.loads(line)
            label, pass_index, run_id = entry["spec"], int(entry["pass"]), str(entry["run"])
            replies = [runner.Reply(status, message, data) for status, message, data in entry["replies"]]
        except (ValueError, KeyError, TypeError):
            continue
        if pass_index == len(passes.setdefault(label, [])):
            passes[label].append({"run": run_id, "replies": replies})
    return passes
