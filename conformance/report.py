"""Merging result CSVs, summarising them with pandas, and writing the HTML comparison report.

``load_results`` reads every ``results-*.csv`` under a folder into one DataFrame;
``summary`` counts statuses per op x dtype x impl x device with the worst error-to-tolerance ratio;
``write_report`` writes the report's tables as CSV plus a self-contained ``index.html``.

The page is the ordered list :data:`SECTIONS`.  Each entry is a function that takes the loaded
data (:class:`ReportData`, where every figure two sections need is computed once) and returns a
:class:`Section`: its tables as data (written as CSV), and the context its own template
(``conformance/templates/sections/<name>.html.j2``) renders.  ``report_html.py`` holds the table,
sentence and plot functions, ``report_speed.py`` the benchmark ones.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from conformance import report_html as H
from conformance.outcomes import STATUS_LABELS, STATUSES

TOP_FINDINGS = 8  # sentences on the first screen; the differences table has them all
FOUND_BY_SEARCH = "found by search"  # the differences table's marker of a group from `conformance search`


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


# --------------------------------------------------------------------------------------------
# the data every section reads, each derived figure computed once
class ReportData:
    def __init__(self, raw_dir, cases_dir=None):
        from conformance import corpus, deviations
        from impls import impl_names

        self.raw_dir = Path(raw_dir)
        self.cases_dir = Path(cases_dir) if cases_dir else corpus.DEFAULT_CASES_DIR
        self.warnings = []
        self.results = load_results(self.raw_dir)
        self.summary = summary(self.results)
        try:
            self.manifest = corpus.load_manifest(self.cases_dir)
        except corpus.CorpusError as error:
            self.manifest = {}
            self.warnings.append("No case manifest (%s): case descriptions are missing." % error)
        self.entries = {e["id"]: e for e in self.manifest.get("cases", [])}
        try:
            self.registry = deviations.load()
        except (OSError, ValueError) as error:
            self.registry = None
            self.warnings.append("known_deviations.toml could not be read: %s" % error)
        self.environments = load_environments(self.raw_dir)
        self.impl_order = impl_names()
        self.frame = H.prepare(self.results, self.manifest)
        self.labels = H.label_order(self.frame["label"], self.impl_order)
        op_order = {}
        for entry in self.manifest.get("cases", []):
            op_order.setdefault(entry["op"], len(op_order))
        self.ops = sorted(self.frame["op"].unique(), key=lambda op: (op_order.get(op, len(op_order)), op))
        self.bench_raw, self.bench_files = _read_extra(self.raw_dir, "bench")
        self.sampler, self.sampler_files = _read_extra(self.raw_dir, "sampler")
        self.capabilities, _ = _read_extra(self.raw_dir, "capabilities")
        self.corpus_sha = self.manifest.get("corpus_sha256", "")
        self._check_runs()

    def _check_runs(self):
        for label, group in self.environment.set_index("impl/device").iterrows():
            if group.get("same corpus") == "NO":
                self.warnings.append("%s ran on a different corpus (sha256 %s...) than %s (%s...)."
                                     % (label, group["corpus sha256"], self.cases_dir, self.corpus_sha[:16]))
        n_manifest = len(self.entries)
        for label, n in self.frame.groupby("label")["case"].nunique().reindex(self.labels).items():
            if n_manifest and n < n_manifest:
                self.warnings.append("%s has results for %d of the %d corpus cases (a --select run, or unfinished: "
                                     "`conformance run --resume` completes it)." % (label, n, n_manifest))

    @cached_property
    def environment(self) -> pd.DataFrame:
        return H.environment_table(self.environments, self.frame, self.manifest, self.labels)

    @cached_property
    def differences(self) -> pd.DataFrame:
        """The stored corpus's groups, then those of ``conformance search`` (``found-*.csv``), marked
        in the column ``origin`` (``source`` says framework finding or adapter limitation)."""
        table = H.differences(self.frame, self.manifest, self.cases_dir, self.registry, impl_order=self.impl_order)
        found_rows, _ = _read_extra(self.raw_dir, "found")
        if found_rows is None:
            return table.assign(origin="")
        from conformance import corpus

        # the search's found corpus: in the run folder when the search was told so (CI), else cases/found
        found_dir = next((d for d in (self.raw_dir / "found", self.cases_dir / "found")
                          if (d / corpus.MANIFEST).is_file()), self.cases_dir / "found")
        try:
            manifest = corpus.load_manifest(found_dir)
        except corpus.CorpusError:
            manifest = {}
        found = H.differences(H.prepare(found_rows, manifest), manifest, found_dir, self.registry,
                              impl_order=self.impl_order)
        found["reproducer"] = found["reproducer"].str.replace(
            "conformance run", "conformance run --cases %s" % found_dir.as_posix(), n=1, regex=False)
        return pd.concat([table.assign(origin=""), found.assign(origin=FOUND_BY_SEARCH)], ignore_index=True)

    @cached_property
    def kind_counts(self) -> dict:
        """Rows per :data:`report_html.KINDS`, and the bad-input rows that accepted the input."""
        counts = self.frame["kind"].value_counts().to_dict()
        accepted = self.frame["invalid"] & self.frame["behaviour"].isin(("returns finite numbers", "returns NaN/inf"))
        counts["accepted"] = int(accepted.sum())
        counts["accepted finite"] = int((self.frame["invalid"]
                                         & self.frame["behaviour"].eq("returns finite numbers")).sum())
        return counts

    @cached_property
    def bench(self):
        from conformance import report_speed

        return report_speed.prepare(self.bench_raw) if self.bench_raw is not None else None

    @cached_property
    def bench_labels(self) -> list:
        return H.label_order(self.bench["label"], self.impl_order) if self.bench is not None else []

    @cached_property
    def speed_summary(self):
        """Geometric-mean ratio to the fastest per impl, op and mode (the first screen and the speed section)."""
        from conformance import report_speed

        return report_speed.framework_summary(self.bench, self.bench_labels, self.ops) if self.bench is not None \
            else None

    @cached_property
    def sampler_verdicts(self) -> list:
        return H.sampler_verdicts(self.sampler, self.impl_order) if self.sampler is not None else []


@dataclass
class Section:
    """One part of the page: its anchor, its title in the navigation bar, its template and what it shows."""
    id: str
    title: str
    template: str
    context: dict = field(default_factory=dict)
    csv: dict = field(default_factory=dict)  # file name -> table written beside the page


def _markup(text):
    import markupsafe

    return markupsafe.Markup(text) if text else ""


# --------------------------------------------------------------------------------------------
# the sections, in page order
def first_screen(d: ReportData) -> Section:
    """Do the impls agree (per op and dtype), where not (the top findings), how fast is each."""
    matrix, classes, tips = H.verdict_matrix(d.frame, d.labels, d.ops)
    found = d.differences
    findings = H.top_findings(found, TOP_FINDINGS).to_dict("records")
    counts = d.kind_counts
    tally = [("numeric", counts.get("numeric", 0), "numeric disagreements", "differences"),
             ("broken", counts.get("broken", 0), "errors, crashes, timeouts", "differences"),
             ("known", counts.get("known", 0), "known deviations", "differences"),
             ("badinput", counts["accepted"], "bad inputs accepted (%d with finite numbers)"
              % counts["accepted finite"], "badinput"),
             ("unsupported", counts.get("unsupported", 0), "unsupported (capability)", "modes"),
             ("inapplicable", counts.get("inapplicable", 0), "not applicable (bad input to a composed op, or not "
              "passed through natively)", "badinput")]
    # The search's finds are groups of the differences table but no rows of the stored corpus's results,
    # so the counts above leave them out: a chip of their own, or the first screen would say
    # "0 numeric disagreements" above a found divergence.
    n_found = int(found["origin"].eq(FOUND_BY_SEARCH).sum()) if "origin" in found else 0
    if n_found:
        tally.append(("found", n_found, "found by the search (beyond the stored corpus)", "differences"))
    sampler_fails = sum(1 for v in d.sampler_verdicts if v["verdict"] == "fail")
    if d.sampler_verdicts:
        tally.append(("sampler", sampler_fails, "samplers failing a test", "sampler"))
    speed = ""
    if d.speed_summary is not None:
        from conformance import report_speed

        speed = _markup(report_speed.summary_html(d.speed_summary, "speed_summary_first"))
    return Section("overview", "At a glance", "sections/first.html.j2", {
        "n_cases": d.frame["case"].nunique(), "n_runs": len(d.labels), "warnings": d.warnings,
        "verdicts": _markup(H.matrix_html(matrix, classes, tips, "verdicts")) if not matrix.empty else "",
        "numeric": counts.get("numeric", 0), "tally": tally, "findings": findings,
        "n_findings": len(found), "speed": speed,
    })


def differences_section(d: ReportData) -> Section:
    found = d.differences
    xpass = d.frame[d.frame["status"] == "xpass"][["case", "label", "deviation", "tol_ratio"]].rename(
        columns={"label": "impl/device", "deviation": "known deviation", "tol_ratio": "ratio"})
    rows = found.assign(row=range(len(found))).to_dict("records")
    return Section("differences", "Differences", "sections/differences.html.j2", {
        "rows": rows,
        "groups": [(source, H.SOURCES[source], [r for r in rows if r["source"] == source]) for source in H.SOURCES],
        "kinds": H.KINDS,
        "xpass": _markup(H.table_html(xpass.reset_index(drop=True), "xpass")) if not xpass.empty else "",
    }, csv={"differences.csv": found})


def speed_section(d: ReportData) -> Section:
    from conformance import bench as bench_grid
    from conformance import report_speed

    if d.bench is None:
        return Section("speed", "Speed", "sections/speed.html.j2", {"bench": False})
    context = report_speed.speed_context(d.bench, d.bench_labels, d.speed_summary,
                                         (bench_grid.SWEEP_BATCH, bench_grid.SWEEP_SAMPLES, bench_grid.SWEEP_DIM))
    context.update(bench=True, bench_files=d.bench_files)
    return Section("speed", "Speed", "sections/speed.html.j2", context,
                   csv={"speed.csv": d.bench.drop(columns=["label"]), "speed_target.csv": context.pop("target"),
                        "speed_summary.csv": d.speed_summary})


def agreement_section(d: ReportData) -> Section:
    pairs = H.agreement(d.frame, d.labels, raw_dir=d.raw_dir, manifest=d.manifest, cases_dir=d.cases_dir)
    share, counts, tips = H.agreement_matrices(pairs, d.labels)
    context = {"exact": int(pairs["exact"].sum() // 2) if not pairs.empty else 0, "agreement": "",
               "agreement_counts": ""}
    if len(d.labels) > 1:
        share_html, counts_html = H.agreement_html(share, counts, tips)
        context.update(agreement=_markup(share_html), agreement_counts=_markup(counts_html))
    return Section("agreement", "Agreement", "sections/agreement.html.j2", context, csv={"agreement.csv": pairs})


def compiled_section(d: ReportData) -> Section:
    from impls import compiled_modes

    modes = compiled_modes()
    counts, differing = H.compiled_agreement(d.frame, modes, raw_dir=d.raw_dir, manifest=d.manifest,
                                             cases_dir=d.cases_dir)
    times = H.compile_times(d.frame, modes)
    return Section("compiled", "Compiled", "sections/compiled.html.j2", {
        "modes": sorted(modes.items()),
        "times": _markup(H.table_html(times, "compile_times", extra_class="compact")) if not times.empty else "",
        "counts": _markup(H.table_html(counts, "compiled_counts", extra_class="compact")) if not counts.empty else "",
        "differing": _markup(H.table_html(differing, "compiled_differing",
                                          classes=H.prose_classes(differing, ["eager message", "compiled message"])))
        if not differing.empty else "",
        "n_differing": len(differing),
    }, csv={"compiled_agreement.csv": counts if not counts.empty else None,
            "compile_times.csv": times if not times.empty else None,
            "compiled_differing.csv": differing if not differing.empty else None})


def bad_input_section(d: ReportData) -> Section:
    table, classes = H.bad_input_table(d.frame, d.labels, d.entries)
    tally = H.bad_input_tally(d.frame, d.labels)
    return Section("badinput", "Bad input", "sections/badinput.html.j2", {
        "badinput": _markup(H.table_html(table, "badinput", classes=classes)) if not table.empty else "",
        "tally": _markup(H.table_html(tally, "badinput_tally", sortable=False, extra_class="compact"))
        if not tally.empty else "",
    }, csv={"bad_input.csv": table if not table.empty else None})


def conventions_section(d: ReportData) -> Section:
    """Documented convention differences (cross_entropy), apart from findings: each framework is
    judged against its own documentation's golden, so what is listed here is no framework's fault."""
    rules = H.convention_table()
    table = H.convention_differences(d.manifest, d.cases_dir)
    real = table[table["beyond tolerance"] != "rounding only"].reset_index(drop=True) if not table.empty else table
    followed = {}
    for label, impl in d.frame.drop_duplicates("label")[["label", "impl"]].itertuples(index=False):
        for op in H.ops_with_conventions():
            convention = H.convention_of(impl, op)
            if convention:
                followed.setdefault((op, convention), []).append(label)
    return Section("conventions", "Conventions", "sections/conventions.html.j2", {
        "rules": _markup(H.table_html(rules, "convention_rules", sortable=False)) if not rules.empty else "",
        "differences": _markup(H.table_html(real, "convention_differences")) if not real.empty else "",
        "n_rounding": int(len(table) - len(real)) if not table.empty else 0,
        "followed": sorted((op, convention, ", ".join(labels)) for (op, convention), labels in followed.items()),
    }, csv={"convention_differences.csv": table if not table.empty else None,
            "conventions.csv": rules if not rules.empty else None})


def capability_section(d: ReportData) -> Section:
    matrix, tips, long = H.modes_table(d.environments, d.frame, d.labels, d.ops)
    limits = H.capability_limits(d.frame, d.labels)
    declared = H.declared_limits_table(d.capabilities, d.labels) if d.capabilities is not None else pd.DataFrame()
    return Section("modes", "Capability", "sections/modes.html.j2", {
        "declared": _markup(H.table_html(declared, "declared_limits", classes=H.prose_classes(declared, ["message"])))
        if not declared.empty else "",
        "contradicted": int((declared["status"] == "fail").sum()) if not declared.empty else 0,
        "modes": _markup(H.modes_html(matrix, tips)) if not matrix.empty else "",
        "modes_long": _markup(H.table_html(long, "modes_long")) if not long.empty else "",
        "limits": _markup(H.table_html(limits, "limits")) if not limits.empty else "",
    }, csv={"modes.csv": long, "unsupported.csv": limits if not limits.empty else None,
            "declared_limits.csv": declared if not declared.empty else None})


def sampler_section(d: ReportData) -> Section:
    return Section("sampler", "Sampler", "sections/sampler.html.j2", {
        "verdicts": [dict(v, failing=_markup(H.table_html(v["failing"], "sampler_fail_%d" % i, extra_class="compact"))
                          if not v["failing"].empty else "") for i, v in enumerate(d.sampler_verdicts)],
        "sampler": _markup(H.table_html(d.sampler.drop(columns=["file"], errors="ignore"), "sampler",
                                        classes=H.prose_classes(d.sampler.drop(columns=["file"], errors="ignore"),
                                                                ["message"])))
        if d.sampler is not None else "",
        "sampler_files": d.sampler_files,
    }, csv={"sampler.csv": d.sampler})


def memory_section(d: ReportData) -> Section:
    from conformance import report_speed

    memory = report_speed.memory_table(d.bench) if d.bench is not None else pd.DataFrame()
    return Section("memory", "Memory", "sections/memory.html.j2", {
        "memory": _markup(report_speed.memory_html(memory)) if not memory.empty else "",
        "worst": _markup(H.table_html(report_speed.memory_summary(memory), "memory_worst", extra_class="compact"))
        if not memory.empty else "", "n_rows": len(memory),
    }, csv={"speed_memory.csv": memory if not memory.empty else None})


def counts_section(d: ReportData) -> Section:
    overview = H.overview(d.frame, d.labels, STATUSES)
    return Section("counts", "Status counts", "sections/counts.html.j2", {
        "legend": [(s, STATUS_LABELS[s]) for s in STATUSES],
        "overview": _markup(H.overview_html(overview, STATUSES)),
        "status_plot": H.status_plot(d.frame, d.labels, STATUSES),
    }, csv={"overview.csv": overview})


def distribution_section(d: ReportData) -> Section:
    return Section("distribution", "Distribution", "sections/distribution.html.j2",
                   {"ratio_plot": H.ratio_plot(d.frame, d.labels, d.ops)})


def summary_section(d: ReportData) -> Section:
    unrepeatable = H.not_repeatable(d.frame)
    return Section("summary", "Summary", "sections/summary.html.j2", {
        "summary": _markup(H.summary_html(H.summary_table(d.summary, d.frame), STATUSES)),
        "not_repeatable": _markup(H.table_html(unrepeatable, "not_repeatable")) if not unrepeatable.empty else "",
    })


def cases_section(d: ReportData) -> Section:
    info = H.case_info(d.frame, d.manifest)
    cases, tips = H.case_table(d.frame, info, d.labels)
    flat = cases.copy()
    flat.columns = [name if group == "case" else "%s %s" % (group, name) for group, name in cases.columns]
    return Section("cases", "All cases", "sections/cases.html.j2", {
        "cases": _markup(H.cases_html(cases, tips, d.labels)), "n_cases": len(cases),
        "present_statuses": [s for s in STATUSES if s in set(d.frame["status"])],
    }, csv={"cases.csv": flat})


def environment_section(d: ReportData) -> Section:
    return Section("environment", "Environment", "sections/environment.html.j2", {
        "environment": _markup(H.table_html(d.environment, "environment")),
        "host": _markup(H.table_html(H.host_table(d.raw_dir, d.cases_dir, d.manifest), "host", sortable=False)),
    }, csv={"environment.csv": d.environment})


SECTIONS = [first_screen, differences_section, speed_section, agreement_section, compiled_section, bad_input_section,
            conventions_section, capability_section, sampler_section, memory_section, counts_section, distribution_section,
            summary_section, cases_section, environment_section]


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
    page = H.render({
        "title": "Softmax cross-entropy conformance report",
        "generated": time.strftime("%Y-%m-%d %H:%M %Z"),
        "corpus_sha": (data.corpus_sha or "unknown")[:16],
        "n_cases": data.frame["case"].nunique(),
        "labels": data.labels,
        "sections": sections,
        "csv_files": written,
    })
    (out_dir / "index.html").write_text(page, encoding="utf-8")
    return data.summary
