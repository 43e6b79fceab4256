"""The run's tables, loaded once for every section (:class:`ReportData`).

``load_results`` reads every ``results-*.csv`` under a folder into one DataFrame; ``summary`` counts
statuses per op x dtype x impl x device with the worst error-to-tolerance ratio; :func:`prepare`
gives the rows the columns the sections read (``label``, ``parsed``, ``invalid``, ``kind``).
:class:`ReportData` holds them with every figure two sections need, computed once.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import pandas as pd

from conformance import outcomes as O
from conformance import results
from conformance.outcomes import STATUSES, row_kind
from conformance.report.fmt import label_order
from conformance.report.sections.conventions import convention_differences
from conformance.report.sections.differences import FOUND_BY_SEARCH, differences, worst_first
from conformance.report.sections.modes import declared_limits_table
from conformance.report.sections.environment import bench_machine, environment_table, merged_runs
from conformance.report.sections.sampler import sampler_verdicts
from conformance.report.sections.speed import framework_summary, prepare_bench


def load_results(raw_dir) -> pd.DataFrame:
    """Every results row of a run folder (``conformance.results`` reads them, typed)."""
    frame = results.load(raw_dir)
    if frame.empty:
        raise FileNotFoundError("no results-*.csv under %s (run `conformance run` first)" % raw_dir)
    return frame[frame["status"].isin(STATUSES)]


def load_details(raw_dir) -> dict:
    """``{(case, impl, device): {output: {abs, rel, ratio, where, problem, actual, expected}}}`` of
    the run's results rows and of the search's finds (``output-errors-*.csv``, ``conformance.results``)."""
    details = results.details_by_row(results.load_output_errors(raw_dir))
    for path in sorted(Path(raw_dir).glob(results.OUTPUTS_PREFIX + "found-*.csv")):
        details.update(results.details_by_row(results.read_outputs(path)))
    return details


def load_environments(raw_dir) -> pd.DataFrame:
    rows = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(raw_dir).glob("environment-*.json"))]
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    counts = pd.crosstab([results["op"], results["dtype"], results["impl"], results["device"]], results["status"])
    counts = counts.reindex(columns=[s for s in STATUSES if s in counts.columns], fill_value=0)
    worst = results.groupby(["op", "dtype", "impl", "device"])["tol_ratio"].max().rename("worst_tol_ratio")
    return counts.join(worst)


def read_extra(raw_dir: Path, prefix: str):
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


def prepare(rows: pd.DataFrame, manifest: dict = None, details: dict = None) -> pd.DataFrame:
    """One row per (case, impl, device) with ``label``, numeric ratios, its per-output errors
    (column ``parsed``, from ``details``: :func:`load_details`), ``invalid`` (a bad-input case: its manifest entry has ``invalid``, or
    without a manifest the row's tags say so) and ``kind`` (see :data:`conformance.outcomes.KINDS`)."""
    frame = rows.copy()
    for column in ("message", "deviation", "tags", "features", "tolerance", "mode", "behaviour",
                   "worst_output"):
        if column not in frame:
            frame[column] = ""
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "").astype(str)
    frame["tol_ratio"] = pd.to_numeric(frame.get("tol_ratio"), errors="coerce")
    frame["label"] = frame["impl"].astype(str) + "/" + frame["device"].astype(str)
    frame = frame.drop_duplicates(["case", "impl", "device"], keep="last").reset_index(drop=True)
    details = details or {}
    frame["parsed"] = [details.get(key, {}) for key in zip(frame["case"], frame["impl"], frame["device"])]
    entries = {e["id"]: e for e in (manifest or {}).get("cases", [])}
    if entries:
        frame["invalid"] = frame["case"].map(lambda c: bool(entries.get(c, {}).get("invalid")))
    else:
        frame["invalid"] = frame["tags"].map(lambda t: "invalid" in t.split())
    frame["kind"] = [row_kind(s, i, b) for s, i, b in zip(frame["status"], frame["invalid"], frame["behaviour"])]
    return frame


class ReportData:
    """The run's tables: the result rows (``results``, and ``frame`` prepared), the manifest, the
    known-deviation registry, the workers' environments, the benchmark, sampler and declared-limit
    rows; ``warnings`` the page shows on its first screen."""

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
        self.details = load_details(self.raw_dir)
        self.frame = prepare(self.results, self.manifest, self.details)
        self.labels = label_order(self.frame["label"], self.impl_order)
        op_order = {}
        for entry in self.manifest.get("cases", []):
            op_order.setdefault(entry["op"], len(op_order))
        self.ops = sorted(self.frame["op"].unique(), key=lambda op: (op_order.get(op, len(op_order)), op))
        self.bench_raw, self.bench_files = read_extra(self.raw_dir, "bench")
        self.sampler, self.sampler_files = read_extra(self.raw_dir, "sampler")
        self.capabilities, _ = read_extra(self.raw_dir, "capabilities")
        self.corpus_sha = self.manifest.get("corpus_sha256", "")
        self._check_runs()

    def _check_runs(self):
        other = {}  # corpus hash -> the runs that used it, one warning for all of them
        for label, group in self.environment.set_index("impl/device").iterrows():
            if group.get("same corpus") == "NO":
                other.setdefault(group["corpus sha256"], []).append(label)
        for sha, labels in other.items():
            self.warnings.append("%s ran on a different corpus (sha256 %s...) than %s (%s...): case descriptions "
                                 "and sizes are today's." % (", ".join(labels) if len(labels) < len(self.labels)
                                                              else "Every run", sha, self.cases_dir,
                                                              self.corpus_sha[:16]))
        n_manifest = len(self.entries)
        partial = {}  # cases run -> the runs with that many, one warning for all of them
        for label, n in self.frame.groupby("label")["case"].nunique().reindex(self.labels).items():
            if n_manifest and n < n_manifest:
                partial.setdefault(int(n), []).append(label)
        for n, labels in partial.items():
            self.warnings.append("%s %s results for %d of the %d corpus cases (a --select run, or unfinished: "
                                 "`conformance run --resume` completes it)."
                                 % (", ".join(labels), "has" if len(labels) == 1 else "have", n, n_manifest))

    @cached_property
    def environment(self) -> pd.DataFrame:
        return environment_table(self.environments, self.frame, self.manifest, self.labels)

    @cached_property
    def differences(self) -> pd.DataFrame:
        """The stored corpus's groups, then those of ``conformance search`` (``found-*.csv``), marked
        in the column ``origin`` (``source`` says framework finding or adapter limitation)."""
        from conformance import corpus
        table = differences(self.frame, self.manifest, self.cases_dir, self.registry, impl_order=self.impl_order)
        found_rows, _ = read_extra(self.raw_dir, "found")
        if found_rows is None:
            return table.assign(origin="")
        # the search's found corpus: in the run folder when the search was told so (CI), else cases/found
        found_dir = next((d for d in (self.raw_dir / "found", self.cases_dir / "found")
                          if (d / corpus.MANIFEST).is_file()), self.cases_dir / "found")
        try:
            manifest = corpus.load_manifest(found_dir)
        except corpus.CorpusError:
            manifest = {}
        found = differences(prepare(found_rows, manifest, self.details), manifest, found_dir, self.registry,
                            impl_order=self.impl_order)
        found["reproducer"] = found["reproducer"].str.replace(
            "conformance run", "conformance run --cases %s" % found_dir.as_posix(), n=1, regex=False)
        both = pd.concat([table.assign(origin=""), found.assign(origin=FOUND_BY_SEARCH)], ignore_index=True)
        return both.iloc[worst_first(both, self.impl_order)].reset_index(drop=True)

    @cached_property
    def runs(self) -> list:
        """The runs the report merges (when, which commit, which machine): the page's header says them."""
        return merged_runs(self.raw_dir, self.environments)

    @cached_property
    def bench_machine(self) -> str:
        return bench_machine(self.runs)

    @cached_property
    def tally(self) -> pd.DataFrame:
        """Each impl/device's summary line: its rows per :data:`conformance.outcomes.KINDS` (columns in
        that order) and ``cases``, all of them; the first screen, the status counts and the tests read it."""
        counts = pd.crosstab(self.frame["label"], self.frame["kind"])
        counts = counts.reindex(index=self.labels, columns=list(O.KINDS), fill_value=0).fillna(0).astype(int)
        counts["cases"] = counts.sum(axis=1)
        counts.index.name = "impl/device"
        counts.columns.name = None
        return counts

    @cached_property
    def declared_limits(self) -> pd.DataFrame:
        """What each framework did with the dtypes and features its adapter declares unsupported."""
        if self.capabilities is None:
            return pd.DataFrame()
        return declared_limits_table(self.capabilities, self.labels)

    @cached_property
    def convention_differences(self) -> pd.DataFrame:
        """Per case and output where documented conventions give different numbers (from the goldens)."""
        return convention_differences(self.manifest, self.cases_dir)

    @cached_property
    def real_convention_differences(self) -> pd.DataFrame:
        """The convention differences beyond the tolerance (the others differ by rounding only)."""
        table = self.convention_differences
        if table.empty:
            return table
        return table[table["beyond tolerance"] != "rounding only"].reset_index(drop=True)

    @cached_property
    def findings(self) -> dict:
        """How many findings of each :data:`conformance.outcomes.FINDING_KINDS` the run has, the one
        count every section and chip shows: ``{kind: {"n": findings, "cases": cases, "groups": the
        differences table's groups of the kind, "declared": declared-limit rows of the kind}}``.

        A framework finding or an adapter limitation of the differences table is one group (one cause);
        a documented limit or an adapter limitation of the declared limits one impl, op and limit; a
        convention difference one case and output; a bad input accepted one impl and case.
        """
        table = self.differences
        declared = self.declared_limits
        counts = {}
        for kind in O.FINDING_KINDS:
            groups = table[table["finding kind"] == kind] if not table.empty else table
            counts[kind] = {"n": len(groups), "cases": int(groups["cases"].sum()) if len(groups) else 0,
                            "groups": len(groups), "declared": 0}
        if not declared.empty:
            for kind, statuses in ((O.DOCUMENTED_LIMIT, (O.LIMIT_CONFIRMED,)),
                                   (O.ADAPTER_LIMITATION, (O.LIMIT_ADAPTER_STATUS, O.FAIL))):
                n = int(declared["status"].isin(statuses).sum())
                counts[kind]["n"] += n
                counts[kind]["cases"] += n
                counts[kind]["declared"] = n
        counts[O.CONVENTION_DIFFERENCE]["n"] = len(self.real_convention_differences)
        counts[O.CONVENTION_DIFFERENCE]["cases"] = (self.real_convention_differences["case"].nunique()
                                                    if counts[O.CONVENTION_DIFFERENCE]["n"] else 0)
        # a bad input accepted is one per impl and case: the groups' cases
        accepted = counts[O.FINDING_BAD_INPUT]
        accepted["n"] = accepted["cases"]
        return counts

    @cached_property
    def bench(self):
        return prepare_bench(self.bench_raw) if self.bench_raw is not None else None

    @cached_property
    def bench_labels(self) -> list:
        return label_order(self.bench["label"], self.impl_order) if self.bench is not None else []

    @cached_property
    def speed_summary(self):
        """Geometric-mean ratio to the fastest per impl, op and mode (the first screen and the speed section)."""
        return framework_summary(self.bench, self.bench_labels, self.ops) if self.bench is not None else None

    @cached_property
    def sampler_verdicts(self) -> list:
        return sampler_verdicts(self.sampler, self.impl_order) if self.sampler is not None else []
