"""A benchmark run: every impl's worker up side by side, the grid gone through pass by pass."""
from __future__ import annotations

import os
import time
from pathlib import Path

from conformance import runner
from conformance.bench.grid import grid_specs, spec_label
from conformance.bench.input_store import InputStore
from conformance.bench.machine import worker_environment
from conformance.bench.reproduction import combine_runs, reproduction, reproduction_columns, reproduction_path
from conformance.bench.rounds import PASSES, QUICK_PASSES, time_spec
from conformance.bench.rows import COLUMNS, bench_path, read_run, write_rows
from conformance.bench.session import ImplBench, kept_passes
from conformance.bench.stats import update_ratios
from conformance.bench.turns import Turns
from impls import ORACLE_IMPLS
from impls import bench as worker_bench
from impls import threads as worker_threads

DEFAULT_BENCH_TIMEOUT = 600.0  # seconds for one configuration (synthesis + warm-up + timing)


def default_impls(device: str) -> list:
    """The impls benchmarked unless named: every impl of the device but the slow oracle's."""
    return [impl for impl in runner.available_impls(device) if impl not in ORACLE_IMPLS]


def run_bench(impls, device, out_dir, grid="default", progress=None, *, python=None,
              timeout=DEFAULT_BENCH_TIMEOUT, rounds=None, threads=None, repeat=1, malloc="fixed",
              resume=False, passes=None) -> dict:
    """Benchmark the impls side by side (one worker process each) and fill ``ratio_to_fastest``.

    Every impl's worker stays up for the whole run and the impls take turns shape by shape, in
    paired rounds (see :mod:`conformance.bench.rounds`): in each round every impl is timed for
    ``ROUND_SECONDS``, the order rotating from round to round.  The grid is gone through ``passes``
    times (default ``PASSES``, ``QUICK_PASSES`` for the quick grid), so that a shape's rounds are
    minutes apart: in each pass it gets ``ROUNDS`` rounds, and more while some ratio's interval over
    all its rounds so far is wider than ``SETTLED_WITHIN``.  An impl's row, written after the
    shape's last pass, pools the samples of its rounds (median, IQR) and keeps each round's median,
    from which :func:`~conformance.bench.stats.add_ratio_to_fastest` takes the ratio round by round.
    One impl alone is timed in one turn with the worker's own limits.  While one impl is timed every
    other worker is stopped (:class:`~conformance.bench.turns.Turns`).  ``rounds``: a fixed number
    of rounds a pass instead (no more are added).

    ``threads``: the thread count asked of every worker (default: the machine's cores, see
    ``impls/threads.py``); each row states the count its impl used (``threads``, ``thread_settings``).
    ``malloc``: the workers' allocator settings, a key of ``MALLOC_SETTINGS`` (stated in every row).
    ``repeat``: run the whole grid that many times back to back (each run in ``repeat-<i>/``);
    the top-level rows then combine the runs (see :func:`combine_runs`) and
    ``reproduction-<device>.csv`` says which ratios reproduced (see :func:`reproduction`).
    ``resume``: finish an interrupted run in ``out_dir`` (the same impls, grid, ``repeat`` and
    ``passes``): a spec every impl already has a row for keeps its rows; of the others, the passes
    every impl finished (the rounds journal, see :class:`ImplBench`) are kept and the rest timed,
    every impl's rounds of a pass in one process, so that its ratios stay paired.

    ``grid``: a name of ``GRIDS`` or a list of spec dicts.  ``python``: impl -> interpreter
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
    settings = dict(python=python, timeout=timeout, rounds=rounds, threads=threads, malloc=malloc,
                    resume=resume, passes=passes)
    folders = [Path(out_dir)]
    if repeat > 1:
        folders = [Path(out_dir) / ("repeat-%d" % (index + 1)) for index in range(repeat)]
    for index, folder in enumerate(folders):
        step = _labelled(progress, " (run %d of %d)" % (index + 1, repeat)) if progress and repeat > 1 else progress
        outcome = _run_grid(impls, device, folder, specs, step, **settings)
        update_ratios(folder, device)
    if repeat == 1:
        return outcome
    runs = [read_run(folder, device) for folder in folders]
    findings = reproduction(runs)
    write_rows(reproduction_path(out_dir, device), findings, reproduction_columns(repeat))
    for impl, rows in combine_runs(runs, findings).items():
        write_rows(bench_path(out_dir, impl, device), rows, COLUMNS)
    update_ratios(out_dir, device)
    return {impl: bench_path(out_dir, impl, device) if isinstance(result, Path) else result
            for impl, result in outcome.items()}


def _labelled(progress, suffix):
    """``progress`` with ``suffix`` added to every description."""
    return lambda items, desc: progress(items, desc=desc + suffix)


def _run_grid(impls, device, out_dir, specs, progress, *, python, timeout, rounds, threads, malloc,
              resume, passes) -> dict:
    """One run of the specs (see :func:`run_bench`); returns impl -> CSV path or the reason it could not start."""
    outcome, sessions = {}, {}
    turns = Turns(sessions)
    try:
        with turns.resumed_on_the_way_out(), InputStore() as inputs:
            for impl in impls:
                try:
                    sessions[impl] = ImplBench(impl, device, out_dir, specs, runner.python_for(impl, python or {}),
                                               timeout, threads, malloc, resume)
                except runner.WorkerUnavailable as error:
                    outcome[impl] = str(error)
            timed = list(sessions.values())
            passes = passes if len(timed) > 1 else 1  # one impl alone: no ratios to pair
            specs, passes_done = _start_from_earlier(timed, specs, passes)
            label = "bench %s/%s" % (",".join(sessions), device) + (" (%d passes)" % passes if passes > 1 else "")
            run_id = "%s-%d" % (time.strftime("%Y%m%dT%H%M%S"), os.getpid())  # pairs the rows of this run
            steps = [(pass_index, spec) for pass_index in range(passes) for spec in specs
                     if pass_index >= passes_done.get(spec_label(spec), 0)]
            last_use = {InputStore.key(spec): index for index, (_, spec) in enumerate(steps)}
            for index, (pass_index, spec) in enumerate(progress(steps, desc=label) if progress and timed
                                                       else steps):
                for session in timed:
                    session.begin(spec)
                first_round = max([len(session.replies) for session in timed] + [0])
                if first_round == 0 or any(session.ok() for session in timed):  # else nothing left to time
                    runnable = [session for session in timed if session.can_run(spec)]
                    time_spec(timed, spec, turns, rounds, inputs.folder(spec, runnable), first_round)
                for session in timed:
                    session.record_pass(spec, pass_index, first_round, run_id)
                    if pass_index == passes - 1:
                        session.finish(spec, run_id)
                if last_use[InputStore.key(spec)] == index:  # no later step reads these inputs
                    inputs.release(spec)
    finally:
        for session in sessions.values():
            session.close()
    outcome.update({impl: session.path for impl, session in sessions.items()})
    return outcome


def _start_from_earlier(sessions, specs, passes):
    """Start every session's CSV and journal from what an interrupted run left (nothing unless the
    sessions were opened with ``resume``): the rows of the specs every impl has a row for, and the
    passes of the others that every impl finished.  Returns the specs still to time and
    ``spec_label -> the passes taken up``."""
    done = [spec_label(spec) for spec in specs
            if sessions and all(spec_label(spec) in session.earlier for session in sessions)]
    specs = [spec for spec in specs if spec_label(spec) not in done]
    passes_done = {}
    for spec in specs:
        count = kept_passes(spec_label(spec), sessions, passes)
        if count > 0:
            passes_done[spec_label(spec)] = count
    for session in sessions:
        session.keep(done, passes_done)
    return specs, passes_done
