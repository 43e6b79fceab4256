"""``conformance run --jobs N``: impls side by side give the rows one after another gives, a crashing
impl does not take down the others, Ctrl-C stops every worker, a bad --jobs is a usage error."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conformance import parallel
from impls import threads

REPO = Path(__file__).resolve().parent.parent
SELECT = ["--select", "*-base-*", "--select", "*-T2-*"]
TRIGGER = "base-soft-f32"  # the cases on which the misbehaving test adapters misbehave
TIMING_COLUMNS = {"seconds", "first_seconds"}  # wall-clock times: the only columns allowed to differ


def conformance(*args, **env):
    full = dict(os.environ, CONFORMANCE_TEST_ADAPTERS="1", CONFORMANCE_TEST_TRIGGER=TRIGGER,
                PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), **env)
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=REPO, capture_output=True, text=True,
                          env=full)


def rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["case"]: {k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(handle)}


def test_a_parallel_run_gives_the_rows_of_a_sequential_run(tmp_path):
    impls = "numpy,numpy-fast,test-noisy,test-wrong-soft"
    one = conformance("run", "--impl", impls, *SELECT, "--out", str(tmp_path / "one"), "--jobs", "1")
    four = conformance("run", "--impl", impls, *SELECT, "--out", str(tmp_path / "four"), "--jobs", "4")
    assert one.returncode == 0 and four.returncode == 0, one.stderr + four.stderr
    assert "4 impls at a time" in four.stdout
    for impl in impls.split(","):
        name = "results-%s-cpu.csv" % impl
        sequential, parallel_rows = rows(tmp_path / "one" / name), rows(tmp_path / "four" / name)
        assert len(sequential) >= 16 and parallel_rows == sequential, impl
        errors = "output-errors-%s-cpu.csv" % impl  # no timings there: the same bytes
        assert (tmp_path / "four" / errors).read_bytes() == (tmp_path / "one" / errors).read_bytes(), impl
        assert "%s/cpu: results in" % impl in four.stdout
    assert json.loads((tmp_path / "four" / "run.json").read_text())["corpus_jobs"] == 4
    assert json.loads((tmp_path / "one" / "run.json").read_text())["corpus_jobs"] == 1
    # the test-wrong-soft adapter really is wrong somewhere: equal rows are not all "pass"
    assert "fail" in {r["status"] for r in rows(tmp_path / "four" / "results-test-wrong-soft-cpu.csv").values()}


def test_workers_of_a_parallel_run_share_the_cores():
    assert parallel.worker_environment(1) == {}
    share = max(1, threads.machine_cores() // 2)
    assert parallel.worker_environment(2)[threads.THREADS_VARIABLE] == str(share)
    assert parallel.worker_environment(2)["OMP_NUM_THREADS"] == str(share)
    assert parallel.worker_environment(10 ** 6)[threads.THREADS_VARIABLE] == "1"


def test_the_workers_are_told_their_share(tmp_path):
    result = conformance("run", "--impl", "numpy,numpy-fast", "--select", "*-base-hard-f32", "--out", str(tmp_path),
                         "--jobs", "2")
    assert result.returncode == 0, result.stderr
    share = max(1, threads.machine_cores() // 2)
    for impl in ("numpy", "numpy-fast"):
        settings = json.loads((tmp_path / ("environment-%s-cpu.json" % impl)).read_text())["threads"]["settings"]
        assert "numpy BLAS" in settings and settings.count(" %d" % share) >= 1, settings
    assert "numpy contender pool %d" % share in json.loads(
        (tmp_path / "environment-numpy-fast-cpu.json").read_text())["threads"]["settings"]


def test_a_crashing_impl_does_not_take_down_the_others(tmp_path):
    result = conformance("run", "--impl", "test-segfault,numpy,test-unavailable", *SELECT, "--out", str(tmp_path),
                         "--jobs", "3")
    assert result.returncode == 0, result.stderr
    assert "skipped test-unavailable" in result.stderr and "Traceback" not in result.stderr
    numpy_rows = rows(tmp_path / "results-numpy-cpu.csv")
    crashed = rows(tmp_path / "results-test-segfault-cpu.csv")
    assert set(crashed) == set(numpy_rows) and len(numpy_rows) >= 16
    assert {r["status"] for r in numpy_rows.values()} == {"pass"}
    hit = [case for case in crashed if TRIGGER in case]
    assert hit and all(crashed[case]["status"] == "crash" and "SIGSEGV" in crashed[case]["message"] for case in hit)
    assert all(crashed[case]["status"] == "pass" for case in crashed if case not in hit)


def test_bad_jobs_is_a_usage_error_naming_the_argument():
    for value in ("0", "-2", "two", "1.5"):
        result = conformance("run", "--impl", "numpy", "--jobs", value)
        assert result.returncode == 2, (value, result.stderr)
        assert "argument --jobs: expected an integer >= 1, got %r" % value in result.stderr, result.stderr


def test_ctrl_c_stops_every_worker_of_a_parallel_run(tmp_path):
    """A worker hanging on a case and one busy with others: SIGINT ends both at once, writes no crash
    or timeout row for the interrupted cases, and names the --resume command, which finishes the run."""
    out = tmp_path / "run"
    env = dict(os.environ, CONFORMANCE_TEST_ADAPTERS="1", CONFORMANCE_TEST_TRIGGER="base-hard-f32",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    # SIGINT's default disposition in the child, as tests/test_cli.py explains.
    command = [sys.executable, "-m", "conformance", "run", "--impl", "test-hang,numpy", "--out", str(out), "--jobs", "2",
               "--select", "softmax_with_cross_entropy-*"]
    process = subprocess.Popen(command + ["--timeout", "300"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    hang_log, numpy_results = out / "logs" / "test-hang-cpu.log", out / "results-numpy-cpu.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (
            hang_log.exists() and "hanging on" in hang_log.read_text(errors="replace")
            and numpy_results.exists() and len(numpy_results.read_text().splitlines()) >= 3):
        time.sleep(0.05)
    interrupted = time.time()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert time.time() - interrupted < 20, "the hung worker kept the run alive"
    assert "Traceback" not in err and ("conformance run --resume --out %s --impl test-hang,numpy "
                                      "--select 'softmax_with_cross_entropy-*'\n" % out) in err
    hung = rows(out / "results-test-hang-cpu.csv")
    assert not [case for case, row in hung.items() if row["status"] in ("crash", "timeout")], hung
    numpy_rows = rows(numpy_results)
    assert {r["status"] for r in numpy_rows.values()} <= {"pass", "unsupported", "inapplicable", "xfail"}
    # the run is not finished: --resume (with the hang off) finishes it, each case once
    total = sum(entry["op"] == "softmax_with_cross_entropy"
                for entry in json.loads((REPO / "cases" / "MANIFEST.json").read_text())["cases"])
    assert len(numpy_rows) < total or len(hung) < total
    resumed = subprocess.run(command + ["--resume"], cwd=REPO, capture_output=True, text=True,
                             env=dict(env, CONFORMANCE_TEST_TRIGGER="no-such-case"))
    assert resumed.returncode == 0, resumed.stderr
    for name in ("results-test-hang-cpu.csv", "results-numpy-cpu.csv"):
        with open(out / name, newline="", encoding="utf-8") as handle:
            cases = [row["case"] for row in csv.DictReader(handle)]
        assert len(cases) == len(set(cases)) == total, name


def test_all_overlaps_the_sampler_stage_with_the_corpus_and_gives_the_same_rows(tmp_path, monkeypatch, capsys):
    """`all --jobs 2` hands corpus and sampler tasks to one pool: the rows are those of --jobs 1."""
    from conformance import cli, runner, sampler

    monkeypatch.setattr(runner, "available_impls", lambda device: ["numpy", "numpy-fast"])
    small = sampler.grid("small")
    monkeypatch.setattr(sampler, "grid", lambda name="default": small)  # the tests' grid, not 10^5 draws
    assert [task for task in cli._all_tasks(["numpy", "numpy-fast"], ["numpy-fast", "numpy"])] == [
        ("sampler", "numpy"), ("corpus", "numpy"), ("corpus", "numpy-fast"), ("sampler", "numpy-fast")]
    for jobs in ("1", "2"):
        code = cli.main(["all", "--select", "softmax_with_cross_entropy-base-*", "--out", str(tmp_path / jobs),
                         "--report-out", str(tmp_path / jobs / "report"), "--no-bench", "--jobs", jobs])
        assert code == 0
    out = capsys.readouterr().out
    assert "numpy: sampler rows in" in out and "numpy-fast: sampler rows in" in out
    assert json.loads((tmp_path / "2" / "run.json").read_text())["corpus_jobs"] == 2

    def sampler_rows(folder, impl):
        with open(folder / ("sampler-%s-cpu.csv" % impl), newline="", encoding="utf-8") as handle:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]

    for impl in ("numpy", "numpy-fast"):
        assert rows(tmp_path / "2" / ("results-%s-cpu.csv" % impl)) == rows(tmp_path / "1" / ("results-%s-cpu.csv" % impl))
        assert sampler_rows(tmp_path / "2", impl) == sampler_rows(tmp_path / "1", impl)
    assert {r["status"] for r in sampler_rows(tmp_path / "2", "numpy-fast")} == {"unsupported"}
    assert "pass" in {r["status"] for r in sampler_rows(tmp_path / "2", "numpy")}
