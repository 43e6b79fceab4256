"""The rows of ``sampler-<impl>-<device>.csv``: their columns, one check's row, and the file written."""
from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import numpy as np

COLUMNS = ["impl", "impl_version", "device", "python", "via", "range_max", "num_sampled", "unique", "num_true",
           "draws", "candidates", "seed", "check", "statistic", "dof", "p_value", "p_holm", "threshold",
           "alpha", "tests_in_family", "status", "message", "seconds"]


def check_row(check, status=None, message="", statistic=None, dof=None, p_value=None, threshold=None):
    """One check's columns; a row with a p-value keeps ``status`` None until ``stats.apply_holm``."""
    return {"check": check, "status": status, "message": message, "statistic": statistic, "dof": dof,
            "p_value": p_value, "threshold": threshold}


def sampler_path(out_dir, impl: str, device: str = "cpu") -> Path:
    return Path(out_dir) / ("sampler-%s-%s.csv" % (impl, device))


def _format(value):
    if isinstance(value, float):
        return "%.6g" % value if np.isfinite(value) else str(value)
    return "" if value is None else value


def write_rows(path, rows):
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=path.name, dir=str(path.parent), suffix=".tmp")
    with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _format(row.get(key)) for key in COLUMNS})
    os.replace(temporary, path)
