"""The command line end to end on a small selection of the real corpus (numpy impl only)."""
import csv
import subprocess
import sys
from pathlib import Path

from conformance import cli

REPO = Path(__file__).resolve().parent.parent


def conformance(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=cwd, capture_output=True, text=True)


def test_verify_passes_on_the_committed_corpus():
    result = conformance("verify")
    assert result.returncode == 0, result.stderr
    assert "every file matches" in result.stdout


def test_run_writes_one_row_per_case_and_report_summarises(tmp_path):
    result = conformance("run", "--impl", "numpy", "--select", "*-base-*", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "results-numpy-cpu.csv")))
    assert len(rows) == 16  # 4 dtypes x (hard + soft + 2 sampled ops)
    assert {r["status"] for r in rows} == {"pass"}
    assert all(r["impl_version"] and r["tolerance"] for r in rows)
    report = conformance("report", "--raw", str(tmp_path), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "summary.csv").exists()


def test_resume_runs_only_what_is_missing(tmp_path):
    conformance("run", "--impl", "numpy", "--select", "*-base-f32", "--out", str(tmp_path))
    first = (tmp_path / "results-numpy-cpu.csv").read_text().splitlines()
    result = conformance("run", "--impl", "numpy", "--select", "*-base-*", "--out", str(tmp_path), "--resume")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "results-numpy-cpu.csv")))
    assert len(rows) == 16 and len({r["case"] for r in rows}) == 16
    assert (tmp_path / "results-numpy-cpu.csv").read_text().splitlines()[: len(first)] == first


def test_run_refuses_an_unverified_corpus(tmp_path):
    cases = tmp_path / "cases"
    subprocess.run(["cp", "-r", str(REPO / "cases"), str(cases)], check=True)
    victim = sorted(cases.rglob("*.npz"))[3]
    victim.write_bytes(victim.read_bytes()[:100])
    result = conformance("run", "--impl", "numpy", "--cases", str(cases), "--out", str(tmp_path / "raw"))
    assert result.returncode == 2
    assert victim.name in result.stderr


def test_unknown_impl_is_a_usage_error():
    result = conformance("run", "--impl", "nonesuch")
    assert result.returncode == 2
    assert "unknown impl nonesuch" in result.stderr


def test_all_runs_verify_run_sampler_and_report(tmp_path, monkeypatch):
    """The main job end to end with the numpy impl only: results, sampler rows, report, exit 0."""
    from conformance import runner, sampler

    monkeypatch.setattr(runner, "available_impls", lambda device: ["numpy"])
    small = sampler.grid("small")
    monkeypatch.setattr(sampler, "grid", lambda name="default": small)  # the tests' grid, not 10^5 draws
    raw, out = tmp_path / "raw", tmp_path / "report"
    code = cli.main(["all", "--select", "softmax_with_cross_entropy-base-*", "--out", str(raw),
                     "--report-out", str(out), "--no-bench"])
    assert code == 0
    rows = list(csv.DictReader(open(raw / "results-numpy-cpu.csv", newline="", encoding="utf-8")))
    assert len(rows) == 8 and {r["status"] for r in rows} == {"pass"}
    checks = list(csv.DictReader(open(raw / "sampler-numpy-cpu.csv", newline="", encoding="utf-8")))
    assert checks and all(r["impl"] == "numpy" for r in checks)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "softmax_with_cross_entropy-base-hard-f32" in page and 'id="T_sampler"' in page
    assert not list(raw.glob("bench-*.csv"))  # --no-bench
