"""Bad input: what each impl does with invalid input (raises, returns NaN/inf, returns finite numbers),
counted apart from numeric disagreement (the behaviours: :mod:`conformance.outcomes`)."""
from __future__ import annotations

import pandas as pd

from conformance import outcomes as O
from conformance.report.fmt import MISSING, first_line
from conformance.report.html import markup, table_html
from conformance.report.section import Section


def _bad_input_cell(row) -> tuple:
    """(text, CSS class) of one impl on one invalid-input case; never blank."""
    if row is None:
        return "not run", O.NOT_RUN_CLASS
    behaviour, status = row["behaviour"], row["status"]
    if status == O.UNSUPPORTED:
        return "%s: %s" % (O.UNSUPPORTED, first_line(row["message"])[:120] or "no reason given"), O.NOT_RUN_CLASS
    if behaviour == O.RAISES and status == O.FAIL:  # the reference must name the argument
        return O.RAISES_UNNAMED, O.RAISES_UNNAMED_CLASS
    if behaviour:
        return behaviour, O.BEHAVIOUR_CLASS.get(behaviour, O.BEHAVIOUR_BROKEN_CLASS)
    return status, O.BEHAVIOUR_BROKEN_CLASS


def bad_input_table(frame: pd.DataFrame, labels: list, entries: dict = None):
    """(table, CSS classes): one row per invalid-input case (argument, reason), one column per impl."""
    bad = frame[frame["invalid"]]
    if bad.empty:
        return pd.DataFrame(), pd.DataFrame()
    entries = entries or {}
    by_key = {(r["case"], r["label"]): r for r in bad.to_dict("records")}
    shown = [label for label in labels if label in set(bad["label"])]
    rows, css = [], []
    for case in dict.fromkeys(bad["case"]):
        invalid = entries.get(case, {}).get("invalid") or {}
        row = {"case": case, "argument": invalid.get("argument", MISSING), "reason": invalid.get("reason", MISSING)}
        row_css = {"case": "ident", "argument": "code", "reason": "desc"}
        for label in shown:
            row[label], row_css[label] = _bad_input_cell(by_key.get((case, label)))
        rows.append(row)
        css.append(row_css)
    table = pd.DataFrame(rows)
    return table, pd.DataFrame(css, columns=table.columns).fillna("")


def bad_input_tally(frame: pd.DataFrame, labels: list) -> pd.DataFrame:
    """Per impl/device: on how many invalid-input cases it raises, returns NaN/inf or finite numbers."""
    bad = frame[frame["invalid"]]
    if bad.empty:
        return pd.DataFrame()
    what = pd.Series([_bad_input_cell(row)[0].split(":")[0] for row in bad.to_dict("records")], index=bad.index,
                     name="behaviour")
    table = pd.crosstab(bad["label"], what)
    order = O.BEHAVIOUR_ORDER
    columns = [c for c in order if c in table.columns] + [c for c in table.columns if c not in order]
    table = table.reindex(index=[l for l in labels if l in table.index], columns=columns, fill_value=0)
    table.index.name = "impl/device"
    table.columns.name = None
    return table.reset_index()


def bad_input_section(d) -> Section:
    table, classes = bad_input_table(d.frame, d.labels, d.entries)
    tally = bad_input_tally(d.frame, d.labels)
    return Section("badinput", "Bad input", "sections/badinput.html.j2", {
        "badinput": markup(table_html(table, "badinput", classes=classes)) if not table.empty else "",
        "tally": markup(table_html(tally, "badinput_tally", sortable=False, extra_class="compact"))
        if not tally.empty else "",
        "n_cases": len(table), "accepted": d.findings[O.FINDING_BAD_INPUT]["n"],
        "accepted_finite": int((d.frame["kind"].eq(O.BAD_INPUT_ACCEPTED)
                                & d.frame["behaviour"].eq(O.RETURNS_FINITE)).sum()),
    }, csv={"bad_input.csv": table if not table.empty else None})
