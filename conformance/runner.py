"""Isolated execution: one worker process per (impl, device), results flushed case by case.

The core never imports a framework: it starts ``python -m impls.worker`` (under the impl's own
interpreter when it has one, e.g. Python 3.8 for ``paddle-legacy``), sends it case files and reads
back output files.  A worker that dies is recorded as ``crash`` for the case it was running (with
its exit signal and the tail of its stderr), one that does not answer in time as ``timeout``; the
worker is restarted and the run goes on.  Each result row (``conformance/results.py``: its schema
and its files) is written and flushed before the next case starts, so a run killed at any moment
leaves readable results and ``resume`` finishes the rest.
"""
from __future__ import annotations

import csv
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conformance import corpus, deviations, legacy_env
from conformance import outcomes as O
from conformance import results as result_files
from conformance.compare import compare
from conformance.results import COLUMNS, ResultRow, results_path  # noqa: F401 - importers' names (search.py)
from impls import get_adapter, impl_names, numpy_dispatch
from impls.caseio import Case, read_npz
from impls.support import convention_of, why_not_applicable, why_unsupported

REPO_ROOT = Path(__file__).resolve().parent.parent
# Runs of each case: the second checks that the outputs are bitwise repeatable (``deterministic``)
# and the faster of the two is ``seconds`` (a compiled mode's first run includes its compilation).
DEFAULT_REPEAT = 2
DEFAULT_CASE_TIMEOUT = 120.0  # seconds; a first TF/Paddle call on a big case can take a few
STARTUP_TIMEOUT = 300.0  # importing a framework on a cold, 2-core machine
STDERR_TAIL_LINES = 20
STATUSES = O.STATUSES  # what each means: conformance/outcomes.py


def python_for(impl: str, overrides: dict = None):
    """The interpreter for an impl: ``--python IMPL=PATH``, ``$CONFORMANCE_PYTHON_<IMPL>``, the
    cached legacy environment for ``paddle-legacy`` (see ``legacy_env``), else this interpreter.

    ``None`` for ``paddle-legacy`` when no Python 3.8 environment is set up: its worker then
    reports the impl unavailable with what to do, instead of failing to import paddle.fluid.
    """
    overrides = overrides or {}
    if impl == legacy_env.IMPL:
        return legacy_env.interpreter(overrides)
    if impl in overrides:
        return overrides[impl]
    variable = "CONFORMANCE_PYTHON_" + impl.upper().replace("-", "_")
    return os.environ.get(variable) or sys.executable


class WorkerUnavailable(Exception):
    """The impl cannot run here (framework not installed, no GPU...)."""


@dataclass
class Reply:
    status: str
    message: str = ""
    data: dict = None


class Worker:
    """One live ``impls.worker`` process; restarted transparently after a crash or a timeout."""

    def __init__(self, impl: str, device: str, python: str = None, log_dir: Path = None, env: dict = None):
        self.impl, self.device = impl, device
        self.env = dict(env or {})  # added to this process's environment for the worker (and its restarts)
        self.python = python or python_for(impl)
        self.missing = None if self.python else (
            "%s needs its own Python 3.8 environment and none is set up: run `conformance setup`, or pass "
            "--python %s=/path/to/python3.8 with paddlepaddle==1.8.5" % (impl, impl))
        self.log_dir = Path(log_dir) if log_dir else None
        self.process = None
        self.info = None
        self.stderr_tail = deque(maxlen=STDERR_TAIL_LINES)

    # -- process management -------------------------------------------------------------------
    def start(self):
        if self.missing:
            raise WorkerUnavailable(self.missing)
        env = numpy_dispatch.for_interpreter(dict(os.environ, **self.env), self.python)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env.setdefault("PYTHONUNBUFFERED", "1")
        command = [self.python, "-m", "impls.worker", "--impl", self.impl, "--device", self.device]
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, cwd=str(REPO_ROOT), env=env, text=True,
                                            errors="replace",  # a framework's non-UTF-8 bytes
                                            bufsize=1, start_new_session=True)
        except OSError as error:
            raise WorkerUnavailable("%s: cannot start %s (%s)" % (self.impl, self.python, error)) from None
        self.replies = queue.Queue()
        self.stderr_tail.clear()
        threading.Thread(target=self._pump_stdout, args=(self.process, self.replies), daemon=True).start()
        self.stderr_pump = threading.Thread(target=self._pump_stderr, args=(self.process,), daemon=True)
        self.stderr_pump.start()
        hello = self._wait(STARTUP_TIMEOUT)
        if hello is None or hello == "timeout" or hello.get("event") != "ready":
            if hello == "timeout":
                tail = self._tail()
                reason = "no answer in %ds" % STARTUP_TIMEOUT + ("; last output: " + tail if tail else "")
            else:
                reason = (hello or {}).get("message") or self._death_note() or "exited before it was ready"
            self.stop()
            raise WorkerUnavailable("%s on %s: %s" % (self.impl, self.device, reason))
        self.info = hello

    def _pump_stdout(self, process, replies):
        for line in process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                message = None
            if isinstance(message, dict):  # a stray "null" or "42" is not a reply (nor the end)
                replies.put(message)
            else:
                self.stderr_tail.append("(stdout) " + line.rstrip())
        replies.put(None)  # end of stream: the worker exited

    def _pump_stderr(self, process):
        log = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_dir / ("%s-%s.log" % (self.impl, self.device)), "a", encoding="utf-8")
        for line in process.stderr:
            self.stderr_tail.append(line.rstrip())
            if log:
                log.write(line)
                log.flush()
        if log:
            log.close()

    def _wait(self, timeout):
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            return "timeout"

    def _tail(self):
        return " | ".join(line for line in list(self.stderr_tail)[-5:] if line.strip())

    def _death_note(self):
        if self.process is None:
            return ""
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # stdout closed but the process lives on
            self.stop()
            return "closed its output and was killed"
        self.stderr_pump.join(timeout=2)  # its last words may still be in the pipe
        how = ("killed by signal %s" % signal.Signals(-code).name) if code < 0 else "exited with status %d" % code
        tail = self._tail()
        return how + (": " + tail if tail else "")

    def stop(self):
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
            self.process.wait()
        self.process = None

    # -- requests -----------------------------------------------------------------------------
    def request(self, case_file: Path, out_file: Path, repeat: int = 1, timeout: float = DEFAULT_CASE_TIMEOUT):
        """Run one case file; the reply's outputs are in ``out_file``.  The worker runs what it is sent:
        whether the impl can express the case is the caller's question (``execute_case``)."""
        return self.send({"case_file": str(case_file), "out_file": str(out_file), "repeat": repeat}, timeout)

    def send(self, message: dict, timeout: float = DEFAULT_CASE_TIMEOUT) -> "Reply":
        """One request of the worker protocol (a case, ``{"bench": ...}``, ``{"sampler": ...}``).

        A worker that does not answer within ``timeout`` is killed (``timeout``), one that dies is
        described (``crash``); either way the next request starts a fresh worker.
        """
        if self.process is None or self.process.poll() is not None:
            self.start()
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker is already dead: the wait below reports how
        reply = self._wait(timeout)
        if reply == "timeout":
            tail = self._tail()
            self.stop()
            return Reply(O.TIMEOUT, "no answer within %gs; worker killed and restarted" % timeout
                         + ("; last output: " + tail if tail else ""))
        if reply is None:
            note = self._death_note()
            self.process = None
            return Reply(O.CRASH, "worker died: " + note)
        return Reply(reply.get("status", "error"), reply.get("message", ""), reply)


def write_environment(out_dir: Path, impl: str, device: str, info: dict, cases_dir: Path) -> Path:
    """``environment-<impl>-<device>.json``: the worker's versions and settings, the corpus run, when."""
    environment = dict(info, corpus_sha256=corpus.load_manifest(cases_dir)["corpus_sha256"], finished=wall_clock())
    path = Path(out_dir) / ("environment-%s-%s.json" % (impl, device))
    path.write_text(json.dumps(environment, indent=1, sort_keys=True), encoding="utf-8")
    return path


def _identity(entry, adapter, device) -> dict:
    """The columns of a result row that say which case ran where (see also :func:`_versions`)."""
    support = adapter.ops.get(entry["op"])
    return {"case": entry["id"], "op": entry["op"], "dtype": entry["dtype"], "impl": adapter.name, "device": device,
            "mode": support.mode if support else "", "tags": " ".join(entry["tags"]),
            "features": " ".join(entry["features"])}


def _versions(info) -> dict:
    """The columns a started worker's hello fills (empty before the worker has started)."""
    return {"impl_version": (info or {}).get("version", ""), "python": (info or {}).get("python", "")}


def evaluate(case: Case, reply: Reply, out_file: Path, impl: str = "") -> dict:
    """The comparison fields of a result row (:class:`conformance.results.ResultRow`) from a worker reply."""
    fields = {"status": reply.status, "message": reply.message}
    if case.meta.get("invalid"):
        return _evaluate_invalid(case, reply, out_file, impl, fields)
    if reply.status != "ok":
        return fields
    if impl:  # judged against the golden of the convention the impl documents (cross_entropy)
        case.golden = case.golden_for(convention_of(impl, case.op))
    fields["seconds"] = reply.data.get("seconds")
    fields["first_seconds"] = reply.data.get("first_seconds")
    fields["deterministic"] = reply.data.get("deterministic")
    outputs, _ = read_npz(out_file)
    undeclared = declared_missing(impl, case, outputs)
    if undeclared:  # a declared limit (checked once per run, see check_declared_limits), not a failure
        case.golden = {k: v for k, v in case.golden.items() if k not in undeclared}
    status, errors, tol, message = compare(case, outputs)
    # The summary columns are over the outputs the impl returned (a missing one fails the case and
    # has its record in ``outputs``, compare.py's OutputError per golden output).
    returned = [e for e in errors if e.problem != "missing"]
    worst = max(returned, key=lambda e: e.ratio) if returned else None
    if undeclared and not message:
        message = "not compared (the framework gives no such gradient, as declared): %s" % ", ".join(undeclared)
    fields.update(status=status, message=message, rtol=tol.rtol, tolerance=tol.reason,
                  max_abs_err=max((e.max_abs for e in returned), default=0.0),
                  max_rel_err=max((e.max_rel for e in returned), default=0.0),
                  tol_ratio=worst.ratio if worst else 0.0, worst_output=worst.name if worst else "", outputs=errors)
    return fields


REFERENCE_IMPLS = ("numpy", "cupy")


def declared_missing(impl, case, outputs) -> list:
    """Golden gradients the impl did not return and its adapter declares the framework cannot give
    (``OpSupport.no_gradient``)."""
    if not impl:
        return []
    support = get_adapter(impl).ops.get(case.op)
    missing = [name for name in case.golden if name not in outputs and name.startswith("grad/")]
    return sorted(name for name in missing if support and name.split("/")[1] in support.no_gradient)


def _evaluate_invalid(case, reply, out_file, impl, fields):
    """Bad input: raising is right; NaN/inf is a signal; finite numbers are a silent wrong answer.

    The reference must raise and name the argument (its contract); a framework is only recorded.
    """
    invalid = case.meta["invalid"]
    if reply.status == O.INAPPLICABLE:
        fields["behaviour"] = O.NOT_TESTED_NATIVELY
        return fields
    if reply.status == O.ERROR:
        fields["behaviour"] = O.RAISES
        named = invalid["argument"] in reply.message
        if impl in REFERENCE_IMPLS and not named:
            fields.update(status=O.FAIL, message="raised without naming %r: %s" % (invalid["argument"], reply.message))
        else:
            fields["status"] = O.PASS
        return fields
    if reply.status != "ok":
        fields["behaviour"] = reply.status
        return fields
    outputs, _ = read_npz(out_file)
    finite = all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in outputs.values())
    fields["behaviour"] = O.RETURNS_FINITE if finite else O.RETURNS_NONFINITE
    if finite or impl in REFERENCE_IMPLS:
        fields.update(status=O.FAIL, message="accepted invalid input (%s) and returned %s"
                      % (invalid["reason"], "finite numbers" if finite else "NaN/inf"))
    else:
        fields.update(status=O.PASS, message="returned NaN/inf for invalid input (%s)" % invalid["reason"])
    return fields


CAPABILITY_COLUMNS = ["impl", "impl_version", "device", "op", "limit", "case", "outcome", "status", "message"]
# What the framework did with a case its adapter declares it cannot run -> the row's status:
# agreeing with the oracle contradicts the declaration (``fail``); anything else confirms a limit.
CAPABILITY_STATUS = O.CAPABILITY_STATUS


def capabilities_path(out_dir: Path, impl: str, device: str) -> Path:
    return Path(out_dir) / ("capabilities-%s-%s.csv" % (impl, device))


def declared_limits(adapter, manifest, cases_dir=corpus.DEFAULT_CASES_DIR) -> list:
    """``(op, limit, entry)`` for each dtype, feature and gradient the adapter declares the framework
    cannot do, with the smallest valid corpus case that needs exactly that one thing (``entry`` None
    when there is none)."""
    from impls import dtypes as all_dtypes  # noqa: PLC0415
    from impls.ops import OPS  # noqa: PLC0415

    def size(entry):  # the base cases first, then the shortest id: small, plain cases
        return ("-base-" not in entry["id"], len(entry["features"]), len(entry["id"]), entry["id"])

    valid = [e for e in manifest["cases"] if not e.get("invalid")]
    limits = []
    for op in OPS:
        support = adapter.ops.get(op)
        if support is None:
            continue  # no op at all: nothing is declared about it
        for dtype in all_dtypes.NAMES:
            if dtype not in support.dtypes:
                found = [e for e in valid if e["op"] == op and e["dtype"] == dtype
                         and not support.unsupported_features.intersection(e["features"])]
                limits.append((op, "dtype " + dtype, min(found, key=size) if found else None))
        for name in sorted(support.no_gradient):
            found = sorted((e for e in valid if e["op"] == op and e["dtype"] in support.dtypes
                            and not support.unsupported_features.intersection(e["features"])), key=size)
            # The first (smallest) case whose golden outputs have that gradient.
            limits.append((op, "gradient " + name, next(
                (e for e in found if "grad/" + name in Case.read(Path(cases_dir) / e["file"]).meta["outputs"]), None)))
        for feature in sorted(support.unsupported_features):
            others = support.unsupported_features - {feature}
            found = [e for e in valid if e["op"] == op and e["dtype"] in support.dtypes
                     and feature in e["features"] and not others.intersection(e["features"])]
            limits.append((op, "feature " + feature, min(found, key=size) if found else None))
    return limits


def check_declared_limits(worker, adapter, manifest, cases_dir, scratch, timeout=DEFAULT_CASE_TIMEOUT) -> list:
    """Run each declared limit's case anyway (the worker runs what it is sent) and record what the
    framework does with it."""
    rows = []
    for op, limit, entry in declared_limits(adapter, manifest, cases_dir):
        row = {"impl": adapter.name, "impl_version": (worker.info or {}).get("version", ""), "device": worker.device,
               "op": op, "limit": limit, "case": entry["id"] if entry else ""}
        if entry is None:
            rows.append(dict(row, outcome=O.LIMIT_NO_CASE, status=O.LIMIT_UNCHECKED,
                             message="the corpus has no case that needs exactly this"))
            continue
        case_file = Path(cases_dir) / entry["file"]
        out_file = Path(scratch) / ("limit-" + entry["id"] + ".npz")
        reply = worker.request(case_file, out_file, repeat=1, timeout=timeout)
        row.update(impl_version=(worker.info or {}).get("version", ""), message=reply.message)
        if reply.status == "ok":
            case, outputs = Case.read(case_file), read_npz(out_file)[0]
            case.golden = case.golden_for(convention_of(adapter, case.op))
            if limit.startswith("gradient "):  # the gradient alone: is it given, and right?
                name = "grad/" + limit.split(" ", 1)[1]
                case.golden = {name: case.golden[name]}
            status, _, _, message = compare(case, outputs)
            outcome = O.LIMIT_AGREES if status == O.PASS else O.LIMIT_WRONG
            if limit.startswith("gradient ") and name not in outputs:
                outcome, message = O.LIMIT_NO_GRADIENT, "%s gave no %s" % (adapter.name, name)
            row["message"] = message
        else:
            outcome = {O.ERROR: O.LIMIT_RAISES, O.UNSUPPORTED: O.LIMIT_ADAPTER,
                       O.INAPPLICABLE: O.LIMIT_ADAPTER}.get(reply.status, reply.status)
        row.update(outcome=outcome, status=CAPABILITY_STATUS.get(outcome, O.LIMIT_CONFIRMED))
        if outcome == O.LIMIT_AGREES:
            row["message"] = "declared unsupported, yet it ran and agrees with the oracle: the declaration is wrong"
        if out_file.exists():
            out_file.unlink()
        rows.append(row)
    return rows


def execute_case(worker, adapter, entry, cases_dir, outputs_dir, registry, repeat=DEFAULT_REPEAT,
                 timeout=DEFAULT_CASE_TIMEOUT, keep_outputs=False) -> ResultRow:
    """Run one manifest entry on a worker and return its complete result row.

    Whether the impl can express the case is asked here, once, of the case's own metadata (it has
    what the manifest entry lacks: the conventions that document no formula for it); the worker runs
    what it is sent.  A case the impl cannot express never starts the worker.
    Raises ``WorkerUnavailable`` only when the impl cannot start at all; every other outcome of
    the case (including a crash or a hang) is a row.
    """
    device = worker.device
    fields = dict(_identity(entry, adapter, device), **_versions(worker.info))
    case_file = Path(cases_dir) / entry["file"]
    try:
        case = Case.read(case_file)
    except Exception as error:  # a corpus file that cannot be read: record it, keep the run going
        case, unreadable = None, "could not read the case file: %s: %s" % (type(error).__name__, error)
    reason = why_unsupported(adapter, device, case.meta) if case else None
    composed = why_not_applicable(adapter, case.meta) if case else None
    if case is None:
        fields.update(status=O.ERROR, message=unreadable)
    elif reason:
        fields.update(status=O.UNSUPPORTED, message=reason)
    elif composed:
        fields.update(status=O.INAPPLICABLE, message=composed, behaviour=O.COMPOSED_OP)
    else:
        out_file = Path(outputs_dir) / (entry["id"] + ".npz")
        reply = worker.request(case_file, out_file, repeat=repeat, timeout=timeout)
        fields.update(_versions(worker.info))  # a worker (re)started by this request
        try:
            fields.update(evaluate(case, reply, out_file, adapter.name))
        except Exception as error:  # unreadable outputs: record it, keep the run going
            fields.update(status=O.ERROR, message="could not compare the outputs: %s: %s"
                          % (type(error).__name__, error))
        if not keep_outputs and out_file.exists():
            out_file.unlink()
    deviation = registry.match(adapter.name, device, entry)
    if deviation:
        fields["deviation"] = deviation.key
        fields["status"] = deviations.apply(fields["status"])
    masking = registry.masking(adapter.name, device, entry, fields.get("message", ""))
    if masking and fields.get("behaviour") == O.RAISES:
        # The op fails on this dtype or option whatever the input (a known deviation): its error says
        # nothing about how it treats the bad input, so the row is not a "raises".
        fields.update(deviation=masking.key, status=O.XFAIL, behaviour=O.MASKED,
                      message="masked by %s: %s" % (masking.key, fields.get("message", "")))
    return ResultRow(**fields)


def run_impl(impl, device, cases_dir, out_dir, *, python=None, resume=False, repeat=DEFAULT_REPEAT,
             timeout=DEFAULT_CASE_TIMEOUT, select=None, progress=None, keep_outputs=False, notify=None, worker=None,
             env=None, stop=None):
    """Run every selected case of the corpus on one impl; return ``(results CSV path, worker info)``.

    ``worker``: a started worker of this impl and device to use (and stop at the end), e.g. the
    pytest plugin's, which finishes its run folder with ``resume=True``.  ``env``: added to the
    worker's environment (its thread counts in a parallel run).  ``stop``: a ``parallel.Stop`` of a
    parallel run; once it is set no more row is written (the case it interrupted is left to
    ``resume``) and the run returns.
    Raises ``WorkerUnavailable`` when the impl cannot start (its rows written so far are kept; an
    impl that cannot start at all writes none).
    """
    manifest = corpus.load_manifest(cases_dir)
    entries = [e for e in manifest["cases"] if select is None or select(e)]
    adapter = get_adapter(impl)
    path = results_path(out_dir, impl, device)
    done = result_files.done_cases(out_dir, impl, device) if resume else set()
    if not resume and path.exists():
        if select is None:
            result_files.remove(out_dir, impl, device)  # a whole re-run replaces the whole file
        else:
            kept = result_files.replace_rows(out_dir, impl, device, {e["id"] for e in entries})
            if notify:
                notify("%s/%s: %d selected case(s) replace their rows in %s; %d other row(s) kept"
                       % (impl, device, len(entries), path, kept))
    todo = [e for e in entries if e["id"] not in done]
    registry = deviations.load()
    worker = worker or Worker(impl, device, python, log_dir=Path(out_dir) / "logs", env=env)
    if stop is not None:
        stop.watch(worker)

    def stopped():
        return stop is not None and stop.is_set()

    scratch = Path(tempfile.mkdtemp(prefix="conformance-%s-" % impl))
    outputs_dir = Path(out_dir) / "outputs" / ("%s-%s" % (impl, device)) if keep_outputs else scratch
    outputs_dir.mkdir(parents=True, exist_ok=True)
    # The rows of the cases before the first one the worker runs wait for its start: an impl that
    # cannot start (its framework is not installed) writes no row, and theirs get its version.
    held, results = [], None
    try:
        for entry in (progress(todo, desc="%s/%s" % (impl, device)) if progress else todo):
            if stopped():
                break
            row = execute_case(worker, adapter, entry, cases_dir, outputs_dir, registry,
                               repeat=repeat, timeout=timeout, keep_outputs=keep_outputs)
            if stopped():  # its worker was killed under this case: no crash row, resume runs it
                break
            held.append(row)
            if worker.info is not None:
                results = _write_held(held, results, worker.info, out_dir, impl, device)
        results = _write_held(held, results, worker.info, out_dir, impl, device)
        if select is None and not stopped():  # a whole run, once: are the declared limits real?
            limits = check_declared_limits(worker, adapter, manifest, cases_dir, scratch, timeout)
            with open(capabilities_path(out_dir, impl, device), "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=CAPABILITY_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(limits)
    finally:
        if results is not None:
            results.close()
        worker.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return path, worker.info


def _write_held(held, results, info, out_dir, impl, device):
    """Write the held rows (each stamped with the worker's versions when it has started); the open
    results file, opened here on its first row."""
    if results is None:
        results = result_files.ResultsFile(results_path(out_dir, impl, device))
    for row in held:
        if info is not None and not row.impl_version:
            for column, value in _versions(info).items():
                setattr(row, column, value)
        results.write(row)
    held.clear()
    return results


def available_impls(device: str):
    """The impls a run takes when none is named: every impl of the device but the opt-in ones."""
    return [name for name in impl_names() if device in get_adapter(name).devices and not get_adapter(name).opt_in]


def wall_clock():
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
