"""Pair judging: whether two runs' outputs of one case lie within one tolerance of each other.

The tolerance is the case's own (``rtol * (|golden| + scale)`` element by element, see
``compare.py``), the same for every impl.  When both impls kept their outputs (``run --keep-outputs``
writes ``outputs/<impl>-<device>/`` under the raw folder) the difference is measured exactly.
Otherwise it is bounded from the stored per-output error ratios: with ``r_A`` and ``r_B`` the worst
|error| / allowed of each impl,

    |r_A - r_B|  <=  max |A - B| / allowed  <=  r_A + r_B        (per output, then max over outputs)

so a pair *agrees* when ``r_A + r_B <= 1``, *disagrees* when ``|r_A - r_B| > 1`` (this includes one
non-finite output against a finite one), and is *undetermined* otherwise.  The agreement section
judges every pair of impls (:func:`agreement`), the compiled section each compiled mode against its
eager impl.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

AGREE, DISAGREE, UNDETERMINED = "agree", "disagree", "undetermined"


def pair_bounds(errors_a: dict, errors_b: dict):
    """``(low, high)`` bounds of max |A - B| / allowed from per-output ratios, or None."""
    common = sorted(set(errors_a) & set(errors_b))
    if not common:
        return None
    low = high = 0.0
    for name in common:
        a, b = errors_a[name], errors_b[name]
        if math.isnan(a) or math.isnan(b):
            return None
        gap = abs(a - b) if not (math.isinf(a) and math.isinf(b)) else 0.0
        low, high = max(low, gap), max(high, a + b)
    return low, high


def exact_difference(case, outputs_a: dict, outputs_b: dict) -> float:
    """max over outputs and elements of |A - B| / (rtol * (|golden| + scale)); equal non-finites agree."""
    from conformance import compare

    tol = compare.tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
    scales = compare.output_scales(case)
    worst = 0.0
    for name, golden in case.golden.items():
        if name not in outputs_a or name not in outputs_b:
            if (name in outputs_a) != (name in outputs_b):
                return math.inf
            continue
        a = np.asarray(outputs_a[name])
        b = np.asarray(outputs_b[name])
        if a.shape != b.shape or a.shape != golden.shape:
            if a.shape != b.shape:
                return math.inf
            continue
        a, b = a.astype(np.float64), b.astype(np.float64)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        finite = np.isfinite(a) & np.isfinite(b)
        if (~same & ~finite).any():
            return math.inf
        allowed = compare.allowed_error(golden, tol.rtol, scales.get(name, 1.0))
        gap = np.where(same, 0.0, np.abs(np.where(finite, a - b, 0.0)) / allowed)
        if gap.size:
            worst = max(worst, float(gap.max()))
    return worst


class PairJudge:
    """Whether two runs' outputs of one case are within one tolerance of each other.

    The rule: max over outputs and elements of |A - B| <= the case's own tolerance
    ``rtol * (|golden| + scale)``, equal NaN/inf agreeing.  Measured exactly from outputs kept with
    ``--keep-outputs`` (``exact_difference``); otherwise bounded from the stored per-output error
    ratios (``pair_bounds``): *agree* when r_A + r_B <= 1, *disagree* when |r_A - r_B| > 1,
    *undetermined* in between."""

    def __init__(self, frame: pd.DataFrame, raw_dir=None, manifest=None, cases_dir=None):
        from impls.caseio import Case, read_npz

        self.read_case, self.read_npz = Case.read, read_npz
        self.entries = {e["id"]: e for e in (manifest or {}).get("cases", [])}
        self.outputs_root = Path(raw_dir) / "outputs" if raw_dir else None
        self.cases_dir = cases_dir
        self.output_cache, self.case_cache = {}, {}
        compared = frame[frame["parsed"].map(bool)]
        # label -> case -> {output: error ratio}, for the rows that were compared with the golden outputs
        self.ratios = {label: dict(zip(group["case"], group["parsed"].map(lambda e: {n: i["ratio"] for n, i in e.items()})))
                       for label, group in compared.groupby("label")}

    def _outputs(self, label, case_id):
        key = (label, case_id)
        if key not in self.output_cache:
            impl, _, device = label.rpartition("/")
            root = self.outputs_root
            path = root / ("%s-%s" % (impl, device)) / (case_id + ".npz") if root else None
            self.output_cache[key] = self.read_npz(path)[0] if path and path.is_file() else None
        return self.output_cache[key]

    def _case(self, case_id):
        if case_id not in self.case_cache:
            entry = self.entries.get(case_id)
            path = Path(self.cases_dir) / entry["file"] if entry and self.cases_dir else None
            self.case_cache[case_id] = self.read_case(path) if path and path.is_file() else None
        return self.case_cache[case_id]

    def compared(self, label) -> dict:
        return self.ratios.get(label, {})

    def verdict(self, a, b, case_id):
        """``(verdict, exact difference or None)``: verdict ``agree``, ``disagree``, ``undetermined``,
        or None when the two runs have no output in common to compare."""
        oa, ob = self._outputs(a, case_id), self._outputs(b, case_id)
        if oa is not None and ob is not None and self._case(case_id) is not None:
            try:
                d = exact_difference(self._case(case_id), oa, ob)
            except Exception:  # a malformed output file: fall back to the bounds
                d = None
            if d is not None:
                return (AGREE if d <= 1.0 else DISAGREE), d
        bounds = pair_bounds(self.compared(a).get(case_id, {}), self.compared(b).get(case_id, {}))
        if bounds is None:
            return None, None
        low, high = bounds
        return (AGREE if high <= 1.0 else DISAGREE if low > 1.0 else UNDETERMINED), None


def agreement(frame: pd.DataFrame, labels: list, raw_dir=None, manifest=None, cases_dir=None) -> pd.DataFrame:
    """One row per ordered pair of impl/device labels (both directions, diagonal excluded)."""
    judge = PairJudge(frame, raw_dir, manifest, cases_dir)
    rows = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            counts = {AGREE: 0, DISAGREE: 0, UNDETERMINED: 0, "exact": 0}
            worst_exact = 0.0
            disagreeing = []
            for case_id in sorted(set(judge.compared(a)) & set(judge.compared(b))):
                verdict, exact = judge.verdict(a, b, case_id)
                if verdict is None:
                    continue
                if exact is not None:
                    counts["exact"] += 1
                    worst_exact = max(worst_exact, exact)
                counts[verdict] += 1
                if verdict == DISAGREE:
                    disagreeing.append(case_id)
            n = counts[AGREE] + counts[DISAGREE] + counts[UNDETERMINED]
            row = {"a": a, "b": b, "compared": n, **counts,
                   "agree share": counts[AGREE] / n if n else math.nan,
                   "worst exact difference": worst_exact if counts["exact"] else math.nan,
                   "disagreeing cases": " ".join(disagreeing)}
            rows.append(row)
            rows.append(dict(row, a=b, b=a))
    return pd.DataFrame(rows, columns=["a", "b", "compared", AGREE, DISAGREE, UNDETERMINED, "exact",
                                       "agree share", "worst exact difference", "disagreeing cases"])
