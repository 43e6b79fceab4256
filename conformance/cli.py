"""The ``conformance`` command line: corpus, verify, run, report, and ``all`` (the main job)."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from tqdm import tqdm

from conformance import corpus, legacy_env, parallel, results, runner, runs
from conformance.cli_args import (UsageError, _impl_list, _impls_for, _overrides,
                                   _positive_int, _python_override, _rerun_pinned, _run_folder)
from impls import ORACLE_IMPLS, impl_names, numpy_dispatch, threads

def cmd_corpus(args):
    if not numpy_dispatch.is_pinned():
        return _rerun_pinned()
    manifest = corpus.generate(args.out, progress=lambda specs: tqdm(specs, desc="corpus", unit="case"))
    print("wrote %d cases and %s to %s (corpus sha256 %s)" % (len(manifest["cases"]), corpus.MANIFEST, args.out,
                                                              manifest["corpus_sha256"][:16]))
    return 0


def cmd_verify(args):
    problems = corpus.verify(args.cases)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print("corpus %s: %d problem(s)" % (args.cases, len(problems)), file=sys.stderr)
        return 1
    print("corpus %s: every file matches %s" % (args.cases, corpus.MANIFEST))
    return 0


def _select(args):
    """The case filter of ``--select`` (None: every case).  A pattern that matches no case of the corpus
    is a user error (a typo would otherwise run nothing and exit 0), named in one line."""
    patterns = args.select
    if not patterns:
        return None
    import fnmatch

    ids = [entry["id"] for entry in corpus.load_manifest(args.cases)["cases"]]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(i, p) for i in ids)]
    if unmatched:
        raise UsageError("--select %s matches no case of %s (case ids look like %s)"
                         % (" ".join(unmatched), args.cases, ids[0] if ids else "nothing: the corpus is empty"))
    return lambda entry: any(fnmatch.fnmatchcase(entry["id"], p) for p in patterns)


def _progress(unit):
    return lambda items, desc: tqdm(items, desc=desc, unit=unit)


def _parallel_progress(unit, slot):
    """A bar on its own terminal line (``position``) for each impl of a parallel run; none when the
    output is not a terminal (a log gets the one line per impl printed when it finishes)."""
    return lambda items, desc: tqdm(items, desc=desc, unit=unit, position=slot, disable=None)


def _say(text):
    """One whole line, never cut into by another thread's line or a progress bar."""
    tqdm.write(text)


def _record_jobs(out, key, jobs):
    """``run.json`` says how many impls ran at once: times measured then (``first_seconds``) are
    inflated by the others' work."""
    path = Path(out) / runs.RUN_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    info[key] = jobs
    path.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def cmd_run(args):
    """Run the impls over the corpus.  ``args.sampler_impls`` (set by ``all`` on the CPU): test these
    impls' samplers in the same pool of ``--jobs`` threads, so the two stages overlap (``_all_tasks``)."""
    sampler_impls = getattr(args, "sampler_impls", ())
    problems = corpus.verify(args.cases)
    if problems:
        print("refusing to run on an unverified corpus:\n  " + "\n  ".join(problems[:10]), file=sys.stderr)
        return 2
    _select(args)  # a pattern that matches nothing stops here, before a run folder is made
    impls = _impls_for(args, args.device)
    args.out = _run_folder(args, args.cases)
    tasks = _all_tasks(impls, sampler_impls) if sampler_impls else [("corpus", impl) for impl in impls]
    jobs = min(args.jobs, len(tasks))
    _record_jobs(args.out, "corpus_jobs", jobs)
    if sampler_impls:
        _record_jobs(args.out, "sampler_jobs", jobs)
    print("run folder: %s" % runs.relative(args.out))
    if jobs > 1:
        print("%d impls at a time (--jobs), %s" % (jobs, _threads_note(jobs)))
    stop = parallel.Stop()
    functions = {"corpus": _corpus_task(args, jobs, stop)}
    if sampler_impls:
        functions["sampler"] = _sampler_task(args, jobs, stop)
    outcome = parallel.run_each(tasks, lambda task, slot: functions[task[0]](task[1], slot), jobs, stop)
    ran = 0
    for (stage, impl), result in outcome.items():
        if stage == "corpus" and result is None:
            ran += 1
        elif stage == "corpus":
            print("skipped %s: %s" % (impl, result), file=sys.stderr)
        elif not isinstance(result, tuple):
            print("skipped the sampler of %s: %s" % (impl, result), file=sys.stderr)
    if ran == 0:
        print("no impl could run on %s" % args.device, file=sys.stderr)
        return 1
    return 0


def _all_tasks(impls, sampler_impls):
    """The order in which ``all`` hands out its corpus and sampler tasks to the ``--jobs`` threads:
    the samplers that draw (minutes each: 10^5 draws per setting) first, then the corpus impls, then
    the samplers that only answer "unsupported" (seconds).  The longest tasks first, so that none
    of them is left running alone at the end while the other cores idle."""
    from conformance import sampler  # noqa: PLC0415

    drawing = [impl for impl in sampler_impls if sampler.draws(impl)]
    return ([("sampler", impl) for impl in drawing] + [("corpus", impl) for impl in impls]
            + [("sampler", impl) for impl in sampler_impls if impl not in drawing])


def _corpus_task(args, jobs, stop):
    """``function(impl, slot)``: one impl over the corpus; None, or why it could not start."""
    overrides = _overrides(args)

    def run_one(impl, slot):
        started = time.perf_counter()
        try:
            path, info = runner.run_impl(
                impl, args.device, args.cases, args.out, python=runner.python_for(impl, overrides), resume=args.resume,
                repeat=args.repeat, timeout=args.timeout, select=_select(args), keep_outputs=args.keep_outputs,
                progress=_parallel_progress("case", slot) if jobs > 1 else _progress("case"), notify=_say,
                env=parallel.worker_environment(jobs), stop=stop)
        except runner.WorkerUnavailable as error:
            return error
        if info and not stop.is_set():
            runner.write_environment(args.out, impl, args.device, info, args.cases)
            _say("%s/%s: results in %s (%.0f s)" % (impl, args.device, runs.relative(path),
                                                    time.perf_counter() - started))
        return None

    return run_one


def _sampler_task(args, jobs, stop):
    """``function(impl, slot)``: one impl's sampler tests; ``(CSV path, seconds)``, or why it could not start."""
    from conformance import sampler  # noqa: PLC0415

    return sampler.impl_task(args.out, sampler.grid(getattr(args, "grid", "default")), python=_overrides(args),
                             timeout=getattr(args, "sampler_timeout", sampler.DEFAULT_TIMEOUT), jobs=jobs, stop=stop,
                             progress=_sampler_progress(jobs), notify=_say)


def _threads_note(jobs):
    share = parallel.worker_environment(jobs).get(threads.THREADS_VARIABLE)
    return "%s thread(s) each" % share if share else "the frameworks' default threads"


def cmd_bench(args):
    from conformance import bench

    impls = _impls_for(args, args.device) if args.impl else bench.default_impls(args.device)
    specs = bench.select_specs(bench.grid_specs(args.grid), args.shapes)
    if not specs:
        raise UsageError("--shapes %s matches no shape of the %s grid; names look like %s"
                         % (" ".join(args.shapes), args.grid, bench.spec_label(bench.grid_specs(args.grid)[0])))
    args.out = _run_folder(args)
    print("run folder: %s" % runs.relative(args.out))
    outcome = bench.run_bench(impls, args.device, args.out, grid=specs, python=_overrides(args),
                              timeout=args.timeout, threads=args.threads, repeat=args.repeat,
                              malloc=args.malloc, resume=args.resume, passes=args.passes, progress=_progress("shape"))
    ran = 0
    for impl, result in outcome.items():
        if isinstance(result, Path):
            ran += 1
            print("%s/%s: benchmark rows in %s" % (impl, args.device, runs.relative(result)))
        else:
            print("skipped %s: %s" % (impl, result), file=sys.stderr)
    if ran and args.repeat > 1:
        print(bench.reproduction_line(args.out, args.device))
    warning = bench.busy_line(bench.read_run(args.out, args.device))
    if warning:
        print(warning, file=sys.stderr)
    return 0 if ran else 1


def cmd_sampler(args):
    from conformance import sampler

    impls = _impls_for(args, "cpu")
    args.out = _run_folder(args)
    print("run folder: %s" % runs.relative(args.out))
    jobs = min(args.jobs, len(impls))
    _record_jobs(args.out, "sampler_jobs", jobs)
    outcome = sampler.run_sampler(impls, args.out, getattr(args, "grid", "default"), python=_overrides(args),
                                  timeout=getattr(args, "sampler_timeout", sampler.DEFAULT_TIMEOUT), jobs=jobs,
                                  progress=_sampler_progress(jobs), notify=_say)
    for impl, result in outcome.items():
        if not isinstance(result, tuple):
            print("skipped %s: %s" % (impl, result), file=sys.stderr)
    return 0 if any(isinstance(result, tuple) for result in outcome.values()) else 1


def _sampler_progress(jobs):
    return lambda slot: _progress("setting") if jobs == 1 else _parallel_progress("setting", slot)


def cmd_report(args):
    try:
        from conformance import report
    except ImportError as error:
        raise UsageError("`conformance report` needs the report extra (%s): "
                         "pip install 'softmax-ce-conformance[report]'" % error) from None
    folders = [runs.check_run(folder) for folder in (args.run or [runs.latest_run()])]
    out = args.out if args.out is not None else folders[0] / "report"
    if len(folders) == 1:
        raw = folders[0]
        table = report.write_report(raw, out, getattr(args, "cases", None))
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="conformance-runs-") as scratch:
            table = report.write_report(runs.merged(folders, Path(scratch)), out, getattr(args, "cases", None))
    with_pd_options = __import__("pandas").option_context("display.width", 200, "display.max_rows", 500)
    with with_pd_options:
        print(table.to_string())
    print("\nreport of %s: %s (tables as CSV beside it)"
          % (", ".join(runs.relative(f) for f in folders), runs.relative(out / "index.html")))
    if getattr(args, "screenshot", False):  # what a reader sees first at 1400 px, and the page below it
        for name, size in (("screenshot-first-screen.png", (1400, 900)), ("screenshot.png", (1400, 3000))):
            problem = report.screenshot(out / "index.html", out / name, size=size)
            print("screenshot: %s" % (problem or runs.relative(out / name)))
    return 0


def cmd_setup(args):
    """Make the cached Python 3.8 environment of paddle-legacy (idempotent)."""
    try:
        legacy_env.setup(python=args.python38)
    except legacy_env.SetupError as error:
        raise UsageError(str(error)) from None
    return 0


def cmd_all(args):
    """The main job: verify the corpus, run every impl that is set up over it, test the samplers,
    run the default benchmark grid, write the report, all in one new run folder."""
    if cmd_verify(args):
        return 1
    _select(args)
    impls = _impls_for(args, args.device)
    if not args.impl:  # say why an opt-in impl is left out, as a missing stack is
        from impls import get_adapter

        for name in impl_names():
            if args.device in get_adapter(name).devices and get_adapter(name).opt_in:
                print("skipped %s: opt-in, %s" % (name, get_adapter(name).opt_in), file=sys.stderr)
    if legacy_env.IMPL in impls and runner.python_for(legacy_env.IMPL, _overrides(args)) is None:
        try:  # first use: make the cached legacy environment when a Python 3.8 exists
            legacy_env.setup()
        except legacy_env.SetupError as error:
            print("skipped %s: %s" % (legacy_env.IMPL, error), file=sys.stderr)
    args.impl = impls
    args.out = _run_folder(args, args.cases)
    # On the CPU the sampler table is made beside the corpus run, in the same pool of --jobs threads
    # (its failures are rows in the report, not the exit code).
    args.sampler_impls = impls if args.device == "cpu" else ()
    code = cmd_run(args)
    if code:
        return code
    if not args.no_bench:  # the speed section; a framework that cannot start is skipped with its reason
        from conformance import bench

        timed = [impl for impl in impls if impl not in ORACLE_IMPLS] or impls  # the oracle is no contender
        bench.run_bench(timed, args.device, args.out, grid=args.bench_grid, python=_overrides(args),
                        progress=_progress("shape"))
        warning = bench.busy_line(bench.read_run(args.out, args.device))
        if warning:
            print(warning, file=sys.stderr)
    args.run, args.out = [args.out], args.report_out
    return cmd_report(args)


def build_parser():
    names = ", ".join(impl_names())
    impl_help = ("comma-separated impls: %s, or package.module:AdapterClass for your own "
                 "(default: every impl that runs on the device)" % names)
    parser = argparse.ArgumentParser(
        prog="conformance", description="Softmax cross-entropy conformance suite. Impls: %s." % names,
        epilog="Each run/bench/sampler/all writes into a new folder under runs/ (runs/latest is the newest); "
               "`conformance report` reports on the latest run unless --run names others.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("corpus", help="generate the stored case corpus")
    p.add_argument("--out", type=Path, default=corpus.DEFAULT_CASES_DIR, help="corpus folder (default: cases/)")
    p.set_defaults(func=cmd_corpus)

    p = commands.add_parser("verify", help="check every corpus file against the manifest")
    p.add_argument("--cases", type=Path, default=corpus.DEFAULT_CASES_DIR, help="corpus folder (default: cases/)")
    p.set_defaults(func=cmd_verify)

    def out_option(p, what):
        p.add_argument("--out", type=Path, default=None, metavar="RUN_DIR",
                       help="run folder for %s (default: a new folder under runs/; an existing folder is added to)"
                       % what)

    def python_option(p):
        p.add_argument("--python", action="append", type=_python_override, metavar="IMPL=PATH",
                       help="interpreter for an impl's worker, e.g. paddle-legacy=/path/to/python3.8")

    def impl_options(p, devices=True):
        p.add_argument("--impl", type=_impl_list, help=impl_help)
        if devices:
            p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="device (default: cpu)")

    def run_options(p):
        p.add_argument("--cases", type=Path, default=corpus.DEFAULT_CASES_DIR, help="corpus folder (default: cases/)")
        out_option(p, "results-*.csv")
        p.add_argument("--resume", action="store_true",
                       help="run only the cases missing from the run folder's results (default folder: the latest run)")
        p.add_argument("--timeout", type=float, default=runner.DEFAULT_CASE_TIMEOUT,
                       help="seconds per case (default %(default)g)")
        p.add_argument("--repeat", type=int, default=runner.DEFAULT_REPEAT,
                       help="runs per case; 2 also checks bitwise repeatability (default %(default)d)")
        p.add_argument("--select", action="append", metavar="PATTERN",
                       help="fnmatch pattern over case ids (repeatable); in an existing run folder the selected "
                            "cases replace their own rows and every other row is kept")
        python_option(p)
        p.add_argument("--keep-outputs", action="store_true", help="keep each impl's output .npz files")
        jobs_option(p)

    def jobs_option(p):
        p.add_argument("--jobs", type=_positive_int, default=threads.machine_cores(), metavar="N",
                       help="impls run at once, each in its own worker with cores/N threads (default: the machine's "
                            "cores, %(default)d); 1 runs them one after another with the frameworks' default threads")

    p = commands.add_parser("run", help="run impls over the corpus in isolated workers")
    impl_options(p)
    run_options(p)
    p.set_defaults(func=cmd_run)

    from conformance import bench  # noqa: PLC0415 - the grid names, declared once there

    p = commands.add_parser("bench", help="time every impl over a grid of shapes (median, IQR, peak memory)")
    impl_options(p)
    p.add_argument("--grid", default="default", choices=bench.GRIDS,
                   help="default: about 42 minutes on 2 CPU cores with 8 impls; full: the product of the ranges "
                        "(hours; for a GPU); quick: one shape per op in both modes (what `conformance all` times)")
    out_option(p, "bench-*.csv")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds per shape: synthesis, warm-up, timing (default %(default)g)")
    python_option(p)
    p.add_argument("--shapes", action="append", metavar="PATTERN",
                   help="fnmatch pattern over shape names such as softmax_with_cross_entropy/forward/float32/"
                        "batch=64/classes=1000/samples=0/dim=0/num_true=1 (repeatable; default: the whole grid)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads asked of every framework (default: the machine's cores); each row states them")
    p.add_argument("--repeat", type=_positive_int, default=1, metavar="N",
                   help="run the grid N times back to back and write reproduction-<device>.csv "
                        "(each ratio per run, agreement within 10%% and 25%%, unreliable rows)")
    p.add_argument("--passes", type=_positive_int, default=None, metavar="N",
                   help="go through the grid N times, each shape's rounds spread over the passes, so that a slow "
                        "spell of the machine takes one pass's rounds at most (default %d; %d for the quick grid)"
                        % (bench.PASSES, bench.QUICK_PASSES))
    p.add_argument("--malloc", choices=sorted(bench.MALLOC_SETTINGS), default="fixed",
                   help="the workers' glibc malloc thresholds: fixed (default), so that freed buffers are kept for "
                        "the next call whatever the process did before; default: glibc's own dynamic thresholds. "
                        "Each row states it")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted benchmark (default folder: the latest run) with the same options: "
                        "shapes every impl has a row for are kept, and the passes every impl finished of the others")
    p.set_defaults(func=cmd_bench)

    p = commands.add_parser("sampler", help="test each native log-uniform sampler (histogram, expected counts, seed), "
                                    "called directly and driving its framework's sampled loss")
    impl_options(p, devices=False)
    p.add_argument("--grid", default="default", choices=("default", "small"),
                   help="default: >= 10^5 candidates per setting; small: the tests' grid")
    out_option(p, "sampler-*.csv")
    p.add_argument("--timeout", dest="sampler_timeout", type=float, default=600.0, metavar="SECONDS",
                   help="seconds per setting (default %(default)g)")
    python_option(p)
    jobs_option(p)
    p.set_defaults(func=cmd_sampler)

    from conformance import cli_found  # noqa: PLC0415 - search, merge-found, repro: the found divergences

    cli_found.add_commands(commands, impl_options, out_option, python_option)

    p = commands.add_parser("report", help="write the HTML report of a run (default: the latest)")
    p.add_argument("--run", "--raw", dest="run", type=Path, action="append", metavar="RUN_DIR",
                   help="run folder to report on (repeatable: several runs are merged; a file in two runs is an "
                        "error); default: runs/latest")
    p.add_argument("--cases", type=Path, default=corpus.DEFAULT_CASES_DIR, help="corpus folder (default: cases/)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default: RUN_DIR/report)")
    p.add_argument("--screenshot", action="store_true", help="also render screenshot-first-screen.png (1400x900) and screenshot.png (1400x3000) with "
                        "headless Chromium")
    p.set_defaults(func=cmd_report)

    p = commands.add_parser("setup", help="make the cached Python 3.8 environment of paddle-legacy (.venv-legacy)")
    p.add_argument("--python38", metavar="PATH", help="the Python 3.8 to build it with (default: found on PATH "
                                                      "or in pyenv)")
    p.set_defaults(func=cmd_setup)

    p = commands.add_parser("all", help="main job: verify, run every available impl, test the samplers, "
                                        "benchmark, report, in one new run folder")
    impl_options(p)
    run_options(p)
    p.add_argument("--report-out", type=Path, default=None, help="report folder (default: RUN_DIR/report)")
    p.add_argument("--no-bench", action="store_true", help="skip the benchmark")
    # The quick grid keeps the whole job within 10 minutes on 2 cores (issue 18: 5.4 min measured with
    # 9 impls); the default grid (conformance bench) takes about 42 minutes on its own with 8 impls.
    p.add_argument("--grid", dest="bench_grid", choices=bench.GRIDS, default="quick",
                   help="benchmark grid (default: quick, one shape per op in both modes; "
                        "default: the whole grid of `conformance bench`, about 42 more minutes)")
    p.set_defaults(func=cmd_all)
    return parser


def resume_command(args) -> str:
    """The command that finishes an interrupted ``run``, ``all`` or ``bench`` in its own folder with
    the same impls, device and selection (``all`` resumes the corpus, then tests the samplers, times
    and reports again; ``bench`` keeps the shapes every impl has timed), quoted for a POSIX shell;
    empty when there is nothing to resume (no run folder yet, or another command)."""
    out = getattr(args, "out", None)
    if args.command not in ("run", "all", "bench") or not isinstance(out, Path):
        return ""
    words = ["conformance", args.command, "--resume", "--out", str(runs.relative(out))]
    if args.impl:
        from impls import command_line_name

        words += ["--impl", ",".join(command_line_name(name) for name in args.impl)]
    if getattr(args, "device", "cpu") != "cpu":
        words += ["--device", args.device]
    for pattern in getattr(args, "select", None) or ():  # a --select run resumes those cases, not the corpus
        words += ["--select", pattern]
    if args.command == "bench":  # the same grid, timed the same way (defaults left out)
        defaults = build_parser().parse_args(["bench"])
        for option in ("grid", "repeat", "passes", "threads", "malloc", "timeout"):
            if getattr(args, option) != getattr(defaults, option):
                words += ["--" + option, str(getattr(args, option))]
        for pattern in args.shapes or ():
            words += ["--shapes", pattern]
    for impl, path in sorted(dict(getattr(args, "python", None) or []).items()):
        words += ["--python", "%s=%s" % (impl, path)]
    return " ".join(shlex.quote(word) for word in words)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        hint = resume_command(args)
        print("\ninterrupted%s" % ("; continue with: " + hint if hint else ""), file=sys.stderr)
        return 130
    except (UsageError, runs.RunError, results.ResultsFormatError) as error:  # a user error: one line
        print("conformance %s: %s" % (args.command, error), file=sys.stderr)
        return 2
