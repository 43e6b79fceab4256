"""Worker isolation: a worker that dies or hangs costs one case, never the run or another result.

The misbehaving adapters of ``impls/testing_adapters.py`` compute what the NumPy reference computes
except on the cases whose id contains ``$CONFORMANCE_TEST_TRIGGER``, where they segfault, abort,
exit, hang, exhaust their (capped) memory or flood the output.  Each run here is on six real corpus
cases; the chosen one is the second, so the worker that misbehaves has already answered a case and
a restarted one must answer the four after it.
"""
import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import cli, corpus, results, runner

REPO = Path(__file__).resolve().parent.parent
CASES = corpus.DEFAULT_CASES_DIR
SELECTED = [  # in manifest order
    "softmax_with_cross_entropy-base-hard-f32",
    "softmax_with_cross_entropy-base-soft-f32",
    "softmax_with_cross_entropy-r2-ax1-hard-f32",
    "sampled_softmax_with_cross_entropy-base-f32",
    "sampled_softmax_loss-base-f32",
    "sampled_softmax_loss-T2-f64",
]
CHOSEN = "softmax_with_cross_entropy-base-soft-f32"
TRIGGER = "base-soft"  # matches CHOSEN only, among SELECTED
HANG_TIMEOUT = 3.0  # per-case timeout of the runs that hang on purpose
CASE_TIMEOUT = 60.0  # of the others: a loaded 2-core machine must not turn a crash into a timeout

# The CLI lists only real impls; this runs ``conformance run`` with a test adapter put in their place.
CLI_WITH_TEST_IMPL = """
import sys
from conformance import cli
impl, argv = sys.argv[1], sys.argv[2:]
args = cli.build_parser().parse_args(["run", "--impl", "numpy"] + argv)
args.impl = [impl]
sys.exit(args.func(args))
"""


def select(entry):
    return entry["id"] in SELECTED


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def loaded_pids(out_dir, impl):
    """The pid of every worker that loaded the adapter, in order, from the run's stderr log."""
    log = Path(out_dir) / "logs" / ("%s-cpu.log" % impl)
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return [int(pid) for pid in re.findall(r"%s: loaded in pid (\d+)" % re.escape(impl), text)]


@pytest.fixture
def test_adapters(monkeypatch, tmp_path):
    monkeypatch.setenv("CONFORMANCE_TEST_ADAPTERS", "1")
    monkeypatch.setenv("CONFORMANCE_TEST_TRIGGER", TRIGGER)
    scratch = tmp_path / "tmp"  # the runner's scratch folders land here, to check none is left
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    return scratch


def subprocess_env(**extra):
    env = dict(os.environ, CONFORMANCE_TEST_ADAPTERS="1", CONFORMANCE_TEST_TRIGGER=TRIGGER,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.update(extra)
    return env


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def end_orphan(pid):
    """End a worker left behind by a killed run (only this pid, and only if it is still a worker)."""
    try:
        cmdline = Path("/proc/%d/cmdline" % pid).read_bytes()
    except OSError:
        return
    if b"impls.worker" in cmdline:
        os.kill(pid, signal.SIGKILL)


# -- a misbehaving case is one row ------------------------------------------------------------------
MISBEHAVIOURS = [
    # impl, status of the chosen case, what its message must say, whether the worker was restarted
    ("test-segfault", "crash", ["worker died: killed by signal SIGSEGV", "about to segfault on " + CHOSEN], True),
    ("test-abort", "crash", ["worker died: killed by signal SIGABRT", "about to abort on " + CHOSEN], True),
    ("test-exit", "crash", ["worker died: exited with status 7", "about to exit with status 7 on " + CHOSEN], True),
    ("test-oom", "crash", ["worker died: killed by signal SIGKILL", "exhausting memory on " + CHOSEN,
                           "out of memory after"], True),
    ("test-hang", "timeout", ["no answer within 3s", "worker killed and restarted", "hanging on " + CHOSEN], True),
    ("test-memerror", "error", ["MemoryError"], False),
    ("test-noisy", "pass", [], False),
]


@pytest.mark.parametrize("impl, status, fragments, restarted", MISBEHAVIOURS, ids=[m[0] for m in MISBEHAVIOURS])
def test_a_misbehaving_case_costs_only_that_case(test_adapters, tmp_path, impl, status, fragments, restarted):
    start = time.monotonic()
    timeout = HANG_TIMEOUT if status == "timeout" else CASE_TIMEOUT
    path, info = runner.run_impl(impl, "cpu", CASES, tmp_path / "raw", timeout=timeout, select=select)
    assert time.monotonic() - start < 60
    rows = read_rows(path)
    assert [r["case"] for r in rows] == SELECTED  # every case, once, in order
    by_case = {r["case"]: r for r in rows}
    chosen = by_case.pop(CHOSEN)
    assert chosen["status"] == status, chosen["message"]
    for fragment in fragments:
        assert fragment in chosen["message"]
    assert chosen["impl"] == impl and chosen["impl_version"] and chosen["op"] and chosen["dtype"] == "float32"
    for row in by_case.values():
        assert row["status"] == "pass", (row["case"], row["message"])
        assert row["tolerance"] and row["deterministic"] == "True"
    pids = loaded_pids(tmp_path / "raw", impl)
    assert len(pids) == (2 if restarted else 1), pids
    assert info["pid"] == pids[-1]
    assert list(test_adapters.iterdir()) == []  # no scratch folder left behind


def test_the_run_goes_on_through_a_crash_on_almost_every_case(test_adapters, tmp_path, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_TEST_TRIGGER", "-f32")  # all but the last of SELECTED
    path, _ = runner.run_impl("test-exit", "cpu", CASES, tmp_path, timeout=CASE_TIMEOUT, select=select)
    rows = read_rows(path)
    assert [r["case"] for r in rows] == SELECTED
    assert [r["status"] for r in rows] == ["crash"] * 5 + ["pass"]
    assert all("exited with status 7" in r["message"] and r["case"] in r["message"] for r in rows[:5])
    assert len(loaded_pids(tmp_path, "test-exit")) == 6


def test_the_case_timeout_has_a_sensible_default_and_is_configurable():
    assert 30 <= runner.DEFAULT_CASE_TIMEOUT <= 600
    assert cli.build_parser().parse_args(["run"]).timeout == runner.DEFAULT_CASE_TIMEOUT
    assert cli.build_parser().parse_args(["run", "--timeout", "2.5"]).timeout == 2.5


# -- an impl that cannot start is skipped, not a crash of the run ------------------------------------
def test_a_framework_that_is_not_installed_is_unavailable(test_adapters, tmp_path):
    with pytest.raises(runner.WorkerUnavailable, match=r"test-unavailable on cpu: ImportError: .*nonesuch_framework"):
        runner.run_impl("test-unavailable", "cpu", CASES, tmp_path, select=select)
    path = runner.results_path(tmp_path, "test-unavailable", "cpu")
    assert not path.exists() or read_rows(path) == []
    assert list(test_adapters.iterdir()) == []


def test_the_cli_skips_an_unavailable_impl_and_runs_the_others(test_adapters, tmp_path, capsys):
    args = cli.build_parser().parse_args(["run", "--impl", "numpy", "--out", str(tmp_path)]
                                         + [a for case in SELECTED for a in ("--select", case)])
    args.impl = ["test-unavailable", "numpy"]
    assert cli.cmd_run(args) == 0
    assert re.search(r"skipped test-unavailable: .*ImportError", capsys.readouterr().err)
    rows = read_rows(runner.results_path(tmp_path, "numpy", "cpu"))
    assert [r["case"] for r in rows] == SELECTED and {r["status"] for r in rows} == {"pass"}


@pytest.mark.parametrize("impl, reason", [("test-segfault", "killed by signal SIGSEGV"),
                                          ("test-exit", "exited with status 7"),
                                          ("test-hang", "no answer in 2s")])
def test_a_worker_that_dies_or_hangs_while_loading_is_unavailable(test_adapters, tmp_path, monkeypatch, impl, reason):
    monkeypatch.setenv("CONFORMANCE_TEST_TRIGGER", "@load")
    monkeypatch.setattr(runner, "STARTUP_TIMEOUT", 2)
    with pytest.raises(runner.WorkerUnavailable, match=re.escape(reason)):
        runner.run_impl(impl, "cpu", CASES, tmp_path, select=select)
    assert list(test_adapters.iterdir()) == []


# -- results survive a killed run; --resume finishes only what is missing ----------------------------
def test_a_run_killed_during_a_hang_leaves_its_rows_and_resume_finishes_the_rest(tmp_path):
    out = tmp_path / "raw"
    csv_path = runner.results_path(out, "test-hang", "cpu")
    log = out / "logs" / "test-hang-cpu.log"
    selection = [a for case in SELECTED for a in ("--select", case)]
    env = subprocess_env(TMPDIR=str(tmp_path))
    run = subprocess.Popen([sys.executable, "-c", CLI_WITH_TEST_IMPL, "test-hang", "--out", str(out), "--timeout", "60"]
                           + selection, cwd=str(REPO), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    orphan = None
    try:
        wait_for(lambda: log.exists() and "hanging on " + CHOSEN in log.read_text(errors="replace"), 60,
                 "the worker to hang on the chosen case")
        orphan = int(re.search(r"pid (\d+) hanging on", log.read_text(errors="replace")).group(1))
        run.kill()  # SIGKILL: the runner gets no chance to clean up
        run.wait(timeout=10)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if orphan:
            end_orphan(orphan)  # the hung worker, in its own session, outlives the killed runner
    first = csv_path.read_bytes()
    rows = read_rows(csv_path)
    assert [r["case"] for r in rows] == SELECTED[:1] and rows[0]["status"] == "pass"

    env["CONFORMANCE_TEST_TRIGGER"] = "no-such-case"  # the resumed worker behaves
    resumed = subprocess.run([sys.executable, "-c", CLI_WITH_TEST_IMPL, "test-hang", "--out", str(out), "--resume"]
                             + selection, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert csv_path.read_bytes().startswith(first)  # the rows of the killed run are kept as they were
    rows = read_rows(csv_path)
    assert [r["case"] for r in rows] == SELECTED  # the missing five, once each
    assert {r["status"] for r in rows} == {"pass"}


@pytest.mark.parametrize("after_rows", [1, 120])
def test_a_run_killed_at_any_moment_leaves_readable_results(tmp_path, after_rows):
    out = tmp_path / "raw"
    csv_path = runner.results_path(out, "numpy", "cpu")
    env = dict(os.environ, TMPDIR=str(tmp_path))
    command = [sys.executable, "-m", "conformance", "run", "--impl", "numpy", "--out", str(out)]
    run = subprocess.Popen(command, cwd=str(REPO), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: csv_path.exists() and csv_path.read_bytes().count(b"\r\n") > after_rows, 60,
                 "%d rows" % after_rows)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    rows = read_rows(csv_path)
    complete = [r for r in rows if r["status"] in runner.STATUSES]
    assert len(complete) >= after_rows and len(rows) - len(complete) <= 1  # at most a torn last row
    assert all(r["status"] == "pass" for r in complete)

    resumed = subprocess.run(command + ["--resume"], cwd=str(REPO), env=env, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    rows = read_rows(csv_path)
    ids = [e["id"] for e in corpus.load_manifest(CASES)["cases"]]
    assert sorted(r["case"] for r in rows) == sorted(ids)  # every case exactly once
    # the oracle's impl follows torch's convention, which has no formula for Keras's sample weights
    unsupported = [r for r in rows if r["status"] == "unsupported"]
    assert unsupported and all("sample_weight" in r["features"] and "documents no formula" in r["message"]
                               for r in unsupported)
    assert {r["status"] for r in rows} == {"pass", "unsupported"}


def test_resume_after_a_torn_last_row_neither_merges_nor_loses_rows(tmp_path):
    path, _ = runner.run_impl("numpy", "cpu", CASES, tmp_path, select=select)
    data = path.read_bytes()
    third_row = data.index(b"\r\n" + SELECTED[2].encode()) + 2
    path.write_bytes(data[:third_row + len(SELECTED[2]) + 30])  # killed in the middle of writing row 3
    runner.run_impl("numpy", "cpu", CASES, tmp_path, select=select, resume=True)
    rows = read_rows(path)
    assert [r["case"] for r in rows] == SELECTED
    assert {r["status"] for r in rows} == {"pass"} and all(None not in r for r in rows)
    assert path.read_bytes()[:third_row] == data[:third_row]
    # the output errors of the cases run again are in their file once: the first run's were dropped
    outputs = read_rows(results.outputs_path(path))
    assert len({(o["case"], o["output"]) for o in outputs}) == len(outputs)
    assert all(row.outputs for row in results.read(path)) and {o["case"] for o in outputs} == set(SELECTED)


def test_resume_after_a_run_killed_before_its_header_was_written(tmp_path):
    path = runner.results_path(tmp_path, "numpy", "cpu")
    path.write_bytes(b"case,op,dty")
    runner.run_impl("numpy", "cpu", CASES, tmp_path, select=select, resume=True)
    assert [r["case"] for r in read_rows(path)] == SELECTED
