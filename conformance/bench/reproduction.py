"""Reproduction: the grid run several times back to back (``run_bench(..., repeat=N)``), whether
each ratio reproduced, and the runs' rows combined into one table."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.bench.rows import KEY_COLUMNS, number, read_rows_any
from conformance.bench.stats import round_medians
from impls import bench as worker_bench

REPRODUCE_WITHIN = (0.10, 0.25)  # the two yardsticks: max ratio / min ratio - 1 across runs
ROW_COLUMNS = ("impl",) + KEY_COLUMNS  # one row of the reproduction table: an impl in a configuration


def reproduction_path(out_dir, device) -> Path:
    # Not "bench-...": the report reads every bench-*.csv as benchmark rows.
    return Path(out_dir) / ("reproduction-%s.csv" % device)


def reproduction_columns(runs: int) -> list:
    per_run = ["%s_run%d" % (name, index + 1) for index in range(runs)
               for name in ("status", "ratio", "ratio_low", "ratio_high")]
    return (list(ROW_COLUMNS) + per_run + ["ratio_spread"]
            + ["within_%d%%" % round(100 * share) for share in REPRODUCE_WITHIN] + ["reliable", "reliability_note"])


def _row_key(row):
    return tuple(str(row.get(column, "")) for column in ROW_COLUMNS)


def reproduction(runs: list) -> list:
    """One row per impl and configuration: its ratio to the fastest in each run, and whether it reproduced.

    ``runs``: each run's rows, ratios filled.  ``ratio_spread`` is ``max / min - 1`` over the runs'
    ratios; ``within_10%`` / ``within_25%`` compare it with :data:`REPRODUCE_WITHIN`.  ``reliable``
    is False when the runs disagree beyond their spread (their ``ratio_low`` .. ``ratio_high``
    intervals do not all overlap) or when the impl ran in some runs and failed in others, True when
    every run measured it and the intervals overlap, empty when no run measured it;
    ``reliability_note`` says why.
    """
    by_key = [{_row_key(row): row for row in run} for run in runs]
    findings = []
    for key in dict.fromkeys(key for run in by_key for key in run):  # first-seen order
        rows = [run.get(key, {}) for run in by_key]
        out = dict(zip(ROW_COLUMNS, key))
        for index, row in enumerate(rows):
            out.update({"status_run%d" % (index + 1): row.get("status", "missing"),
                        "ratio_run%d" % (index + 1): row.get("ratio_to_fastest", ""),
                        "ratio_low_run%d" % (index + 1): row.get("ratio_low", ""),
                        "ratio_high_run%d" % (index + 1): row.get("ratio_high", "")})
        out.update(_agreement(rows))
        findings.append(out)
    return findings


def _agreement(rows) -> dict:
    statuses = [row.get("status", "missing") for row in rows]
    ratios = [number(row.get("ratio_to_fastest")) for row in rows]
    if all(ratio is None for ratio in ratios):
        return {"reliable": "", "reliability_note": "not measured (%s)" % ", ".join(sorted(set(statuses)))}
    if None in ratios:
        return {"reliable": False, "reliability_note": "measured in some runs only: status %s"
                % ", ".join("%s in run %d" % (status, index + 1) for index, status in enumerate(statuses))}
    spread = max(ratios) / min(ratios) - 1
    out = {"ratio_spread": spread}
    out.update({"within_%d%%" % round(100 * share): spread <= share for share in REPRODUCE_WITHIN})
    lows = [number(row.get("ratio_low")) for row in rows]
    highs = [number(row.get("ratio_high")) for row in rows]
    if None in lows or None in highs:
        out.update(reliable="", reliability_note="no interquartile interval to compare")
    elif max(lows) > min(highs):
        out.update(reliable=False, reliability_note="runs disagree beyond their spread: ratio %s"
                   % "; ".join("%.3g [%.3g, %.3g] in run %d" % (ratio, low, high, index + 1)
                               for index, (ratio, low, high) in enumerate(zip(ratios, lows, highs))))
    else:
        out.update(reliable=True, reliability_note="")
    return out


def combine_runs(runs: list, findings: list) -> dict:
    """impl -> its top-level rows from several runs of the grid, ``reliable`` from ``findings``.

    A configuration measured in every run gets the median of the runs' medians, the lowest first
    and the highest third quartile, the summed sample count, the largest peak memory, ``noisy``
    recomputed from that spread, and the runs' round medians one after the other (so its ratio is
    paired over the rounds of every run); one that failed in some run gets that run's row (status
    and message), as a failed round does.
    """
    verdicts = {_row_key(row): row for row in findings}
    by_key = [{_row_key(row): row for row in run} for run in runs]
    combined = {}
    for key, verdict in verdicts.items():
        rows = [run[key] for run in by_key if key in run]
        failed = [(index, row) for index, row in enumerate(rows) if row.get("status") != "ok"]
        if failed:
            index, row = failed[0]
            row = dict(row, message="run %d of %d: %s" % (index + 1, len(runs), row.get("message", "")))
        else:
            row = dict(rows[0])
            median = float(np.median([float(r["median_s"]) for r in rows]))
            q1, q3 = min(float(r["q1_s"]) for r in rows), max(float(r["q3_s"]) for r in rows)
            peaks = [int(r["peak_mem_bytes"]) for r in rows if r.get("peak_mem_bytes") not in (None, "")]
            row.update(median_s=median, q1_s=q1, q3_s=q3, iqr_s=q3 - q1, iqr_over_median=(q3 - q1) / median,
                       n=sum(int(r["n"]) for r in rows), noisy=(q3 - q1) / median > worker_bench.NOISY_IQR_OVER_MEDIAN,
                       peak_mem_bytes=max(peaks) if peaks else "",
                       # a run on a busy machine stays flagged in the combined row
                       other_cpu_share=_largest(r.get("other_cpu_share") for r in rows),
                       steal_share=_largest(r.get("steal_share") for r in rows),
                       rounds=sum(len(round_medians(r)) for r in rows),
                       round_medians_s=" ".join(repr(m) for r in rows for m in round_medians(r)),
                       pass_rounds=" ".join(str(r.get("pass_rounds") or len(round_medians(r))) for r in rows),
                       bench_run="+".join(str(r.get("bench_run", "")) for r in rows),
                       **_combined_floor(rows))
        row.update(reliable=verdict["reliable"], reliability_note=verdict["reliability_note"])
        combined.setdefault(key[0], []).append(row)
    return combined


def _combined_floor(rows) -> dict:
    """The contender's floor over several runs: the median of the runs' measured floors (it is timed
    once per run and shape, so it moves between runs as the impl's own time does), the slowest part
    named as each run found it; rows without a floor (every impl but the contender) keep none."""
    floors = [(number(r.get("floor_s")), str(r.get("floor_part", ""))) for r in rows]
    measured = [(value, part) for value, part in floors if value is not None and not np.isnan(value)]
    if not measured:
        return {}
    parts = sorted({part for _, part in measured})
    return {"floor_s": float(np.median([value for value, _ in measured])), "floor_part": " or ".join(parts)}


def _largest(values):
    numbers = [number(value) for value in values]
    numbers = [value for value in numbers if value is not None]
    return max(numbers) if numbers else ""


def reproduction_line(out_dir, device) -> str:
    """The reproduction figures of ``reproduction-<device>.csv`` in one line."""
    path = reproduction_path(out_dir, device)
    rows = read_rows_any(path)
    measured = [row for row in rows if row.get("ratio_spread") not in (None, "")]
    shares = ", ".join("%d within ±%d%% (%s)" % (count, round(100 * share), _percent(count, len(measured)))
                       for share in REPRODUCE_WITHIN
                       for count in [sum(row["within_%d%%" % round(100 * share)] == "True" for row in measured)])
    unreliable = sum(row.get("reliable") == "False" for row in rows)
    return ("reproduction over %d runs: of %d rows measured in every run, %s; %d rows marked unreliable; %s"
            % (sum(1 for column in (rows[0] if rows else {}) if column.startswith("ratio_run")), len(measured),
               shares, unreliable, path))


def _percent(count, total):
    return "%.0f%%" % (100.0 * count / total) if total else "n/a"
