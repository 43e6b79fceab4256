"""Run folders: every ``run``/``bench``/``sampler``/``all`` writes into one folder of its own.

A run folder holds the raw results of one run (``results-*.csv`` and their ``output-errors-*.csv``,
see ``conformance/results.py``; ``bench-*.csv``, ``sampler-*.csv``, ``environment-*.json``),
``run.json`` (when and how it started, on which corpus) and, once reported, ``report/``.  New folders
are made under ``runs/`` of the working directory, named by their start time, and ``runs/latest``
points at the newest one.  A report is built from one run folder, or from an explicit list of them,
so it can never pick up rows of another run.

The example results committed with the project live in ``reports/``, where no command writes unless
told to with ``--out``.
"""
from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from pathlib import Path

from conformance import results

RUNS_DIR = Path("runs")
LATEST = "latest"
RUN_FILE = "run.json"
RAW_PATTERNS = ("results-*.csv", "bench-*.csv", "sampler-*.csv", "environment-*.json", "capabilities-*.csv",
                "found-*.csv", "reproduction-*.csv")


class RunError(Exception):
    """A run folder that is missing, empty or cannot be made: a user error, one line."""


def new_run(corpus_sha256: str = "", runs_dir: Path = RUNS_DIR) -> Path:
    """A fresh, empty run folder with its ``run.json``; ``runs/latest`` points at it."""
    runs_dir = Path(runs_dir)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    folder, n = runs_dir / stamp, 1
    while folder.exists():  # two runs in the same second
        n += 1
        folder = runs_dir / ("%s-%d" % (stamp, n))
    folder.mkdir(parents=True)
    describe(folder, corpus_sha256)
    link = runs_dir / LATEST
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(folder.name, target_is_directory=True)
    except OSError:  # a filesystem without symlinks: latest_run() falls back to the newest name
        pass
    return folder


def describe(folder: Path, corpus_sha256: str = "") -> None:
    """Write (or keep) the folder's ``run.json``: start time, command line, corpus, interpreter, host."""
    path = Path(folder) / RUN_FILE
    if path.exists():
        return
    info = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(["conformance"] + sys.argv[1:]),
            "corpus_sha256": corpus_sha256, "python": platform.python_version(), "host": platform.node(),
            "platform": platform.platform()}
    path.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def latest_run(runs_dir: Path = RUNS_DIR) -> Path:
    """The newest run folder, or a :class:`RunError` saying how to make one."""
    runs_dir = Path(runs_dir)
    link = runs_dir / LATEST
    if link.is_dir():
        return link.resolve()
    folders = sorted(p for p in runs_dir.glob("*") if p.is_dir() and p.name != LATEST) if runs_dir.is_dir() else []
    if not folders:
        raise RunError("no run under %s/: run `conformance all` (or `conformance run`) first, or name a folder "
                       "with --run" % runs_dir)
    return folders[-1]


def has_results(folder: Path) -> bool:
    return any(any(Path(folder).glob(pattern)) for pattern in RAW_PATTERNS[:3])


def merged(folders, into: Path) -> Path:
    """The raw files of several run folders combined in ``into`` (one folder to report on).

    Results of the same impl and device from several runs (with their output errors) are concatenated
    when their cases are disjoint (a run and a ``--select`` run of other cases); a case in two runs, a
    benchmark or sampler file in two runs, or two runs of the same impl with different versions is an
    error naming what clashes, never a silent choice.
    """
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    seen, cases, versions = {}, {}, {}
    for folder in map(Path, folders):
        for pattern in RAW_PATTERNS:
            for path in sorted(folder.glob(pattern)):
                target = into / path.name
                if path.name.startswith("results-"):
                    _append_results(path, target, cases)
                elif path.name.startswith("environment-"):
                    version = json.loads(path.read_text(encoding="utf-8")).get("version")
                    if versions.setdefault(path.name, (version, folder))[0] != version:
                        raise RunError("%s: version %s in %s but %s in %s: report them separately"
                                       % (path.name, versions[path.name][0], versions[path.name][1], version, folder))
                    shutil.copy2(path, target)
                elif path.name in seen:
                    raise RunError("%s is in two runs (%s and %s): report them separately"
                                   % (path.name, seen[path.name], folder))
                else:
                    seen[path.name] = folder
                    shutil.copy2(path, target)
    return into


def _append_results(path: Path, target: Path, cases: dict) -> None:

    rows = results.read(path)
    for row in rows:
        key = (path.name, row.case)
        if key in cases:
            raise RunError("case %s of %s is in two runs (%s and %s): report them separately"
                           % (row.case, path.name, cases[key], path.parent))
        cases[key] = path.parent
    with results.ResultsFile(target) as merged_file:
        for row in rows:
            merged_file.write(row)


def check_run(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError("%s: no such run folder" % folder)
    if not has_results(folder):
        raise RunError("%s: no results-*.csv, bench-*.csv or sampler-*.csv in it (an empty or unfinished run?)"
                       % folder)
    return folder


def relative(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
