"""Agreement: for every pair of impl/device runs, on how many cases their outputs lie within one
tolerance of each other (the rule and its bounds: :mod:`conformance.report.pairs`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from conformance.report.html import agreement_html, markup
from conformance.report.pairs import AGREE, DISAGREE, UNDETERMINED, agreement
from conformance.report.section import Section


def agreement_matrices(pairs: pd.DataFrame, labels: list):
    """(share that agrees, "agree / disagree / undetermined" counts, tooltips), rows a and columns b."""
    share = pd.DataFrame(np.nan, index=labels, columns=labels)
    text = pd.DataFrame("", index=labels, columns=labels)
    tips = pd.DataFrame("", index=labels, columns=labels)
    for _, row in pairs.iterrows():
        share.loc[row["a"], row["b"]] = row["agree share"]
        text.loc[row["a"], row["b"]] = "%d / %d / %d" % (row[AGREE], row[DISAGREE], row[UNDETERMINED])
        tip = ("%s vs %s: %d cases compared, %d agree, %d disagree, %d undetermined; %d measured exactly from kept outputs"
               % (row["a"], row["b"], row["compared"], row[AGREE], row[DISAGREE], row[UNDETERMINED], row["exact"]))
        if row["disagreeing cases"]:
            tip += "\ndisagree on: " + " ".join(row["disagreeing cases"].split()[:12]) + \
                (" ..." if len(row["disagreeing cases"].split()) > 12 else "")
        tips.loc[row["a"], row["b"]] = tip
    for label in labels:
        text.loc[label, label] = "—"
    for frame in (share, text, tips):
        frame.index.name = frame.columns.name = None
    return share, text, tips


def agreement_section(d) -> Section:
    pairs = agreement(d.frame, d.labels, raw_dir=d.raw_dir, manifest=d.manifest, cases_dir=d.cases_dir)
    share, counts, tips = agreement_matrices(pairs, d.labels)
    context = {"exact": int(pairs["exact"].sum() // 2) if not pairs.empty else 0, "agreement": "",
               "agreement_counts": ""}
    if len(d.labels) > 1:
        share_html, counts_html = agreement_html(share, counts, tips)
        context.update(agreement=markup(share_html), agreement_counts=markup(counts_html))
    return Section("agreement", "Agreement", "sections/agreement.html.j2", context, csv={"agreement.csv": pairs})
