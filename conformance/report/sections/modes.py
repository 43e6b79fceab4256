"""Capability: native vs composed per op and impl, what each adapter declares unsupported, and what the
framework did with each declared limit when tried anyway (the ``capabilities-*.csv`` rows)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from conformance import outcomes as O
from conformance.report.fmt import MISSING, dtype_sorted, first_line
from conformance.report.html import markup, matrix_html, prose_classes, table_html
from conformance.report.section import Section


# What a declared-limit check's outcome says (the table's ``finding``); any other: a framework limit.
FINDINGS = {O.LIMIT_AGREES: "declaration contradicted", O.LIMIT_RAISES: "framework limit",
            O.LIMIT_WRONG: "framework limit (wrong answer)", O.LIMIT_CRASH: "framework limit (crash)",
            O.LIMIT_TIMEOUT: "framework limit (hang)", O.LIMIT_ADAPTER: "adapter limitation",
            O.LIMIT_NO_CASE: O.LIMIT_UNCHECKED}
MODE_CLASSES = {"native": "mode-native", "composed": "mode-composed"}  # any other (none declared): mode-none


def modes_table(environments: pd.DataFrame, frame: pd.DataFrame, labels, ops):
    """Native/composed per op (rows) and impl/device (columns), the tooltips, and a long table."""
    long_rows = []
    envs = {}
    if not environments.empty and "ops" in environments:
        for _, env in environments.iterrows():
            envs["%s/%s" % (env.get("impl"), env.get("device"))] = env.get("ops") or {}
    for label in labels:
        declared = envs.get(label)
        for op in ops:
            if declared is not None and isinstance(declared, dict) and op in declared:
                support = declared[op] or {}
                long_rows.append({"impl/device": label, "op": op, "mode": support.get("mode", "") or "",
                                  "dtypes": " ".join(support.get("dtypes", ()) or ()),
                                  "unsupported features": " ".join(support.get("unsupported_features", ()) or ()),
                                  "note": support.get("note", "") or ""})
            else:
                seen = frame[(frame["label"] == label) & (frame["op"] == op)]["mode"]
                seen = [m for m in seen.unique() if m]
                long_rows.append({"impl/device": label, "op": op, "mode": seen[0] if seen else "—",
                                  "dtypes": "", "unsupported features": "",
                                  "note": "not declared" if declared is not None else "(no environment file; mode from results)"})
    long = pd.DataFrame(long_rows, columns=["impl/device", "op", "mode", "dtypes", "unsupported features", "note"])
    if long.empty:
        return pd.DataFrame(), pd.DataFrame(), long
    matrix = long.pivot(index="op", columns="impl/device", values="mode").reindex(index=ops, columns=labels).fillna("—")
    matrix.index.name = matrix.columns.name = None
    tips = long.assign(tip=long["note"] + np.where(long["dtypes"] != "", "\ndtypes: " + long["dtypes"], "")
                       + np.where(long["unsupported features"] != "",
                                  "\nunsupported features: " + long["unsupported features"], ""))
    tips = tips.pivot(index="op", columns="impl/device", values="tip").reindex(index=ops, columns=labels).fillna("")
    tips.index.name = tips.columns.name = None
    return matrix, tips, long


def capability_limits(frame: pd.DataFrame, labels: list) -> pd.DataFrame:
    """Unsupported rows per impl/device, op and the adapter's reason (shown as written)."""
    rows = frame[frame["status"] == O.UNSUPPORTED]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(reason=rows["message"].map(lambda m: first_line(m)[:200] or MISSING))
    table = (rows.groupby(["label", "op", "reason"])
             .agg(cases=("case", "count"), dtypes=("dtype", lambda d: " ".join(dtype_sorted(d)))).reset_index())
    rank = {label: i for i, label in enumerate(labels)}
    table = table.assign(_rank=table["label"].map(rank), _n=-table["cases"]).sort_values(["_rank", "_n", "op"])
    table = table.rename(columns={"label": "impl/device"})
    return table[["impl/device", "op", "cases", "dtypes", "reason"]].reset_index(drop=True)


def declared_limits_table(capabilities: pd.DataFrame, labels: list) -> pd.DataFrame:
    """What each framework did with each dtype and feature its adapter declares unsupported (the runner
    tries them once per run): a real limit is a finding, shown with the framework's own message; a
    declaration the framework contradicts (it ran and agreed with the oracle) is a ``fail``."""
    frame = capabilities.copy()
    frame["impl/device"] = frame["impl"].astype(str) + "/" + frame["device"].astype(str)
    frame["message"] = frame["message"].fillna("").astype(str).map(lambda m: first_line(m)[:300])
    frame["finding"] = frame["outcome"].map(FINDINGS).fillna("framework limit")
    rank = {label: i for i, label in enumerate(labels)}
    frame = frame.assign(_rank=frame["impl/device"].map(lambda l: rank.get(l, len(rank)))).sort_values(
        ["_rank", "op", "limit"], kind="stable")
    columns = ["impl/device", "op", "limit", "finding", "status", "outcome", "message", "case"]
    return frame[[c for c in columns if c in frame]].reset_index(drop=True)


def modes_html(matrix: pd.DataFrame, tips: pd.DataFrame) -> str:
    classes = matrix.map(lambda m: MODE_CLASSES.get(m, "mode-none"))
    return matrix_html(matrix, classes, tips, "modes")


def capability_section(d) -> Section:
    matrix, tips, long = modes_table(d.environments, d.frame, d.labels, d.ops)
    limits = capability_limits(d.frame, d.labels)
    declared = d.declared_limits
    return Section("modes", "Capability", "sections/modes.html.j2", {
        "declared": markup(table_html(declared, "declared_limits", classes=prose_classes(declared, ["message"])))
        if not declared.empty else "",
        "contradicted": int((declared["status"] == O.FAIL).sum()) if not declared.empty else 0,
        "n_declared": len(declared), "n_documented": d.findings[O.DOCUMENTED_LIMIT]["n"],
        "n_adapter": d.findings[O.ADAPTER_LIMITATION]["declared"],
        "n_unsupported": int(limits["cases"].sum()) if not limits.empty else 0, "n_limit_rows": len(limits),
        "modes": markup(modes_html(matrix, tips)) if not matrix.empty else "",
        "modes_long": markup(table_html(long, "modes_long")) if not long.empty else "",
        "limits": markup(table_html(limits, "limits")) if not limits.empty else "",
    }, csv={"modes.csv": long, "unsupported.csv": limits if not limits.empty else None,
            "declared_limits.csv": declared if not declared.empty else None})
