"""The statistics of the sampler checks, NumPy only (the core never imports a framework or SciPy): the
log-uniform P(k) and the documented expected-count rule, the chi-square test (its survival function
is the regularized upper incomplete gamma function, by series and continued fraction), the normal
p-value, the randomized PIT of unique draws, and Holm's step-down procedure over a run's p-values.

**Threshold and multiple tests.** Every row with a p-value (the chi-squares, ``num_tries`` and
``expected_count_vs_empirical``) belongs to one family per impl run, tested at family-wise error
rate ``FAMILY_ALPHA = 1e-3`` with Holm's step-down procedure: ``p_holm`` is the Holm-adjusted p
(``max over j <= i of min(1, (m - j + 1) p_(j))``) and a row fails when ``p_holm <= 1e-3``;
``threshold`` is the row's Holm critical value ``1e-3 / (m - rank + 1)``; ``tests_in_family`` is m.
Under a correct sampler the chance that any row of a run fails is at most 1e-3.  Exact checks fail
on any mismatch.
"""
from __future__ import annotations

import math

import numpy as np

FAMILY_ALPHA = 1e-3
MIN_EXPECTED = 5.0  # chi-square bins are merged until each expects at least this many


# P(k) and the expected-count rule are written here again, not imported from the oracle
# (impls/reference/: log_uniform_probability, _expected_count): the oracle's sampler is one of the
# samplers under test, and its reported expected counts checked against its own code would pass by
# construction.
def log_uniform_p(range_max: int) -> np.ndarray:
    """P(k) for every class ``k`` in ``[0, range_max)``, float64."""
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


def bincount(values, length):
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
