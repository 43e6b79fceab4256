"""Summary: case counts by status per op, dtype and impl/device, the worst ratio and its case, and which
results were bitwise repeatable (each case computed twice in one worker)."""
from __future__ import annotations

import pandas as pd

from conformance.outcomes import STATUSES
from conformance.report.html import markup, status_count_classes, table_html, worst_ratio_classes
from conformance.report.section import Section


def repeatability(frame: pd.DataFrame, keys: list) -> pd.Series:
    """``"n of m"`` per group: of the m cases computed twice in one worker, n gave identical bits."""
    flag = frame.get("deterministic", pd.Series("", index=frame.index)).astype(str).str.lower()
    checked = frame.assign(_same=flag.eq("true"), _checked=flag.isin(("true", "false")))
    grouped = checked[checked["_checked"]].groupby(keys)
    same, total = grouped["_same"].sum(), grouped["_checked"].sum()
    return (same.astype(int).astype(str) + " of " + total.astype(int).astype(str)).rename("bitwise repeatable")


def not_repeatable(frame: pd.DataFrame) -> pd.DataFrame:
    """The cases whose two runs in one worker gave different bits."""
    flag = frame.get("deterministic", pd.Series("", index=frame.index)).astype(str).str.lower()
    rows = frame[flag.eq("false")]
    return rows[["label", "case", "op", "dtype", "status"]].rename(columns={"label": "impl/device"}).reset_index(
        drop=True)


def summary_table(summary: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``data.summary`` flattened, with the case that holds the worst ratio."""
    table = summary.reset_index()
    finite = frame.dropna(subset=["tol_ratio"])
    if finite.empty:
        table["worst case"] = ""
    else:
        worst = finite.loc[finite.groupby(["op", "dtype", "impl", "device"])["tol_ratio"].idxmax(),
                           ["op", "dtype", "impl", "device", "case"]].rename(columns={"case": "worst case"})
        table = table.merge(worst, on=["op", "dtype", "impl", "device"], how="left")
        table["worst case"] = table["worst case"].fillna("")
    repeatable = repeatability(frame, ["op", "dtype", "impl", "device"]).reset_index()
    table = table.merge(repeatable, on=["op", "dtype", "impl", "device"], how="left")
    table["bitwise repeatable"] = table["bitwise repeatable"].fillna("")
    return table


def summary_html(table: pd.DataFrame, statuses) -> str:
    table = table.rename(columns={"worst_tol_ratio": "worst ratio"})
    classes = status_count_classes(table, statuses)
    classes["worst ratio"] = worst_ratio_classes(table["worst ratio"])
    return table_html(table, "summary", classes=classes)


def summary_section(d) -> Section:
    unrepeatable = not_repeatable(d.frame)
    return Section("summary", "Summary", "sections/summary.html.j2", {
        "summary": markup(summary_html(summary_table(d.summary, d.frame), STATUSES)),
        "not_repeatable": markup(table_html(unrepeatable, "not_repeatable")) if not unrepeatable.empty else "",
    })
