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

**Through the loss** (``via = loss``; TensorFlow's ``tf.nn.sampled_softmax_loss`` and Paddle 1.8's
``sampled_softmax_with_cross_entropy`` drawing their own candidates with a fixed seed, see
``impls/samplers.py``): the candidates and expected counts each loss call drew get every check above
(unique settings only: both losses sample unique), and per setting:

``loss_shape`` (exact)
    each call's loss has the API's documented shape (TF ``[batch]``, Paddle ``[N, 1]``).
``true_labels_in_front`` (exact, where the framework exposes its sampled layout: Paddle's ``Samples``)
    column 0 of every row is its label, and the candidates after it are the same on every row.
``accidental_hits_removed`` (exact, where exposed: Paddle's ``SampledLogits``)
    exactly the sampled columns whose class is the row's label were pushed below ``-1e19`` (Paddle
    subtracts 1e20 there).
``drawn_candidates_identity`` (exact, TensorFlow)
    the loss TF computes from the candidates ``tf.random.log_uniform_candidate_sampler`` returns with
    the same seeds has the same bits as the loss that drew its own: they are what the loss drew.
``loss_vs_oracle``
    the oracle's loss (``impls/reference.py``, float64) recomputed from the candidates and expected
    counts the framework drew, against the framework's loss under the suite's tolerance
    (``conformance/compare.py``: the float32 rtol of the op's accumulation length and its logit
    scale); statistic: the worst ratio to the allowed error over all draws.  The message says on how
    many draws an oracle *without* accidental-hit removal would have disagreed (the check's power
    on hit removal where the framework does not expose it).

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

from conformance import runner, runs
from impls.ops import get
from conformance.outcomes import APPROXIMATE

FAMILY_ALPHA = 1e-3
MIN_CANDIDATES = 100_000  # sampled candidates per setting (default grid)
MIN_EXPECTED = 5.0  # chi-square bins are merged until each expects at least this many
PIT_BINS = 100
PIT_SEED = 20241122
RULE_ULPS = 16
FINGERPRINT_DRAWS = 64
SEED = 1234
DEFAULT_TIMEOUT = 600.0  # seconds for one setting (draws, fingerprints, writing the .npz)

COLUMNS = ["impl", "impl_version", "device", "python", "via", "range_max", "num_sampled", "unique", "num_true",
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


def make_setting(range_max, num_sampled, unique, min_candidates=MIN_CANDIDATES, seed=SEED, via="sampler") -> dict:
    """One setting; ``via="loss"``: drawn by the framework's sampled loss (the probes are its labels)."""
    true_classes = probe_classes(range_max)
    return {"range_max": int(range_max), "num_sampled": int(num_sampled), "unique": bool(unique),
            "true_classes": true_classes, "num_true": len(true_classes),
            "draws": int(math.ceil(min_candidates / float(num_sampled))), "seed": int(seed), "via": via}


# Settings drawn through the loss (unique: both losses sample unique), (range_max, num_sampled), and
# their candidates per setting: each draw is a whole loss call, so fewer than the sampler's.
LOSS_SETTINGS = {"default": ((50, 8), (1000, 64), (10000, 64)), "small": ((1000, 8),)}
LOSS_MIN_CANDIDATES = 30_000


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
    for range_max, num_sampled in LOSS_SETTINGS[name]:
        settings.append(make_setting(range_max, num_sampled, True, min(minimum, LOSS_MIN_CANDIDATES),
                                     SEED + len(settings), via="loss"))
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
    if setting.get("via") == "loss":
        rows += guarded(_loss_rows, setting, arrays, reply.get("loss_op"))
    for extra in reply.get("checks") or []:
        rows.append(_row(extra.get("check", "worker_check"), extra.get("status", "error"), extra.get("message", "")))
    return rows


# --------------------------------------------------------------------------------------------
# Through the loss: what the loss did with the candidates it drew
# --------------------------------------------------------------------------------------------
PADDLE_HIT_SHIFT = -1e19  # Paddle 1.8's sample_logits subtracts 1e20 from a hit's sampled logit


def _problem_float64(arrays):
    """The fixed problem every draw of a setting shares (``input_*``), by input name, in float64."""
    return {k[len("input_"):]: np.asarray(v, dtype=np.float64 if np.asarray(v).dtype.kind == "f" else np.int64)
            for k, v in arrays.items() if k.startswith("input_")}


def _oracle_case(loss_op, arrays, d, remove_accidental_hits=True, f64=None):
    """``(oracle loss in float64, params, inputs by the op's input names)`` of draw ``d``, as the op's
    :class:`~impls.ops.core.SamplerLoss` makes them; ``f64``: :func:`_problem_float64` of ``arrays``
    when the caller has it already."""
    f64 = _problem_float64(arrays) if f64 is None else f64
    return get(loss_op).sampler_loss.oracle_case(arrays, d, f64, remove_accidental_hits)


def _vs_oracle(loss_op, arrays, d, actual, remove_accidental_hits=True, f64=None, allowed=None):
    """Draw ``d``'s loss against the oracle's under the suite's tolerance: ``(OutputError, allowed)``,
    ``allowed`` = ``(rtol, logit scale, the tolerance's reason)`` of the draw.  They depend on the
    draw's inputs only, not on the hit removal: a second comparison of the same draw passes them in
    (the scale's bound over all classes is most of the work)."""
    from conformance import compare  # noqa: PLC0415

    golden, params, inputs = _oracle_case(loss_op, arrays, d, remove_accidental_hits, f64)
    if allowed is None:
        scale = get(loss_op).logit_scale(params, inputs)
        tolerance = compare.tolerance({"op": loss_op, "dtype": "float32", "params": params, "logit_scale": scale},
                                      {k: np.shape(v) for k, v in inputs.items()})
        allowed = (tolerance.rtol, scale, tolerance.reason)
    rtol, scale, _ = allowed
    return compare.compare_output("loss", actual, golden, rtol, scale), allowed


def _loss_rows(setting, arrays, loss_op):
    candidates, loss = np.asarray(arrays["candidates"]), np.asarray(arrays["loss"])
    D, N = len(candidates), setting["num_true"]
    documented = get(loss_op).sampler_loss.loss_shape(D, N)
    rows = [_row("loss_shape", "pass" if loss.shape == documented else "fail",
                 "%s: losses of %d calls %s, documented %s" % (loss_op, D, loss.shape, documented))]
    if loss.shape != documented:
        return rows
    labels = np.asarray(arrays.get("input_labels", arrays.get("input_label"))).reshape(N)
    hits = candidates[:, None, :] == labels[None, :, None]  # [D, N, S]
    hit_draws = np.flatnonzero(hits.any(axis=(1, 2)))
    if "samples" in arrays:
        samples = np.asarray(arrays["samples"])
        wrong_front = int(np.count_nonzero(samples[:, :, 0] != labels[None, :]))
        unshared = int(np.count_nonzero((samples[:, :, 1:] != samples[:, :1, 1:]).any(axis=2)))
        rows.append(_row("true_labels_in_front", "pass" if wrong_front == unshared == 0 else "fail",
                         "Samples [N, 1+S] of %d draws: %d rows without their label in column 0, %d rows whose "
                         "candidates differ from row 0's" % (D, wrong_front, unshared), statistic=wrong_front + unshared))
        removed = np.asarray(arrays["sampled_logits"])[:, :, 1:] <= PADDLE_HIT_SHIFT
        wrong = int(np.count_nonzero(removed != hits))
        rows.append(_row("accidental_hits_removed", "pass" if wrong == 0 else "fail",
                         "%d accidental hits in %d of %d draws; %d sampled logits removed (below %g) where the drawn "
                         "samples say otherwise" % (int(hits.sum()), len(hit_draws), D, wrong, PADDLE_HIT_SHIFT),
                         statistic=wrong))
    else:
        hidden = "%s returns the loss only: checked through loss_vs_oracle" % loss_op
        rows.append(_row("true_labels_in_front", "unsupported", hidden))
        rows.append(_row("accidental_hits_removed", "unsupported", "%s (%d accidental hits in %d of %d draws)"
                         % (hidden, int(hits.sum()), len(hit_draws), D)))
    if "loss_given_candidates" in arrays:
        given = np.asarray(arrays["loss_given_candidates"])
        differ = int(np.count_nonzero((given != loss).any(axis=1)))
        rows.append(_row("drawn_candidates_identity", "pass" if differ == 0 else "fail",
                         "%d of %d draws: the loss from the candidates tf.random.log_uniform_candidate_sampler "
                         "returns with the same seeds differs in its bits from the loss that drew its own"
                         % (differ, D), statistic=differ))

    try:
        rows.append(_loss_vs_oracle_row(loss_op, arrays, loss, hit_draws))
    except Exception as error:  # e.g. Samples the oracle rejects (no label in front): the other rows stand
        rows.append(_row("loss_vs_oracle", "error", "oracle recomputation failed: %s: %s" % (type(error).__name__, error)))
    return rows


def _loss_vs_oracle_row(loss_op, arrays, loss, hit_draws):
    D = len(loss)
    worst, worst_draw, tolerance_reason = 0.0, 0, ""
    f64, allowed = _problem_float64(arrays), {}
    for d in range(D):
        error, allowed[d] = _vs_oracle(loss_op, arrays, d, loss[d], f64=f64)
        ratio = float("inf") if error.problem else error.ratio
        if ratio > worst or d == 0:
            worst, worst_draw, tolerance_reason = ratio, d, allowed[d][2]
    # Would an oracle that keeps the hits have agreed anyway?  (The check's power on hit removal.)
    powerless = sum(not _vs_oracle(loss_op, arrays, d, loss[d], remove_accidental_hits=False, f64=f64,
                                   allowed=allowed[d])[0].failed for d in hit_draws)
    message = ("oracle loss from the drawn candidates vs %s's over %d calls: worst %.3g of the allowed error "
               "(draw %d; %s); without accidental-hit removal the oracle would disagree on %d of the %d draws "
               "with hits" % (loss_op, D, worst, worst_draw, tolerance_reason, len(hit_draws) - powerless,
                              len(hit_draws)))
    return _row("loss_vs_oracle", "pass" if worst <= 1.0 else "fail", message, statistic=worst, threshold=1.0)


# With unique=True the documented expected count is an approximation, and TensorFlow's source says
# so (range_sampler.cc, ExpectedCountHelper: "assuming (falsely) that the number of tries ... is
# always num_tries").  A rejected expected_count_vs_empirical there measures that documented rule,
# not a sampler that departs from it: the row's status is APPROXIMATE (conformance/outcomes.py), apart from
# real failures.


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
    return dict({key: setting[key] for key in ("range_max", "num_sampled", "unique", "num_true", "draws", "seed")},
                via=setting.get("via", "sampler"))


def _failed_row(reply: runner.Reply):
    if reply.status == "unsupported":
        return _row("native_sampler", "unsupported", reply.message)
    prefix = "" if reply.status == "error" else reply.status + ": "
    return _row("draw", "error", prefix + reply.message)


def _check_stop(stop):
    """A parallel run was interrupted: this impl's thread ends too, writing nothing (its killed worker's
    replies would read as crashes)."""
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt


def run_impl_sampler(impl, out_dir, settings, *, python=None, progress=None, timeout=DEFAULT_TIMEOUT,
                     fresh_process=True, env=None, stop=None):
    """Run ``settings`` on one impl; write ``sampler-<impl>-cpu.csv``; return ``(path, seconds)``.

    ``env``: added to the workers' environment; ``stop``: a ``parallel.Stop`` that kills them on Ctrl-C.
    Raises ``runner.WorkerUnavailable`` only when the impl cannot start at all.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    worker = runner.Worker(impl, "cpu", python, log_dir=out_dir / "logs", env=env)
    if stop is not None:
        stop.watch(worker)
    worker.start()  # fail fast, before any row, when the framework is not installed
    scratch = Path(tempfile.mkdtemp(prefix="conformance-sampler-%s-" % impl))
    results = []
    try:
        info = worker.info or {}
        for index, setting in enumerate(progress(settings, desc="sampler %s" % impl) if progress else settings):
            _check_stop(stop)
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
        second = runner.Worker(impl, "cpu", python, log_dir=out_dir / "logs", env=env)
        if stop is not None:
            stop.watch(second)
        try:
            second.start()
            for index, (setting, reply, _) in enumerate(results):
                _check_stop(stop)
                if reply.status == "ok":
                    answer = second.send({"sampler": dict(setting, draws=FINGERPRINT_DRAWS, out_file=None,
                                                          fingerprint_draws=FINGERPRINT_DRAWS)}, timeout)
                    fresh[index] = answer.data if answer.status == "ok" else {"message": "%s: %s" % (
                        answer.status, answer.message)}
        except runner.WorkerUnavailable as error:
            fresh = {i: {"message": str(error)} for i in range(len(results))}
        finally:
            second.stop()

    _check_stop(stop)
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


def draws(impl) -> bool:
    """Whether the impl has a native sampler to draw from (decided without starting its worker)."""
    from impls import get_adapter  # noqa: PLC0415
    from impls.samplers import why_no_sampler  # noqa: PLC0415

    return why_no_sampler(get_adapter(impl), "cpu") is None


def drawing_first(impls) -> list:
    """The impls that draw take minutes, the others answer "unsupported" in seconds: the drawing ones
    start first, so that a parallel run does not end with one of them running alone."""
    return sorted(impls, key=lambda impl: not draws(impl))


def impl_task(out_dir, settings, *, python=None, timeout=DEFAULT_TIMEOUT, jobs=1, stop=None, progress=None,
              notify=None):
    """``function(impl, slot)`` for ``conformance.parallel.run_each``: one impl's
    :func:`run_impl_sampler`, ``(CSV path, wall seconds)``, or the reason it could not start.

    ``progress(slot)``: the progress wrapper ``(items, desc) -> items`` of the impl at ``slot``;
    ``notify``: told one line when an impl finishes.  The draws of one impl take
    the time (measured: the NumPy reference's 10^5 sampler calls per setting are 99% of its 5-20 s
    per setting, the analysis here under 0.1 s), so impls side by side is where time is saved; every
    setting draws and tests exactly as when run alone.
    """
    from conformance import parallel  # noqa: PLC0415

    overrides = python or {}

    def run_one(impl, slot):
        try:
            result = run_impl_sampler(impl, out_dir, settings, progress=progress(slot) if progress else None,
                                      timeout=timeout, python=runner.python_for(impl, overrides),
                                      env=parallel.worker_environment(jobs), stop=stop)
        except runner.WorkerUnavailable as error:
            return str(error)
        if notify:
            notify("%s: sampler rows in %s (%.1f s)" % (impl, runs.relative(result[0]), result[1]))
        return result

    return run_one


def run_sampler(impls, out_dir, grid_name="default", progress=None, *, python=None, timeout=DEFAULT_TIMEOUT,
                jobs=1, notify=None) -> dict:
    """Each impl in its own worker, ``jobs`` impls at a time: impl -> ``(CSV path, wall seconds)``, or
    the reason it could not start (``progress``, ``notify``: see :func:`impl_task`)."""
    from conformance import parallel  # noqa: PLC0415

    settings = grid(grid_name) if isinstance(grid_name, str) else [dict(s) for s in grid_name]
    stop = parallel.Stop()
    task = impl_task(out_dir, settings, python=python, timeout=timeout, jobs=jobs, stop=stop, progress=progress,
                     notify=notify)
    outcome = parallel.run_each(drawing_first(impls), task, jobs, stop)
    return {impl: outcome[impl] for impl in impls}
