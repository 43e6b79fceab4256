"""The first screen: do the impls agree (per op and dtype), where not (the top findings), how fast is each."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from conformance import outcomes as O
from conformance.report.fmt import breakable, dtype_sorted
from conformance.report.html import markup, matrix_html, speed_summary_html
from conformance.report.section import Section
from conformance.report.sections.differences import FOUND_BY_SEARCH, KIND_RANK
from conformance.report.sections.speed import MODES

if TYPE_CHECKING:
    from conformance.report.data import ReportData

TOP_FINDINGS = 8  # sentences on the first screen; the differences table has them all
VERDICT_ORDER = (O.NUMERIC, O.BROKEN, O.KNOWN)  # the worst present names the cell
VERDICT_WORDS = {O.NUMERIC: O.FAIL, O.BROKEN: O.ERROR, O.KNOWN: O.KNOWN}  # the cell's word for each


def verdict_matrix(frame: pd.DataFrame, labels: list, ops: list):
    """(cell text, CSS classes, tooltips): rows (op, dtype), one column per impl/device.

    Only valid-input cases count: bad input and capability limits have their own sections.  A
    cell reads ``✓ 64`` when every case that ran agrees, else the count of each kind of problem.
    """
    valid = frame[~frame["invalid"]]
    keys = [(op, dtype) for op in ops for dtype in dtype_sorted(valid.loc[valid["op"] == op, "dtype"])]
    if not keys:
        empty = pd.DataFrame()
        return empty, empty, empty
    index = pd.MultiIndex.from_tuples(keys, names=["op", "dtype"])
    text = pd.DataFrame("", index=index, columns=labels)
    classes = pd.DataFrame("", index=index, columns=labels)
    tips = pd.DataFrame("", index=index, columns=labels)
    unsupported = "k-" + O.kind_key(O.KIND_UNSUPPORTED)
    for (op, dtype, label), group in valid.groupby(["op", "dtype", "label"]):
        if label not in text.columns:
            continue
        kinds = group["kind"].value_counts()
        ran = int(len(group) - kinds.get(O.KIND_UNSUPPORTED, 0))
        present = [k for k in VERDICT_ORDER if kinds.get(k, 0)]
        if ran == 0:
            cell, css = O.UNSUPPORTED, unsupported
        elif present:
            cell = " · ".join("%d %s" % (kinds[k], VERDICT_WORDS[k]) for k in present) + " of %d" % ran
            css = "k-" + O.kind_key(present[0])
        else:
            cell, css = "✓ %d" % ran, "k-" + O.kind_key(O.KIND_PASS)
        tip = ", ".join("%d %s" % (n, k) for k, n in kinds.items())
        problems = group[group["kind"].isin(VERDICT_ORDER)]["case"].tolist()
        if problems:
            tip += "\n" + " ".join(problems[:10]) + (" ..." if len(problems) > 10 else "")
        text.loc[(op, dtype), label] = cell
        classes.loc[(op, dtype), label] = css
        tips.loc[(op, dtype), label] = tip
    classes = classes.where(text != "", unsupported)
    text = text.where(text != "", "not run")
    shown = pd.MultiIndex.from_tuples([(breakable(op), dtype) for op, dtype in keys])
    for table in (text, classes, tips):
        table.index = shown
    return text, classes, tips


def top_findings(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` groups of the differences table for the first screen: every numeric
    disagreement and broken run first, then known deviations and bad input taking turns."""
    rank = table["kind"].map(lambda k: KIND_RANK.get(k, 9))
    turn = table.groupby("kind").cumcount()
    order = pd.DataFrame({"tier": (rank >= 2).astype(int), "turn": turn.where(rank >= 2, 0), "rank": rank,
                          "row": range(len(table))}, index=table.index)
    return table.assign(row=range(len(table))).loc[order.sort_values(["tier", "turn", "rank", "row"]).index].head(n)


def first_screen(d: ReportData) -> Section:
    """Do the impls agree (per op and dtype), where not (the top findings), how fast is each."""
    matrix, classes, tips = verdict_matrix(d.frame, d.labels, d.ops)
    found = d.differences
    findings = top_findings(found, TOP_FINDINGS).to_dict("records")
    counts = d.kind_counts
    # (the chip's colour: a kind's key, its count, its text, the section it links to)
    tally = [(O.kind_key(O.NUMERIC), counts.get(O.NUMERIC, 0), "numeric disagreements", "differences"),
             (O.kind_key(O.BROKEN), counts.get(O.BROKEN, 0), "errors, crashes, timeouts", "differences"),
             (O.kind_key(O.KNOWN), counts.get(O.KNOWN, 0), "known deviations", "differences"),
             (O.kind_key(O.BAD_INPUT), counts["accepted"], "bad inputs accepted (%d with finite numbers)"
              % counts["accepted finite"], "badinput"),
             (O.kind_key(O.KIND_UNSUPPORTED), counts.get(O.KIND_UNSUPPORTED, 0), "unsupported (capability)", "modes"),
             (O.kind_key(O.KIND_INAPPLICABLE), counts.get(O.KIND_INAPPLICABLE, 0), "not applicable (bad input to a "
              "composed op, or not passed through natively)", "badinput")]
    # The search's finds are groups of the differences table but no rows of the stored corpus's results,
    # so the counts above leave them out: a chip of their own, or the first screen would say
    # "0 numeric disagreements" above a found divergence.
    n_found = int(found["origin"].eq(FOUND_BY_SEARCH).sum()) if "origin" in found else 0
    if n_found:
        tally.append(("found", n_found, "found by the search (beyond the stored corpus)", "differences"))
    sampler_fails = sum(1 for v in d.sampler_verdicts if v["verdict"] == O.FAIL)
    if d.sampler_verdicts:
        tally.append(("sampler", sampler_fails, "samplers failing a test", "sampler"))
    speed = ""
    if d.speed_summary is not None:
        speed = markup(speed_summary_html(d.speed_summary, MODES, "speed_summary_first"))
    return Section("overview", "At a glance", "sections/first.html.j2", {
        "n_cases": d.frame["case"].nunique(), "n_runs": len(d.labels), "warnings": d.warnings,
        "verdicts": markup(matrix_html(matrix, classes, tips, "verdicts")) if not matrix.empty else "",
        "numeric": counts.get(O.NUMERIC, 0), "tally": tally, "findings": findings,
        "n_findings": len(found), "speed": speed,
    })
