"""Running the sampler checks: each impl's settings in its own worker process (and the seed's
fingerprints again in a fresh one), the rows of :mod:`conformance.sampler.checks` decided by Holm's
procedure and written to ``sampler-<impl>-cpu.csv``; impls side by side in ``--jobs`` threads.
A worker crash or timeout is an ``error`` row, never an exception.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from conformance import parallel, runner, runs
from conformance.sampler.checks import analyse, mark_documented_approximation
from conformance.sampler.grid import grid
from conformance.sampler.stats import FAMILY_ALPHA, apply_holm
from conformance.sampler.table import check_row, sampler_path, write_rows
from impls import get_adapter
from impls.samplers import FINGERPRINT_DRAWS, why_no_sampler  # one count of fingerprinted draws, worker and core

DEFAULT_TIMEOUT = 600.0  # seconds for one setting (draws, fingerprints, writing the .npz)


def _setting_columns(setting):
    return dict({key: setting[key] for key in ("range_max", "num_sampled", "unique", "num_true", "draws", "seed")},
                via=setting.get("via", "sampler"))


def _failed_row(reply: runner.Reply):
    if reply.status == "unsupported":
        return check_row("native_sampler", "unsupported", reply.message)
    prefix = "" if reply.status == "error" else reply.status + ": "
    return check_row("draw", "error", prefix + reply.message)


def _check_stop(stop):
    """A parallel run was interrupted: this impl's thread ends too, writing nothing (its killed worker's
    replies would read as crashes)."""
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt


def run_impl_sampler(impl, out_dir, settings, *, python=None, progress=None, timeout=DEFAULT_TIMEOUT,
                     fresh_process=True, env=None, stop=None):
    """Run ``settings`` on one impl; write ``sampler-<impl>-cpu.csv``; return ``(path, seconds)``.

    ``env``: added to the workers' environment; ``stop``: a ``parallel.Stop`` that kills them on Ctrl-C.
    Raises ``runner.WorkerUnavailable`` only when the impl cannot start at all.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    worker = runner.Worker(impl, "cpu", python, log_dir=out_dir / "logs", env=env)
    if stop is not None:
        stop.watch(worker)
    worker.start()  # fail fast, before any row, when the framework is not installed
    scratch = Path(tempfile.mkdtemp(prefix="conformance-sampler-%s-" % impl))
    results = []
    try:
        info = worker.info or {}
        for index, setting in enumerate(progress(settings, desc="sampler %s" % impl) if progress else settings):
            _check_stop(stop)
            out_file = scratch / ("setting-%d.npz" % index)
            spec = dict(setting, out_file=str(out_file), fingerprint_draws=FINGERPRINT_DRAWS)
            reply = worker.send({"sampler": spec}, timeout)
            info = worker.info or info
            arrays = None
            if reply.status == "ok":
                try:
                    with np.load(str(out_file)) as data:
                        arrays = {key: data[key] for key in data.files}
                except Exception as error:  # noqa: BLE001 - an unreadable answer is a row
                    reply = runner.Reply("error", "could not read the draws: %s: %s" % (type(error).__name__, error))
                if out_file.exists():
                    out_file.unlink()
            results.append((setting, reply, arrays))
    finally:
        worker.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    fresh = {}
    if fresh_process and any(reply.status == "ok" for _, reply, _ in results):
        second = runner.Worker(impl, "cpu", python, log_dir=out_dir / "logs", env=env)
        if stop is not None:
            stop.watch(second)
        try:
            second.start()
            for index, (setting, reply, _) in enumerate(results):
                _check_stop(stop)
                if reply.status == "ok":
                    answer = second.send({"sampler": dict(setting, draws=FINGERPRINT_DRAWS, out_file=None,
                                                          fingerprint_draws=FINGERPRINT_DRAWS)}, timeout)
                    fresh[index] = answer.data if answer.status == "ok" else {"message": "%s: %s" % (
                        answer.status, answer.message)}
        except runner.WorkerUnavailable as error:
            fresh = {i: {"message": str(error)} for i in range(len(results))}
        finally:
            second.stop()

    _check_stop(stop)
    rows = []
    for index, (setting, reply, arrays) in enumerate(results):
        if reply.status != "ok":
            setting_rows = [_failed_row(reply)]
        else:
            setting_rows = analyse(setting, arrays, reply.data, fresh.get(index))
        base = dict(_setting_columns(setting), impl=impl, impl_version=info.get("version", ""), device="cpu",
                    python=info.get("python", ""), candidates=setting["draws"] * setting["num_sampled"],
                    seconds=(reply.data or {}).get("seconds") if reply.status == "ok" else None)
        rows += [dict(base, **row) for row in setting_rows]
    mark_documented_approximation(apply_holm(rows))
    for row in rows:
        row.setdefault("alpha", FAMILY_ALPHA if row.get("p_value") is not None else None)
    path = sampler_path(out_dir, impl)
    write_rows(path, rows)
    return path, time.perf_counter() - started


def draws(impl) -> bool:
    """Whether the impl has a native sampler to draw from (decided without starting its worker)."""
    return why_no_sampler(get_adapter(impl), "cpu") is None


def drawing_first(impls) -> list:
    """The impls that draw take minutes, the others answer "unsupported" in seconds: the drawing ones
    start first, so that a parallel run does not end with one of them running alone."""
    return sorted(impls, key=lambda impl: not draws(impl))


def impl_task(out_dir, settings, *, python=None, timeout=DEFAULT_TIMEOUT, jobs=1, stop=None, progress=None,
              notify=None):
    """``function(impl, slot)`` for ``conformance.parallel.run_each``: one impl's
    :func:`run_impl_sampler`, ``(CSV path, wall seconds)``, or the reason it could not start.

    ``progress(slot)``: the progress wrapper ``(items, desc) -> items`` of the impl at ``slot``;
    ``notify``: told one line when an impl finishes.  The draws of one impl take
    the time (measured: the NumPy reference's 10^5 sampler calls per setting are 99% of its 5-20 s
    per setting, the analysis here under 0.1 s), so impls side by side is where time is saved; every
    setting draws and tests exactly as when run alone.
    """
    overrides = python or {}

    def run_one(impl, slot):
        try:
            result = run_impl_sampler(impl, out_dir, settings, progress=progress(slot) if progress else None,
                                      timeout=timeout, python=runner.python_for(impl, overrides),
                                      env=parallel.worker_environment(jobs), stop=stop)
        except runner.WorkerUnavailable as error:
            return str(error)
        if notify:
            notify("%s: sampler rows in %s (%.1f s)" % (impl, runs.relative(result[0]), result[1]))
        return result

    return run_one


def run_sampler(impls, out_dir, grid_name="default", progress=None, *, python=None, timeout=DEFAULT_TIMEOUT,
                jobs=1, notify=None) -> dict:
    """Each impl in its own worker, ``jobs`` impls at a time: impl -> ``(CSV path, wall seconds)``, or
    the reason it could not start (``progress``, ``notify``: see :func:`impl_task`)."""
    settings = grid(grid_name) if isinstance(grid_name, str) else [dict(s) for s in grid_name]
    stop = parallel.Stop()
    task = impl_task(out_dir, settings, python=python, timeout=timeout, jobs=jobs, stop=stop, progress=progress,
                     notify=notify)
    outcome = parallel.run_each(drawing_first(impls), task, jobs, stop)
    return {impl: outcome[impl] for impl in impls}
