"""Sampler conformance: each native log-uniform sampler against P(k), its own expected counts and its seed.

Every impl with a native sampler (the NumPy reference, TensorFlow, Paddle 1.8's ``sample_logits``; see
``impls/samplers.py`` for how each is driven) runs in its own :class:`conformance.runner.Worker` process
over a grid of settings: ``range_max`` in {50, 1000, 10000} x ``num_sampled`` in {1, 8, 64} x
``unique`` in {False, True} (``unique`` with ``num_sampled > range_max`` left out), each with
``draws = ceil(10^5 / num_sampled)`` draws, so at least 10^5 sampled candidates per setting, and the
probe classes :func:`probe_classes` passed as ``true_classes``.  The sampler documented by both
frameworks (``../shared/FACTS.md``) is

    P(k) = (log(k + 2) - log(k + 1)) / log(range_max + 1),   k in [0, range_max);

with ``unique`` it draws with replacement until ``num_sampled`` distinct classes are seen, counting
every draw (``num_tries``), and reports the expected count of a class as
``-expm1(num_tries * log1p(-P(k)))``, or ``P(k) * num_sampled`` when ``num_tries == num_sampled``
(always so without ``unique``).

Checks, one CSV row each per setting (``sampler-<impl>-cpu.csv`` in the raw folder):

``candidates_in_range`` (exact)
    every candidate in ``[0, range_max)``.
``unique_within_draw`` (exact, unique only)
    no draw repeats a class.
``histogram_chi2`` (unique=False)
    Pearson chi-square of the histogram of all ``draws * num_sampled`` candidates against
    ``draws * num_sampled * P(k)``; consecutive classes (P decreases with k) are merged until each
    bin expects at least 5, the remainder joining the last bin; ``dof = bins - 1``.
``first_candidate_chi2`` (unique=True)
    the same test on the first candidate of each draw, which is the first try and so follows P(k)
    exactly.  (The per-draw marginal of a unique draw is not P(k), so the histogram of all candidates
    is not tested against P.)
``sequential_pit_chi2`` (unique=True, num_sampled >= 2)
    each later candidate, given the classes already in its draw (set A), follows P restricted to the
    classes outside A.  Its randomized probability integral transform
    ``u = (F(c-1) - P(A and < c) + V * P(c)) / (1 - P(A))`` (``V`` uniform, from a fixed seed) is then
    uniform on [0, 1) and independent of the earlier ones (Rosenblatt); chi-square of the ``u``s in
    100 equal bins, ``dof = 99``.  This test and ``num_tries`` take the candidates in the order they
    were first drawn, the order in which the reference, TensorFlow and Paddle 1.8 all return them.
``num_tries``
    the ``num_tries`` each draw used, read back from the expected count reported for the probe of
    smallest probability (the rule is inverted, then the integer ``T >= num_sampled`` whose rule
    value is closest is taken).  Given the candidates in their order, ``T - num_sampled`` is a sum of
    independent geometric counts (after ``j`` distinct classes of total mass ``P(A_j)``, a try
    repeats one of them with probability ``P(A_j)``), mean ``sum P/(1-P)``, variance
    ``sum P/(1-P)^2``; z of the sum over draws, two-sided normal p.  With ``num_sampled == 1``
    (or ``unique=False``) ``T`` must equal ``num_sampled``: exact check.
``expected_count_rule`` (exact)
    every reported expected count (sampled candidates and probes) equals the documented rule at the
    draw's ``T`` within ``16 * eps`` of the reported dtype, relative (p, log1p, the product and expm1
    each round once in that dtype, none amplifies by more than about 1: 16 ulps is 4x that bound).
``expected_count_vs_empirical``
    for each probe class, the reported expected count averaged over the draws against what the draws
    show: without ``unique`` the mean number of occurrences per draw (binomial variance
    ``e * (1 - e / S)`` per draw); with ``unique`` the fraction of draws that contain the class
    (binomial variance ``max(e(1-e), f(1-f))``, the larger of the reported and the empirical one, so
    a reported value >= 1 still gives a finite z).  Statistic: the largest |z| over the probes; p:
    its two-sided normal p times the number of probes (Bonferroni within the row).
``seed_repeat_in_process``, ``seed_repeat_fresh_process``, ``seed_changes_draws`` (exact)
    SHA-256 fingerprints of the first 64 draws: the same seed repeats in the same process (after the
    impl's documented reset, e.g. ``tf.random.set_seed`` for TensorFlow) and in a fresh worker
    process; ``seed + 1`` gives other draws.  The message also says whether a second call with the
    same seed and no reset repeats (a pure function of the seed) or continues (a stateful stream).
worker checks (e.g. ``layer_matches_op`` for Paddle 1.8) are passed through.

**Threshold and multiple tests.** Every row with a p-value (the chi-squares, ``num_tries`` and
``expected_count_vs_empirical``) belongs to one family per impl run, tested at family-wise error
rate ``FAMILY_ALPHA = 1e-3`` with Holm's step-down procedure: ``p_holm`` is the Holm-adjusted p
(``max over j <= i of min(1, (m - j + 1) p_(j))``) and a row fails when ``p_holm <= 1e-3``;
``threshold`` is the row's Holm critical value ``1e-3 / (m - rank + 1)``; ``tests_in_family`` is m.
Under a correct sampler the chance that any row of a run fails is at most 1e-3.  Exact checks fail
on any mismatch.  A worker crash or timeout is an ``error`` row, never an exception.

The core never imports a framework; this module needs NumPy only (the chi-square survival function
is the regularized upper incomplete gamma function, by series and continued fraction).
"""
from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from conformance import runner

FAMILY_ALPHA = 1e-3
MIN_CANDIDATES = 100_000  # sampled candidates per setting (default grid)
MIN_EXPECTED = 5.0  # chi-square bins are merged until each expects at least this many
PIT_BINS = 100
PIT_SEED = 20241122
RULE_ULPS = 16
FINGERPRINT_DRAWS = 64
SEED = 1234
DEFAULT_TIMEOUT = 600.0  # seconds for one setting (draws, fingerprints, writing the .npz)

COLUMNS = ["impl", "impl_version", "device", "python", "range_max", "num_sampled", "unique", "num_true",
           "draws", "candidates", "seed", "check", "statistic", "dof", "p_value", "p_holm", "threshold",
           "alpha", "tests_in_family", "status", "message", "seconds"]
P_CHECKS = ("histogram_chi2", "first_candidate_chi2", "sequential_pit_chi2", "num_tries",
            "expected_count_vs_empirical")


# --------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------
def probe_classes(range_max: int) -> list:
    """Classes whose expected counts are read every draw (passed as ``true_classes``): the most
    probable, some in the middle, and the two least probable (the last one is used to read back
    ``num_tries``)."""
    picks = [0, 1, 2, 5, range_max // 10, range_max // 2, range_max - 2, range_max - 1]
    return sorted({k for k in picks if 0 <= k < range_max})


def make_setting(range_max, num_sampled, unique, min_candidates=MIN_CANDIDATES, seed=SEED) -> dict:
    true_classes = probe_classes(range_max)
    return {"range_max": int(range_max), "num_sampled": int(num_sampled), "unique": bool(unique),
            "true_classes": true_classes, "num_true": len(true_classes),
            "draws": int(math.ceil(min_candidates / float(num_sampled))), "seed": int(seed)}


def grid(name="default") -> list:
    """Settings of a named grid: ``default`` (>= 10^5 candidates each) or ``small`` (the tests')."""
    if name == "default":
        ranges, samples, minimum = (50, 1000, 10000), (1, 8, 64), MIN_CANDIDATES
    elif name == "small":
        ranges, samples, minimum = (50, 1000), (1, 8), 30_000
    else:
        raise ValueError("grid: expected one of %s, got %r" % (", ".join(GRIDS), name))
    settings = []
    for range_max in ranges:
        for num_sampled in samples:
            for unique in (False, True):
                if unique and num_sampled > range_max:
                    continue
                settings.append(make_setting(range_max, num_sampled, unique, minimum, SEED + len(settings)))
    return settings


GRIDS = ("default", "small")


# --------------------------------------------------------------------------------------------
# Distributions and tests (NumPy only)
# --------------------------------------------------------------------------------------------
def log_uniform_p(range_max: int) -> np.ndarray:
    k = np.arange(range_max, dtype=np.float64)
    return np.log1p(1.0 / (k + 1.0)) / math.log(range_max + 1.0)


def expected_count_rule(p, tries, num_sampled):
    """The documented expected count: ``P * S`` when ``tries == S``, else ``-expm1(tries * log1p(-P))``."""
    p, tries = np.asarray(p, dtype=np.float64), np.asarray(tries, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tries == num_sampled, p * num_sampled, -np.expm1(tries * np.log1p(-p)))


def gammaincc(a: float, x: float) -> float:
    """Regularized upper incomplete gamma function Q(a, x) (series below a + 1, Lentz's continued
    fraction above: Numerical Recipes' gser/gcf)."""
    if a <= 0:
        raise ValueError("a: expected > 0, got %r" % (a,))
    if not x > 0:
        return 1.0 if x == 0 or x < 0 else float("nan")
    if math.isinf(x):
        return 0.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        denominator = a
        for _ in range(1_000_000):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return min(1.0, max(0.0, 1.0 - total * math.exp(log_prefactor)))
    tiny = 1e-300
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 1_000_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(1.0, max(0.0, math.exp(log_prefactor) * h))


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X chi-square with ``dof`` degrees of freedom."""
    if not np.isfinite(statistic):
        return 0.0 if statistic > 0 else float("nan")
    return gammaincc(dof / 2.0, statistic / 2.0)


def normal_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0)) if np.isfinite(z) else 0.0


def merge_bins(observed, expected, min_expected=MIN_EXPECTED):
    """Merge consecutive bins until each expects ``>= min_expected``; a short remainder joins the last
    bin.  Returns ``(observed, expected, first index of each merged bin)``."""
    observed, expected = np.asarray(observed, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    starts, obs, exp = [], [], []
    acc_o = acc_e = 0.0
    start = 0
    for i in range(len(expected)):
        acc_o += observed[i]
        acc_e += expected[i]
        if acc_e >= min_expected:
            starts.append(start)
            obs.append(acc_o)
            exp.append(acc_e)
            acc_o = acc_e = 0.0
            start = i + 1
    if acc_e > 0 or acc_o > 0:
        if exp:
            obs[-1] += acc_o
            exp[-1] += acc_e
        else:
            starts.append(start)
            obs.append(acc_o)
            exp.append(acc_e)
    return np.asarray(obs), np.asarray(exp), np.asarray(starts, dtype=np.int64)


def chi2_test(observed, expected, min_expected=MIN_EXPECTED, unit="class"):
    """Pearson chi-square after :func:`merge_bins`: ``(statistic, dof, p, detail)``."""
    obs, exp, starts = merge_bins(observed, expected, min_expected)
    dof = len(obs) - 1
    if dof < 1:
        return 0.0, 0, 1.0, "one bin only"
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (obs - exp) ** 2 / exp
    statistic = float(terms.sum())
    worst = int(np.argmax(terms))
    end = starts[worst + 1] - 1 if worst + 1 < len(starts) else len(np.asarray(expected)) - 1
    plural = unit + ("es" if unit.endswith("s") else "s")
    where = "%s %d" % (unit, starts[worst]) if end == starts[worst] else "%s %d-%d" % (plural, starts[worst], end)
    detail = ("%d bins; largest term %.3g at %s: observed %d vs expected %.1f"
              % (len(obs), terms[worst], where, obs[worst], exp[worst]))
    return statistic, dof, chi2_sf(statistic, dof), detail


def _bincount(values, length):
    values = np.asarray(values).ravel()
    return np.bincount(values[(values >= 0) & (values < length)], minlength=length).astype(np.int64)


def sequential_pit(candidates, p, rng):
    """Randomized PIT of every candidate after the first in each unique draw, given the earlier ones."""
    candidates = np.asarray(candidates, dtype=np.int64)
    range_max = len(p)
    valid = np.clip(candidates, 0, range_max - 1)
    pc = p[valid]
    below = np.log(valid + 1.0) / math.log(range_max + 1.0)  # sum of P(k) for k < c
    values = []
    for j in range(1, candidates.shape[1]):
        earlier, earlier_p = valid[:, :j], pc[:, :j]
        mass = earlier_p.sum(axis=1)
        mass_below = (earlier_p * (earlier < valid[:, j:j + 1])).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (below[:, j] - mass_below + rng.random(len(valid)) * pc[:, j]) / (1.0 - mass)
        values.append(u)
    return np.concatenate(values) if values else np.empty(0)


# --------------------------------------------------------------------------------------------
# One setting's rows
# --------------------------------------------------------------------------------------------
def _row(check, status=None, message="", statistic=None, dof=None, p_value=None, threshold=None):
    return {"check": check, "status": status, "message": message, "statistic": statistic, "dof": dof,
            "p_value": p_value, "threshold": threshold}


def _infer_tries(reported, p, num_sampled, unique):
    """Each draw's num_tries from the reported expected count of one class of probability ``p``."""
    reported = np.asarray(reported, dtype=np.float64)
    if not unique:
        return np.full(reported.shape, num_sampled, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        guess = np.log1p(-reported) / math.log1p(-p)
    guess = np.where(np.isfinite(guess), np.round(guess), num_sampled)
    choices = np.maximum(num_sampled, guess[:, None] + np.arange(-1, 2)[None, :]).astype(np.int64)
    errors = np.abs(expected_count_rule(p, choices, num_sampled) - reported[:, None])
    errors = np.where(np.isfinite(errors), errors, np.inf)
    return choices[np.arange(len(choices)), np.argmin(errors, axis=1)]


def _check_rule(setting, candidates, sampled, true_expected, dtype, p):
    S, classes = setting["num_sampled"], np.asarray(setting["true_classes"], dtype=np.int64)
    smallest = int(np.argmax(classes))  # the probe of smallest probability
    tries = _infer_tries(true_expected[:, smallest], p[classes[smallest]], S, setting["unique"])
    valid = np.clip(candidates, 0, len(p) - 1)
    reported = np.concatenate([sampled, true_expected], axis=1).astype(np.float64)
    probability = np.concatenate([p[valid], np.broadcast_to(p[classes], true_expected.shape)], axis=1)
    rule = expected_count_rule(probability, tries[:, None], S)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.abs(reported - rule) / np.abs(rule)
    relative = np.where(np.isnan(relative), np.inf, relative)
    tolerance = RULE_ULPS * float(np.finfo(np.dtype(dtype)).eps)
    d, j = np.unravel_index(int(np.argmax(relative)), relative.shape)
    worst = float(relative[d, j])
    klass = int(valid[d, j]) if j < S else int(classes[j - S])
    message = ("max relative difference %.3g (tolerance %d*eps(%s) = %.3g) at draw %d, class %d (%s): reported %.9g, "
               "rule %.9g with num_tries %d" % (worst, RULE_ULPS, dtype, tolerance, d, klass,
                                               "sampled" if j < S else "probe", reported[d, j], rule[d, j], tries[d]))
    status = "pass" if worst <= tolerance else "fail"
    if status == "fail":
        message = "reported expected counts do not follow the documented rule: " + message
    return _row("expected_count_rule", status, message, statistic=worst, threshold=tolerance), tries


def _check_num_tries(setting, candidates, tries, p):
    S = setting["num_sampled"]
    if not setting["unique"] or S == 1:
        wrong = int(np.count_nonzero(tries != S))
        status = "pass" if wrong == 0 else "fail"
        return _row("num_tries", status, "num_tries read back from the expected counts: %d of %d draws differ "
                    "from num_sampled=%d (must be 0)" % (wrong, len(tries), S), statistic=wrong)
    pc = p[np.clip(candidates, 0, len(p) - 1)]
    mass = np.cumsum(pc, axis=1)[:, :-1]  # P(A_j), j = 1..S-1
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = S + (mass / (1.0 - mass)).sum(axis=1)
        variance = (mass / (1.0 - mass) ** 2).sum(axis=1)
    total_var = float(variance.sum())
    z = float((tries.sum() - mean.sum()) / math.sqrt(total_var)) if total_var > 0 else float("inf")
    message = ("mean num_tries %.4f vs %.4f expected given the drawn candidates (z = %.2f over %d draws)"
               % (tries.mean(), mean.mean(), z, len(tries)))
    return _row("num_tries", message=message, statistic=z, p_value=normal_two_sided(z))


def _check_vs_empirical(setting, candidates, true_expected, p, tries=None):
    S, D, R = setting["num_sampled"], len(candidates), setting["range_max"]
    classes = np.asarray(setting["true_classes"], dtype=np.int64)
    mean_reported = true_expected.astype(np.float64).mean(axis=0)
    if setting["unique"]:
        empirical = np.array([(candidates == k).any(axis=1).mean() for k in classes])
        variance = np.maximum(mean_reported * (1 - mean_reported), empirical * (1 - empirical))
        what = "fraction of draws containing the class"
    else:
        empirical = _bincount(candidates, R)[classes] / float(D)
        variance = np.maximum(mean_reported * (1 - mean_reported / S), 0.0)
        what = "mean occurrences per draw"
    se = np.sqrt(variance / D)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (empirical - mean_reported) / se,
                     np.where(empirical == mean_reported, 0.0, np.inf))
    worst = int(np.argmax(np.abs(z)))
    statistic = float(abs(z[worst]))
    p_value = min(1.0, len(classes) * normal_two_sided(statistic))
    parts = ["class %d: %.5g vs %.5g (z %+.1f)" % (k, r, e, zz)
             for k, r, e, zz in zip(classes, mean_reported, empirical, z)]
    message = ("reported expected count (mean over %d draws) vs %s, worst class %d; %s"
               % (D, what, classes[worst], "; ".join(parts)))
    if setting["unique"] and tries is not None and S > 1:
        # Where a unique draw's reported counts come from: the P*S branch (num_tries == S) or the
        # expm1 form; the latter alone, averaged, tells how much of the gap the branch makes.
        k = classes[worst]
        branch = float(np.mean(tries == S))
        expm1_form = float(np.mean(-np.expm1(tries * math.log1p(-p[k])))) if p[k] < 1 else float("nan")
        message += ("; %.1f%% of draws had num_tries == num_sampled and report P*S (%.4g for class %d), the "
                    "others -expm1(num_tries*log1p(-P)); that form alone would average %.5g for class %d"
                    % (100 * branch, p[k] * S, k, expm1_form, k))
    return _row("expected_count_vs_empirical", message=message, statistic=statistic, p_value=p_value)


def _seed_rows(reply, fresh):
    rows = []
    first = reply.get("fingerprint")
    again = "repeats (a pure function of the seed)" if reply.get("fingerprint_again") == first else \
        "gives other draws (a stateful stream)"
    note = "; a second call with the same seed and no reset %s" % again
    same = reply.get("fingerprint_repeat") == first
    rows.append(_row("seed_repeat_in_process", "pass" if same else "fail",
                     "first %d draws %s after the reset [%s]%s" % (reply.get("fingerprint_draws", 0),
                                                                   "repeat" if same else "DO NOT repeat",
                                                                   reply.get("reset", ""), note)))
    if isinstance(fresh, dict) and fresh.get("fingerprint"):
        same = fresh["fingerprint"] == first
        rows.append(_row("seed_repeat_fresh_process", "pass" if same else "fail",
                         "first %d draws in a fresh worker process %s (sha256 %s vs %s)"
                         % (reply.get("fingerprint_draws", 0), "repeat" if same else "DO NOT repeat",
                            first[:12], fresh["fingerprint"][:12])))
    else:
        rows.append(_row("seed_repeat_fresh_process", "error",
                         "no fingerprint from a fresh process: %s" % ((fresh or {}).get("message") or "not run")))
    differ = reply.get("fingerprint_other_seed") != first
    rows.append(_row("seed_changes_draws", "pass" if differ else "fail",
                     "seed + 1 %s" % ("gives other draws" if differ else "gives the SAME draws: the seed is ignored")))
    return rows


def analyse(setting, arrays, reply, fresh=None, pit_seed=PIT_SEED):
    """Rows (dicts with ``check``, ``status``, ``statistic``, ``p_value``...) for one setting's draws.

    ``arrays``: ``candidates``, ``sampled_expected``, ``true_expected`` (see ``impls/samplers.py``);
    ``reply``: the worker's reply (fingerprints, ``dtype``, ``checks``); ``fresh``: the reply of a fresh
    process to the same setting (its ``fingerprint``).  Rows with a p-value have ``status`` None until
    :func:`apply_holm` decides them.
    """
    candidates = np.asarray(arrays["candidates"], dtype=np.int64)
    sampled = np.asarray(arrays["sampled_expected"])
    true_expected = np.asarray(arrays["true_expected"])
    dtype = str(reply.get("dtype") or sampled.dtype)
    R, S, D = setting["range_max"], setting["num_sampled"], len(candidates)
    p = log_uniform_p(R)
    rows = []

    def guarded(function, *args):
        try:
            result = function(*args)
        except Exception as error:  # a malformed answer is an error row, never a crash of the run
            return [_row(getattr(function, "__name__", "check").lstrip("_"), "error",
                         "analysis failed: %s: %s" % (type(error).__name__, error))]
        return result if isinstance(result, list) else [result]

    outside = int(np.count_nonzero((candidates < 0) | (candidates >= R)))
    rows.append(_row("candidates_in_range", "pass" if outside == 0 else "fail",
                     "%d of %d candidates outside [0, %d)" % (outside, candidates.size, R), statistic=outside))
    if candidates.shape != (D, S) or sampled.shape != (D, S) or true_expected.shape != (D, setting["num_true"]):
        rows.append(_row("shapes", "error", "unexpected shapes: candidates %s, sampled_expected %s, true_expected %s"
                         % (candidates.shape, sampled.shape, true_expected.shape)))
        return rows

    if setting["unique"]:
        ordered = np.sort(candidates, axis=1)
        repeats = int(np.count_nonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1)))
        rows.append(_row("unique_within_draw", "pass" if repeats == 0 else "fail",
                         "%d of %d draws repeat a class" % (repeats, D), statistic=repeats))

        def first_candidate():
            statistic, dof, p_value, detail = chi2_test(_bincount(candidates[:, 0], R), D * p)
            return _row("first_candidate_chi2", message="first candidate of %d draws vs P(k): %s" % (D, detail),
                        statistic=statistic, dof=dof, p_value=p_value)

        rows += guarded(first_candidate)
        if S >= 2:
            def pit():
                u = sequential_pit(candidates, p, np.random.default_rng(pit_seed))
                counts = np.histogram(np.clip(u, 0.0, np.nextafter(1.0, 0.0)), bins=PIT_BINS, range=(0.0, 1.0))[0]
                statistic, dof, p_value, detail = chi2_test(counts, np.full(PIT_BINS, len(u) / PIT_BINS), unit="bin")
                return _row("sequential_pit_chi2", message="randomized PIT of %d later candidates given the earlier "
                            "ones of their draw, in %d equal bins: %s" % (len(u), PIT_BINS, detail),
                            statistic=statistic, dof=dof, p_value=p_value)

            rows += guarded(pit)
    else:
        def histogram():
            statistic, dof, p_value, detail = chi2_test(_bincount(candidates, R), D * S * p)
            return _row("histogram_chi2", message="all %d candidates vs P(k): %s" % (candidates.size, detail),
                        statistic=statistic, dof=dof, p_value=p_value)

        rows += guarded(histogram)

    tries = None
    try:
        rule_row, tries = _check_rule(setting, candidates, sampled, true_expected, dtype, p)
        rows.append(rule_row)
    except Exception as error:
        rows.append(_row("expected_count_rule", "error", "analysis failed: %s: %s" % (type(error).__name__, error)))
    if tries is not None:
        rows += guarded(_check_num_tries, setting, candidates, tries, p)
    rows += guarded(_check_vs_empirical, setting, candidates, true_expected, p, tries)
    rows += _seed_rows(reply, fresh)
    for extra in reply.get("checks") or []:
        rows.append(_row(extra.get("check", "worker_check"), extra.get("status", "error"), extra.get("message", "")))
    return rows


# With unique=True the documented expected count is an approximation, and TensorFlow's source says
# so (range_sampler.cc, ExpectedCountHelper: "assuming (falsely) that the number of tries ... is
# always num_tries").  A rejected expected_count_vs_empirical there measures that documented rule,
# not a sampler that departs from it: the row's status is APPROXIMATE, apart from real failures.
APPROXIMATE = "approximate"


def mark_documented_approximation(rows):
    """Rejected expected_count_vs_empirical rows of unique draws become APPROXIMATE (in place)."""
    for row in rows:
        if (row.get("check") == "expected_count_vs_empirical" and str(row.get("unique")) == "True"
                and row.get("status") == "fail"):
            row["status"] = APPROXIMATE
            row["message"] = ("documented approximation (the unique=True expected count assumes a fixed number "
                              "of tries): " + row.get("message", ""))
    return rows


def apply_holm(rows, alpha=FAMILY_ALPHA):
    """Decide every row with a p-value by Holm's step-down procedure over all of them (in place)."""
    tested = [row for row in rows if row.get("p_value") is not None and row.get("status") is None]
    m = len(tested)
    order = sorted(range(m), key=lambda i: (tested[i]["p_value"] if np.isfinite(tested[i]["p_value"]) else 0.0))
    running = 0.0
    for rank, index in enumerate(order):
        row = tested[index]
        p_value = row["p_value"] if np.isfinite(row["p_value"]) else 0.0
        running = max(running, min(1.0, (m - rank) * p_value))
        row.update(p_holm=running, threshold=alpha / (m - rank), alpha=alpha, tests_in_family=m,
                   status="fail" if running <= alpha else "pass")
        if row["status"] == "fail":
            row["message"] = "REJECTED (Holm-adjusted p %.3g <= %g): %s" % (running, alpha, row["message"])
    return rows


# --------------------------------------------------------------------------------------------
# Running impls in workers
# --------------------------------------------------------------------------------------------
def sampler_path(out_dir, impl: str, device: str = "cpu") -> Path:
    return Path(out_dir) / ("sampler-%s-%s.csv" % (impl, device))


def _setting_columns(setting):
    return {key: setting[key] for key in ("range_max", "num_sampled", "unique", "num_true", "draws", "seed")}


def _failed_row(reply: runner.Reply):
    if reply.status == "unsupported":
        return _row("native_sampler", "unsupported", reply.message)
    prefix = "" if reply.status == "error" else reply.status + ": "
    return _row("draw", "error", prefix + reply.message)


def run_impl_sampler(impl, out_dir, settings, *, python=None, progress=None, timeout=DEFAULT_TIMEOUT,
                     fresh_process=True):
    """Run ``settings`` on one impl; write ``sampler-<impl>-cpu.csv``; return ``(path, seconds)``.

    Raises ``runner.WorkerUnavailable`` only when the impl cannot start at all.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    worker = runner.Worker(impl, "cpu", python, log_dir=out_dir / "logs")
    worker.start()  # fail fast, before any row, when the framework is not installed
    scratch = Path(tempfile.mkdtemp(prefix="conformance-sampler-%s-" % impl))
    results = []
    try:
        info = worker.info or {}
        for index, setting in enumerate(progress(settings, desc="sampler %s" % impl) if progress else settings):
            out_file = scratch / ("setting-%d.npz" % index)
            spec = dict(setting, out_file=str(out_file), fingerprint_draws=FINGERPRINT_DRAWS)
            reply = worker.send({"sampler": spec}, timeout)
            info = worker.info or info
            arrays = None
            if reply.status == "ok":
                try:
                    with np.load(str(out_file)) as data:
                        arrays = {key: data[key] for key in data.files}
                except Exception as error:  # noqa: BLE001 - an unreadable answer is a row
                    reply = runner.Reply("error", "could not read the draws: %s: %s" % (type(error).__name__, error))
                if out_file.exists():
                    out_file.unlink()
            results.append((setting, reply, arrays))
    finally:
        worker.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    fresh = {}
    if fresh_process and any(reply.status == "ok" for _, reply, _ in results):
        second = runner.Worker(impl, "cpu", python, log_dir=out_dir / "logs")
        try:
            second.start()
            for index, (setting, reply, _) in enumerate(results):
                if reply.status == "ok":
                    answer = second.send({"sampler": dict(setting, draws=FINGERPRINT_DRAWS, out_file=None,
                                                          fingerprint_draws=FINGERPRINT_DRAWS)}, timeout)
                    fresh[index] = answer.data if answer.status == "ok" else {"message": "%s: %s" % (
                        answer.status, answer.message)}
        except runner.WorkerUnavailable as error:
            fresh = {i: {"message": str(error)} for i in range(len(results))}
        finally:
            second.stop()

    rows = []
    for index, (setting, reply, arrays) in enumerate(results):
        if reply.status != "ok":
            setting_rows = [_failed_row(reply)]
        else:
            setting_rows = analyse(setting, arrays, reply.data, fresh.get(index))
        base = dict(_setting_columns(setting), impl=impl, impl_version=info.get("version", ""), device="cpu",
                    python=info.get("python", ""), candidates=setting["draws"] * setting["num_sampled"],
                    seconds=(reply.data or {}).get("seconds") if reply.status == "ok" else None)
        rows += [dict(base, **row) for row in setting_rows]
    mark_documented_approximation(apply_holm(rows))
    for row in rows:
        row.setdefault("alpha", FAMILY_ALPHA if row.get("p_value") is not None else None)
    path = sampler_path(out_dir, impl)
    write_rows(path, rows)
    return path, time.perf_counter() - started


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


def run_sampler(impls, out_dir, grid_name="default", progress=None, *, python=None, timeout=DEFAULT_TIMEOUT) -> dict:
    """Each impl in its own worker: impl -> ``(CSV path, wall seconds)``, or the reason it could not start."""
    settings = grid(grid_name) if isinstance(grid_name, str) else [dict(s) for s in grid_name]
    overrides = python or {}
    outcome = {}
    for impl in impls:
        try:
            outcome[impl] = run_impl_sampler(impl, out_dir, settings, progress=progress, timeout=timeout,
                                             python=runner.python_for(impl, overrides))
        except runner.WorkerUnavailable as error:
            outcome[impl] = str(error)
    return outcome
