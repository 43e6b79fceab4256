"""Speed and memory benchmark: every impl in its own worker over a grid of shapes.

The grid spans why sampled softmax exists: a full softmax costs ``O(batch * classes)`` time and
memory, the sampled losses ``O(batch * (samples + num_true))`` plus, for the weights-based
``sampled_softmax_loss``, ``O((samples + batch) * dim)`` and a dense ``[classes, dim]`` weight
gradient.  ``grid_specs("default")`` takes a few shapes per op covering batch 64-4096, classes
10^3-10^6, samples 64-8192 and dim 64-1024 in float32 (float16/bfloat16 on one shape per op), both
modes, sized to finish on a 2-core CPU for every impl in a few minutes; ``grid_specs("full")`` is the
product of those ranges (long; meant for a GPU or a big machine).

Each impl runs in one :class:`conformance.runner.Worker` process (the worker synthesises the
inputs, see ``impls/bench.py``); the impls take turns shape by shape, and each impl's rows go to
``bench-<impl>-<device>.csv``, flushed one by one.  After the run :func:`add_ratio_to_fastest`
fills ``ratio_to_fastest`` across every bench CSV of the device in the folder.
"""
from __future__ import annotations

import csv
import itertools
import os
import tempfile
import time
from pathlib import Path

from conformance import runner
from impls import bench as worker_bench
from impls import ORACLE_IMPLS, get_adapter

COLUMNS = ["impl", "impl_version", "device", "op", "mode", "dtype", "batch", "classes", "samples", "dim",
           "num_true", "median_s", "iqr_s", "iqr_over_median", "n", "noisy", "peak_mem_bytes", "mem_method",
           "status", "message", "ratio_to_fastest"]
# The columns that name one measured configuration; ratio_to_fastest compares impls within it.
KEY_COLUMNS = ("device", "op", "mode", "dtype", "batch", "classes", "samples", "dim", "num_true")
MODES = ("forward", "forward_backward")
DEFAULT_BENCH_TIMEOUT = 600.0  # seconds for one configuration (synthesis + warm-up + timing)
# A framework's idle OpenMP threads may spin for up to 200 ms after its last call (Intel OpenMP's
# KMP_BLOCKTIME default); the next impl's warm-up and timing must not share the cores with them
# (measured: NumPy's [128, 1000] row 0.32 ms right after PyTorch's turn, 0.26 ms with this pause).
SETTLE_SECONDS = 0.2
ROUNDS = 2  # turns per shape and impl when several impls are compared (see run_bench)
# Later rounds only for calls faster than this: slower calls already spread their samples over
# seconds, and the 10^6-class shapes would otherwise take most of the grid's time.
REPEAT_ROUNDS_BELOW_SECONDS = 0.05

SWCE, SSWCE, SSL = "softmax_with_cross_entropy", "sampled_softmax_with_cross_entropy", "sampled_softmax_loss"


def _shape(op, batch, classes, samples=0, dim=0, num_true=1):
    return {"op": op, "batch": batch, "classes": classes, "samples": samples, "dim": dim, "num_true": num_true}


# The default grid: (shape, dtypes[, modes]).  Every shape runs in both modes unless it names them.
_DEFAULT_SHAPES = [
    # Full softmax, the baseline sampled softmax replaces: small, large batch, many classes.
    (_shape(SWCE, 64, 1000), ("float32",)),
    (_shape(SWCE, 4096, 1000), ("float32",)),
    (_shape(SWCE, 256, 100000), ("float32",)),
    (_shape(SWCE, 64, 10000), ("float16", "bfloat16")),
    # Paddle's logits-based sampled op: it still reads [N, K] logits and writes a dense [N, K] gradient.
    (_shape(SSWCE, 64, 10000, 64), ("float32", "float16", "bfloat16")),
    (_shape(SSWCE, 512, 100000, 1024), ("float32",)),
    (_shape(SSWCE, 4096, 10000, 512), ("float32",)),
    # TensorFlow's weights-based op: cost in (samples + batch) * dim, never batch * classes.
    (_shape(SSL, 64, 10000, 64, 64), ("float32",)),
    (_shape(SSL, 512, 10000, 512, 1024), ("float32",)),
    (_shape(SSL, 512, 100000, 1024, 256), ("float32", "float16", "bfloat16")),
    (_shape(SSL, 4096, 100000, 8192, 128), ("float32",)),
    # 10^6 classes: peak memory stays far below batch * classes * 4 bytes (4 GB here).
    (_shape(SSL, 1024, 1000000, 1024, 64), ("float32",)),
]
# The class sweep behind the report's "time against number of classes" plot: one batch, samples and
# dim, classes 10^3..10^6, the three ops side by side, forward+backward in float32.
SWEEP_BATCH, SWEEP_SAMPLES, SWEEP_DIM = 128, 512, 128
SWEEP_CLASSES = (10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6)
_DEFAULT_SHAPES += [(_shape(op, SWEEP_BATCH, k, 0 if op == SWCE else SWEEP_SAMPLES, SWEEP_DIM if op == SSL else 0),
                     ("float32",), ("forward_backward",))
                    for k in SWEEP_CLASSES for op in (SWCE, SSWCE, SSL)]

# Per-array element caps of the full grid (2^28 float32 = 1 GiB): logits [batch, classes] and
# weights [classes, dim] beyond them are left out.
FULL_MAX_ELEMENTS = 2 ** 28


def _full_shapes():
    batches, classes, samples, dims = (64, 512, 4096), (10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6), (64, 512, 8192), (64, 256, 1024)
    shapes = []
    for b, k in itertools.product(batches, classes):
        if b * k <= FULL_MAX_ELEMENTS:
            shapes.append(_shape(SWCE, b, k))
            shapes += [_shape(SSWCE, b, k, s) for s in samples if s * 4 <= k]
        shapes += [_shape(SSL, b, k, s, d) for s, d in itertools.product(samples, dims)
                   if s * 4 <= k and k * d <= FULL_MAX_ELEMENTS]
    return [(s, ("float32", "float16", "bfloat16")) for s in shapes]


def grid_specs(name="default") -> list:
    """Benchmark specs (dicts for ``impls.bench``) of a named grid, shapes in order, both modes."""
    if name == "default":
        shapes = _DEFAULT_SHAPES
    elif name == "full":
        shapes = _full_shapes()
    else:
        raise ValueError("grid: expected one of %s, got %r" % (", ".join(GRIDS), name))
    specs, seen = [], set()
    for shape, dtypes, *modes in shapes:
        for dtype in dtypes:
            for mode in (modes[0] if modes else MODES):
                spec = dict(shape, dtype=dtype, mode=mode)
                key = tuple(sorted(spec.items()))
                if key not in seen:  # the sweep may meet a shape the grid already has
                    seen.add(key)
                    specs.append(spec)
    return specs


GRIDS = ("default", "full")


def default_impls(device: str) -> list:
    """The impls benchmarked unless named: every impl of the device but the slow oracle's."""
    return [impl for impl in runner.available_impls(device) if impl not in ORACLE_IMPLS]


def bench_path(out_dir, impl: str, device: str) -> Path:
    return Path(out_dir) / ("bench-%s-%s.csv" % (impl, device))


def _row(impl, device, info, spec, reply: runner.Reply) -> dict:
    row = {key: spec[key] for key in ("op", "mode", "dtype", "batch", "classes", "samples", "dim", "num_true")}
    row.update(impl=impl, impl_version=(info or {}).get("version", ""), device=device,
               status=reply.status, message=reply.message)
    if reply.status == "ok":
        data = reply.data
        row.update({key: data.get(key) for key in ("median_s", "iqr_s", "iqr_over_median", "n", "noisy",
                                                    "peak_mem_bytes", "mem_method")})
    return row


def _pre_check(adapter, device, spec):
    """Why the impl cannot run the spec, from its declarations alone (no worker needed)."""
    return adapter.why_unsupported({"op": spec["op"], "dtype": spec["dtype"], "features": []}, device)


class _ImplBench:
    """One impl's worker and CSV during a benchmark run; rows written and flushed one by one."""

    def __init__(self, impl, device, out_dir, specs, python, timeout):
        self.impl, self.device, self.timeout = impl, device, timeout
        self.adapter = get_adapter(impl)
        self.path = bench_path(out_dir, impl, device)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.worker = runner.Worker(impl, device, python, log_dir=Path(out_dir) / "logs")
        if any(_pre_check(self.adapter, device, s) is None for s in specs):
            self.worker.start()  # fail fast, before any row, when the framework is not installed
        self.handle = open(self.path, "w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.handle, fieldnames=COLUMNS, extrasaction="ignore")
        self.writer.writeheader()
        self.handle.flush()

    def runs(self, round_index):
        """Whether this impl takes part in the round: not after an unsupported or failed round, and
        not again for calls slower than ``REPEAT_ROUNDS_BELOW_SECONDS``."""
        if round_index == 0:
            self.replies = []
            return True
        return (all(reply.status == "ok" for reply in self.replies)
                and self.replies[0].data["median_s"] < REPEAT_ROUNDS_BELOW_SECONDS)

    def run(self, spec, round_index, rounds):
        reason = _pre_check(self.adapter, self.device, spec) if round_index == 0 else None
        if reason:
            reply = runner.Reply("unsupported", reason, {})
        else:
            reply = self.worker.send({"bench": spec, "timing": _round_timing(round_index, rounds)}, self.timeout)
            if reply.status != "ok" and rounds > 1:
                reply.message = "round %d of %d: %s" % (round_index + 1, rounds, reply.message)
        self.replies.append(reply)

    def finish(self, spec):
        """Write the spec's row: its rounds' samples pooled, or the first round that failed."""
        failed = [reply for reply in self.replies if reply.status != "ok"]
        reply = failed[0] if failed else _pooled(self.replies)
        self.writer.writerow(_row(self.impl, self.device, self.worker.info, spec, reply))
        self.handle.flush()

    def close(self):
        self.worker.stop()
        self.handle.close()


def _round_timing(round_index, rounds):
    """A round's share of the worker's timing limits (``impls.bench.measure``'s ``timing``)."""
    return {"min_seconds": worker_bench.MIN_SECONDS / rounds, "max_seconds": worker_bench.MAX_SECONDS / rounds,
            "min_samples": -(-worker_bench.MIN_SAMPLES // rounds),
            "capped_min_samples": -(-worker_bench.CAPPED_MIN_SAMPLES // rounds),
            "rewarm": round_index > 0, "memory": round_index == 0}


def _pooled(replies) -> runner.Reply:
    """One reply from the ok rounds of a spec: median and IQR of all their samples together."""
    samples = [value for reply in replies for value in reply.data["samples"]]
    data = dict(replies[0].data)  # the memory of the first round
    data.update(worker_bench.summarize(samples))
    return runner.Reply("ok", "", data)


def run_bench(impls, device, out_dir, grid="default", progress=None, *, python=None,
              timeout=DEFAULT_BENCH_TIMEOUT, rounds=None) -> dict:
    """Benchmark the impls side by side (one worker process each) and fill ``ratio_to_fastest``.

    Every impl's worker stays up for the whole run and the impls take turns shape by shape, in
    ``rounds`` rounds (default ``ROUNDS`` with several impls, 1 with one; calls slower than
    ``REPEAT_ROUNDS_BELOW_SECONDS`` get one), each round timing every impl for its share of the
    worker's time limits; an impl's row pools the samples of its rounds.
    So the impls compared in a row were timed over the same few seconds, interleaved: a machine
    whose speed drifts (a shared VM) moves every impl of a shape together.  Before each turn the
    run waits ``SETTLE_SECONDS`` for the previous framework's thread pool to stop spinning.

    ``grid``: a name of :data:`GRIDS` or a list of spec dicts.  ``python``: impl -> interpreter
    (as ``conformance run --python``).  Returns impl -> CSV path, or the reason it could not start.
    """
    specs = grid_specs(grid) if isinstance(grid, str) else [dict(s) for s in grid]
    for spec in specs:  # the worker's defaults, so rows are complete; a bad spec becomes an error row there
        for key, value in worker_bench.DEFAULTS.items():
            spec.setdefault(key, value)
    overrides = python or {}
    outcome, sessions = {}, {}
    try:
        for impl in impls:
            try:
                sessions[impl] = _ImplBench(impl, device, out_dir, specs, runner.python_for(impl, overrides), timeout)
            except runner.WorkerUnavailable as error:
                outcome[impl] = str(error)
        label = "bench %s/%s" % (",".join(sessions), device)
        if rounds is None:
            rounds = ROUNDS if len(sessions) > 1 else 1
        for spec in (progress(specs, desc=label) if progress and sessions else specs):
            for round_index in range(rounds):
                for session in sessions.values():
                    if not session.runs(round_index):
                        continue
                    if len(sessions) > 1 and _pre_check(session.adapter, device, spec) is None:
                        time.sleep(SETTLE_SECONDS)
                    session.run(spec, round_index, rounds)
            for session in sessions.values():
                session.finish(spec)
    finally:
        for session in sessions.values():
            session.close()
    outcome.update({impl: session.path for impl, session in sessions.items()})
    update_ratios(out_dir, device)
    return outcome


# --------------------------------------------------------------------------------------------
# Ratio to the fastest impl
# --------------------------------------------------------------------------------------------
def _key(row):
    return tuple(str(row.get(column, "")) for column in KEY_COLUMNS)


def _seconds(row):
    if row.get("status") != "ok":
        return None
    try:
        value = float(row.get("median_s"))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def add_ratio_to_fastest(rows) -> list:
    """Rows (dicts, e.g. ``DataFrame.to_dict("records")``) with ``ratio_to_fastest`` set.

    Within each configuration (:data:`KEY_COLUMNS`: device, op, mode, dtype and shape) the ratio is
    ``median_s / min(median_s)`` over the impls whose status is ``ok``: 1.0 for the fastest, 2.0
    for twice as slow; empty for rows that did not run.
    """
    rows = [dict(row) for row in rows]
    fastest = {}
    for row in rows:
        seconds = _seconds(row)
        if seconds is not None:
            key = _key(row)
            fastest[key] = min(seconds, fastest.get(key, seconds))
    for row in rows:
        seconds = _seconds(row)
        row["ratio_to_fastest"] = seconds / fastest[_key(row)] if seconds is not None else ""
    return rows


def read_rows(path) -> list:
    with open(path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row.get("status")]


def update_ratios(out_dir, device) -> list:
    """Recompute ``ratio_to_fastest`` across every ``bench-*-<device>.csv`` in ``out_dir`` and
    rewrite those files; returns the merged rows."""
    paths = sorted(Path(out_dir).glob("bench-*-%s.csv" % device))
    per_file = {path: read_rows(path) for path in paths}
    merged = add_ratio_to_fastest([dict(row, _file=str(path)) for path, rows in per_file.items() for row in rows])
    for path in paths:
        rows = [row for row in merged if row["_file"] == str(path)]
        handle, temporary = tempfile.mkstemp(prefix=path.name, dir=str(path.parent), suffix=".tmp")
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, path)
    for row in merged:
        row.pop("_file", None)
    return merged
