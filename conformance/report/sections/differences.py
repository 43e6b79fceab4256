"""Differences: every case that did not pass, grouped by cause, with the sentence of what differs and
the command that reproduces its smallest case."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from conformance import outcomes as O
from conformance.report.errors import worst_output
from conformance.report.fmt import MISSING, dtype_sorted, words
from conformance.report.html import markup, table_html
from conformance.report.section import Section
from conformance.report.sentences import what_differs

if TYPE_CHECKING:
    from conformance.report.data import ReportData

FOUND_BY_SEARCH = "found by search"  # the differences table's marker of a group from `conformance search`
DIFFERENCE_COLUMNS = ["source", "kind", "impl", "devices", "op", "mode", "status", "cases", "dtypes", "shared features", "what differs",
                      "finding", "worst output", "problem", "smallest case", "description", "reproducer", "known deviation",
                      "framework reproducer", "all cases"]
# Who a difference is about: the framework's own op, or the adapter's composition of framework primitives.
SOURCES = {"framework": "the framework's own op (declared native): a finding about the framework",
           "adapter": "an op the adapter composes from framework primitives: a limitation of this adapter, "
                      "not a finding about the framework"}
KIND_RANK = {O.NUMERIC: 0, O.BROKEN: 1, O.KNOWN: 2, O.BAD_INPUT: 3}  # the table's order of kinds


def reproducer(impl: str, device: str, case: str) -> str:
    device_flag = "" if device == "cpu" else " --device %s" % device
    return "python -m conformance run --impl %s%s --select '%s' --keep-outputs" % (impl, device_flag, case)


def _cause(row) -> tuple:
    """The worst output and its problem kind (for bad input: what the impl did), the grouping key."""
    if row["kind"] == O.BAD_INPUT:
        return "", row["behaviour"] or row["status"]
    worst = worst_output(row["parsed"])
    if worst is None:
        return row["worst_output"], ""
    name, info = worst
    return name, info["problem"]


def differences(frame: pd.DataFrame, manifest: dict, cases_dir, registry=None, statuses=O.DIFFERENCE_STATUSES,
                impl_order=()) -> pd.DataFrame:
    """Every non-passing row grouped by cause: impl, op, status, known deviation, worst output and the
    kind of its problem (all structured fields; messages are never compared)."""
    rows = frame[frame["status"].isin(statuses)].copy()
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
        groups.append({
            "source": "adapter" if mode == "composed" else "framework", "mode": mode,
            "kind": kind, "impl": impl,
            "devices": " ".join(sorted(group["device"].unique(), key=lambda d: (d != "cpu", d))),
            "op": op, "status": status, "cases": len(group), "dtypes": " ".join(dtype_sorted(group["dtype"])),
            "shared features": " ".join(sorted(shared)) or MISSING,
            "what differs": what_differs(smallest, whats.get(deviation, ""), entry.get("invalid")),
            "finding": what_differs(smallest, "", entry.get("invalid"), lead=False),
            "worst output": output, "problem": problem,
            "smallest case": smallest["case"], "description": entry.get("description", ""),
            "reproducer": reproducer(impl, smallest["device"], smallest["case"]),
            "known deviation": deviation,
            "framework reproducer": scripts.get(deviation, ""),
            "all cases": " ".join(sorted(group["case"].unique())),
        })
    table = pd.DataFrame(groups, columns=DIFFERENCE_COLUMNS)
    rank = {name: i for i, name in enumerate(impl_order)}
    table["_source"] = table["source"].map(lambda k: list(SOURCES).index(k))
    table["_kind"] = table["kind"].map(lambda k: KIND_RANK.get(k, 9))
    table["_impl"] = table["impl"].map(lambda i: rank.get(i, len(rank)))
    table["_sev"] = table["status"].map(lambda s: O.SEVERITY.index(s) if s in O.SEVERITY else 99)
    table = table.sort_values(["_source", "_kind", "cases", "_impl", "impl", "_sev", "op"],
                              ascending=[True, True, False, True, True, True, True], kind="stable")
    return table.drop(columns=["_source", "_kind", "_impl", "_sev"]).reset_index(drop=True)


def differences_section(d: ReportData) -> Section:
    found = d.differences
    xpass = d.frame[d.frame["status"] == O.XPASS][["case", "label", "deviation", "tol_ratio"]].rename(
        columns={"label": "impl/device", "deviation": "known deviation", "tol_ratio": "ratio"})
    rows = found.assign(row=range(len(found))).to_dict("records")
    return Section("differences", "Differences", "sections/differences.html.j2", {
        "rows": rows,
        "groups": [(source, SOURCES[source], [r for r in rows if r["source"] == source]) for source in SOURCES],
        "kinds": O.KINDS,
        "xpass": markup(table_html(xpass.reset_index(drop=True), "xpass")) if not xpass.empty else "",
    }, csv={"differences.csv": found})
