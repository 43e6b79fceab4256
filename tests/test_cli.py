"""The command line end to end on a small selection of the real corpus (numpy impl only)."""
import csv
import subprocess
import sys
from pathlib import Path

import impls
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


def test_all_grid_options_do_not_collide():
    """`all --grid` picks the benchmark grid; the sampler stage reads its own grid name from the same
    namespace (default), so the two must not share a destination (a first version passed 'quick' to it)."""
    from conformance import bench, sampler

    args = cli.build_parser().parse_args(["all"])
    assert args.bench_grid == "quick" and args.bench_grid in bench.GRIDS
    sampler.grid(getattr(args, "grid", "default"))  # raises ValueError for a benchmark grid name
    assert cli.build_parser().parse_args(["all", "--grid", "default"]).bench_grid == "default"


def test_all_says_why_an_opt_in_impl_is_left_out(tmp_path, monkeypatch, capsys):
    """`conformance all` runs every installed impl; one it leaves out by design is named with its reason."""
    from conformance import runner

    monkeypatch.setattr(runner, "available_impls", lambda device: ["numpy"])
    monkeypatch.setattr(cli, "cmd_run", lambda args: 1)  # stop after choosing the impls
    assert cli.main(["all", "--out", str(tmp_path / "raw"), "--no-bench"]) == 1
    assert "skipped torch-compile: opt-in, compiles each case" in capsys.readouterr().err


def test_a_select_rerun_replaces_only_its_own_rows(tmp_path):
    conformance("run", "--impl", "numpy", "--select", "*-base-*", "--out", str(tmp_path))
    before = {r["case"]: r for r in csv.DictReader(open(tmp_path / "results-numpy-cpu.csv"))}
    result = conformance("run", "--impl", "numpy", "--select", "*-base-hard-f32", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "1 selected case(s) replace their rows" in result.stdout and "15 other row(s) kept" in result.stdout
    after = {r["case"]: r for r in csv.DictReader(open(tmp_path / "results-numpy-cpu.csv"))}
    assert set(after) == set(before) and len(after) == 16


def test_runs_go_to_new_folders_and_report_reads_only_the_latest(tmp_path):
    """Two runs in the same working directory never mix: each has its folder, the report one run."""
    first = conformance("run", "--impl", "numpy", "--select", "*-base-hard-f32", cwd=tmp_path)
    second = conformance("run", "--impl", "numpy", "--select", "*-base-soft-f64", cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    folders = sorted(p for p in (tmp_path / "runs").iterdir() if p.name != "latest")
    assert len(folders) == 2 and (tmp_path / "runs" / "latest").resolve() == folders[1].resolve()
    assert all((f / "run.json").is_file() and (f / "results-numpy-cpu.csv").is_file() for f in folders)
    report = conformance("report", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(open(folders[1] / "report" / "results.csv")))
    assert [r["case"] for r in rows] == ["softmax_with_cross_entropy-base-soft-f64"]
    both = conformance("report", "--run", str(folders[0]), "--run", str(folders[1]), "--out",
                       str(tmp_path / "both"), cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    assert len(list(csv.DictReader(open(tmp_path / "both" / "results.csv")))) == 2


def test_user_errors_are_one_line_and_a_nonzero_exit(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, expected in ((("report",), "no run under runs/"),
                           (("report", "--run", str(empty)), "no results-*.csv"),
                           (("run", "--impl", "cupy"), "cupy does not run on cpu"),
                           (("all", "--impl", "cupy", "--no-bench"), "cupy does not run on cpu")):
        result = conformance(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)


def test_ctrl_c_names_the_resume_command(tmp_path):
    """SIGINT in the middle of a run: no traceback, exit 130, the command that finishes the run."""
    import signal
    import time

    # A shell without job control starts background commands with SIGINT ignored, and Python keeps an
    # ignored SIGINT ignored: give the child the default disposition so this test means the same
    # under `nohup tox &` as in a terminal.
    process = subprocess.Popen([sys.executable, "-m", "conformance", "run", "--impl", "numpy", "--out",
                                str(tmp_path / "run")], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    results = tmp_path / "run" / "results-numpy-cpu.csv"
    while time.time() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "conformance run --resume --out %s" % (tmp_path / "run") in err


def test_interrupted_all_names_the_command_that_finishes_it_with_its_impls(tmp_path, monkeypatch, capsys):
    """`all` resumes with `all` (the corpus where it stopped, then the samplers, benchmark and report),
    with the impls and device it was given; a user's adapter by the spec a new process can import."""
    def interrupted(args):
        args.out = tmp_path / "run"
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_all", interrupted)
    monkeypatch.syspath_prepend(str(REPO / "examples" / "chunked_ce"))
    monkeypatch.setenv(impls.SPECS_VARIABLE, "")  # resolve() registers the spec here; restored afterwards
    assert cli.main(["all", "--impl", "numpy,chunked_ce.adapter:ChunkedAdapter"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == ("interrupted; continue with: conformance all --resume --out %s "
                           "--impl numpy,chunked_ce.adapter:ChunkedAdapter" % (tmp_path / "run"))
    args = cli.build_parser().parse_args(["all", "--device", "gpu", "--impl", "torch"])
    args.out = tmp_path / "run"
    assert cli.resume_command(args).endswith("--impl torch --device gpu")
    args.out = None  # interrupted before it had a run folder: nothing to resume
    assert cli.resume_command(args) == ""
    args = cli.build_parser().parse_args(["run", "--impl", "numpy", "--select", "*-base-*"])
    args.out = tmp_path / "my run"
    assert cli.resume_command(args) == ("conformance run --resume --out '%s' --impl numpy --select '*-base-*'"
                                        % (tmp_path / "my run"))


def test_an_interrupted_benchmark_names_the_command_that_finishes_it(tmp_path, monkeypatch, capsys):
    """`bench --resume` with the grid, repeats, shapes and allocator setting it was started with
    (defaults left out), so that the shapes it times pair with the ones it keeps."""
    def interrupted(args):
        args.out = tmp_path / "b"
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_bench", interrupted)
    assert cli.main(["bench", "--impl", "numpy-fast,torch", "--repeat", "2", "--shapes", "softmax*",
                     "--malloc", "default", "--python", "torch=/opt/py"]) == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted; continue with: conformance bench --resume --out %s --impl numpy-fast,torch --repeat 2 "
        "--malloc default --shapes 'softmax*' --python torch=/opt/py" % (tmp_path / "b"))
    args = cli.build_parser().parse_args(["bench"])
    args.out = tmp_path / "b"
    assert cli.resume_command(args) == "conformance bench --resume --out %s" % (tmp_path / "b")


def test_help_lists_the_impls_and_every_option_is_documented():
    parser = cli.build_parser()
    assert all(name in parser.format_help() for name in ("numpy", "torch", "tensorflow", "paddle-legacy"))
    for command, sub in parser._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, "%s %s has no help" % (command, action.option_strings)


def test_a_pattern_that_matches_nothing_is_a_user_error(tmp_path):
    """A typo in --select (or --shapes) would run nothing and exit 0: one line naming it, exit 2, no run folder."""
    for args, expected in ((("run", "--impl", "numpy", "--select", "zzz*", "--out", str(tmp_path / "r")),
                            "--select zzz* matches no case"),
                           (("run", "--impl", "numpy", "--select", "softmax*", "--select", "nope",
                             "--out", str(tmp_path / "r")), "--select nope matches no case"),
                           (("all", "--impl", "numpy", "--no-bench", "--select", "zzz*", "--out", str(tmp_path / "a")),
                            "--select zzz* matches no case"),
                           (("bench", "--impl", "numpy-fast", "--shapes", "zzz*", "--out", str(tmp_path / "b")),
                            "--shapes zzz* matches no shape")):
        result = conformance(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    assert not (tmp_path / "r").exists() and not (tmp_path / "a").exists()
