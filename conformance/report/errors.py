"""The per-output errors of a result row, as the report reads them.

``conformance.results`` reads them from the run's ``output-errors-*.csv`` (``data.load_details``);
each row of the report carries them as ``parsed``: ``{output: {abs, rel, ratio, where, problem,
actual, expected}}`` with float numbers (``problem`` is ``""``, ``"missing"``, ``"shape"`` or
``"nonfinite"``).  These helpers pick the outputs a sentence is about.
"""
from __future__ import annotations

import math


def number(value) -> float:
    """``actual`` or ``expected`` of an output as a float; NaN when it has none."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _is_failing(info: dict) -> bool:
    return bool(info.get("problem")) or not info["ratio"] <= 1.0


def _sortable(value: float) -> float:
    return math.inf if math.isnan(value) else value


def failing_outputs(errors: dict) -> list:
    """``(name, info)`` of the outputs that fail, the worst first (a problem, then the largest ratio)."""
    bad = [(name, info) for name, info in errors.items() if _is_failing(info)]
    return sorted(bad, key=lambda item: (not item[1].get("problem"), -_sortable(item[1]["ratio"]), item[0]))


def worst_output(errors: dict):
    """``(name, info)`` of the failing output a sentence is about, or of the largest ratio; None when empty."""
    bad = failing_outputs(errors)
    if bad:
        return bad[0]
    if not errors:
        return None
    return max(errors.items(), key=lambda item: (_sortable(item[1]["ratio"]), item[0]))
