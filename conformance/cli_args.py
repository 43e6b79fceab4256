"""What every ``conformance`` command shares: the impls and interpreters it is given, the run folder it
writes, the pinned re-run, and the user error (one line on stderr, exit status 2).

``cli.py`` (the commands of a run) and ``cli_found.py`` (the search's) both build on it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from conformance import corpus, runner, runs
from impls import impl_names, numpy_dispatch, resolve

_RERUN_MARK = "CONFORMANCE_RERUN_PINNED"  # set in the pinned re-run of a command (see _rerun_pinned)


class UsageError(Exception):
    """A mistake on the command line or in the set-up: one line on stderr, exit status 2."""


def _impl_list(text):
    names = []
    for item in (n.strip() for n in text.split(",")):
        if not item:
            continue
        try:
            names.append(resolve(item))
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error).replace("impl: expected", "unknown impl %s; expected" % item, 1)
                                             if ":" not in item else str(error)) from None
    return names


def _python_override(text):
    impl, sep, path = text.partition("=")
    if not sep or impl not in impl_names():
        raise argparse.ArgumentTypeError("expected IMPL=PATH with IMPL one of %s, got %r"
                                         % (", ".join(impl_names()), text))
    return impl, path


def _impls_for(args, device):
    """The impls a command runs: ``--impl`` (each must run on ``device``) or every impl for it."""
    if not args.impl:
        return runner.available_impls(device)
    from impls import get_adapter

    wrong = [(name, get_adapter(name).devices) for name in args.impl if device not in get_adapter(name).devices]
    if wrong:
        raise UsageError("; ".join("%s does not run on %s (it runs on: %s)" % (name, device, ", ".join(devices))
                                   for name, devices in wrong))
    return args.impl


def _run_folder(args, cases_dir=None):
    """The run folder a command writes into: ``--out`` as given, the latest run with ``--resume``,
    else a new one under runs/."""
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        runs.describe(args.out, _corpus_sha(cases_dir))
        return args.out
    if getattr(args, "resume", False):
        return runs.latest_run()
    return runs.new_run(_corpus_sha(cases_dir))


def _corpus_sha(cases_dir):
    if cases_dir is None:
        return ""
    try:
        return corpus.load_manifest(cases_dir)["corpus_sha256"]
    except corpus.CorpusError:
        return ""


def _rerun_pinned():
    """This command again in a process whose NumPy dispatch is pinned: golden bits that do not
    depend on this CPU (impls/numpy_dispatch.py)."""

    if os.environ.get(_RERUN_MARK):  # the pinned child's NumPy still dispatches to AVX-512: never loop
        raise RuntimeError("NumPy ignored %s=%r" % (numpy_dispatch.VARIABLE, os.environ.get(numpy_dispatch.VARIABLE)))
    env = dict(os.environ, **numpy_dispatch.pinned_env(), **{_RERUN_MARK: "1"})
    return subprocess.run([sys.executable, "-m", "conformance"] + sys.argv[1:], env=env).returncode


def _overrides(args):
    return dict(args.python or [])


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:  # argparse names the argument: "argument --jobs: expected an integer >= 1, got 'x'"
        raise argparse.ArgumentTypeError("expected an integer >= 1, got %r" % text)
    return value
