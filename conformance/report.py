"""Merging result CSVs and summarising them with pandas.

``load_results`` reads every ``results-*.csv`` under a folder into one DataFrame;
``summary`` counts statuses per op x dtype x impl x device with the worst error-to-tolerance ratio.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from conformance.runner import STATUSES


def load_results(raw_dir) -> pd.DataFrame:
    frames = [pd.read_csv(path, on_bad_lines="skip") for path in sorted(Path(raw_dir).glob("results-*.csv"))]
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise FileNotFoundError("no results-*.csv under %s (run `conformance run` first)" % raw_dir)
    results = pd.concat(frames, ignore_index=True)
    return results[results["status"].isin(STATUSES)]


def load_environments(raw_dir) -> pd.DataFrame:
    rows = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(raw_dir).glob("environment-*.json"))]
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    counts = pd.crosstab([results["op"], results["dtype"], results["impl"], results["device"]], results["status"])
    counts = counts.reindex(columns=[s for s in STATUSES if s in counts.columns], fill_value=0)
    worst = results.groupby(["op", "dtype", "impl", "device"])["tol_ratio"].max().rename("worst_tol_ratio")
    return counts.join(worst)


def write_summary(raw_dir, out_dir) -> pd.DataFrame:
    results = load_results(raw_dir)
    table = summary(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "summary.csv")
    results.to_csv(out_dir / "results.csv", index=False)
    return table
