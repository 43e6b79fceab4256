"""Merging result CSVs, summarising them with pandas, and writing the HTML comparison report.

``load_results`` reads every ``results-*.csv`` under a folder into one DataFrame;
``summary`` counts statuses per op x dtype x impl x device with the worst error-to-tolerance ratio;
``write_report`` writes those tables as CSV plus a self-contained ``index.html`` (see
``report_html.py`` for the sections and for what the pairwise agreement matrix measures).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from conformance.runner import STATUSES


def load_results(raw_dir) -> pd.DataFrame:
    frames = [pd.read_csv(path, on_bad_lines="skip") for path in sorted(Path(raw_dir).glob("results-*.csv"))]
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise FileNotFoundError("no results-*.csv under %s (run `conformance run` first)" % raw_dir)
    results = pd.concat(frames, ignore_index=True)
    return results[results["status"].isin(STATUSES)]


def load_environments(raw_dir) -> pd.DataFrame:
    rows = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(raw_dir).glob("environment-*.json"))]
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    counts = pd.crosstab([results["op"], results["dtype"], results["impl"], results["device"]], results["status"])
    counts = counts.reindex(columns=[s for s in STATUSES if s in counts.columns], fill_value=0)
    worst = results.groupby(["op", "dtype", "impl", "device"])["tol_ratio"].max().rename("worst_tol_ratio")
    return counts.join(worst)


def write_summary(raw_dir, out_dir) -> pd.DataFrame:
    """``summary.csv`` and ``results.csv`` (and the whole report, ``index.html`` included); the summary."""
    return write_report(raw_dir, out_dir)


def _read_extra(raw_dir: Path, prefix: str):
    """Every ``<prefix>-*.csv`` of the raw folder in one table (benchmarks, sampler checks)."""
    frames, names = [], []
    for path in sorted(raw_dir.glob(prefix + "-*.csv")):
        try:
            frame = pd.read_csv(path, on_bad_lines="skip")
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
            continue
        if not frame.empty:
            frames.append(frame.assign(file=path.name) if "file" not in frame else frame)
            names.append(path.name)
    return (pd.concat(frames, ignore_index=True) if frames else None), names


# Headless Chromium with no network: the report must render from disk alone.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium():
    import shutil

    for candidate in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(candidate)
        if path:
            return path
    return None


def screenshot(html_path, png_path, size=(1400, 3000), timeout=180) -> str:
    """Render ``html_path`` in headless Chromium to ``png_path``; returns why not when it cannot."""
    import subprocess
    import tempfile

    browser = find_chromium()
    if browser is None:
        return "no chromium on PATH (apt-get install chromium)"
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        result = subprocess.run([browser, *CHROMIUM_FLAGS, "--user-data-dir=%s" % profile,
                                 "--screenshot=%s" % Path(png_path).resolve(), "--window-size=%d,%d" % size,
                                 Path(html_path).resolve().as_uri()], capture_output=True, text=True,
                                timeout=timeout)
    if not Path(png_path).is_file():
        return "chromium wrote no screenshot: %s" % result.stderr[-500:]
    return ""


def write_report(raw_dir, out_dir, cases_dir=None) -> pd.DataFrame:
    """Write ``index.html`` and its tables as CSV under ``out_dir``; return the summary table.

    ``cases_dir`` (default: the committed corpus) supplies each case's description and input size;
    without a readable manifest the report uses what the result rows carry.
    """
    from conformance import corpus, deviations
    from conformance import report_html as H
    from impls import ADAPTER_MODULES

    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    cases_dir = Path(cases_dir) if cases_dir else corpus.DEFAULT_CASES_DIR
    results = load_results(raw_dir)
    table = summary(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "summary.csv")
    results.to_csv(out_dir / "results.csv", index=False)

    warnings = []
    try:
        manifest = corpus.load_manifest(cases_dir)
    except corpus.CorpusError as error:
        manifest = {}
        warnings.append("No case manifest (%s): case descriptions are missing." % error)
    try:
        registry = deviations.load()
    except (OSError, ValueError) as error:
        registry = None
        warnings.append("known_deviations.toml could not be read: %s" % error)
    environments = load_environments(raw_dir)

    frame = H.prepare(results)
    impl_order = list(ADAPTER_MODULES)
    labels = H.label_order(frame["label"], impl_order)
    op_order = {}
    for entry in manifest.get("cases", []):
        op_order.setdefault(entry["op"], len(op_order))
    ops = sorted(frame["op"].unique(), key=lambda op: (op_order.get(op, len(op_order)), op))
    statuses = [s for s in STATUSES if s in set(frame["status"])]

    info = H.case_info(frame, manifest)
    cases, case_tips = H.case_table(frame, info, labels)
    overview = H.overview(frame, labels, STATUSES)
    summary_flat = H.summary_table(table, frame)
    found = H.differences(frame, manifest, cases_dir, registry, impl_order=impl_order)
    pairs = H.agreement(frame, labels, raw_dir=raw_dir, manifest=manifest, cases_dir=cases_dir)
    share, counts, pair_tips = H.agreement_matrices(pairs, labels)
    mode_matrix, mode_tips, modes_long = H.modes_table(environments, frame, labels, ops)
    environment = H.environment_table(environments, frame, manifest, labels)
    host = H.host_table(raw_dir, cases_dir, manifest)
    bad_input = H.bad_input_table(frame, labels)
    unrepeatable = H.not_repeatable(frame)
    bench, bench_files = _read_extra(raw_dir, "bench")
    speed = {}
    if bench is not None:
        from conformance import bench as bench_grid
        from conformance import report_speed

        speed = report_speed.section(bench, impl_order, (bench_grid.SWEEP_BATCH, bench_grid.SWEEP_SAMPLES,
                                                         bench_grid.SWEEP_DIM))
    sampler, sampler_files = _read_extra(raw_dir, "sampler")
    xpass = frame[frame["status"] == "xpass"][["case", "label", "deviation", "tol_ratio"]].rename(
        columns={"label": "impl/device", "deviation": "known deviation", "tol_ratio": "ratio"})

    flat_cases = cases.copy()
    flat_cases.columns = [name if group == "case" else "%s %s" % (group, name) for group, name in cases.columns]
    csv_tables = {"summary.csv": None, "results.csv": None, "overview.csv": overview, "cases.csv": flat_cases,
                  "differences.csv": found, "agreement.csv": pairs, "modes.csv": modes_long,
                  "environment.csv": environment,
                  "bad_input.csv": bad_input if not bad_input.empty else None, "bench.csv": bench, "sampler.csv": sampler}
    csv_tables.update(speed.pop("csv", {}))
    for name, data in csv_tables.items():
        if data is not None:
            data.to_csv(out_dir / name, index=False)
    csv_files = [name for name, data in csv_tables.items() if name in ("summary.csv", "results.csv") or data is not None]

    corpus_sha = manifest.get("corpus_sha256", "")
    for label, group in environment.set_index("impl/device").iterrows():
        if group.get("same corpus") == "NO":
            warnings.append("%s ran on a different corpus (sha256 %s...) than %s (%s...)."
                            % (label, group["corpus sha256"], cases_dir, corpus_sha[:16]))
    n_manifest = len(manifest.get("cases", []))
    for label, n in frame.groupby("label")["case"].nunique().reindex(labels).items():
        if n_manifest and n < n_manifest:
            warnings.append("%s has results for %d of the %d corpus cases (a --select run, or unfinished: "
                            "`conformance run --resume` completes it)." % (label, n, n_manifest))

    exact = int(pairs["exact"].sum() // 2) if not pairs.empty else 0
    if exact:
        method = ("%d pair-case comparisons were measured exactly from outputs kept with --keep-outputs; the "
                  "others are bounded from the stored per-output error ratios r<sub>A</sub>, r<sub>B</sub>: "
                  % exact)
    else:
        method = ("The result files do not keep outputs, so the difference is bounded from the stored per-output "
                  "error ratios r<sub>A</sub>, r<sub>B</sub> (both measured against the same golden values and the "
                  "same tolerance): ")
    method += ("|r<sub>A</sub> − r<sub>B</sub>| ≤ max|A − B| / tolerance ≤ r<sub>A</sub> + r<sub>B</sub>. A pair "
               "<em>agrees</em> when r<sub>A</sub> + r<sub>B</sub> ≤ 1, <em>disagrees</em> when "
               "|r<sub>A</sub> − r<sub>B</sub>| &gt; 1 (including a NaN/inf against a finite value), and is "
               "<em>undetermined</em> otherwise (e.g. both off by a similar amount); the share counts "
               "undetermined cases as not agreeing, so it is a lower bound.")

    import markupsafe

    n_cases = frame["case"].nunique()
    keys = [(n_cases, "cases"), (len(labels), "impl/device runs"),
            (int((frame["status"] == "pass").sum()), "passing results")]
    keys += [(int((frame["status"] == s).sum()), s) for s in ("fail", "error", "crash", "timeout", "xfail", "xpass")
             if (frame["status"] == s).any()]
    keys.append((len(found), "difference groups"))
    context = {
        "title": "Softmax cross-entropy conformance report",
        "generated": time.strftime("%Y-%m-%d %H:%M %Z"),
        "corpus_sha": (corpus_sha or "unknown")[:16],
        "n_cases": n_cases,
        "labels": labels,
        "toc": [("overview", "At a glance"), ("differences", "Differences"), ("agreement", "Agreement"),
                ("distribution", "Distribution"), ("summary", "Summary"), ("cases", "All cases"),
                ("modes", "Native vs composed"), ("environment", "Environment"), ("badinput", "Bad input"),
                ("speed", "Speed"),
                ("sampler", "Sampler")],
        "keys": keys,
        "warnings": warnings,
        "legend": [(s, H.STATUS_STYLE[s][3]) for s in STATUSES],
        "overview": markupsafe.Markup(H.overview_html(overview, STATUSES)),
        "status_plot": H.status_plot(frame, labels, STATUSES),
        "differences": markupsafe.Markup(H.differences_html(found)) if not found.empty else "",
        "xpass": markupsafe.Markup(H.table_html(xpass.reset_index(drop=True), "xpass",
                                                fmt={"ratio": H.fmt_ratio})) if not xpass.empty else "",
        "agreement_method": markupsafe.Markup(method),
        "agreement": "", "agreement_counts": "",
        "ratio_plot": H.ratio_plot(frame, labels, ops),
        "summary": markupsafe.Markup(H.summary_html(summary_flat, STATUSES)),
        "cases": markupsafe.Markup(H.cases_html(cases, case_tips, labels)),
        "present_statuses": statuses,
        "modes": markupsafe.Markup(H.modes_html(mode_matrix, mode_tips)) if not mode_matrix.empty else "",
        "modes_long": markupsafe.Markup(H.table_html(modes_long, "modes_long")) if not modes_long.empty else "",
        "environment": markupsafe.Markup(H.table_html(environment, "environment")),
        "host": markupsafe.Markup(H.table_html(host, "host", sortable=False)),
        "bench": bench is not None,
        "bench_files": bench_files,
        "badinput": markupsafe.Markup(H.generic_html(bad_input, "badinput")) if not bad_input.empty else "",
        "sampler": markupsafe.Markup(H.generic_html(sampler, "sampler")) if sampler is not None else "",
        "sampler_files": sampler_files,
        "csv_files": csv_files,
        "not_repeatable": markupsafe.Markup(H.table_html(unrepeatable, "not_repeatable"))
        if not unrepeatable.empty else "",
    }
    context.update(speed)
    if len(labels) > 1:
        share_html, counts_html = H.agreement_html(share, counts, pair_tips)
        context["agreement"], context["agreement_counts"] = markupsafe.Markup(share_html), markupsafe.Markup(counts_html)
    (out_dir / "index.html").write_text(H.render(context), encoding="utf-8")
    return table
