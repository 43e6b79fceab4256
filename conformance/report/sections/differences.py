"""Differences: every case that did not pass, grouped by cause, with the sentence of what differs and
the command that reproduces its smallest case."""
from __future__ import annotations

import zipfile
from pathlib import Path
import pandas as pd

from conformance import outcomes as O
from conformance.report.errors import worst_output
from conformance.report.fmt import MISSING, dtype_sorted, words
from conformance.report.html import markup, table_html
from conformance.report.section import Section
from conformance.report.sentences import what_differs


FOUND_BY_SEARCH = "found by search"  # the differences table's marker of a group from `conformance search`
DIFFERENCE_COLUMNS = ["finding kind", "source", "kind", "impl", "devices", "op", "mode", "status", "cases", "dtypes",
                      "shared features", "what differs", "in the smallest case", "worst ratio", "worst output",
                      "problem", "smallest case", "description", "reproducer", "known deviation",
                      "framework reproducer", "all cases"]
# Who a difference is about: the framework's own op, or the adapter's composition of framework primitives.
SOURCES = {"framework": "the framework's own op (declared native): a finding about the framework",
           "adapter": "an op the adapter composes from framework primitives: a limitation of this adapter, "
                      "not a finding about the framework"}
# The table's order, worst first: by finding kind, then a wrong number before an error before an
# accepted bad input (finite numbers, a silent wrong answer, before NaN/inf), then by how far beyond
# the tolerance, then by the number of cases.
FINDING_RANK = {O.FRAMEWORK_FINDING: 0, O.FINDING_BAD_INPUT: 1, O.ADAPTER_LIMITATION: 2}
WRONG_NUMBER, RAISED, ACCEPTED_FINITE, ACCEPTED_NONFINITE = range(4)


def reproducer(impl: str, device: str, case: str) -> str:
    device_flag = "" if device == "cpu" else " --device %s" % device
    return "python -m conformance run --impl %s%s --select '%s' --keep-outputs" % (impl, device_flag, case)


def _cause(row) -> tuple:
    """The worst output and its problem kind (for bad input: what the impl did), the grouping key."""
    if row["kind"] == O.BAD_INPUT_ACCEPTED:
        return "", row["behaviour"] or row["status"]
    worst = worst_output(row["parsed"])
    if worst is None:
        return row["worst_output"], ""
    name, info = worst
    return name, info["problem"]


def finding_kind(kind: str, mode: str) -> str:
    """The :data:`conformance.outcomes.FINDING_KINDS` key of a group of the differences table."""
    if mode == "composed":
        return O.ADAPTER_LIMITATION
    return O.FINDING_BAD_INPUT if kind == O.BAD_INPUT_ACCEPTED else O.FRAMEWORK_FINDING


def _nature(kind: str, problem: str, worst: float) -> int:
    """Where a group stands in the worst-first order: a wrong number, a raise (or crash, hang), bad input."""
    if kind == O.BAD_INPUT_ACCEPTED:
        return ACCEPTED_FINITE if problem == O.RETURNS_FINITE else ACCEPTED_NONFINITE
    if kind == O.NUMERIC or (kind == O.KNOWN and worst > 1):  # (NaN, no comparison, is not > 1)
        return WRONG_NUMBER
    return RAISED


def differences(frame: pd.DataFrame, manifest: dict, cases_dir, registry=None, impl_order=()) -> pd.DataFrame:
    """Every row of a difference kind (:data:`conformance.outcomes.DIFFERENCE_KINDS`) grouped by cause:
    impl, op, kind, status, known deviation, worst output and the kind of its problem (all structured
    fields; messages are never compared), worst first.

    ``what differs`` is the group's plain sentence (a known deviation's: what the registry says of
    it), ``in the smallest case`` the sentence of its smallest case, ``worst ratio`` its largest
    error-to-tolerance ratio (∞: a NaN/inf, shape or missing output; NaN: nothing compared).
    """
    rows = frame[frame["kind"].isin(O.DIFFERENCE_KINDS)].copy()
    if rows.empty:
        return pd.DataFrame(columns=DIFFERENCE_COLUMNS)
    entries = {e["id"]: e for e in (manifest or {}).get("cases", [])}

    def size(case_id):
        """Uncompressed bytes of the case's inputs (the compressed file size varies with the values)."""
        entry = entries.get(case_id)
        if entry and cases_dir:
            path = Path(cases_dir) / entry.get("file", "")
            if path.is_file():
                try:
                    with zipfile.ZipFile(path) as archive:
                        return sum(i.file_size for i in archive.infolist() if i.filename.startswith("input/"))
                except (OSError, zipfile.BadZipFile):
                    return path.stat().st_size
        return 10**12 + len(case_id)

    whats = {d.key: d.what for d in registry.entries} if registry is not None else {}
    scripts = {d.key: d.reproducer for d in registry.entries} if registry is not None else {}
    causes = [_cause(row) for _, row in rows.iterrows()]
    rows["_output"] = [c[0] for c in causes]
    rows["_problem"] = [c[1] for c in causes]
    groups = []
    keys = ["kind", "impl", "op", "status", "deviation", "_output", "_problem"]
    for (kind, impl, op, status, deviation, output, problem), group in rows.groupby(keys, sort=False):
        group = group.assign(size=group["case"].map(size)).sort_values(["size", "case"])
        smallest = group.iloc[0]
        feature_sets = [set(words(f)) for f in group["features"]]
        shared = set.intersection(*feature_sets) if feature_sets else set()
        entry = entries.get(smallest["case"], {})
        mode = smallest.get("mode", "")
        here = what_differs(smallest, "", entry.get("invalid"), lead=False)
        known_what = whats.get(deviation, "")
        groups.append({
            "finding kind": finding_kind(kind, mode), "source": "adapter" if mode == "composed" else "framework",
            "mode": mode, "kind": kind, "impl": impl,
            "devices": " ".join(sorted(group["device"].unique(), key=lambda d: (d != "cpu", d))),
            "op": op, "status": status, "cases": len(group), "dtypes": " ".join(dtype_sorted(group["dtype"])),
            "shared features": " ".join(sorted(shared)) or MISSING,
            "what differs": (known_what.rstrip(".") + ".") if known_what else here,
            "in the smallest case": here if known_what else "",
            "worst ratio": group["tol_ratio"].max(),
            "worst output": output, "problem": problem,
            "smallest case": smallest["case"], "description": entry.get("description", ""),
            "reproducer": reproducer(impl, smallest["device"], smallest["case"]),
            "known deviation": deviation,
            "framework reproducer": scripts.get(deviation, ""),
            "all cases": " ".join(sorted(group["case"].unique())),
        })
    table = pd.DataFrame(groups, columns=DIFFERENCE_COLUMNS)
    return table.iloc[worst_first(table, impl_order)].reset_index(drop=True)


def worst_first(table: pd.DataFrame, impl_order=()) -> list:
    """The positions of the differences table's groups in the page's order (see FINDING_RANK)."""
    rank = {name: i for i, name in enumerate(impl_order)}
    worst = pd.to_numeric(table["worst ratio"], errors="coerce")
    keys = pd.DataFrame({
        "finding": table["finding kind"].map(lambda k: FINDING_RANK.get(k, 9)),
        "nature": [_nature(k, p, w) for k, p, w in zip(table["kind"], table["problem"], worst)],
        "worst": -worst.fillna(-1.0), "cases": -table["cases"],
        "impl": table["impl"].map(lambda i: rank.get(i, len(rank))), "name": table["impl"],
        "severity": table["status"].map(lambda s: O.SEVERITY.index(s) if s in O.SEVERITY else 99),
        "op": table["op"], "position": range(len(table))})
    return keys.sort_values(list(keys.columns), kind="stable")["position"].tolist()


# The differences table's parts, each one finding kind: (kind, anchor, heading)
PARTS = ((O.FRAMEWORK_FINDING, "framework-findings", "Framework findings"),
         (O.FINDING_BAD_INPUT, "bad-input-accepted", "Bad input accepted"),
         (O.ADAPTER_LIMITATION, "adapter-limitations", "Adapter limitations"))


def differences_section(d) -> Section:
    found = d.differences
    xpass = d.frame[d.frame["status"] == O.XPASS][["case", "label", "deviation", "tol_ratio"]].rename(
        columns={"label": "impl/device", "deviation": "known deviation", "tol_ratio": "ratio"})
    rows = found.assign(row=range(len(found))).to_dict("records")
    declared = d.declared_limits
    # the declared limits an adapter cannot express (or the framework contradicts): adapter limitations
    # too, listed with the differences in composed ops so that the heading's count is the chip's
    adapter_limits = (declared[declared["status"].isin((O.LIMIT_ADAPTER_STATUS, O.FAIL))].to_dict("records")
                      if not declared.empty else [])
    parts = [(kind, anchor, title, O.FINDING_KINDS[kind], [r for r in rows if r["finding kind"] == kind],
              d.findings[kind]) for kind, anchor, title in PARTS]
    return Section("differences", "Differences", "sections/differences.html.j2", {
        "rows": rows, "parts": parts, "adapter_limits": adapter_limits,
        "kinds": O.KINDS, "sources": SOURCES,
        "xpass": markup(table_html(xpass.reset_index(drop=True), "xpass")) if not xpass.empty else "",
    }, csv={"differences.csv": found})
