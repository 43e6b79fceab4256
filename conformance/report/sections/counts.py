"""Status counts: each impl/device's summary line (its cases per kind, the first screen's), then the
cases of each status the runner recorded (a table and stacked bars), with the legends."""
from __future__ import annotations

import pandas as pd

from conformance import outcomes as O
from conformance.outcomes import STATUS_LABELS, STATUSES
from conformance.report.html import blank_classes, markup, status_count_classes, table_html, worst_ratio_classes
from conformance.report.plots import status_plot
from conformance.report.section import Section
from conformance.report.sections.summary import repeatability


def overview(frame: pd.DataFrame, labels: list, statuses) -> pd.DataFrame:
    counts = pd.crosstab(frame["label"], frame["status"]).reindex(index=labels, fill_value=0)
    counts = counts.reindex(columns=[s for s in statuses if s in counts.columns], fill_value=0)
    ratios = frame.groupby("label")["tol_ratio"]
    counts["cases"] = counts.sum(axis=1)
    counts["median ratio"] = ratios.median().reindex(labels)
    counts["worst ratio"] = ratios.max().reindex(labels)
    counts["bitwise repeatable"] = repeatability(frame, ["label"]).reindex(labels).fillna("")
    counts.index.name = "impl/device"
    return counts.reset_index()


def overview_html(table: pd.DataFrame, statuses) -> str:
    classes = status_count_classes(table, statuses)
    classes["cases"] = "num"
    classes["median ratio"] = "num"
    classes["worst ratio"] = worst_ratio_classes(table["worst ratio"])
    return table_html(table, "overview", classes=classes)


def kinds_html(tally: pd.DataFrame) -> str:
    """The summary lines as a table: a count per kind coloured as the kind (``k-<kind>``), zeros greyed."""
    table = tally.reset_index()
    classes = blank_classes(table)
    for kind in O.KINDS:
        classes[kind] = table[kind].map(lambda n, k=kind: "num k-%s" % O.kind_key(k) if n else "num zero")
    classes["cases"] = "num"
    return table_html(table, "kinds", classes=classes, sortable=False)


def counts_section(d) -> Section:
    table = overview(d.frame, d.labels, STATUSES)
    return Section("counts", "Status counts", "sections/counts.html.j2", {
        "kinds": markup(kinds_html(d.tally)), "kind_legend": list(O.KINDS.items()),
        "legend": [(s, STATUS_LABELS[s]) for s in STATUSES],
        "overview": markup(overview_html(table, STATUSES)),
        "status_plot": status_plot(d.frame, d.labels, STATUSES),
    }, csv={"overview.csv": table})
