"""The ``conformance`` command line: corpus, verify, run, report, and ``all`` (the main job)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from conformance import corpus, runner
from impls import ADAPTER_MODULES

DEFAULT_RAW = Path("reports") / "raw"
DEFAULT_REPORTS = Path("reports")


def _impl_list(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ADAPTER_MODULES]
    if unknown:
        raise argparse.ArgumentTypeError("unknown impl %s; expected some of %s" % (", ".join(unknown),
                                                                              ", ".join(ADAPTER_MODULES)))
    return names


def _python_override(text):
    impl, sep, path = text.partition("=")
    if not sep or impl not in ADAPTER_MODULES:
        raise argparse.ArgumentTypeError("expected IMPL=PATH with IMPL one of %s, got %r"
                                         % (", ".join(ADAPTER_MODULES), text))
    return impl, path


def cmd_corpus(args):
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
    patterns = args.select
    if not patterns:
        return None
    import fnmatch

    return lambda entry: any(fnmatch.fnmatchcase(entry["id"], p) for p in patterns)


def cmd_run(args):
    problems = corpus.verify(args.cases)
    if problems:
        print("refusing to run on an unverified corpus:\n  " + "\n  ".join(problems[:10]), file=sys.stderr)
        return 2
    impls = args.impl or runner.available_impls(args.device)
    overrides_given = dict(args.python or [])
    if "paddle-legacy" in impls and runner.python_for("paddle-legacy", overrides_given) == sys.executable \
            and sys.version_info >= (3, 9):
        print("paddle-legacy needs a Python 3.8 interpreter with paddlepaddle 1.8.5: pass "
              "--python paddle-legacy=PATH or set CONFORMANCE_PYTHON_PADDLE_LEGACY (see README)", file=sys.stderr)
    overrides = dict(args.python or [])
    args.out.mkdir(parents=True, exist_ok=True)
    ran = 0
    for impl in impls:
        try:
            path, info = runner.run_impl(impl, args.device, args.cases, args.out, python=runner.python_for(impl, overrides),
                                         resume=args.resume, repeat=args.repeat, timeout=args.timeout,
                                         select=_select(args), keep_outputs=args.keep_outputs,
                                         progress=lambda items, desc: tqdm(items, desc=desc, unit="case"))
        except runner.WorkerUnavailable as error:
            print("skipped %s: %s" % (impl, error), file=sys.stderr)
            continue
        ran += 1
        if info:
            environment = dict(info, corpus_sha256=corpus.load_manifest(args.cases)["corpus_sha256"],
                               finished=runner.wall_clock())
            (args.out / ("environment-%s-%s.json" % (impl, args.device))).write_text(
                json.dumps(environment, indent=1, sort_keys=True), encoding="utf-8")
            print("%s/%s: results in %s" % (impl, args.device, path))
    if ran == 0:
        print("no impl could run on %s" % args.device, file=sys.stderr)
        return 1
    return 0


def cmd_bench(args):
    from conformance import bench

    impls = args.impl or bench.default_impls(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    outcome = bench.run_bench(impls, args.device, args.out, grid=args.grid, python=dict(args.python or []),
                              timeout=args.timeout,
                              progress=lambda items, desc: tqdm(items, desc=desc, unit="shape"))
    ran = 0
    for impl, result in outcome.items():
        if isinstance(result, Path):
            ran += 1
            print("%s/%s: benchmark rows in %s" % (impl, args.device, result))
        else:
            print("skipped %s: %s" % (impl, result), file=sys.stderr)
    return 0 if ran else 1


def cmd_sampler(args):
    from conformance import sampler

    impls = args.impl or runner.available_impls("cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    outcome = sampler.run_sampler(impls, args.out, getattr(args, "grid", "default"), python=dict(args.python or []),
                                  timeout=getattr(args, "sampler_timeout", sampler.DEFAULT_TIMEOUT),
                                  progress=lambda items, desc: tqdm(items, desc=desc, unit="setting"))
    ran = 0
    for impl, result in outcome.items():
        if isinstance(result, tuple):
            ran += 1
            print("%s: sampler rows in %s (%.1f s)" % (impl, result[0], result[1]))
        else:
            print("skipped %s: %s" % (impl, result), file=sys.stderr)
    return 0 if ran else 1


def cmd_report(args):
    from conformance import report

    table = report.write_report(args.raw, args.out, getattr(args, "cases", None))
    with_pd_options = __import__("pandas").option_context("display.width", 200, "display.max_rows", 500)
    with with_pd_options:
        print(table.to_string())
    print("\nwrote %s (tables as CSV beside it)" % (args.out / "index.html"))
    if getattr(args, "screenshot", False):
        problem = report.screenshot(args.out / "index.html", args.out / "screenshot.png")
        print("screenshot: %s" % (problem or args.out / "screenshot.png"))
    return 0


def cmd_all(args):
    """The main job: verify the corpus, run every impl that is set up on the CPU over it, test the
    samplers, run the default benchmark grid, write the report."""
    if cmd_verify(args):
        return 1
    args.impl, args.device = None, "cpu"
    code = cmd_run(args)
    if code:
        return code
    cmd_sampler(args)  # the sampler table: its failures are rows in the report, not the job's exit code
    if not args.no_bench:  # the speed section; a framework that cannot start is skipped with its reason
        from conformance import bench

        bench.run_bench(bench.default_impls("cpu"), "cpu", args.out, python=dict(args.python or []),
                        progress=lambda items, desc: tqdm(items, desc=desc, unit="shape"))
    args.raw = args.out
    args.out = DEFAULT_REPORTS if args.report_out is None else args.report_out
    return cmd_report(args)


def build_parser():
    parser = argparse.ArgumentParser(prog="conformance", description="Softmax cross-entropy conformance suite.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("corpus", help="generate the stored case corpus")
    p.add_argument("--out", type=Path, default=corpus.DEFAULT_CASES_DIR)
    p.set_defaults(func=cmd_corpus)

    p = commands.add_parser("verify", help="check every corpus file against the manifest")
    p.add_argument("--cases", type=Path, default=corpus.DEFAULT_CASES_DIR)
    p.set_defaults(func=cmd_verify)

    def run_options(p):
        p.add_argument("--cases", type=Path, default=corpus.DEFAULT_CASES_DIR)
        p.add_argument("--out", type=Path, default=DEFAULT_RAW, help="folder for results-*.csv (default reports/raw)")
        p.add_argument("--resume", action="store_true", help="run only the cases missing from existing results")
        p.add_argument("--timeout", type=float, default=runner.DEFAULT_CASE_TIMEOUT, help="seconds per case")
        p.add_argument("--repeat", type=int, default=2, help="runs per case; 2 also checks bitwise repeatability")
        p.add_argument("--select", action="append", help="fnmatch pattern over case ids (repeatable)")
        p.add_argument("--python", action="append", type=_python_override, metavar="IMPL=PATH",
                       help="interpreter for an impl, e.g. paddle-legacy=/path/to/python3.8")
        p.add_argument("--keep-outputs", action="store_true", help="keep each impl's output .npz files")

    p = commands.add_parser("run", help="run impls over the corpus in isolated workers")
    p.add_argument("--impl", type=_impl_list, help="comma-separated impls (default: every impl for the device)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    run_options(p)
    p.set_defaults(func=cmd_run)

    p = commands.add_parser("bench", help="time every impl over a grid of shapes (median, IQR, peak memory)")
    p.add_argument("--impl", type=_impl_list, help="comma-separated impls (default: every impl for the device)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--grid", default="default", choices=("default", "full"),
                   help="default: minutes on 2 CPU cores; full: the product of the ranges (hours; for a GPU)")
    p.add_argument("--out", type=Path, default=DEFAULT_RAW, help="folder for bench-*.csv (default reports/raw)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per shape (synthesis, warm-up, timing)")
    p.add_argument("--python", action="append", type=_python_override, metavar="IMPL=PATH",
                   help="interpreter for an impl, e.g. paddle-legacy=/path/to/python3.8")
    p.set_defaults(func=cmd_bench)

    p = commands.add_parser("sampler", help="test each native log-uniform sampler (histogram, expected counts, seed)")
    p.add_argument("--impl", type=_impl_list, help="comma-separated impls (default: every impl for the CPU)")
    p.add_argument("--grid", default="default", choices=("default", "small"),
                   help="default: >= 10^5 candidates per setting; small: the tests' grid")
    p.add_argument("--out", type=Path, default=DEFAULT_RAW, help="folder for sampler-*.csv (default reports/raw)")
    p.add_argument("--timeout", dest="sampler_timeout", type=float, default=600.0, metavar="SECONDS",
                   help="seconds per setting")
    p.add_argument("--python", action="append", type=_python_override, metavar="IMPL=PATH",
                   help="interpreter for an impl, e.g. paddle-legacy=/path/to/python3.8")
    p.set_defaults(func=cmd_sampler)

    p = commands.add_parser("report", help="merge results and write the HTML report")
    p.add_argument("--raw", type=Path, default=DEFAULT_RAW)
    p.add_argument("--cases", type=Path, default=corpus.DEFAULT_CASES_DIR)
    p.add_argument("--out", type=Path, default=DEFAULT_REPORTS)
    p.add_argument("--screenshot", action="store_true", help="also render screenshot.png with headless Chromium")
    p.set_defaults(func=cmd_report)

    p = commands.add_parser("all", help="main job: verify, run every available impl on the CPU, test the samplers, "
                                        "benchmark, report")
    run_options(p)
    p.add_argument("--report-out", type=Path, default=None)
    p.add_argument("--no-bench", action="store_true", help="skip the benchmark grid (7 to 8 minutes on 2 cores)")
    p.set_defaults(func=cmd_all)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)
