"""Bring your own implementation: an out-of-tree adapter runs like a built-in one, with no edit to
the project (the worked example is examples/chunked_ce, documented in docs/OWN_IMPL.md)."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

import impls

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "chunked_ce"
SPEC = "chunked_ce.adapter:ChunkedAdapter"


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(EXAMPLE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                                      else []))
    env.pop(impls.SPECS_VARIABLE, None)
    env.update(extra)
    return env


def test_an_out_of_tree_adapter_runs_in_its_worker_and_is_judged(tmp_path):
    result = subprocess.run([sys.executable, "-m", "conformance", "run", "--impl", SPEC, "--out", str(tmp_path)],
                            cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "results-chunked-ce-cpu.csv", newline="", encoding="utf-8")))
    by_status = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row)
    # Every case it declares it can express, and computes, agrees with the oracle...
    computed = [r for r in rows if r["status"] in ("pass", "fail") and "invalid" not in r["case"]]
    assert len(computed) > 40 and all(r["status"] == "pass" for r in computed), \
        [(r["case"], r["message"]) for r in computed if r["status"] != "pass"]
    # ...what it declares it cannot express is unsupported with its own reason, never a failure...
    assert all("chunked-ce" in r["message"] for r in by_status["unsupported"])
    # ...and a real finding about it is reported: it wraps a negative label around instead of refusing it.
    negative = next(r for r in rows if r["case"] == "softmax_with_cross_entropy-invalid-swce-label-negative-f64")
    assert negative["status"] == "fail" and negative["behaviour"] == "returns finite numbers"
    assert {r["impl"] for r in rows} == {"chunked-ce"}


def test_an_installed_entry_point_is_an_impl_by_its_name(tmp_path, monkeypatch):
    """A distribution declaring ``conformance.impls`` (as ``pip install examples/chunked_ce`` does) is
    found by name, in this process and in workers."""
    dist = tmp_path / "chunked_ce-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: chunked-ce\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[conformance.impls]\nchunked-ce = %s\n" % SPEC)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    assert "chunked-ce" in impls.impl_names()
    assert impls.get_adapter("chunked-ce").name == "chunked-ce"
    result = subprocess.run([sys.executable, "-m", "conformance", "run", "--impl", "chunked-ce", "--select",
                             "*-base-hard-f32", "--out", str(tmp_path / "run")], cwd=tmp_path,
                            env=_env(PYTHONPATH=os.pathsep.join([str(REPO), str(EXAMPLE), str(tmp_path)])),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "run" / "results-chunked-ce-cpu.csv")))
    assert [(r["case"], r["status"]) for r in rows] == [("softmax_with_cross_entropy-base-hard-f32", "pass")]


def test_pytest_runs_the_conformance_cases_of_an_out_of_tree_impl(tmp_path):
    """A user's own test suite: one test function taking ``conformance_result``, run with
    ``pytest --impl package.module:Adapter``; the plugin comes from the installed suite."""
    (tmp_path / "test_mine.py").write_text(
        "def test_conforms(conformance_result):\n"
        "    assert conformance_result['status'] in ('pass', 'xfail'), conformance_result['message']\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "conformance.pytest_plugin", "-q", "--impl", SPEC,
                             "-k", "base", "test_mine.py", "-p", "no:cacheprovider"],
                            cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout  # base-hard/base-soft in float32 and float64; the rest unsupported


def _rows(path):
    """A results file's rows by case, without the timing columns (two runs never time alike)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["case"]: {k: v for k, v in row.items() if k not in ("seconds", "first_seconds")}
                for row in csv.DictReader(handle)}


def _output_rows(path):
    """An output-errors file's rows, in no particular order (pytest runs the untested cases last)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return sorted(tuple(row.values()) for row in csv.DictReader(handle))


def test_pytest_with_conformance_out_writes_what_conformance_run_writes(tmp_path):
    """One pass over the corpus in CI: the tests' rows, plus at the session's end the rows no test made
    (a framework's bad input), the declared-limit check and the environment file; a session narrowed
    with -k writes its own rows only, as `conformance run --select` does."""
    (tmp_path / "test_mine.py").write_text(
        "def test_conforms(conformance_result):\n"
        "    assert conformance_result['status'] in ('pass', 'xfail'), conformance_result['message']\n")

    def pytest_run(out, *options):
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "conformance.pytest_plugin", "-q", "--impl", SPEC,
                               "test_mine.py", "-p", "no:cacheprovider", "--conformance-out", str(tmp_path / out)]
                              + list(options), cwd=tmp_path, env=_env(), capture_output=True, text=True)

    for out, options in (("whole", ()), ("base", ("-k", "base"))):
        tested = pytest_run(out, *options)
        # A failed test (chunked-ce errors on a label of the wrong rank) is a result like any other.
        assert tested.returncode in (0, 1) and " passed" in tested.stdout, tested.stdout[-3000:] + tested.stderr[-2000:]
    for out, options in (("run-whole", ()), ("run-base", ("--select", "*-base-*"))):
        run = subprocess.run([sys.executable, "-m", "conformance", "run", "--impl", SPEC, "--out", str(tmp_path / out)]
                             + list(options), cwd=tmp_path, env=_env(), capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    name = "results-chunked-ce-cpu.csv"
    whole = _rows(tmp_path / "whole" / name)
    assert len(whole) > 200 and whole == _rows(tmp_path / "run-whole" / name)
    assert any("invalid" in case for case in whole)  # not tests for a framework, yet recorded
    assert any(row["deterministic"] == "True" for row in whole.values())  # run twice, as `conformance run` does
    errors = "output-errors-chunked-ce-cpu.csv"
    assert len(_output_rows(tmp_path / "whole" / errors)) > 80  # two or more outputs per computed case
    assert _output_rows(tmp_path / "whole" / errors) == _output_rows(tmp_path / "run-whole" / errors)
    base = _rows(tmp_path / "base" / name)
    assert len(base) == 16 and base == _rows(tmp_path / "run-base" / name)
    assert _output_rows(tmp_path / "base" / errors) == _output_rows(tmp_path / "run-base" / errors)
    for raw in ("capabilities-chunked-ce-cpu.csv", "environment-chunked-ce-cpu.json"):
        assert (tmp_path / "whole" / raw).is_file(), raw
    assert not (tmp_path / "base" / "capabilities-chunked-ce-cpu.csv").exists()
    # A narrowed session into a whole run folder replaces its own rows and keeps every other one.
    again = pytest_run("whole", "-k", "base-hard")
    assert again.returncode == 0, again.stdout[-3000:]
    assert _rows(tmp_path / "whole" / name) == whole
    assert _output_rows(tmp_path / "whole" / errors) == _output_rows(tmp_path / "run-whole" / errors)
    # An impl that cannot start writes no results file (as `conformance run` skips it).
    missing = subprocess.run([sys.executable, "-m", "pytest", "-p", "conformance.pytest_plugin", "-q", "--impl",
                              "test-unavailable", "test_mine.py", "-p", "no:cacheprovider",
                              "--conformance-out", str(tmp_path / "missing")],
                             cwd=tmp_path, env=_env(CONFORMANCE_TEST_ADAPTERS="1"), capture_output=True, text=True)
    assert missing.returncode in (0, 5), missing.stdout[-3000:]  # every test skipped
    assert not list((tmp_path / "missing").glob("*.csv"))


def test_a_bad_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot import nonesuch_pkg"):
        impls.resolve("nonesuch_pkg.mod:Adapter")
    with pytest.raises(ValueError, match="not a subclass of impls.base.Adapter"):
        impls.resolve("impls.base:OpSupport")
    with pytest.raises(ValueError, match="built-in impl"):
        impls.resolve("impls.torch_adapter:TorchAdapter")
