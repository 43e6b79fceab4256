"""The benchmark's statistics: medians and their intervals, and each row's ratio to the fastest impl,
paired round by round where the rows allow it."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from conformance.bench.rows import COLUMNS, KEY_COLUMNS, read_rows, write_rows

# The interval of a paired ratio: order statistics of the round ratios that cover their median with
# at least this probability (distribution-free; 5 rounds: the smallest and largest, 94%).
CONFIDENCE = 0.90


def median_interval(values, confidence=CONFIDENCE):
    """``(median, low, high)`` of ``values``: ``low`` .. ``high`` are the order statistics
    ``x(j)`` .. ``x(n+1-j)`` with the largest ``j`` whose interval covers the population median with
    at least ``confidence`` (probability ``1 - 2 P(Binomial(n, 1/2) <= j - 1)``, whatever the
    distribution); the smallest and the largest value where no ``j`` reaches it (fewer than 5 values)."""
    values = sorted(float(v) for v in values)
    n = len(values)
    j = 1
    while j + 1 <= (n + 1) // 2 and 1 - 2 * sum(math.comb(n, i) for i in range(j + 1)) / 2.0 ** n >= confidence:
        j += 1
    return float(np.median(values)), values[j - 1], values[n - j]


def paired_ratio(mine, others) -> tuple:
    """``(ratio, low, high)``: round by round, ``mine``'s median over the fastest of ``others``
    (lists of round medians, rounds aligned); the median over the rounds, and its interval
    (:func:`median_interval`).  ``others`` may include ``mine``."""
    rounds = len(mine)
    if rounds == 0 or any(len(other) != rounds for other in others):
        raise ValueError("paired_ratio: every impl needs the same rounds, got %s"
                         % ([len(mine)] + [len(other) for other in others]))
    return median_interval([mine[r] / min(other[r] for other in others) for r in range(rounds)])


def paired_ratios(round_medians: dict) -> dict:
    """impl -> ``(ratio, low, high)`` to the fastest of the impls, from their aligned round medians."""
    others = list(round_medians.values())
    return {impl: paired_ratio(medians, others) for impl, medians in round_medians.items()}


def round_medians(row) -> list:
    """A row's round medians (empty for rows written before rounds were kept, or failed ones)."""
    text = row.get("round_medians_s")
    if not isinstance(text, str) or not text.strip():
        return []
    return [float(value) for value in text.split()]


def paired_rounds(rows):
    """The rows' round medians when their ratios can be paired round by round (every row of the same
    run, ``bench_run``, with the same number of rounds, more than one), else None."""
    medians = [round_medians(row) for row in rows]
    runs = {str(row.get("bench_run", "")) for row in rows}
    if (len(runs) == 1 and runs.pop() not in ("", "nan") and len({len(m) for m in medians}) == 1
            and len(medians[0]) > 1):
        return medians
    return None


def _key(row):
    return tuple(str(row.get(column, "")) for column in KEY_COLUMNS)


def _positive(row, column):
    try:
        value = float(row.get(column))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _seconds(row):
    return _positive(row, "median_s") if row.get("status") == "ok" else None


def add_ratio_to_fastest(rows) -> list:
    """Rows (dicts, e.g. ``DataFrame.to_dict("records")``) with ``ratio_to_fastest`` set.

    Within each configuration (:data:`KEY_COLUMNS`: device, op, mode, dtype and shape), over the
    impls whose status is ``ok``: 1.0 for the fastest, 2.0 for twice as slow; empty for rows that
    did not run.

    Where every such row of the configuration comes from the same run (``bench_run``) with the same
    number of rounds, the ratio is paired (:func:`paired_ratio`, ``ratio_rounds`` = the rounds):
    the median over the rounds of the impl's round median over that round's fastest, and
    ``ratio_low`` .. ``ratio_high`` a distribution-free confidence interval of it
    (:func:`median_interval`, ``CONFIDENCE``).  Otherwise (rows of separate runs, an impl timed
    alone, older rows) it is ``median_s / min(median_s)`` and its spread the ratio of the
    interquartile bounds, ``q1_s / q3_s(fastest)`` .. ``q3_s / q1_s(fastest)`` (``ratio_rounds`` 0):
    impls timed at different times share no drift to cancel, and a bootstrap interval of their
    medians would claim a precision repeated runs did not show.
    """
    rows = [dict(row) for row in rows]
    groups = {}
    for row in rows:
        row["ratio_to_fastest"] = row["ratio_low"] = row["ratio_high"] = row["ratio_rounds"] = ""
        if _seconds(row) is not None:
            groups.setdefault(_key(row), []).append(row)
    for group in groups.values():
        medians = paired_rounds(group)
        if medians is not None:
            for row, mine in zip(group, medians):
                ratio, low, high = paired_ratio(mine, medians)
                row.update(ratio_to_fastest=ratio, ratio_low=low, ratio_high=high, ratio_rounds=len(mine))
            continue
        best = min(group, key=_seconds)
        for row in group:
            row.update(ratio_to_fastest=_seconds(row) / _seconds(best), ratio_rounds=0)
            quartiles = [_positive(row, "q1_s"), _positive(row, "q3_s")]
            best_q1, best_q3 = _positive(best, "q1_s"), _positive(best, "q3_s")
            if None not in quartiles and best_q1 is not None and best_q3 is not None:
                row["ratio_low"], row["ratio_high"] = quartiles[0] / best_q3, quartiles[1] / best_q1
    return rows


def update_ratios(out_dir, device) -> list:
    """Recompute ``ratio_to_fastest`` across every ``bench-*-<device>.csv`` in ``out_dir`` and
    rewrite those files; returns the merged rows."""
    paths = sorted(Path(out_dir).glob("bench-*-%s.csv" % device))
    per_file = {path: read_rows(path) for path in paths}
    merged = add_ratio_to_fastest([dict(row, _file=str(path)) for path, rows in per_file.items() for row in rows])
    for path in paths:
        write_rows(path, [row for row in merged if row["_file"] == str(path)], COLUMNS)
    for row in merged:
        row.pop("_file", None)
    return merged
