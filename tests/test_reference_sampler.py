"""log_uniform_candidate_sampler: determinism, shapes, the expected-count rule, and its distribution.

The rule (shared/FACTS.md, TensorFlow and Paddle alike): P(k) = (log(k+2) - log(k+1)) / log(R+1);
with ``unique`` the sampler draws with replacement until ``num_sampled`` distinct classes are seen,
counting every draw (``num_tries``), and reports ``-expm1(num_tries * log1p(-P(k)))`` for sampled and
true classes alike, or ``P(k) * num_sampled`` when ``num_tries == num_sampled`` (always so without
``unique``).  Every statistical test runs on fixed seeds, so it is deterministic; its threshold is
still derived from a stated false-alarm probability so that it means something.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from helpers_reference import chi2_sf, chi2_sf_even, ref, within

sampler = ref.log_uniform_candidate_sampler


def p_log_uniform(k, range_max):
    return math.log1p(1.0 / (k + 1)) / math.log(range_max + 1)


def expected_count(p, num_tries, num_sampled):
    """The FACTS.md rule on Python floats."""
    if num_tries == num_sampled:
        return p * num_sampled
    return -math.expm1(num_tries * math.log1p(-p))


def reconstruct_num_tries(candidates, sampled_expected, range_max, num_sampled):
    """num_tries implied by the reported counts: P*S when every count is P*S, else the (integral)
    solution of 1 - (1 - P)^n = count, from the candidate whose P is largest (best conditioned)."""
    p = [p_log_uniform(int(c), range_max) for c in candidates]
    if all(abs(e - q * num_sampled) <= 1e-12 * q * num_sampled for e, q in zip(sampled_expected, p)):
        return num_sampled
    best = int(np.argmax(p))
    n = math.log1p(-float(sampled_expected[best])) / math.log1p(-p[best])
    assert abs(n - round(n)) < 1e-6 * n, "reported count implies a non-integral num_tries %r" % n
    return int(round(n))


# ----------------------------------------------------------------------------------------------
# Determinism, shapes, dtypes
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("unique", [True, False], ids=["unique", "with-replacement"])
def test_fixed_seed_repeats_exactly(unique):
    true_classes = np.array([[0, 3], [7, 9]])
    first = sampler(true_classes, 2, 6, unique, 40, seed=123)
    again = sampler(true_classes, 2, 6, unique, 40, seed=123)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    others = [sampler(true_classes, 2, 6, unique, 40, seed=s)[0] for s in range(124, 130)]
    assert any(not np.array_equal(first[0], o) for o in others), "the seed must matter"


@pytest.mark.parametrize("batch, num_true, num_sampled, unique, range_max", [
    pytest.param(1, 1, 1, True, 1, id="R1-S1"),
    pytest.param(3, 2, 5, True, 20, id="B3-T2-S5-unique"),
    pytest.param(2, 4, 50, False, 10, id="B2-T4-S50-replacement"),
    pytest.param(4, 1, 30, True, 30, id="S-equals-R-unique"),
    pytest.param(2, 3, 7, True, 10 ** 6, id="R1e6"),
])
def test_shapes_dtypes_and_range(batch, num_true, num_sampled, unique, range_max):
    true_classes = (np.arange(batch * num_true).reshape(batch, num_true) * 7) % range_max
    candidates, true_expected, sampled_expected = within(10, sampler, true_classes, num_true, num_sampled, unique,
                                                         range_max, seed=5)
    assert candidates.shape == (num_sampled,) and candidates.dtype == np.int64
    assert true_expected.shape == (batch, num_true) and true_expected.dtype == np.float64
    assert sampled_expected.shape == (num_sampled,) and sampled_expected.dtype == np.float64
    assert candidates.min() >= 0 and candidates.max() < range_max
    assert np.all(true_expected > 0) and np.all(sampled_expected > 0)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("num_sampled, range_max", [(5, 8), (20, 25), (8, 1000)])
def test_unique_gives_distinct_values(num_sampled, range_max, seed):
    candidates = within(10, sampler, np.array([[1]]), 1, num_sampled, True, range_max, seed=seed)[0]
    assert len(set(candidates.tolist())) == num_sampled


def test_unique_with_num_sampled_equal_to_range_is_a_permutation():
    candidates = within(10, sampler, np.array([[0]]), 1, 12, True, 12, seed=2)[0]
    assert sorted(candidates.tolist()) == list(range(12))


def test_with_replacement_repeats():
    candidates = sampler(np.array([[0]]), 1, 200, False, 10, seed=3)[0]
    assert len(set(candidates.tolist())) < 200  # 200 draws over 10 classes must repeat


def test_unique_is_not_limited_by_the_chunk_size():
    # num_sampled close to range_max needs many more draws than 2*num_sampled (a coupon collector).
    candidates = within(10, sampler, np.array([[0]]), 1, 1990, True, 2000, seed=4)[0]
    assert len(set(candidates.tolist())) == 1990


# ----------------------------------------------------------------------------------------------
# Expected counts
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("num_sampled, range_max", [(4, 10), (10, 30), (6, 100000)])
def test_unique_expected_counts_follow_the_rule(num_sampled, range_max, seed):
    true_classes = np.array([[0, range_max - 1], [3, 1]])
    candidates, true_expected, sampled_expected = sampler(true_classes, 2, num_sampled, True, range_max, seed=seed)
    num_tries = reconstruct_num_tries(candidates, sampled_expected, range_max, num_sampled)
    assert num_tries >= num_sampled
    for c, e in zip(candidates.tolist(), sampled_expected.tolist()):
        want = expected_count(p_log_uniform(c, range_max), num_tries, num_sampled)
        assert abs(e - want) <= 1e-12 * want, (c, e, want)
    for c, e in zip(true_classes.ravel().tolist(), true_expected.ravel().tolist()):
        want = expected_count(p_log_uniform(c, range_max), num_tries, num_sampled)
        assert abs(e - want) <= 1e-12 * want, (c, e, want)
    if num_tries > num_sampled:
        assert np.all(sampled_expected <= 1)  # a probability of inclusion


def test_unique_with_one_sample_takes_exactly_one_try():
    # The first draw is always new: num_tries == num_sampled == 1, so the counts are P(k) * 1.
    true_classes = np.array([[2, 9]])
    candidates, true_expected, sampled_expected = sampler(true_classes, 2, 1, True, 50, seed=8)
    assert sampled_expected[0] == pytest.approx(p_log_uniform(int(candidates[0]), 50), rel=1e-13)
    np.testing.assert_allclose(true_expected[0], [p_log_uniform(2, 50), p_log_uniform(9, 50)], rtol=1e-13)


def test_with_replacement_expected_counts_are_p_times_num_sampled():
    true_classes = np.array([[0], [5], [99]])
    candidates, true_expected, sampled_expected = sampler(true_classes, 1, 40, False, 100, seed=9)
    np.testing.assert_allclose(sampled_expected, [40 * p_log_uniform(c, 100) for c in candidates.tolist()],
                               rtol=1e-13)
    np.testing.assert_allclose(true_expected[:, 0], [40 * p_log_uniform(c, 100) for c in (0, 5, 99)], rtol=1e-13)


def test_num_tries_grows_when_the_range_is_crowded():
    """Drawing 18 distinct classes of 20 takes many tries: the counts reach ~1 for frequent classes."""
    candidates, _, sampled_expected = within(10, sampler, np.array([[0]]), 1, 18, True, 20, seed=10)
    num_tries = reconstruct_num_tries(candidates, sampled_expected, 20, 18)
    assert num_tries > 30
    assert sampled_expected[candidates.tolist().index(0)] > 0.99


# ----------------------------------------------------------------------------------------------
# Distribution: chi-square of non-unique draws against P(k)
# ----------------------------------------------------------------------------------------------
CHI2_RANGE = 501  # 501 bins -> 500 degrees of freedom (even, for the closed form without scipy)
CHI2_DRAWS = 200_000  # the rarest bin, k = 500, has P = log(502/501)/log(502) = 3.2e-4: 64 draws (>= 5)
CHI2_ALPHA = 1e-3  # false-alarm probability of one run; the seed is fixed, so the outcome is too


def chi2_statistic(counts, probabilities):
    expected = probabilities * counts.sum()
    assert expected.min() >= 5, "a chi-square bin expects fewer than 5 draws"
    return float(np.sum((counts - expected) ** 2 / expected))


def test_chi_square_of_non_unique_draws():
    candidates = sampler(np.array([[0]]), 1, CHI2_DRAWS, False, CHI2_RANGE, seed=2024)[0]
    counts = np.bincount(candidates, minlength=CHI2_RANGE).astype(np.float64)
    assert counts.size == CHI2_RANGE
    p = np.array([p_log_uniform(k, CHI2_RANGE) for k in range(CHI2_RANGE)])
    stat = chi2_statistic(counts, p)
    p_value = chi2_sf(stat, CHI2_RANGE - 1)
    assert p_value > CHI2_ALPHA, "chi2 = %.1f on %d df, p = %.2g" % (stat, CHI2_RANGE - 1, p_value)
    # The same test has power: P shifted by one class (a classic off-by-one) is rejected outright.
    shifted = np.array([p_log_uniform(k + 1, CHI2_RANGE + 1) for k in range(CHI2_RANGE)])
    assert chi2_sf(chi2_statistic(counts, shifted / shifted.sum()), CHI2_RANGE - 1) < CHI2_ALPHA


def test_chi2_survival_function():
    # df = 2: sf(x) = exp(-x/2); df = 4: exp(-x/2) (1 + x/2); and the 0.999 quantile of chi2(500).
    assert chi2_sf_even(3.0, 2) == pytest.approx(math.exp(-1.5), rel=1e-14)
    assert chi2_sf_even(5.0, 4) == pytest.approx(math.exp(-2.5) * 3.5, rel=1e-14)
    assert chi2_sf_even(603.4, 500) == pytest.approx(1e-3, rel=0.02)  # tables: chi2_{0.999}(500) = 603.4
    with pytest.raises(ValueError, match="df"):
        chi2_sf_even(1.0, 3)
    try:
        from scipy.stats import chi2
    except ImportError:
        return
    for x, df in [(480.0, 500), (560.0, 500), (10.0, 6)]:
        assert chi2_sf_even(x, df) == pytest.approx(float(chi2.sf(x, df)), rel=1e-10)


# ----------------------------------------------------------------------------------------------
# Unique sampling: inclusion frequencies and mean reported counts against exact values
# ----------------------------------------------------------------------------------------------
def exact_unique_sampling(range_max, num_sampled):
    """Exact P(k is among the candidates) and E[-expm1(num_tries * log1p(-P(k)))] for every k.

    The sampler is a Markov chain on the set A of classes seen so far: a draw repeats with
    probability P(A) and otherwise adds j with probability p_j.  Each stage spends a geometric
    number G of draws with success q = 1 - P(A), and E[r^G] = q r / (1 - (1 - q) r).  Summing over
    the orders in which the sets are reached (a DP over subsets of size <= num_sampled) gives the
    distribution of the final set and, per class k, E[(1 - p_k)^num_tries].  The paths whose first
    num_sampled draws are all distinct (num_tries == num_sampled, probability the product of the p_j)
    are tracked apart: for them the rule reports P(k) * num_sampled instead.
    """
    p = [p_log_uniform(k, range_max) for k in range(range_max)]
    r = [1.0 - pk for pk in p]
    # set -> (probability, probability without a repeat, E[r_k^tries ; reach the set])
    layer = {frozenset(): (1.0, 1.0, [1.0] * range_max)}
    for _ in range(num_sampled):
        nxt = {}
        for seen, (prob, direct, gen) in layer.items():
            q = 1.0 - sum(p[j] for j in seen)
            stage = [q * rk / (1.0 - (1.0 - q) * rk) for rk in r]
            for j in range(range_max):
                if j in seen:
                    continue
                step = p[j] / q
                target = seen | {j}
                old_prob, old_direct, old_gen = nxt.get(target, (0.0, 0.0, [0.0] * range_max))
                nxt[target] = (old_prob + prob * step, old_direct + direct * p[j],
                               [og + g * step * s for og, g, s in zip(old_gen, gen, stage)])
        layer = nxt
    inclusion = [0.0] * range_max
    mean_count = [0.0] * range_max
    for seen, (prob, direct, gen) in layer.items():
        for k in seen:
            inclusion[k] += prob
        for k in range(range_max):
            # E[1 - r^N] over the paths ending in this set, with P*S in place of 1 - r^S where N == S.
            mean_count[k] += prob - gen[k] + direct * (p[k] * num_sampled - (1.0 - r[k] ** num_sampled))
    return np.array(inclusion), np.array(mean_count), sum(prob for prob, _, _ in layer.values())


def test_exact_unique_sampling_sanity():
    inclusion, mean_count, total = exact_unique_sampling(6, 2)
    assert total == pytest.approx(1.0, abs=1e-12)
    assert inclusion.sum() == pytest.approx(2.0, abs=1e-12)
    # num_sampled = 1: one draw, inclusion = P(k) = reported count.
    inclusion, mean_count, _ = exact_unique_sampling(5, 1)
    np.testing.assert_allclose(inclusion, [p_log_uniform(k, 5) for k in range(5)], rtol=1e-12)
    np.testing.assert_allclose(mean_count, inclusion, rtol=1e-12)
    # Brute force for R = 3, S = 2 over the first two distinct draws: P({a, b}) = p_a p_b (1/(1-p_a) + 1/(1-p_b)).
    p = [p_log_uniform(k, 3) for k in range(3)]
    pair = {frozenset(ab): p[ab[0]] * p[ab[1]] * (1 / (1 - p[ab[0]]) + 1 / (1 - p[ab[1]]))
            for ab in itertools.combinations(range(3), 2)}
    want = [sum(v for s, v in pair.items() if k in s) for k in range(3)]
    np.testing.assert_allclose(exact_unique_sampling(3, 2)[0], want, rtol=1e-12)


@pytest.mark.parametrize("range_max, num_sampled", [(10, 3), (12, 5)])
def test_unique_inclusion_frequency_and_reported_counts(range_max, num_sampled):
    """Over many seeded draws: the inclusion frequency of each class and the mean of its reported
    expected count (read off ``true_expected`` with every class passed as a true class) match their
    exact values within 5 standard errors (false alarm < 1e-5 over the classes).

    Note the two are *not* equal to each other: TensorFlow's count conditions on num_tries, which the
    stopping rule correlates with the draws, e.g. for R = 10, S = 3 it over-reports class 0.
    """
    runs = 3000
    every_class = np.arange(range_max)[None, :]
    included = np.zeros(range_max)
    counts = np.zeros((runs, range_max))
    for seed in range(runs):
        candidates, true_expected, _ = sampler(every_class, range_max, num_sampled, True, range_max, seed=seed)
        included[candidates] += 1
        counts[seed] = true_expected[0]
    exact_inclusion, exact_count, _ = exact_unique_sampling(range_max, num_sampled)
    frequency = included / runs
    se = np.sqrt(exact_inclusion * (1 - exact_inclusion) / runs)
    assert np.all(np.abs(frequency - exact_inclusion) <= 5 * se + 1e-12), (frequency, exact_inclusion)
    mean = counts.mean(axis=0)
    se_count = counts.std(axis=0, ddof=1) / math.sqrt(runs)
    assert np.all(np.abs(mean - exact_count) <= 5 * se_count + 1e-12), (mean, exact_count)
    # Sizes of the effects the test can see: the exact values differ from the naive P(k) * S by far more.
    naive = np.array([p_log_uniform(k, range_max) * num_sampled for k in range(range_max)])
    assert np.max(np.abs(naive - exact_count)) > 20 * se_count.max()
