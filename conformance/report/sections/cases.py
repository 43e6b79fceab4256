"""All cases: one row per case (its parameters), then the status and ratio of each impl/device."""
from __future__ import annotations

import numpy as np
import pandas as pd

from conformance.outcomes import STATUSES
from conformance.report.html import blank_classes, markup, table_html
from conformance.report.section import Section


def case_info(frame: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """The parameters of every case that has a result, in manifest order."""
    entries = {e["id"]: e for e in (manifest or {}).get("cases", [])}
    order = {case_id: i for i, case_id in enumerate(entries)}
    first = frame.drop_duplicates("case").set_index("case")
    rows = []
    for case_id in sorted(first.index, key=lambda c: (order.get(c, len(order)), c)):
        entry = entries.get(case_id)
        row = first.loc[case_id]
        rows.append({
            "case": case_id,
            "op": entry["op"] if entry else row["op"],
            "dtype": entry["dtype"] if entry else row["dtype"],
            "description": entry.get("description", "") if entry else "",
            "tags": " ".join(entry.get("tags", ())) if entry else row["tags"],
            "features": " ".join(entry.get("features", ())) if entry else row["features"],
        })
    return pd.DataFrame(rows, columns=["case", "op", "dtype", "description", "tags", "features"])


def case_table(frame: pd.DataFrame, info: pd.DataFrame, labels: list):
    """Wide table: case parameters, then (status, ratio) per impl/device; plus the status tooltips."""
    ids = info["case"]
    table = info.rename(columns={"case": "id"}).reset_index(drop=True)
    table.columns = pd.MultiIndex.from_product([["case"], table.columns])
    status = frame.pivot(index="case", columns="label", values="status")
    ratio = frame.pivot(index="case", columns="label", values="tol_ratio")
    text = (frame["status"] + ": " + frame["message"].str.slice(0, 200)
            + np.where(frame["deviation"] != "", "\nknown deviation: " + frame["deviation"], "")
            + np.where(frame["tolerance"] != "", "\ntolerance " + frame["tolerance"], ""))
    tip = frame.assign(tip=text).pivot(index="case", columns="label", values="tip")
    tips = pd.DataFrame(index=table.index)
    for label in labels:
        present = label in status.columns
        table[(label, "status")] = status[label].reindex(ids).fillna("").to_numpy() if present else ""
        table[(label, "ratio")] = ratio[label].reindex(ids).to_numpy(dtype=float) if present else np.nan
        tips[(label, "status")] = tip[label].reindex(ids).fillna("").to_numpy() if present else ""
    tips.columns = pd.MultiIndex.from_tuples(tips.columns) if len(tips.columns) else tips.columns
    return table, tips


def cases_html(table: pd.DataFrame, tips: pd.DataFrame, labels) -> str:
    classes = blank_classes(table)
    for label in labels:
        states = table[(label, "status")]
        classes[(label, "status")] = states.map(lambda s: "stcell grp st-%s" % s if s else "grp")
        ratios = table[(label, "ratio")]
        classes[(label, "ratio")] = [("num rcell st-%s" % s if s else "num") + (" bad" if r > 1 else "")
                                     for s, r in zip(states, ratios)]
    classes[("case", "description")] = "desc"
    classes[("case", "id")] = "ident"
    classes[("case", "op")] = "opname"
    # the tags and features in the description's cell (the CSV keeps their own columns): ten impls' two
    # columns each and the case's parameters fit 1400 px
    shown = table.drop(columns=[("case", "tags"), ("case", "features")])
    shown[("case", "description")] = [" · ".join(filter(None, parts)) for parts in
                                      zip(table[("case", "description")], table[("case", "tags")],
                                          table[("case", "features")])]
    keep = list(shown.columns)
    return table_html(shown, "cases", classes=classes[keep], tips=tips.reindex(columns=keep, fill_value="")
                      if len(tips.columns) else tips, extra_class="compact")


def cases_section(d) -> Section:
    info = case_info(d.frame, d.manifest)
    cases, tips = case_table(d.frame, info, d.labels)
    flat = cases.copy()
    flat.columns = [name if group == "case" else "%s %s" % (group, name) for group, name in cases.columns]
    return Section("cases", "All cases", "sections/cases.html.j2", {
        "cases": markup(cases_html(cases, tips, d.labels)), "n_cases": len(cases),
        "present_statuses": [s for s in STATUSES if s in set(d.frame["status"])],
    }, csv={"cases.csv": flat})
