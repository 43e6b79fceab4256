"""Speed and memory benchmark: every impl in its own worker over a grid of shapes.

The grid spans why sampled softmax exists: a full softmax costs ``O(batch * classes)`` time and
memory, the sampled losses ``O(batch * (samples + num_true))`` plus, for the weights-based
``sampled_softmax_loss``, ``O((samples + batch) * dim)`` (its weight gradient is sparse, the sampled rows,
except in JAX).  ``grid_specs("default")`` takes a few shapes per op covering batch 64-4096, classes
10^3-10^6, samples 64-8192 and dim 64-1024 in float32 (float16/bfloat16 on one shape per op), both
modes (about 47 minutes a run on a 2-core CPU with 8 impls in paired rounds over six passes);
``grid_specs("full")`` is the product of those ranges (long; meant for a GPU or a big machine);
``grid_specs("quick")`` is one shape per op (the class sweep's shape at 10^4 classes, float32, both
modes): the benchmark path of a CI job, whose environments run one after the other and so cannot
compare impls fairly anyway.

Each impl runs in one :class:`conformance.runner.Worker` process (the worker synthesises the
inputs, see ``impls/bench.py``); the impls take turns shape by shape, and each impl's rows go to
``bench-<impl>-<device>.csv``, flushed one by one.  After the run :func:`add_ratio_to_fastest`
fills ``ratio_to_fastest`` and its interval (``ratio_low``, ``ratio_high``) across every bench CSV
of the device in the folder.

Fairness (issue 18): while one impl is timed every other worker is stopped (``SIGSTOP``, see
:class:`_Turns`), and every worker is asked for the same number of threads (``impls/threads.py``;
each row states what its impl used).  ``run_bench(..., repeat=N)`` runs the grid N times back to
back and writes ``reproduction-<device>.csv``: whether each ratio reproduced, and rows whose runs
disagree beyond their spread marked ``reliable`` False with the reason.
"""
from __future__ import annotations

import contextlib
import csv
import fnmatch
import itertools
import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from conformance import runner
from impls import bench as worker_bench
from impls import ORACLE_IMPLS, get_adapter
from impls import threads as worker_threads
from impls.ops import OPS
from impls.support import why_unsupported

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
# Whether the machine was quiet while the impl was timed (see CpuWatch): the share of the CPU that
# other processes of this machine, and the hypervisor's other guests (steal), took meanwhile.
COLUMNS += ["other_cpu_share", "steal_share"]
# The NumPy contender's floor: its slowest unavoidable part, timed in the same worker (impls/numpy_floors.py).
COLUMNS += ["floor_s", "floor_part"]
# The allocator settings the worker ran with (see MALLOC_SETTINGS).
COLUMNS += ["malloc"]
# How many of round_medians_s each pass through the grid took, in order (see PASSES), e.g. "3 3 4".
COLUMNS += ["pass_rounds"]
# The AVX-512 loops the worker's NumPy dispatched to ("none" without them; impls/numpy_dispatch.py):
# NumPy's float32 exp and log ran 2.2x and 3.5x as fast with them on this project's Intel VM, so the
# NumPy contender's times depend on them (the tests and the corpus pin NumPy without them).
COLUMNS += ["numpy_avx512"]
# The columns that name one measured configuration; ratio_to_fastest compares impls within it.
KEY_COLUMNS = ("device", "op", "mode", "dtype", "batch", "classes", "samples", "dim", "num_true")
MODES = ("forward", "forward_backward")
DEFAULT_BENCH_TIMEOUT = 600.0  # seconds for one configuration (synthesis + warm-up + timing)
# glibc's malloc hands a freed buffer of 128 KB to 32 MB back to the kernel, or keeps it, depending on
# what the process freed before (its dynamic mmap threshold): the same NumPy call then page-faults its
# buffers back in at every call in one process and not in another (measured on this VM: 0.66 vs 1.66
# ms for one call in two processes; a page fault costs about 2.3 us).  The frameworks bring caching
# allocators; NumPy has none.  So every worker runs with fixed thresholds under which freed memory
# (up to 1 GB at the top of the heap) is kept for the next call, whatever came before: "fixed" (the
# default; "default" runs glibc's own dynamic thresholds).  Measured with both, in the same
# benchmark (B=128, K=10^3): the frameworks' times did not move (within 7%), numpy-fast's logits-based
# sampled op went from 1.06 to 0.46 ms and its weights-based one from 1.46 to 1.04 ms.
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


# A framework's idle OpenMP threads may spin for up to 200 ms after its last call (Intel OpenMP's
# KMP_BLOCKTIME default); the next impl's warm-up and timing must not share the cores with them
# (measured: NumPy's [128, 1000] row 0.32 ms right after PyTorch's turn, 0.26 ms with this pause).
SETTLE_SECONDS = 0.2
# Paired rounds (issue 18: ratios that reproduce).  When several impls are compared, every impl is
# timed in each round of a shape, in turn, for ROUND_SECONDS (at least ROUND_MIN_SAMPLES calls, or
# one call where that is longer), and a ratio is computed round by round: the impl's round median
# over the fastest round median of that round.  A machine whose speed drifts over seconds (this
# shared 2-core VM: +-5% between 3-second blocks of the same loop) then moves the two times of a
# round together, where whole-turn medians minutes apart did not (44% of the ratios reproduced
# within 10%).
# Passes: the rounds of a shape are spread over PASSES passes through the whole grid, minutes apart.
# Why: this VM also has slow spells of a minute or two in which every impl runs 1.5-4x slower, each
# by its own factor, with no steal time and no other process (presumably a neighbour on the host
# taking memory bandwidth or cache), so the ratios of the shapes timed in one move together.  With
# all of a shape's rounds in one spell (2026-12-02: up to 19 rounds, 10-25 s a shape) a second run
# reproduced only 76% of the ratios within 10%, and the rows that did not came in streaks of
# consecutive shapes.  Spread over passes, a spell takes the rounds of one pass at most, and the
# median over the rounds outvotes them.
# In each pass a shape gets ROUNDS rounds at least; while some impl's ratio interval (over all its
# rounds so far) is wider than SETTLED_WITHIN around its ratio, more, up to MAX_ROUNDS in the pass
# (SLOW_MAX_ROUNDS where some call takes SLOW_CALL_SECONDS or more: its rounds are seconds long;
# FAST_MAX_ROUNDS where every impl's round is ROUND_SECONDS long, its calls that short).
# Six passes: a round's ratio on this VM has a log spread of about 0.15 however long the round (a
# pinned NumPy exp timed in 15-240 ms turns: 0.18-0.24; adjacent turns uncorrelated), so only more
# rounds narrow a ratio.  With three passes (18 rounds a fast shape, 9 a slow one) two runs of the
# default grid reproduced 80% of the ratios within 10%; the rounds of those runs, resampled,
# predict 86% at that count and 93% at twice the rounds (each pass also draws the shape's inputs
# and allocations anew, which resampling within runs cannot show).  The quick grid (`conformance
# all`) keeps three passes: its one shape per op is a smoke test that stays within 10 minutes.
# Fast shapes get more rounds: their rounds are cheap (ROUND_SECONDS and a turn's ~25 ms besides:
# the re-warm-up, REWARM_SECONDS, and the hand-over; about 7 of a run's 33 minutes of turns in
# 2026-12-02's grid), and their ratios reproduced worst (75-80% within 10% where the calls were
# under a millisecond).  That run's rounds (six passes of up to 6; a round's log ratio spread 0.16
# within a pass, rounds uncorrelated) reproduced 85% of the ratios within 10%.  Shorter rounds
# would not do instead: 30 ms rounds measured 15% noisier a round than 60 ms ones.
PASSES = 6
QUICK_PASSES = 3
ROUNDS = 3
MAX_ROUNDS = 6
FAST_MAX_ROUNDS = 9
SLOW_MAX_ROUNDS = 3
SLOW_CALL_SECONDS = 0.25
ROUND_SECONDS = 0.06
ROUND_MIN_SAMPLES = 3
SETTLED_WITHIN = 0.05
# The interval of a paired ratio: order statistics of the round ratios that cover their median with
# at least this probability (distribution-free; 5 rounds: the smallest and largest, 94%).
CONFIDENCE = 0.90

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
# Samples and dim only for the ops that read them (``bench_shape`` in impls/ops/).
_DEFAULT_SHAPES += [(_shape(op, SWEEP_BATCH, k, SWEEP_SAMPLES if "samples" in info.bench_shape else 0,
                            SWEEP_DIM if "dim" in info.bench_shape else 0), ("float32",), ("forward_backward",))
                    for k in SWEEP_CLASSES for op, info in OPS.items()]

# The quick grid: one shape per op, the sweep's at 10^4 classes, both modes.
_QUICK_SHAPES = [(_shape(op, SWEEP_BATCH, 10 ** 4, SWEEP_SAMPLES if "samples" in info.bench_shape else 0,
                         SWEEP_DIM if "dim" in info.bench_shape else 0), ("float32",)) for op, info in OPS.items()]

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
    elif name == "quick":
        shapes = _QUICK_SHAPES
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


GRIDS = ("default", "full", "quick")


def spec_label(spec) -> str:
    """A spec's name for ``conformance bench --shapes``, e.g.
    ``softmax_with_cross_entropy/forward/float32/batch=64/classes=1000/samples=0/dim=0/num_true=1``."""
    spec = dict(worker_bench.DEFAULTS, **spec)
    return "/".join([spec["op"], spec["mode"], spec["dtype"]]
                    + ["%s=%s" % (key, spec[key]) for key in ("batch", "classes", "samples", "dim", "num_true")])


def select_specs(specs, patterns) -> list:
    """The specs whose :func:`spec_label` matches one of the fnmatch ``patterns`` (all when none)."""
    if not patterns:
        return list(specs)
    return [spec for spec in specs if any(fnmatch.fnmatchcase(spec_label(spec), p) for p in patterns)]


def default_impls(device: str) -> list:
    """The impls benchmarked unless named: every impl of the device but the slow oracle's."""
    return [impl for impl in runner.available_impls(device) if impl not in ORACLE_IMPLS]


def bench_path(out_dir, impl: str, device: str) -> Path:
    return Path(out_dir) / ("bench-%s-%s.csv" % (impl, device))


def _row(impl, device, info, spec, reply: runner.Reply) -> dict:
    row = {key: spec[key] for key in ("op", "mode", "dtype", "batch", "classes", "samples", "dim", "num_true")}
    row.update(impl=impl, impl_version=(info or {}).get("version", ""), device=device,
               status=reply.status, message=reply.message)
    counts = (info or {}).get("threads") or {}
    row.update(threads=counts.get("threads"), thread_settings=counts.get("settings", ""))
    targets = (info or {}).get("numpy_avx512")
    row["numpy_avx512"] = "" if targets is None else " ".join(targets) or "none"  # "": not told
    if reply.status == "ok":
        data = reply.data
        row.update({key: data.get(key) for key in ("median_s", "q1_s", "q3_s", "iqr_s", "iqr_over_median", "n",
                                                    "noisy", "peak_mem_bytes", "mem_method", "first_call_s",
                                                    "floor_s", "floor_part")})
    return row


def _pre_check(adapter, device, spec):
    """Why the impl cannot run the spec, from its declarations alone (no worker needed); the worker
    asks the same question again once it has synthesised the case."""
    return why_unsupported(adapter, device, worker_bench.spec_meta(spec))


class _ImplBench:
    """One impl's worker and CSV during a benchmark run; rows written and flushed one by one.

    A shape's rounds, gathered pass by pass (see ``PASSES``), are kept in ``rounds_of`` until its
    row is written, and each pass's replies are appended to a journal (``logs/rounds-<impl>-<device>.jsonl``)
    from which ``--resume`` takes the passes an interrupted run had finished."""

    def __init__(self, impl, device, out_dir, specs, python, timeout, threads=None, malloc="fixed", resume=False):
        self.impl, self.device, self.timeout, self.malloc = impl, device, timeout, malloc
        self.adapter = get_adapter(impl)
        self.path = bench_path(out_dir, impl, device)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.worker = runner.Worker(impl, device, python, log_dir=Path(out_dir) / "logs",
                                    env=worker_environment(threads, malloc))
        if any(_pre_check(self.adapter, device, s) is None for s in specs):
            self.worker.start()  # fail fast, before any row, when the framework is not installed
        # rows of an interrupted run in this folder (``resume``), by spec_label; see keep()
        self.earlier = {spec_label(row): row for row in read_rows(self.path)} if resume and self.path.exists() else {}
        self.journal_path = Path(out_dir) / "logs" / ("rounds-%s-%s.jsonl" % (impl, device))
        self.earlier_passes = read_journal(self.journal_path) if resume else {}
        self.rounds_of = {}  # spec_label -> the replies of its rounds so far, every pass
        self.passes_of = {}  # spec_label -> how many of those rounds each pass took
        self.replies, self.pass_rounds = [], []  # the shape being timed: its lists in rounds_of, passes_of
        self.handle = self.journal = None

    def keep(self, labels, passes_done=None):
        """Start the CSV with the earlier rows of these specs (those every impl of the run has a row
        for), replacing the file in one step: a run interrupted before this loses none of them.
        ``passes_done``: spec_label -> the passes of it that every impl finished in the interrupted
        run; their replies are taken up, and the journal is started again with them alone."""
        partial = self.path.with_name(self.path.name + ".partial")
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.earlier[label] for label in labels)
        os.replace(partial, self.path)
        self.handle = open(self.path, "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.handle, fieldnames=COLUMNS, extrasaction="ignore")
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.journal_path.with_name(self.journal_path.name + ".partial")
        with open(partial, "w", encoding="utf-8") as journal:
            for label, count in (passes_done or {}).items():
                self.rounds_of[label], self.passes_of[label] = [], []
                for pass_index in range(count):
                    entry = self.earlier_passes[label][pass_index]
                    self.rounds_of[label] += entry["replies"]
                    self.passes_of[label].append(len(entry["replies"]))
                    journal.write(_journal_line(label, pass_index, entry["run"], entry["replies"]))
        os.replace(partial, self.journal_path)
        self.journal = open(self.journal_path, "a", encoding="utf-8")
        self.earlier_passes = {}  # taken up: the rest is timed again

    def begin(self, spec):
        """Make ``spec`` the shape being timed, with the rounds it has had so far."""
        self.replies = self.rounds_of.setdefault(spec_label(spec), [])
        self.pass_rounds = self.passes_of.setdefault(spec_label(spec), [])

    def runs(self, round_index):
        """Whether this impl takes part in the round: not after an unsupported or failed round."""
        if round_index == 0:
            del self.replies[:], self.pass_rounds[:]
            return True
        return self.ok()

    def ok(self) -> bool:
        return bool(self.replies) and all(reply.status == "ok" for reply in self.replies)

    def round_medians(self) -> list:
        return [reply.data["median_s"] for reply in self.replies]

    def run(self, spec, round_index, rounds, inputs=None):
        """One round; ``rounds`` is 1 for an impl timed alone (the whole budget in one turn);
        ``inputs``: the folder where the spec's inputs are stored (``impls.bench.write_inputs``)."""
        reason = _pre_check(self.adapter, self.device, spec) if round_index == 0 else None
        if reason:
            reply = runner.Reply("unsupported", reason, {})
        else:
            timing = _round_timing(round_index, rounds)
            if inputs:
                timing["inputs"] = str(inputs)
            watch = CpuWatch(self.worker)
            reply = self.worker.send({"bench": spec, "timing": timing}, self.timeout)
            if reply.data is not None:  # a timeout or crash carries no data
                reply.data["cpu_watch"] = watch.stop()
            if reply.status != "ok" and rounds > 1:
                reply.message = "round %d: %s" % (round_index + 1, reply.message)
        self.replies.append(reply)

    def record_pass(self, spec, pass_index, first_round, run_id):
        """Journal the spec's replies from round ``first_round`` on: its pass ``pass_index`` in run ``run_id``."""
        self.journal.write(_journal_line(spec_label(spec), pass_index, run_id, self.replies[first_round:]))
        self.journal.flush()
        self.pass_rounds.append(max(0, len(self.replies) - first_round))  # 0: out since an earlier round

    def finish(self, spec, run_id):
        """Write the spec's row: its rounds' samples pooled and their medians, or the first round that failed."""
        failed = [reply for reply in self.replies if reply.status != "ok"]
        reply = failed[0] if failed else _pooled(self.replies)
        row = _row(self.impl, self.device, self.worker.info, spec, reply)
        row["malloc"] = self.malloc
        if not failed:
            row.update(rounds=len(self.replies), bench_run=run_id,
                       round_medians_s=" ".join(repr(float(m)) for m in self.round_medians()),
                       pass_rounds=" ".join(str(count) for count in self.pass_rounds if count))
            row.update(CpuWatch.shares([reply.data.get("cpu_watch") for reply in self.replies]))
        self.writer.writerow(row)
        self.handle.flush()
        self.rounds_of.pop(spec_label(spec), None)
        self.passes_of.pop(spec_label(spec), None)

    def close(self):
        self.worker.stop()
        for handle in (self.handle, self.journal):
            if handle:
                handle.close()


def _journal_line(label, pass_index, run_id, replies) -> str:
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


def _kept_passes(label, sessions, passes) -> int:
    """How many of a spec's first passes (fewer than ``passes``: its rows are written in the last)
    ``--resume`` keeps from the journals: those every impl of this run has, paired (timed by one
    run, the same number of rounds for every impl that took part), with no round that failed (a
    timeout or crash is timed again, not kept)."""
    kept = 0
    while kept < passes - 1:
        entries = [session.earlier_passes.get(label, []) for session in sessions]
        entries = [found[kept] for found in entries if kept < len(found)]
        if len(entries) < len(sessions) or len({entry["run"] for entry in entries}) != 1:
            break
        replies = [entry["replies"] for entry in entries]
        if any(reply.status not in ("ok", "unsupported") for taken in replies for reply in taken):
            break
        if len({len(taken) for taken in replies if taken and taken[0].status == "ok"}) > 1:  # unsupported: 1
            break
        kept += 1
    return kept


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


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BUSY_SHARE = 0.05  # above this share of the CPU taken by others while timed, a row is flagged


def _round_timing(round_index, rounds):
    """A round's timing limits (``impls.bench.measure``'s ``timing``): the worker's own limits for an
    impl timed alone (``rounds`` 1), ``ROUND_SECONDS`` of samples in a paired round.

    A later round re-warms: one call (at least ``impls.bench.REWARM_SECONDS``) faults back in the
    pages the worker released at the end of its last turn and refills the caches, without the
    first round's warm-up to a settled time and its full garbage collection, which cost three or
    more calls a turn (1-3 s for Paddle's 1.3 s [4096, 10^5] weights-based forward) and, in a
    TensorFlow worker, 0.1-0.3 s of collection."""
    if rounds == 1:
        return {"rewarm": False, "memory": True}
    return {"min_seconds": ROUND_SECONDS, "max_seconds": ROUND_SECONDS, "min_samples": ROUND_MIN_SAMPLES,
            "capped_min_samples": 1, "rewarm": round_index > 0, "memory": round_index == 0,
            "release_memory": True}  # the worker is stopped after its turn: it keeps its live memory only


def _pooled(replies) -> runner.Reply:
    """One reply from the ok rounds of a spec: median and IQR of all their samples together."""
    samples = [value for reply in replies for value in reply.data["samples"]]
    data = dict(replies[0].data)  # the memory of the first round
    data.update(worker_bench.summarize(samples))
    return runner.Reply("ok", "", data)


def run_bench(impls, device, out_dir, grid="default", progress=None, *, python=None,
              timeout=DEFAULT_BENCH_TIMEOUT, rounds=None, threads=None, repeat=1, malloc="fixed",
              resume=False, passes=None) -> dict:
    """Benchmark the impls side by side (one worker process each) and fill ``ratio_to_fastest``.

    Every impl's worker stays up for the whole run and the impls take turns shape by shape, in
    paired rounds (see ``ROUNDS``): in each round every impl is timed for ``ROUND_SECONDS``, the
    order rotating from round to round.  The grid is gone through ``passes`` times (see ``PASSES``),
    so that a shape's rounds are minutes apart: in each pass it gets ``ROUNDS`` rounds, and more (up
    to ``MAX_ROUNDS``, ``FAST_MAX_ROUNDS`` or ``SLOW_MAX_ROUNDS``) while some ratio's interval over all its rounds so far
    is wider than ``SETTLED_WITHIN``.  An impl's row, written after the shape's last pass, pools the
    samples of its rounds (median, IQR) and keeps each round's median, from which
    :func:`add_ratio_to_fastest` takes the ratio round by round.  One impl alone is timed in one
    turn with the worker's own limits.  While one impl is timed every other worker is stopped
    (``SIGSTOP``, see :class:`_Turns`), so that no idle thread pool spins on the cores it needs;
    where processes cannot be stopped the run waits ``SETTLE_SECONDS`` before each turn instead.
    ``rounds``: a fixed number of rounds a pass instead (no more are added).  ``passes``: default
    ``PASSES``, ``QUICK_PASSES`` for the quick grid.

    ``threads``: the thread count asked of every worker (default: the machine's cores, see
    ``impls/threads.py``); each row states the count its impl used (``threads``, ``thread_settings``).
    ``malloc``: the workers' allocator settings, a key of :data:`MALLOC_SETTINGS` (stated in every row).
    ``repeat``: run the whole grid that many times back to back (each run in ``repeat-<i>/``);
    the top-level rows then combine the runs (see :func:`combine_runs`) and
    ``reproduction-<device>.csv`` says which ratios reproduced (see :func:`reproduction`).
    ``resume``: finish an interrupted run in ``out_dir`` (the same impls, grid, ``repeat`` and
    ``passes``): a spec every impl already has a row for keeps its rows; of the others, the passes
    every impl finished (the rounds journal, see :class:`_ImplBench`) are kept and the rest timed,
    every impl's rounds of a pass in one process, so that its ratios stay paired.

    ``grid``: a name of :data:`GRIDS` or a list of spec dicts.  ``python``: impl -> interpreter
    (as ``conformance run --python``).  Returns impl -> CSV path, or the reason it could not start.
    """
    specs = grid_specs(grid) if isinstance(grid, str) else [dict(s) for s in grid]
    for spec in specs:  # the worker's defaults, so rows are complete; a bad spec becomes an error row there
        for key, value in worker_bench.DEFAULTS.items():
            spec.setdefault(key, value)
    threads = threads or worker_threads.machine_cores()
    worker_environment(threads, malloc)  # a bad setting raises here, before any worker starts
    if repeat < 1:
        raise ValueError("repeat: expected >= 1, got %r" % (repeat,))
    if passes is None:
        passes = QUICK_PASSES if grid == "quick" else PASSES
    if passes < 1:
        raise ValueError("passes: expected >= 1, got %r" % (passes,))
    if repeat == 1:
        outcome = _run_grid(impls, device, out_dir, specs, progress, python, timeout, rounds, threads, malloc,
                            resume=resume, passes=passes)
        update_ratios(out_dir, device)
        return outcome
    folders = [Path(out_dir) / ("repeat-%d" % (index + 1)) for index in range(repeat)]
    for index, folder in enumerate(folders):
        label = " (run %d of %d)" % (index + 1, repeat)
        step = (lambda items, desc, label=label: progress(items, desc=desc + label)) if progress else None
        outcome = _run_grid(impls, device, folder, specs, step, python, timeout, rounds, threads, malloc,
                            resume=resume, passes=passes)
        update_ratios(folder, device)
    runs = [read_run(folder, device) for folder in folders]
    findings = reproduction(runs)
    write_rows(reproduction_path(out_dir, device), findings, reproduction_columns(repeat))
    for impl, rows in combine_runs(runs, findings).items():
        write_rows(bench_path(out_dir, impl, device), rows, COLUMNS)
    update_ratios(out_dir, device)
    return {impl: bench_path(out_dir, impl, device) if isinstance(result, Path) else result
            for impl, result in outcome.items()}


def _run_grid(impls, device, out_dir, specs, progress, python, timeout, rounds, threads, malloc,
              resume=False, passes=PASSES) -> dict:
    """One run of the specs (see :func:`run_bench`); returns impl -> CSV path or the reason it could not start."""
    overrides = python or {}
    outcome, sessions = {}, {}
    turns = _Turns(sessions)
    try:
        with turns.resumed_on_the_way_out(), _InputStore() as inputs:
            for impl in impls:
                try:
                    sessions[impl] = _ImplBench(impl, device, out_dir, specs, runner.python_for(impl, overrides),
                                                timeout, threads, malloc, resume)
                except runner.WorkerUnavailable as error:
                    outcome[impl] = str(error)
            done = [spec_label(spec) for spec in specs
                    if sessions and all(spec_label(spec) in s.earlier for s in sessions.values())]
            specs = [spec for spec in specs if spec_label(spec) not in done]
            passes = passes if len(sessions) > 1 else 1  # one impl alone: no ratios to pair
            # the passes every impl of the interrupted run had finished, per shape still to finish
            passes_done = {spec_label(spec): _kept_passes(spec_label(spec), list(sessions.values()), passes)
                           for spec in specs} if sessions else {}
            passes_done = {label: count for label, count in passes_done.items() if count > 0}
            for session in sessions.values():
                session.keep(done, passes_done)
            label = "bench %s/%s" % (",".join(sessions), device)
            if passes > 1:
                label += " (%d passes)" % passes
            run_id = "%s-%d" % (time.strftime("%Y%m%dT%H%M%S"), os.getpid())  # pairs the rows of this run
            steps = [(pass_index, spec) for pass_index in range(passes) for spec in specs
                     if pass_index >= passes_done.get(spec_label(spec), 0)]
            last_use = {_InputStore.key(spec): index for index, (_, spec) in enumerate(steps)}
            for index, (pass_index, spec) in enumerate(progress(steps, desc=label) if progress and sessions
                                                       else steps):
                timed = list(sessions.values())
                for session in timed:
                    session.begin(spec)
                first_round = max([len(session.replies) for session in timed] + [0])
                if first_round == 0 or any(session.ok() for session in timed):  # else nothing left to time
                    runnable = [s for s in timed if _pre_check(s.adapter, device, spec) is None]
                    _time_spec(timed, spec, turns, rounds, inputs.folder(spec, runnable), first_round)
                for session in timed:
                    session.record_pass(spec, pass_index, first_round, run_id)
                    if pass_index == passes - 1:
                        session.finish(spec, run_id)
                if last_use[_InputStore.key(spec)] == index:  # no later step reads these inputs
                    inputs.release(spec)
    finally:
        for session in sessions.values():
            session.close()
    outcome.update({impl: session.path for impl, session in sessions.items()})
    return outcome


def _time_spec(sessions, spec, turns, rounds=None, inputs=None, first_round=0):
    """Time one pass of a spec on every session, from round ``first_round`` on: one turn for an impl
    alone, else paired rounds (``ROUNDS`` and more while unsettled, or ``rounds``; see run_bench)."""
    alone = len(sessions) == 1
    fixed = 1 if alone else rounds
    round_index = first_round
    while True:
        order = sessions[round_index % len(sessions):] + sessions[:round_index % len(sessions)]  # rotate
        for session in order:
            if not session.runs(round_index):
                continue
            if not alone and _pre_check(session.adapter, session.device, spec) is None:
                turns.give(session)
            session.run(spec, round_index, 1 if alone else (fixed or ROUNDS), inputs)
        round_index += 1
        taken = round_index - first_round
        if fixed is not None:
            if taken >= fixed:
                return
        elif taken >= ROUNDS and (taken >= _max_rounds(sessions) or _settled(sessions)):
            return


class _InputStore:
    """The inputs of a run's specs, drawn once each (here, not by every worker) and kept on disk
    for the run's later passes; none for a spec that fewer than two workers will load (one worker
    draws them itself).  Forward and forward+backward of a shape share them.  A shape's folder goes
    after its last step (:meth:`release`), and while the kept folders take more than
    ``INPUT_STORE_BYTES`` the oldest go too: they are drawn again if needed (the same seed, the
    same inputs).  In the system's temporary folder (``TMPDIR``)."""

    def __enter__(self):
        self.root = tempfile.TemporaryDirectory(prefix="conformance-bench-")
        self.folders = {}  # key -> (folder, bytes), oldest first; folder None when it cannot be written
        self.written = 0
        return self

    def __exit__(self, *exc):
        self.root.cleanup()

    @staticmethod
    def key(spec):
        return tuple(sorted((k, v) for k, v in spec.items() if k != "mode"))

    def folder(self, spec, sessions):
        if len(sessions) < 2:
            return None
        key = self.key(spec)
        if key not in self.folders:
            self.written += 1
            folder = os.path.join(self.root.name, str(self.written))
            try:
                worker_bench.write_inputs(spec, folder)
            except (ValueError, OSError):  # a bad spec, or no room: each worker draws them (or reports the error)
                shutil.rmtree(folder, ignore_errors=True)
                folder = None
            self.folders[key] = (folder, _folder_bytes(folder))
            for old in [k for k in self.folders if k != key]:  # the oldest first
                if sum(size for _, size in self.folders.values()) <= INPUT_STORE_BYTES:
                    break
                self._drop(old)
        return self.folders[key][0]

    def release(self, spec):
        self._drop(self.key(spec))

    def _drop(self, key):
        folder, _ = self.folders.pop(key, (None, 0))
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


INPUT_STORE_BYTES = 4 << 30  # the default grid's inputs take about 3.1 GiB, the full grid's about 36 GiB


def _folder_bytes(folder) -> int:
    if not folder:
        return 0
    return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())


def _max_rounds(sessions) -> int:
    """``MAX_ROUNDS``; ``SLOW_MAX_ROUNDS`` where some impl's calls take ``SLOW_CALL_SECONDS`` or more;
    ``FAST_MAX_ROUNDS`` where every impl's round is ``ROUND_SECONDS`` long (``ROUND_MIN_SAMPLES``
    of its calls take no longer)."""
    medians = [min(session.round_medians()) for session in sessions if session.ok()]
    slowest = max(medians) if medians else 0.0
    if slowest >= SLOW_CALL_SECONDS:
        return SLOW_MAX_ROUNDS
    return FAST_MAX_ROUNDS if slowest * ROUND_MIN_SAMPLES <= ROUND_SECONDS else MAX_ROUNDS


def _settled(sessions) -> bool:
    """Whether every timed impl's ratio interval lies within ``SETTLED_WITHIN`` of its ratio."""
    timed = {session.impl: session.round_medians() for session in sessions if session.ok()}
    if len(timed) < 2:
        return True
    for ratio, low, high in paired_ratios(timed).values():
        if high > ratio * (1 + SETTLED_WITHIN) or low < ratio / (1 + SETTLED_WITHIN):
            return False
    return True


# --------------------------------------------------------------------------------------------
# Fair machine share: while one impl is timed, every other worker is stopped
# --------------------------------------------------------------------------------------------
# Why: an idle framework's thread pool may spin for as long as its runtime likes (OpenMP's
# KMP_BLOCKTIME / GOMP_SPINCOUNT); on a 2-core machine such spinning took a time slice from every
# call of the impl being timed (issue 18: PyTorch's [64, 10^3] forward read 15.98 ms with an IQR
# of 0.7% in one run, 0.033 ms in the next).  A stopped process cannot spin.
PAUSE_IDLE_WORKERS = hasattr(signal, "SIGSTOP") and hasattr(os, "killpg")
STOP_CONFIRM_SECONDS = 2.0  # how long to wait for /proc to show every thread of a worker stopped


def thread_states(pid) -> list:
    """The scheduler state letter of every thread of ``pid`` (``/proc/<pid>/task/*/stat``):
    ``T`` stopped, ``R`` running, ``S`` sleeping...; empty where /proc cannot tell (or it is gone)."""
    states = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return states
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, task)) as handle:
                text = handle.read()
        except OSError:
            continue  # the thread ended meanwhile
        states.append(text[text.rindex(")") + 2])  # the name in parentheses may hold spaces
    return states


def _signal_worker(worker, signum) -> bool:
    """Send ``signum`` to the worker's process group (its own session, see ``runner.Worker.start``)."""
    process = worker.process
    if process is None or process.poll() is not None:
        return False
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class _Turns:
    """Whose turn it is: that impl's worker runs, every other worker of the run is stopped.

    ``give(session)`` stops the others (``SIGSTOP`` to each process group, confirmed through /proc
    before the turn starts) and resumes the session's own worker (``SIGCONT``).  A stopped worker
    answers nothing, so only the worker whose turn it is is ever sent a request; one killed after a
    timeout (``SIGKILL`` ends a stopped process too) restarts running.  ``resumed_on_the_way_out``
    resumes every worker however the run ends: normally, on an exception, on Ctrl-C, or on
    ``SIGTERM`` (turned into ``SystemExit`` while the run lasts).  Only a ``SIGKILL`` of this
    process would leave stopped workers behind.
    """

    def __init__(self, sessions: dict):
        self.sessions = sessions
        self.stopped = set()

    def give(self, session):
        if not PAUSE_IDLE_WORKERS:
            time.sleep(SETTLE_SECONDS)  # the best one can do: let the last framework's spinning end
            return
        for other in self.sessions.values():
            # One already stopped stays stopped: only the worker whose turn it is is ever sent a
            # request, resumed, or killed and restarted after a timeout.
            if other is session or other in self.stopped:
                continue
            if _signal_worker(other.worker, signal.SIGSTOP):
                self.stopped.add(other)
                _confirm_stopped(other.worker)
        if session in self.stopped:
            _signal_worker(session.worker, signal.SIGCONT)
            self.stopped.discard(session)

    def resume_all(self):
        for session in list(self.stopped):
            _signal_worker(session.worker, signal.SIGCONT)
        self.stopped.clear()

    @contextlib.contextmanager
    def resumed_on_the_way_out(self):
        previous = None
        if PAUSE_IDLE_WORKERS and threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            yield self
        finally:
            self.resume_all()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the finally clauses that resume and stop workers


def _confirm_stopped(worker):
    """Wait until every thread of the worker shows ``T`` (a signal is delivered asynchronously)."""
    process = worker.process
    deadline = time.monotonic() + STOP_CONFIRM_SECONDS
    while process is not None and time.monotonic() < deadline:
        states = thread_states(process.pid)
        if not states or all(state in "Tt" for state in states) or process.poll() is not None:
            return
        time.sleep(0.001)


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


def _quartile(row, column):
    try:
        value = float(row.get(column))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def median_interval(values, confidence=CONFIDENCE):
    """``(median, low, high)`` of ``values``: ``low`` .. ``high`` are the order statistics
    ``x(j)`` .. ``x(n+1-j)`` with the largest ``j`` whose interval covers the population median with
    at least ``confidence`` (probability ``1 - 2 P(Binomial(n, 1/2) <= j - 1)``, whatever the
    distribution); the smallest and the largest value where no ``j`` reaches it (fewer than 5 values)."""
    values = sorted(float(v) for v in values)
    n = len(values)
    j = 1
    while j + 1 <= (n + 1) // 2 and 1 - 2 * sum(math.comb(n, i) for i in range(j + 1)) / 2.0 ** n >= confidence:
        j += 1
    return float(np.median(values)), values[j - 1], values[n - j]


def paired_ratio(mine, others) -> tuple:
    """``(ratio, low, high)``: round by round, ``mine``'s median over the fastest of ``others``
    (lists of round medians, rounds aligned); the median over the rounds, and its interval
    (:func:`median_interval`).  ``others`` may include ``mine``."""
    rounds = len(mine)
    if rounds == 0 or any(len(other) != rounds for other in others):
        raise ValueError("paired_ratio: every impl needs the same rounds, got %s"
                         % ([len(mine)] + [len(other) for other in others]))
    return median_interval([mine[r] / min(other[r] for other in others) for r in range(rounds)])


def paired_ratios(round_medians: dict) -> dict:
    """impl -> ``(ratio, low, high)`` to the fastest of the impls, from their aligned round medians."""
    others = list(round_medians.values())
    return {impl: paired_ratio(medians, others) for impl, medians in round_medians.items()}


def round_medians(row) -> list:
    """A row's round medians (empty for rows written before rounds were kept, or failed ones)."""
    text = row.get("round_medians_s")
    if not isinstance(text, str) or not text.strip():
        return []
    return [float(value) for value in text.split()]


def paired_rounds(rows):
    """The rows' round medians when their ratios can be paired round by round (every row of the same
    run, ``bench_run``, with the same number of rounds, more than one), else None."""
    medians = [round_medians(row) for row in rows]
    runs = {str(row.get("bench_run", "")) for row in rows}
    if (len(runs) == 1 and runs.pop() not in ("", "nan") and len({len(m) for m in medians}) == 1
            and len(medians[0]) > 1):
        return medians
    return None


def add_ratio_to_fastest(rows) -> list:
    """Rows (dicts, e.g. ``DataFrame.to_dict("records")``) with ``ratio_to_fastest`` set.

    Within each configuration (:data:`KEY_COLUMNS`: device, op, mode, dtype and shape), over the
    impls whose status is ``ok``: 1.0 for the fastest, 2.0 for twice as slow; empty for rows that
    did not run.

    Where every such row of the configuration comes from the same run (``bench_run``) with the same
    number of rounds, the ratio is paired (:func:`paired_ratio`, ``ratio_rounds`` = the rounds):
    the median over the rounds of the impl's round median over that round's fastest, and
    ``ratio_low`` .. ``ratio_high`` a distribution-free confidence interval of it
    (:func:`median_interval`, ``CONFIDENCE``).  Otherwise (rows of separate runs, an impl timed
    alone, older rows) it is ``median_s / min(median_s)`` and its spread the ratio of the
    interquartile bounds, ``q1_s / q3_s(fastest)`` .. ``q3_s / q1_s(fastest)`` (``ratio_rounds`` 0):
    impls timed at different times share no drift to cancel, and a bootstrap interval of their
    medians would claim a precision repeated runs did not show.
    """
    rows = [dict(row) for row in rows]
    groups = {}
    for row in rows:
        row["ratio_to_fastest"] = row["ratio_low"] = row["ratio_high"] = row["ratio_rounds"] = ""
        if _seconds(row) is not None:
            groups.setdefault(_key(row), []).append(row)
    for group in groups.values():
        medians = paired_rounds(group)
        if medians is not None:
            for row, mine in zip(group, medians):
                ratio, low, high = paired_ratio(mine, medians)
                row.update(ratio_to_fastest=ratio, ratio_low=low, ratio_high=high, ratio_rounds=len(mine))
            continue
        best = min(group, key=_seconds)
        for row in group:
            row.update(ratio_to_fastest=_seconds(row) / _seconds(best), ratio_rounds=0)
            quartiles = [_quartile(row, "q1_s"), _quartile(row, "q3_s")]
            best_q1, best_q3 = _quartile(best, "q1_s"), _quartile(best, "q3_s")
            if None not in quartiles and best_q1 is not None and best_q3 is not None:
                row["ratio_low"], row["ratio_high"] = quartiles[0] / best_q3, quartiles[1] / best_q1
    return rows


def read_rows(path) -> list:
    return [row for row in read_rows_any(path) if row.get("status")]


def update_ratios(out_dir, device) -> list:
    """Recompute ``ratio_to_fastest`` across every ``bench-*-<device>.csv`` in ``out_dir`` and
    rewrite those files; returns the merged rows."""
    paths = sorted(Path(out_dir).glob("bench-*-%s.csv" % device))
    per_file = {path: read_rows(path) for path in paths}
    merged = add_ratio_to_fastest([dict(row, _file=str(path)) for path, rows in per_file.items() for row in rows])
    for path in paths:
        write_rows(path, [row for row in merged if row["_file"] == str(path)], COLUMNS)
    for row in merged:
        row.pop("_file", None)
    return merged


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


# --------------------------------------------------------------------------------------------
# Reproduction: the grid run several times back to back (``run_bench(..., repeat=N)``)
# --------------------------------------------------------------------------------------------
REPRODUCE_WITHIN = (0.10, 0.25)  # the two yardsticks: max ratio / min ratio - 1 across runs
ROW_COLUMNS = ("impl",) + KEY_COLUMNS  # one row of the reproduction table: an impl in a configuration


def reproduction_path(out_dir, device) -> Path:
    # Not "bench-...": the report reads every bench-*.csv as benchmark rows.
    return Path(out_dir) / ("reproduction-%s.csv" % device)


def reproduction_columns(runs: int) -> list:
    per_run = ["%s_run%d" % (name, index + 1) for index in range(runs)
               for name in ("status", "ratio", "ratio_low", "ratio_high")]
    return (list(ROW_COLUMNS) + per_run + ["ratio_spread"]
            + ["within_%d%%" % round(100 * share) for share in REPRODUCE_WITHIN] + ["reliable", "reliability_note"])


def read_run(folder, device) -> list:
    """Every bench row of one run's folder (ratios already filled by :func:`update_ratios`)."""
    return [row for path in sorted(Path(folder).glob("bench-*-%s.csv" % device)) for row in read_rows(path)]


def _row_key(row):
    return tuple(str(row.get(column, "")) for column in ROW_COLUMNS)


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def reproduction(runs: list) -> list:
    """One row per impl and configuration: its ratio to the fastest in each run, and whether it reproduced.

    ``ratio_spread`` is ``max / min - 1`` over the runs' ratios; ``within_10%`` / ``within_25%``
    compare it with :data:`REPRODUCE_WITHIN`.  ``reliable`` is False when the runs disagree beyond
    their spread (their ``ratio_low`` .. ``ratio_high`` intervals do not all overlap) or when the
    impl ran in some runs and failed in others, True when every run measured it and the intervals
    overlap, empty when no run measured it; ``reliability_note`` says why.
    """
    by_key = [{_row_key(row): row for row in run} for run in runs]
    findings = []
    for key in dict.fromkeys(key for run in by_key for key in run):  # first-seen order
        rows = [run.get(key, {}) for run in by_key]
        out = dict(zip(ROW_COLUMNS, key))
        for index, row in enumerate(rows):
            out.update({"status_run%d" % (index + 1): row.get("status", "missing"),
                        "ratio_run%d" % (index + 1): row.get("ratio_to_fastest", ""),
                        "ratio_low_run%d" % (index + 1): row.get("ratio_low", ""),
                        "ratio_high_run%d" % (index + 1): row.get("ratio_high", "")})
        out.update(_agreement(rows))
        findings.append(out)
    return findings


def _agreement(rows) -> dict:
    statuses = [row.get("status", "missing") for row in rows]
    ratios = [_float(row.get("ratio_to_fastest")) for row in rows]
    if all(ratio is None for ratio in ratios):
        return {"reliable": "", "reliability_note": "not measured (%s)" % ", ".join(sorted(set(statuses)))}
    if None in ratios:
        return {"reliable": False, "reliability_note": "measured in some runs only: status %s"
                % ", ".join("%s in run %d" % (status, index + 1) for index, status in enumerate(statuses))}
    spread = max(ratios) / min(ratios) - 1
    out = {"ratio_spread": spread}
    out.update({"within_%d%%" % round(100 * share): spread <= share for share in REPRODUCE_WITHIN})
    lows = [_float(row.get("ratio_low")) for row in rows]
    highs = [_float(row.get("ratio_high")) for row in rows]
    if None in lows or None in highs:
        out.update(reliable="", reliability_note="no interquartile interval to compare")
    elif max(lows) > min(highs):
        out.update(reliable=False, reliability_note="runs disagree beyond their spread: ratio %s"
                   % "; ".join("%.3g [%.3g, %.3g] in run %d" % (ratio, low, high, index + 1)
                               for index, (ratio, low, high) in enumerate(zip(ratios, lows, highs))))
    else:
        out.update(reliable=True, reliability_note="")
    return out


def combine_runs(runs: list, findings: list) -> dict:
    """impl -> its top-level rows from several runs of the grid, ``reliable`` from ``findings``.

    A configuration measured in every run gets the median of the runs' medians, the lowest first
    and the highest third quartile, the summed sample count, the largest peak memory, ``noisy``
    recomputed from that spread, and the runs' round medians one after the other (so its ratio is
    paired over the rounds of every run); one that failed in some run gets that run's row (status
    and message), as a failed round does.
    """
    verdicts = {_row_key(row): row for row in findings}
    by_key = [{_row_key(row): row for row in run} for run in runs]
    combined = {}
    for key, verdict in verdicts.items():
        rows = [run[key] for run in by_key if key in run]
        failed = [(index, row) for index, row in enumerate(rows) if row.get("status") != "ok"]
        if failed:
            index, row = failed[0]
            row = dict(row, message="run %d of %d: %s" % (index + 1, len(runs), row.get("message", "")))
        else:
            row = dict(rows[0])
            median = float(np.median([float(r["median_s"]) for r in rows]))
            q1, q3 = min(float(r["q1_s"]) for r in rows), max(float(r["q3_s"]) for r in rows)
            peaks = [int(r["peak_mem_bytes"]) for r in rows if r.get("peak_mem_bytes") not in (None, "")]
            row.update(median_s=median, q1_s=q1, q3_s=q3, iqr_s=q3 - q1, iqr_over_median=(q3 - q1) / median,
                       n=sum(int(r["n"]) for r in rows), noisy=(q3 - q1) / median > worker_bench.NOISY_IQR_OVER_MEDIAN,
                       peak_mem_bytes=max(peaks) if peaks else "",
                       # a run on a busy machine stays flagged in the combined row
                       other_cpu_share=_largest(r.get("other_cpu_share") for r in rows),
                       steal_share=_largest(r.get("steal_share") for r in rows),
                       rounds=sum(len(round_medians(r)) for r in rows),
                       round_medians_s=" ".join(repr(m) for r in rows for m in round_medians(r)),
                       pass_rounds=" ".join(str(r.get("pass_rounds") or len(round_medians(r))) for r in rows),
                       bench_run="+".join(str(r.get("bench_run", "")) for r in rows),
                       **_combined_floor(rows))
        row.update(reliable=verdict["reliable"], reliability_note=verdict["reliability_note"])
        combined.setdefault(key[0], []).append(row)
    return combined


def _combined_floor(rows) -> dict:
    """The contender's floor over several runs: the median of the runs' measured floors (it is timed
    once per run and shape, so it moves between runs as the impl's own time does), the slowest part
    named as each run found it; rows without a floor (every impl but the contender) keep none."""
    floors = [(_float(r.get("floor_s")), str(r.get("floor_part", ""))) for r in rows]
    measured = [(value, part) for value, part in floors if value is not None and not np.isnan(value)]
    if not measured:
        return {}
    parts = sorted({part for _, part in measured})
    return {"floor_s": float(np.median([value for value, _ in measured])), "floor_part": " or ".join(parts)}


def _largest(values):
    numbers = [_float(value) for value in values]
    numbers = [number for number in numbers if number is not None]
    return max(numbers) if numbers else ""


def busy_rows(rows) -> list:
    """The ok rows timed while other processes took more than ``BUSY_SHARE`` of the CPU."""
    return [row for row in rows if row.get("status") == "ok"
            and (_float(row.get("other_cpu_share")) or 0.0) > BUSY_SHARE]


def busy_line(rows) -> str:
    """A warning when some rows were timed on a busy machine, else an empty string."""
    busy = busy_rows(rows)
    if not busy:
        return ""
    timed = sum(row.get("status") == "ok" for row in rows)
    worst = max(_float(row.get("other_cpu_share")) for row in busy)
    return ("warning: %d of %d timed rows were timed while other processes took more than %d%% of the CPU "
            "(up to %.0f%%): their times and ratios are not this code's alone; rerun on an idle machine"
            % (len(busy), timed, round(100 * BUSY_SHARE), 100 * worst))


def reproduction_line(out_dir, device) -> str:
    """The reproduction figures of ``reproduction-<device>.csv`` in one line."""
    path = reproduction_path(out_dir, device)
    rows = read_rows_any(path)
    measured = [row for row in rows if row.get("ratio_spread") not in (None, "")]
    shares = ", ".join("%d within ±%d%% (%s)" % (count, round(100 * share), _percent(count, len(measured)))
                       for share in REPRODUCE_WITHIN
                       for count in [sum(row["within_%d%%" % round(100 * share)] == "True" for row in measured)])
    unreliable = sum(row.get("reliable") == "False" for row in rows)
    return ("reproduction over %d runs: of %d rows measured in every run, %s; %d rows marked unreliable; %s"
            % (sum(1 for column in (rows[0] if rows else {}) if column.startswith("ratio_run")), len(measured),
               shares, unreliable, path))


def _percent(count, total):
    return "%.0f%%" % (100.0 * count / total) if total else "n/a"


def read_rows_any(path) -> list:
    """Every row of a CSV as a dict (:func:`read_rows` keeps only rows with a status)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
