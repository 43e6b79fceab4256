"""Speed and memory benchmark: every impl in its own worker over a grid of shapes.

The grid spans why sampled softmax exists: a full softmax costs ``O(batch * classes)`` time and
memory, the sampled losses ``O(batch * (samples + num_true))`` plus, for the weights-based op,
``O((samples + batch) * dim)``.  Each op declares its own shapes (``bench_grid`` in ``impls/ops/``);
``grid_specs("default")`` lays them out with a class sweep, ``"quick"`` takes one shape per op and
``"full"`` the product of the ranges (see :mod:`conformance.bench.grid`).

Each impl runs in one :class:`conformance.runner.Worker` process (the worker synthesises the
inputs, or loads them from the run's input store; see ``impls/bench.py``); the impls take turns
shape by shape in paired rounds, and each impl's rows go to ``bench-<impl>-<device>.csv``,
flushed one by one.  After the run ``ratio_to_fastest`` and its interval (``ratio_low``,
``ratio_high``) are filled across every bench CSV of the device in the folder.

Fairness (issue 18): while one impl is timed every other worker is stopped (``SIGSTOP``), and every
worker is asked for the same number of threads (``impls/threads.py``; each row states what its impl
used).  ``run_bench(..., repeat=N)`` runs the grid N times back to back and writes
``reproduction-<device>.csv``: whether each ratio reproduced, and rows whose runs disagree beyond
their spread marked ``reliable`` False with the reason.

The package, one concept a module:

* ``grid``: the grids, from the ops' declared shapes; ``spec_label`` names a spec;
* ``run``: :func:`run_bench`, one run of the grid over the impls' sessions;
* ``session``: one impl's worker, CSV and rounds journal during a run (``ImplBench``);
* ``rounds``: paired rounds and passes, how many and how long (the constants' reasons: docs/SPEED_NOTES.md);
* ``turns``: the ``SIGSTOP`` scheduler that stops the workers not being timed;
* ``machine``: the workers' environment (threads, allocator) and how busy the machine was (``CpuWatch``);
* ``input_store``: the run's inputs, drawn once per shape and kept on disk;
* ``rows``: the CSV columns, a reply as a row, reading and writing the CSVs and the journal;
* ``stats``: medians, their intervals, and the ratio to the fastest impl;
* ``reproduction``: repeated runs, whether their ratios reproduced, their rows combined.

The names below are this package's public face (``from conformance import bench``): those the CLI,
the report and the tests use.  A test that
changes a setting patches the module that reads it (e.g. ``bench.turns.SETTLE_SECONDS``).
"""
from conformance.bench.grid import (GRIDS, MODES, SWEEP_BATCH, SWEEP_DIM, SWEEP_SAMPLES, grid_specs, select_specs,
                                    spec_label)
from conformance.bench.machine import BUSY_SHARE, MALLOC_SETTINGS, CpuWatch, busy_line, busy_rows, worker_environment
from conformance.bench.reproduction import combine_runs, reproduction, reproduction_line, reproduction_path
from conformance.bench.rounds import (FAST_MAX_ROUNDS, MAX_ROUNDS, PASSES, QUICK_PASSES, ROUND_MIN_SAMPLES,
                                      ROUND_SECONDS, ROUNDS, SLOW_CALL_SECONDS, SLOW_MAX_ROUNDS)
from conformance.bench.rows import COLUMNS, KEY_COLUMNS, bench_path, read_journal, read_rows, read_rows_any, read_run
from conformance.bench.run import default_impls, run_bench
from conformance.bench.stats import add_ratio_to_fastest, median_interval, paired_ratio, paired_rounds, round_medians
from conformance.bench.turns import thread_states

__all__ = [
    "GRIDS", "MODES", "SWEEP_BATCH", "SWEEP_DIM", "SWEEP_SAMPLES", "grid_specs", "select_specs", "spec_label",
    "BUSY_SHARE", "MALLOC_SETTINGS", "CpuWatch", "busy_line", "busy_rows", "worker_environment",
    "combine_runs", "reproduction", "reproduction_line", "reproduction_path",
    "FAST_MAX_ROUNDS", "MAX_ROUNDS", "PASSES", "QUICK_PASSES", "ROUND_MIN_SAMPLES", "ROUND_SECONDS", "ROUNDS",
    "SLOW_CALL_SECONDS", "SLOW_MAX_ROUNDS",
    "COLUMNS", "KEY_COLUMNS", "bench_path", "read_journal", "read_rows", "read_rows_any", "read_run",
    "default_impls", "run_bench",
    "add_ratio_to_fastest", "median_interval", "paired_ratio", "paired_rounds", "round_medians",
    "thread_states",
]
