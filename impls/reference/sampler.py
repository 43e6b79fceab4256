"""The oracle's The log-uniform (Zipfian) candidate sampler both sampled losses document."""
from __future__ import annotations

import math

import numpy as np

from impls.reference.core import (_array_module, _check_count, _check_int, _check_range)


# --------------------------------------------------------------------------------------------
# The log-uniform (Zipfian) candidate sampler
# --------------------------------------------------------------------------------------------
def log_uniform_probability(classes, range_max):
    """P(k) = (log(k+2) - log(k+1)) / log(range_max+1), computed as log1p(1/(k+1)) for accuracy."""
    xp = _array_module(classes)
    k = classes.astype(xp.float64)
    return xp.log1p(1.0 / (k + 1.0)) / math.log(range_max + 1.0)


def _expected_count(probability, num_tries, num_sampled, unique):
    if unique and num_tries != num_sampled:
        # P(k is among the tries) = 1 - (1 - P)^tries, computed without cancellation.
        return -np.expm1(num_tries * np.log1p(-probability))
    return probability * num_sampled


def log_uniform_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max, seed=None):
    """Draw ``num_sampled`` classes from the log-uniform distribution over ``[0, range_max)``.

    Returns ``(sampled_candidates [S] int64, true_expected_count [B, num_true], sampled_expected_count
    [S])`` (float64).  With ``unique`` it draws with replacement until ``num_sampled`` distinct
    classes are seen and counts every draw, as TensorFlow and Paddle do.  A fixed ``seed`` repeats
    exactly (NumPy's PCG64 stream); the draw happens on the host and results follow the array type
    of ``true_classes``.
    """
    xp = _array_module(true_classes)
    _check_count("range_max", range_max, 1)
    _check_count("num_true", num_true, 1)
    _check_count("num_sampled", num_sampled, 1)
    if unique and num_sampled > range_max:
        raise ValueError("num_sampled: expected <= range_max=%d when unique=True, got %d" % (range_max, num_sampled))
    _check_int("true_classes", true_classes)
    if true_classes.ndim != 2 or true_classes.shape[1] != num_true:
        raise ValueError("true_classes: expected shape [batch_size, num_true=%d], got %s"
                         % (num_true, tuple(true_classes.shape)))
    _check_range(xp, "true_classes", true_classes, range_max)
    rng = np.random.default_rng(seed)
    log_range = math.log(range_max + 1.0)

    def draw(count):
        # Inverse CDF: exp(u * log(R+1)) - 1 lands in [k, k+1) with probability P(k).
        return (np.exp(rng.random(count) * log_range) - 1.0).astype(np.int64) % range_max

    if not unique:
        candidates, num_tries = draw(num_sampled), num_sampled
    else:
        chunk = max(2 * num_sampled, 1024)
        draws = np.empty(0, dtype=np.int64)
        while True:
            draws = np.concatenate([draws, draw(chunk)])
            values, first = np.unique(draws, return_index=True)
            if values.size >= num_sampled:
                first_seen = np.sort(first)[:num_sampled]
                candidates, num_tries = draws[first_seen], int(first_seen[-1]) + 1
                break
    host_true = true_classes.get() if xp is not np else true_classes
    true_expected = _expected_count(log_uniform_probability(host_true, range_max), num_tries, num_sampled, unique)
    sampled_expected = _expected_count(log_uniform_probability(candidates, range_max), num_tries, num_sampled, unique)
    return xp.asarray(candidates), xp.asarray(true_expected), xp.asarray(sampled_expected)
