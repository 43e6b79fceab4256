"""The per-output error details of a result row, read from its ``errors`` column.

The results CSV's ``errors`` cell holds JSON: per output ``{"abs", "rel", "ratio", "where", "problem",
"actual", "expected"}`` (``problem`` is ``""``, ``"missing"``, ``"shape"`` or ``"nonfinite"``;
non-finite numbers are the strings ``"inf"``, ``"-inf"``, ``"nan"``).  This module is the report's
only reader of that cell (the typed results module is to replace the parse): the rest of the report
sees ``{output: {abs, rel, ratio, where, problem, ...}}`` with float numbers.
"""
from __future__ import annotations

import json
import math


def _float(value) -> float:
    """A number of the ``errors`` JSON: floats, or the strings "inf", "-inf", "nan"."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def parse_errors(text) -> dict:
    """The ``errors`` column of a result row as ``{output: {abs, rel, ratio, where, problem, ...}}``.

    Numbers become floats (non-finite ones included); ``where``, ``problem``, ``actual`` and
    ``expected`` are kept only when the row has them (rows written before they existed do not).
    """
    if not text or not isinstance(text, str):
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    parsed = {}
    for name, info in (data.items() if isinstance(data, dict) else ()):
        if not isinstance(info, dict):
            continue
        entry = dict(info)
        for key in ("abs", "rel", "ratio"):
            entry[key] = _float(info.get(key))
        parsed[name] = entry
    return parsed


def number(value) -> float:
    """One of the ``errors`` numbers (``actual``, ``expected``) as a float; NaN when it is none."""
    return _float(value)


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
