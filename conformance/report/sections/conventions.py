"""Conventions: where the frameworks' documentation of an op differs (``OpInfo.conventions``), apart
from findings: each framework is judged against its own documentation's golden, so what is listed
here is no framework's fault."""
from __future__ import annotations

from pathlib import Path
import numpy as np
import pandas as pd

from conformance import outcomes as O
from conformance.report.html import markup, table_html
from conformance.report.section import Section


def ops_with_conventions() -> list:
    from impls.ops import OPS  # noqa: PLC0415

    return [name for name, op in OPS.items() if op.conventions]


def convention_table() -> pd.DataFrame:
    """The registry's documented conventions (``OpInfo.conventions``): one row per op, axis and
    framework convention, with its text and source."""
    from impls.ops import OPS  # noqa: PLC0415

    rows = [{"op": name, "where they differ": axis.replace("_", " "), "convention": convention,
             "documented rule": rule.text, "source": rule.source, "verified": rule.verified or "not yet"}
            for name, op in OPS.items() if op.conventions
            for axis, rules in op.conventions.items() for convention, rule in rules.items()]
    return pd.DataFrame(rows, columns=["op", "where they differ", "convention", "documented rule", "source",
                                       "verified"])


def convention_differences(manifest: dict, cases_dir) -> pd.DataFrame:
    """Per case and output where documented conventions give different numbers (from the goldens,
    not from running frameworks): the base convention's largest |value| and, per convention, the
    largest |difference| from it ("no formula" where the convention documents none for the case), and
    whether that is beyond the case's comparison tolerance (a real convention difference) or
    rounding only (the same formula evaluated in another order)."""
    from conformance import compare  # noqa: PLC0415
    from impls.caseio import Case  # noqa: PLC0415
    from impls.ops import OPS  # noqa: PLC0415
    from impls.reference import CONVENTIONS  # noqa: PLC0415

    rows = []
    for entry in (manifest or {}).get("cases", []):
        op = OPS.get(entry["op"])
        path = Path(cases_dir) / entry["file"]
        if op is None or not op.conventions or entry.get("invalid") or not path.is_file():
            continue  # (a manifest without its case files: nothing to read the goldens from)
        case = Case.read(path)
        conventions = case.meta.get("conventions", {})
        names = sorted({name for differ in conventions.values() for name in differ})
        if not names:
            continue
        tol = compare.tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
        scales = compare.output_scales(case)
        base = CONVENTIONS[0]  # case.golden is the first convention's (meta.json's keys are sorted)
        for name in names:
            golden = case.golden[name]
            row = {"case": case.id, "output": name, "%s |value|" % base: _nan_max(np.abs(golden))}
            beyond = []
            for convention in CONVENTIONS:
                if convention == base:
                    continue
                if convention not in conventions:
                    row[convention] = "no formula"
                    continue
                other = case.golden_for(convention)[name]
                with np.errstate(invalid="ignore"):
                    delta = np.abs(other - golden)
                nan_mismatch = bool((np.isnan(other) != np.isnan(golden)).any())
                row[convention] = np.inf if nan_mismatch else _nan_max(delta)
                allowed = compare.allowed_error(golden, tol.rtol, scales.get(name, 1.0))
                if nan_mismatch or bool((np.nan_to_num(delta, nan=0.0) > allowed).any()):
                    beyond.append(convention)
            row["beyond tolerance"] = ", ".join(beyond) if beyond else "rounding only"
            rows.append(row)
    columns = ["case", "output", "%s |value|" % CONVENTIONS[0]] + list(CONVENTIONS[1:]) + ["beyond tolerance"]
    return pd.DataFrame(rows, columns=columns)


def _nan_max(values) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size else float("nan")


def conventions_section(d) -> Section:
    from impls.support import convention_of  # noqa: PLC0415

    rules = convention_table()
    table, real = d.convention_differences, d.real_convention_differences
    ops = ops_with_conventions()
    followed = {}
    for label, impl in d.frame.drop_duplicates("label")[["label", "impl"]].itertuples(index=False):
        for op in ops:
            try:
                convention = convention_of(impl, op)
            except (ValueError, KeyError, ImportError):  # an impl this checkout does not know
                convention = ""
            if convention:
                followed.setdefault((op, convention), []).append(label)
    return Section("conventions", "Conventions", "sections/conventions.html.j2", {
        "ops": ops,
        "rules": markup(table_html(rules, "convention_rules", sortable=False)) if not rules.empty else "",
        "differences": markup(table_html(real, "convention_differences")) if not real.empty else "",
        "n_differences": d.findings[O.CONVENTION_DIFFERENCE]["n"],
        "n_cases": d.findings[O.CONVENTION_DIFFERENCE]["cases"],
        "n_rounding": int(len(table) - len(real)) if not table.empty else 0,
        "followed": sorted((op, convention, ", ".join(labels)) for (op, convention), labels in followed.items()),
    }, csv={"convention_differences.csv": table if not table.empty else None,
            "conventions.csv": rules if not rules.empty else None})
