"""The first screen: do the impls agree (one summary line per impl and a compact matrix per op and
dtype), how fast is each (absolute times beside the ratios), where not (every finding, worst first).

It fits 1400×900: the impls are the rows of one table (ten or twelve of them take a few hundred
pixels, where one column each did not fit), its column groups answer the first two questions, the
findings follow below.  The counts are those of :class:`conformance.report.data.ReportData`
(``tally``, ``findings``), which every other section shows too.
"""
from __future__ import annotations

import math
import numpy as np
import pandas as pd

from conformance import outcomes as O
from conformance.report.fmt import dtype_sorted, fmt_number, fmt_seconds, fmt_times, shape_text
from conformance.report.html import ratio_class
from conformance.report.section import Section
from conformance.report.sections.differences import FOUND_BY_SEARCH
from impls import CONTENDER_IMPLS, ORACLE_IMPLS


SHOWN_FINDINGS = 7  # sentences shown on the first screen; the others are one click away, in the same list
MATRIX_KINDS = (O.NUMERIC, O.BROKEN, O.KNOWN)  # the worst present names a matrix cell
DTYPE_SHORT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
# Where a long word of a column head may break (a soft hyphen), so that the kinds' columns stay narrow.
SOFT_HYPHENS = {"deviation": "devi\u00adation", "unsupported": "unsup\u00adported", "inapplicable": "inappli\u00adcable"}
SPEED_MODE = "forward_backward"  # the first screen's speed: a training step's loss and gradients
SPEED_DTYPE = "float32"


def _cell(text="", css="", title="") -> dict:
    return {"text": text, "css": css, "title": title}


def impl_role(impl: str) -> str:
    """What an impl of the suite's own is (marked as such wherever the page ranks impls), or ""."""
    if impl in ORACLE_IMPLS:
        return "the suite's float64 NumPy oracle"
    if impl in CONTENDER_IMPLS.values():
        return "the suite's own NumPy contender"
    return ""


def glance_order(labels) -> list:
    """The frameworks first (in the adapters' order), the suite's own impls (oracle, contender) last."""
    return sorted(labels, key=lambda label: bool(impl_role(label.rpartition("/")[0])))


def summary_lines(d) -> dict:
    """The rows of *Do they agree?*: per impl/device its summary line (cases per kind, all of them)
    and one cell per op and dtype over its valid-input cases (bad input has its own column)."""
    tally = d.tally
    valid = d.frame[~d.frame["invalid"]]
    columns = [(op, dtype) for op in d.ops for dtype in dtype_sorted(valid.loc[valid["op"] == op, "dtype"])]
    groups = {key: group for key, group in valid.groupby(["label", "op", "dtype"])}
    versions = d.environment.set_index("impl/device")["version"].to_dict() if not d.environment.empty else {}
    rows = []
    for label in glance_order(d.labels):
        impl = label.rpartition("/")[0]
        counts = [_cell(str(n), ("num k-%s" % O.kind_key(kind)) if n else "num zero")
                  for kind, n in tally.loc[label, list(O.KINDS)].items()]
        cells = [_matrix_cell(groups.get((label, op, dtype)), label, op, dtype) for op, dtype in columns]
        rows.append({"label": label, "role": impl_role(impl), "version": versions.get(label, ""),
                     "counts": counts, "cases": int(tally.loc[label, "cases"]), "cells": cells})
    ops = [(op, [DTYPE_SHORT.get(dtype, dtype) for o, dtype in columns if o == op]) for op in d.ops
           if any(o == op for o, _ in columns)]
    totals = [int(tally[kind].sum()) for kind in O.KINDS]
    heads = [" ".join(SOFT_HYPHENS.get(word, word) for word in kind.split()) for kind in O.KINDS]
    return {"rows": rows, "ops": ops, "kinds": list(zip(O.KINDS, heads)), "totals": totals, "n_cases": int(tally["cases"].sum()),
            "n_cells": len(columns)}


def _matrix_cell(group, label, op, dtype) -> dict:
    """``✓`` when every valid case that ran agrees, else the count of the worst kind present; a
    solid colour when every case that ran has it, a pale one when only some do."""
    if group is None:
        return _cell("·", "k-unsupported", "%s: no %s case of %s in these results" % (label, dtype, op))
    kinds = group["kind"].value_counts()
    ran = int(len(group) - kinds.get(O.KIND_UNSUPPORTED, 0) - kinds.get(O.KIND_INAPPLICABLE, 0))
    title = "%s, %s %s: " % (label, op, dtype) + ", ".join("%d %s" % (n, k) for k, n in kinds.items())
    present = [k for k in MATRIX_KINDS if kinds.get(k, 0)]
    if ran == 0:
        return _cell("–", "k-unsupported", title)
    if not present:
        return _cell("✓", "k-pass", title)
    problems = group[group["kind"].isin(MATRIX_KINDS)]["case"].tolist()
    title += "\n" + " ".join(problems[:10]) + (" ..." if len(problems) > 10 else "")
    worst = present[0]
    some = sum(int(kinds[k]) for k in present) < ran
    return _cell(str(int(kinds[worst])), "k-%s%s" % (O.kind_key(worst), " some" if some else ""), title)


def chips(d) -> list:
    """The first screen's counts: the finding kinds, each linked to the section that lists exactly
    that many (``(CSS key, count, text, anchor, tooltip)``)."""
    found = d.findings
    anchors = {O.FRAMEWORK_FINDING: "framework-findings", O.DOCUMENTED_LIMIT: "declared-limits",
               O.CONVENTION_DIFFERENCE: "conventions", O.ADAPTER_LIMITATION: "adapter-limitations",
               O.FINDING_BAD_INPUT: "badinput"}
    keys = {O.FRAMEWORK_FINDING: O.kind_key(O.NUMERIC), O.DOCUMENTED_LIMIT: "limit",
            O.CONVENTION_DIFFERENCE: "convention", O.ADAPTER_LIMITATION: "adapter",
            O.FINDING_BAD_INPUT: O.kind_key(O.BAD_INPUT_ACCEPTED)}
    tally = []
    for kind, what in O.FINDING_KINDS.items():
        n = found[kind]["n"]
        text = kind + ("s" if n != 1 and kind != O.FINDING_BAD_INPUT else "")
        if kind == O.FINDING_BAD_INPUT:
            text = "bad input%s accepted" % ("s" if n != 1 else "")
        elif kind == O.FRAMEWORK_FINDING and n:
            text += " (%d cases)" % found[kind]["cases"]
        tally.append((keys[kind], n, text, anchors[kind], what))
    # The search's finds are framework findings too but no rows of the stored corpus's results: their
    # own chip says how many of the findings came from it.
    n_found = int(d.differences["origin"].eq(FOUND_BY_SEARCH).sum()) if "origin" in d.differences else 0
    if n_found:
        tally.append(("found", n_found, "found by the search (beyond the stored corpus)", "differences",
                      "groups of the differences table from conformance search"))
    if d.sampler_verdicts:
        fails = sum(1 for v in d.sampler_verdicts if v["verdict"] == O.FAIL)
        tally.append(("sampler", fails, "sampler%s failing a test" % ("s" if fails != 1 else ""), "sampler",
                      "candidate samplers checked by conformance sampler"))
    return tally


def where_not(d) -> list:
    """The differences table's framework findings and accepted bad inputs, in its (worst-first) order."""
    table = d.differences
    rows = table.assign(row=range(len(table)))
    rows = rows[rows["finding kind"].isin((O.FRAMEWORK_FINDING, O.FINDING_BAD_INPUT))]
    return [dict(r, beyond=_beyond(r["worst ratio"], r["kind"])) for r in rows.to_dict("records")]


def _beyond(ratio, kind) -> str:
    """How far beyond the tolerance a group's worst case is, in words for the finding's line."""
    if kind == O.BAD_INPUT_ACCEPTED or ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        return ""
    if not math.isfinite(ratio):
        return "NaN/inf, shape or missing output"
    return "%s× the tolerance" % fmt_number(ratio) if ratio > 1 else ""


def reference_shapes(bench: pd.DataFrame) -> dict:
    """Per op, the forward+backward float32 shape the first screen gives absolute times for: the one
    the most impls timed, of those the median in size (a typical shape, not the grid's extremes)."""
    ok = bench[bench["status"].eq("ok") & bench["mode"].eq(SPEED_MODE) & bench["dtype"].eq(SPEED_DTYPE)]
    shapes = {}
    for op, rows in ok.groupby("op"):
        counts = rows.groupby(["batch", "classes", "samples", "dim", "num_true"])["label"].nunique()
        best = counts[counts == counts.max()].index.tolist()
        best.sort(key=lambda s: (s[0] * s[1] * max(s[2], 1), s))
        shapes[op] = dict(zip(["batch", "classes", "samples", "dim", "num_true"], best[(len(best) - 1) // 2]))
    return shapes


def how_fast(d, labels: list) -> dict:
    """Per impl/device of ``labels`` and op: the geometric-mean ratio to the fastest over the
    forward+backward shapes and the median time at the op's reference shape ("not timed" for an impl
    the benchmark did not time)."""
    if d.bench is None or d.speed_summary is None:
        return {}
    bench = d.bench
    shapes = reference_shapes(bench)
    ops = [op for op in d.ops if op in shapes] + sorted(set(shapes) - set(d.ops))
    ok = bench[bench["status"].eq("ok") & bench["mode"].eq(SPEED_MODE) & bench["dtype"].eq(SPEED_DTYPE)]
    summary = d.speed_summary
    cells_of = {}
    for label in labels:
        cells = cells_of[label] = []
        if label not in summary.index:
            cells.extend(_cell(("not timed", ""), "rs-none") for _ in ops)
            continue
        for op in ops:
            key = shapes[op]
            at = ok[(ok["label"] == label) & (ok["op"] == op)
                    & np.logical_and.reduce([ok[k] == v for k, v in key.items()])]
            mean = summary.loc[label, (op, SPEED_MODE)] if (op, SPEED_MODE) in summary.columns else math.nan
            seconds = float(at["median_s"].iloc[-1]) if len(at) else math.nan
            cells.append(_cell((fmt_times(mean), fmt_seconds(seconds) if not math.isnan(seconds) else ""),
                               ratio_class(mean), "%s, %s: %s the fastest impl (geometric mean over its "
                               "forward+backward shapes); %s at %s float32" % (label, op, fmt_times(mean),
                                                                              fmt_seconds(seconds), shape_text(key))))
    return {"ops": [(op, shape_text(shapes[op])) for op in ops], "cells": cells_of, "machine": d.bench_machine}


def first_screen(d) -> Section:
    """Do the impls agree (a summary line per impl), where not (every finding), how fast is each."""
    agree = summary_lines(d)
    speed = how_fast(d, [row["label"] for row in agree["rows"]])
    for row in agree["rows"]:
        row["speed"] = speed["cells"][row["label"]] if speed else []
    return Section("overview", "At a glance", "sections/first.html.j2", {
        "warnings": d.warnings, "agree": agree, "tally": chips(d), "findings": where_not(d),
        "shown": SHOWN_FINDINGS, "counts": d.findings, "speed": speed,
    })
