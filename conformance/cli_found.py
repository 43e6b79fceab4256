"""The command line of the found divergences: ``search``, ``merge-found`` and ``repro``.

Kept apart from ``conformance/cli.py`` (which registers them, :func:`add_commands`) so that each file
stays readable; the shared helpers (``UsageError``, the run folder, the impl list) are cli's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from conformance import cli_args
from conformance import corpus, found, reproducers, runner, runs
from impls import numpy_dispatch


def cmd_merge_found(args):
    """Found corpora of several search shards as one, merged by content hash (conformance/found.py)."""
    try:
        manifest = found.merge_found(args.sources, args.into)
    except (ValueError, corpus.CorpusError) as error:
        raise cli_args.UsageError(str(error)) from None
    signatures = {key for entry in manifest["cases"] for key in entry.get("signatures", ())}
    print("%s: %d found case(s), %d signature(s)" % (args.into, len(manifest["cases"]), len(signatures)))
    return 0


def cmd_search(args):
    """A seeded differential search; new divergences are shrunk, stored in the found corpus and listed
    in the run folder's found-*.csv (see conformance/search.py)."""
    from conformance import search  # noqa: PLC0415 - the workers' machinery, only for a search

    if not numpy_dispatch.is_pinned() and sys.argv[1:2] == ["search"]:  # found goldens, as stored ones
        return cli_args._rerun_pinned()
    impls = cli_args._impls_for(args, args.device)
    try:
        shard, budget = search.parse_shard(args.shard), search.parse_budget(args.budget) if args.budget else None
    except ValueError as error:
        raise cli_args.UsageError(str(error)) from None
    if budget is None and args.max_cases is None:
        raise cli_args.UsageError("give --budget, --cases or both: the search stops at the first one reached")
    args.out = cli_args._run_folder(args)
    print("run folder: %s" % runs.relative(args.out))
    try:
        finder = search.Search(impls, args.out, ops=args.op, seed=args.seed, shard=shard, device=args.device,
                               found_dir=args.found_dir, repro_dir=args.repro_dir, python=cli_args._overrides(args),
                               timeout=args.timeout, notify=tqdm.write)
        if finder.resume():
            print("resuming %s after %d draws" % (runs.relative(finder.state_path), finder.state["next"]))
        state = finder.run(budget, args.max_cases,
                           progress=lambda total, initial: tqdm(total=total, initial=initial, desc="search %s"
                                                                % finder.tag, unit="case"))
    except (ValueError, runner.WorkerUnavailable) as error:
        raise cli_args.UsageError(str(error)) from None
    rates = ", ".join("%s %.2f/s" % item for item in search.throughput(state).items())
    print("%d draws tried: %d cases (%d rejected by the oracle), %d known deviations, %d group(s) (%d new) in "
          "%.0f s; cases per second: %s" % (state["next"], state["cases"], state["rejected"], state["known"],
                                            len(state["groups"]),
                                            sum(not g.get("earlier") for g in state["groups"].values()),
                                            state["seconds"], rates))
    # A budget stops wherever the time runs out; the number of draws is what makes two runs comparable.
    print("the same draws again: conformance search --impl %s%s --seed %d --shard %d/%d --cases %d"
          % (",".join(impls), " --op " + ",".join(args.op) if args.op else "", args.seed, shard[0], shard[1],
             state["next"]))
    for key, group in state["groups"].items():
        print("  %s  (%d hit(s); %s%s)" % (key, group["hits"], group["case"],
                                          ", an earlier find" if group.get("earlier") else ""))
    if state["groups"]:
        print("found cases: %s; reproducers: %s; rows: %s" % (args.found_dir, args.repro_dir,
                                                            runs.relative(finder.found_path)))
        print("a find's script that needs NumPy and its framework only: conformance repro CASE --impl IMPL "
              "--standalone%s" % ("" if Path(args.found_dir).resolve() == reproducers.FOUND_DIR.resolve()
                                  else " --found-dir %s" % args.found_dir))
    return 0


def cmd_repro(args):
    """A reproducer of one impl's divergence on one stored case, generated from the suite's source
    (conformance/reproducers.py): adapter-based, or with --standalone NumPy and the framework only."""
    try:
        impls = cli_args._impl_list(args.impl)
    except argparse.ArgumentTypeError as error:
        raise cli_args.UsageError(str(error)) from None
    if len(impls) != 1:
        raise cli_args.UsageError("--impl: expected one impl, got %r" % args.impl)
    try:
        text = reproducers.generate(args.case, impls[0], standalone_script=args.standalone, out=args.out,
                                    expect=args.expect, found_dir=args.found_dir, cases_dir=args.cases)
    except reproducers.ReproError as error:
        raise cli_args.UsageError(str(error)) from None
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print("wrote %s (run it: python %s)" % (args.out, args.out))
    return 0


def add_commands(commands, impl_options, out_option, python_option) -> None:
    """Register ``search``, ``merge-found`` and ``repro`` (the option helpers are build_parser's)."""
    p = commands.add_parser("search", help="seeded differential search for divergences no stored case shows")
    impl_options(p)
    p.add_argument("--op", type=lambda t: [op.strip() for op in t.split(",") if op.strip()], default=None,
                   help="comma-separated ops (default: every op)")
    p.add_argument("--budget", default=None, metavar="TIME", help="stop after this long: 90s, 10m, 1h")
    p.add_argument("--cases", dest="max_cases", type=cli_args._positive_int, default=None, metavar="N",
                   help="stop after N draws of this shard (a repeatable search: same seed, same N, same finds)")
    p.add_argument("--seed", type=int, default=0, help="the search's seed (default %(default)d)")
    p.add_argument("--shard", default="0/1", metavar="I/N", help="draw only the indices I, I+N, ... (default 0/1)")
    out_option(p, "found-*.csv and the resumable search-*.json")
    p.add_argument("--found-dir", type=Path, default=reproducers.FOUND_DIR,
                   help="where found cases and their MANIFEST.json go (default: cases/found)")
    p.add_argument("--repro-dir", type=Path, default=reproducers.REPO_ROOT / "repro" / "found",
                   help="where the generated reproducers go (default: repro/found)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case and impl (default %(default)g)")
    python_option(p)
    p.set_defaults(func=cmd_search)

    p = commands.add_parser("merge-found", help="merge found corpora (parallel search shards) by content hash")
    p.add_argument("sources", nargs="+", type=Path, help="found-corpus folders, each with its MANIFEST.json")
    p.add_argument("--into", type=Path, required=True, help="the found corpus to merge them into")
    p.set_defaults(func=cmd_merge_found)

    p = commands.add_parser("repro", help="write a reproducer of one impl's divergence on one case, generated "
                                          "from the suite's source (--standalone: NumPy and the framework only)")
    reproducers.add_arguments(p)
    p.set_defaults(func=cmd_repro)
