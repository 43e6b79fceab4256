"""The HTML comparison report: the run's tables as CSV plus a self-contained ``index.html``.

:func:`write_report` loads the run (:class:`.data.ReportData`, where every figure two sections need
is computed once), builds the page's sections in order (:data:`.sections.SECTIONS`, one module per
section under ``sections/``), writes their tables as CSV and renders the page from the package's
templates (``templates/``, :mod:`.html`).  Beside them, what several sections share: :mod:`.fmt`
formats numbers, :mod:`.errors` reads the per-output error details, :mod:`.sentences` says what
differs, :mod:`.pairs` judges two runs against each other, :mod:`.plots` draws.  The words for
outcomes (statuses, kinds, behaviours) are :mod:`conformance.outcomes`.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from conformance.report.data import FOUND_BY_SEARCH, ReportData, load_environments, load_results, summary
from conformance.report.html import render
from conformance.report.screenshot import CHROMIUM_FLAGS, find_chromium, screenshot
from conformance.report.section import Section
from conformance.report.sections import SECTIONS

__all__ = ["CHROMIUM_FLAGS", "FOUND_BY_SEARCH", "SECTIONS", "ReportData", "Section", "find_chromium",
           "load_environments", "load_results", "screenshot", "summary", "write_report"]


def write_report(raw_dir, out_dir, cases_dir=None) -> pd.DataFrame:
    """Write ``index.html`` and its tables as CSV under ``out_dir``; return the summary table.

    ``cases_dir`` (default: the committed corpus) supplies each case's description and input size;
    without a readable manifest the report uses what the result rows carry.
    """
    data = ReportData(raw_dir, cases_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [build(data) for build in SECTIONS]
    tables = {"summary.csv": data.summary.reset_index(), "results.csv": data.results}
    for section in sections:
        tables.update(section.csv)
    if data.bench_raw is not None:
        tables["bench.csv"] = data.bench_raw
    written = []
    for name, table in tables.items():
        if table is not None:
            table.to_csv(out_dir / name, index=False)
            written.append(name)
    page = render({
        "title": "Softmax cross-entropy conformance report",
        "generated": time.strftime("%Y-%m-%d %H:%M %Z"),
        "corpus_sha": (data.corpus_sha or "unknown")[:16],
        "n_cases": data.frame["case"].nunique(),
        "labels": data.labels,
        "runs": data.runs,
        "sections": sections,
        "csv_files": written,
    })
    (out_dir / "index.html").write_text(page, encoding="utf-8")
    return data.summary
