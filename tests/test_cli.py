"""The command line end to end on a small selection of the real corpus (numpy impl only)."""
import csv
import subprocess
import sys
from pathlib import Path

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
