"""Forward results of impls/reference/ against plain Python loops, extreme inputs, low precision, memory.

The loop implementations below are written for readability: one row (or example) at a time on
Python floats with math.exp/math.log, log-sum-exp in its stable form ``log(sum exp(v - m)) + (m - v_j)``
(both terms non-negative, so nothing cancels), sums with math.fsum.  float64 results must agree with
them to 1e-12 relative (different summation orders of a handful of terms differ by a few ulps).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from helpers_reference import (LOW_PRECISION, assert_close, dtype_of, join_weights, low_precision_tolerance,
                               quantize, ref, rng, split_weights, widen)
from helpers_reference import each_implementation  # noqa: F401 - the fixture, used by pytestmark

pytestmark = pytest.mark.usefixtures("each_implementation")

RTOL64 = 1e-12
ATOL64 = 1e-13


# ----------------------------------------------------------------------------------------------
# Obviously-correct loop implementations
# ----------------------------------------------------------------------------------------------
def loop_log_softmax_terms(row):
    """``(m, log_s)`` of a list of Python floats: lse = m + log_s; a row of -inf has no softmax."""
    m = max(row)
    if m == -math.inf:
        return m, math.nan
    return m, math.log(math.fsum(math.exp(v - m) for v in row))


def loop_swce(logits, label, soft_label=False, ignore_index=-100, axis=-1):
    """Per position: Paddle's hard-label / soft-label loss and the softmax, on Python floats."""
    x = np.moveaxis(widen(logits), axis, -1)
    y = np.moveaxis(widen(label) if soft_label else np.asarray(label), axis, -1)
    loss = np.zeros(x.shape[:-1] + (1,))
    softmax = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape[:-1]):
        row = [float(v) for v in x[idx]]
        m, log_s = loop_log_softmax_terms(row)
        softmax[idx] = [math.exp(v - m - log_s) for v in row]
        if soft_label:
            weights = [float(w) for w in y[idx]]
            loss[idx] = math.fsum(w * (log_s + (m - v)) for w, v in zip(weights, row) if w != 0)
        else:
            j = int(y[idx][0])
            loss[idx] = 0.0 if j == ignore_index else log_s + (m - row[j])
    return np.moveaxis(loss, -1, axis), np.moveaxis(softmax, -1, axis)


def loop_sampled_row(true_logits, sampled_logits, removed):
    """Softmax cross-entropy of one row [true | sampled] with label 1/T on the T true columns."""
    kept = true_logits + [z for z, r in zip(sampled_logits, removed) if not r]
    m, log_s = loop_log_softmax_terms(kept)
    t = len(true_logits)
    return math.fsum(log_s + (m - z) for z in true_logits) / t


def loop_sampled_swce(logits, label, samples, probabilities, remove):
    n, t = label.shape
    x, q = widen(logits), widen(probabilities)
    out = np.zeros((n, 1))
    for i in range(n):
        z = [float(x[i, samples[i, j]]) - math.log(float(q[i, j])) for j in range(samples.shape[1])]
        labels_i = set(int(c) for c in label[i])
        removed = [remove and int(c) in labels_i for c in samples[i, t:]]
        out[i, 0] = loop_sampled_row(z[:t], z[t:], removed)
    return out


def loop_ssl(dense_weights, biases, labels, inputs, sampled_values, remove):
    """TF's sampled_softmax_loss for one example at a time, dot products as Python sums."""
    candidates, true_expected, sampled_expected = (widen(v) if v.dtype.kind == "f" else v for v in sampled_values)
    w, b, x = widen(dense_weights), widen(biases), widen(inputs)

    def logit(row, c, expected):
        return math.fsum(float(x[row, d]) * float(w[c, d]) for d in range(x.shape[1])) + float(b[c]) \
            - math.log(float(expected))

    out = np.zeros(labels.shape[0])
    for i in range(labels.shape[0]):
        true_z = [logit(i, int(c), true_expected[i, t]) for t, c in enumerate(labels[i])]
        sampled_z = [logit(i, int(c), sampled_expected[s]) for s, c in enumerate(candidates)]
        removed = [remove and int(c) in set(int(v) for v in labels[i]) for c in candidates]
        out[i] = loop_sampled_row(true_z, sampled_z, removed)
    return out


def loop_log_uniform(k, range_max):
    return (math.log(k + 2) - math.log(k + 1)) / math.log(range_max + 1)


# ----------------------------------------------------------------------------------------------
# softmax_with_cross_entropy
# ----------------------------------------------------------------------------------------------
SWCE_CASES = [
    pytest.param((7,), -1, id="rank1"),
    pytest.param((4, 6), -1, id="rank2-axis-1"),
    pytest.param((4, 6), 0, id="rank2-axis0"),
    pytest.param((2, 5, 3), 1, id="rank3-axis1"),
    pytest.param((2, 5, 3), -3, id="rank3-axis-3"),
    pytest.param((2, 3, 2, 4), 2, id="rank4-axis2"),
    pytest.param((2, 3, 2, 4), -1, id="rank4-axis-1"),
]


def labels_for(shape, axis, seed):
    axis %= len(shape)
    return rng(seed).integers(0, shape[axis], size=shape[:axis] + (1,) + shape[axis + 1:]).astype(np.int64)


@pytest.mark.parametrize("shape, axis", SWCE_CASES)
def test_swce_hard_matches_loop(shape, axis):
    logits = rng(1).normal(size=shape) * 3
    label = labels_for(shape, axis, 2)
    label.flat[-1] = -100  # one ignored position
    loss, softmax = ref.softmax_with_cross_entropy(logits, label, return_softmax=True, axis=axis)
    want_loss, want_softmax = loop_swce(logits, label, axis=axis)
    assert loss.shape == label.shape and softmax.shape == logits.shape
    assert loss.dtype == softmax.dtype == np.float64
    assert_close(loss, want_loss, RTOL64, ATOL64, "loss")
    assert_close(softmax, want_softmax, RTOL64, ATOL64, "softmax")
    assert loss.flat[-1] == 0


@pytest.mark.parametrize("total", [1.0, 0.4, 3.0], ids=["sum1", "sum0.4", "sum3"])
@pytest.mark.parametrize("shape, axis", SWCE_CASES)
def test_swce_soft_matches_loop(shape, axis, total):
    logits = rng(3).normal(size=shape) * 3
    label = rng(4).uniform(size=shape)
    label = label / label.sum(axis=axis, keepdims=True) * total
    loss = ref.softmax_with_cross_entropy(logits, label, soft_label=True, axis=axis)
    assert_close(loss, loop_swce(logits, label, soft_label=True, axis=axis)[0], RTOL64, ATOL64, "loss")


def test_swce_in_range_ignore_index_matches_loop():
    logits = rng(5).normal(size=(6, 4))
    label = np.array([[0], [2], [1], [2], [3], [0]])
    loss = ref.softmax_with_cross_entropy(logits, label, ignore_index=2)
    want = loop_swce(logits, label, ignore_index=2)[0]
    assert_close(loss, want, RTOL64, ATOL64, "loss")
    assert loss[1, 0] == loss[3, 0] == 0 and np.all(loss[[0, 2, 4, 5], 0] > 0)


def test_swce_paddle_doc_example():
    # The example of the Paddle documentation: logits [0.4, 0.6, 0.9], label [1] -> 1.15328646.
    # Paddle printed it in float32 with 9 significant digits: allow 2 float32 ulps (2.4e-7).
    loss = ref.softmax_with_cross_entropy(np.array([0.4, 0.6, 0.9], dtype=np.float32), np.array([1]))
    assert loss.shape == (1,) and loss.dtype == np.float32
    assert abs(float(loss[0]) - 1.15328646) <= 2.4e-7
    exact = math.log(math.exp(0.4) + math.exp(0.6) + math.exp(0.9)) - 0.6
    loss64 = ref.softmax_with_cross_entropy(np.array([0.4, 0.6, 0.9]), np.array([1]))
    assert abs(loss64[0] - exact) <= 1e-15


@pytest.mark.parametrize("counts, label", [([1, 2, 3, 4], 2), ([7, 1, 1], 0), ([5, 5, 5, 5, 5], 4), ([1, 1000], 0)],
                         ids=["1234", "711", "equal", "1-1000"])
def test_swce_exact_with_fractions(counts, label):
    """Logits log(n_i) have softmax exactly n_i / sum(n): check against the exact rational."""
    logits = np.array([math.log(c) for c in counts])
    total = sum(Fraction(c) for c in counts)
    loss, softmax = ref.softmax_with_cross_entropy(logits, np.array([label]), return_softmax=True)
    assert abs(loss[0] - math.log(total / counts[label])) <= 1e-14 * max(1.0, abs(loss[0]))
    for got, c in zip(softmax, counts):
        assert abs(Fraction(float(got)) - Fraction(c) / total) <= Fraction(1, 10 ** 14)


def test_numeric_stable_mode_does_not_change_the_result():
    logits = rng(6).normal(size=(3, 5)) * 50
    label = labels_for((3, 5), -1, 7)
    np.testing.assert_array_equal(ref.softmax_with_cross_entropy(logits, label, numeric_stable_mode=False),
                                  ref.softmax_with_cross_entropy(logits, label, numeric_stable_mode=True))


def test_inputs_are_not_modified():
    logits = rng(8).normal(size=(3, 5))
    label = labels_for((3, 5), -1, 9)
    kept = logits.copy(), label.copy()
    ref.softmax_with_cross_entropy_grad(logits, label, return_softmax=True)
    np.testing.assert_array_equal(logits, kept[0])
    np.testing.assert_array_equal(label, kept[1])


# Extreme logits: one row each, with the class that gets the label.
EXTREME_ROWS = [
    pytest.param([1e4, -1e4, 0.0, 5.0], 1, id="pm1e4-label-low"),
    pytest.param([1e4, -1e4, 0.0, 5.0], 0, id="pm1e4-label-high"),
    pytest.param([1e300, -1e300, 0.0], 2, id="huge-spread-1e300"),
    pytest.param([800.0, -800.0, 799.0], 2, id="exp-overflow-800"),
    pytest.param([3.7] * 6, 4, id="all-equal"),
    pytest.param([-1e4] * 5, 0, id="all-equal-very-negative"),
    pytest.param([-math.inf, 0.0, 1.0, -math.inf], 2, id="neg-inf-entries"),
    pytest.param([-math.inf, -math.inf, 2.0], 2, id="one-finite"),
    pytest.param([1e6 + 0.25, 1e6, 1e6 - 0.5, 1e6 + 1.0], 1, id="offset-1e6"),
    pytest.param([-1e8 + 1.0, -1e8, -1e8 - 3.0], 2, id="offset-minus-1e8"),
    pytest.param([1e15, 1e15 + 2.0, 1e15 - 4.0], 0, id="offset-1e15"),
]


@pytest.mark.parametrize("row, label", EXTREME_ROWS)
def test_swce_extreme_logits(row, label):
    logits = np.array([row, [0.0] * len(row)])  # a harmless second row must be unaffected
    labels = np.array([[label], [0]])
    out = ref.softmax_with_cross_entropy_grad(logits, labels, return_softmax=True)
    want_loss, want_softmax = loop_swce(logits, labels)
    assert_close(out["loss"], want_loss, RTOL64, ATOL64, "loss")
    assert_close(out["softmax"], want_softmax, RTOL64, ATOL64, "softmax")
    grad = want_softmax.copy()
    grad[[0, 1], [label, 0]] -= 1
    assert_close(out["logits"], grad, RTOL64, ATOL64, "grad")
    finite_input = np.all(np.isfinite(row))
    for key in ("loss", "softmax", "logits"):
        assert np.all(np.isfinite(out[key])), key  # finite, even with -inf entries (label is on a finite one)
    if finite_input:
        np.testing.assert_allclose(out["softmax"].sum(axis=1), 1.0, rtol=1e-15)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_swce_extreme_logits_low_precision_stay_finite(dtype):
    # +-1e4 overflows exp() in every narrow dtype; a stable implementation never forms exp(1e4).
    logits = quantize([[1e4, -1e4, 0.0, 5.0], [-1e4, -1e4 + 8, -1e4 + 16, -1e4]], dtype)
    label = np.array([[1], [3]])
    out = ref.softmax_with_cross_entropy_grad(logits, label, return_softmax=True)
    for key in ("loss", "softmax", "logits"):
        assert out[key].dtype == logits.dtype and np.all(np.isfinite(widen(out[key]))), key
    want_loss, want_softmax = loop_swce(logits, label)
    rtol, atol = low_precision_tolerance(dtype, 1.0)
    assert_close(out["loss"], want_loss, rtol, atol, "loss")  # 2e4 and 16 are exact in every dtype here
    assert_close(out["softmax"], want_softmax, rtol, atol, "softmax")


def test_swce_all_equal_is_log_k():
    logits = np.full((3, 7), -2.5)
    loss = ref.softmax_with_cross_entropy(logits, np.array([[0], [3], [6]]))
    np.testing.assert_allclose(loss, math.log(7), rtol=1e-15)


# ----------------------------------------------------------------------------------------------
# sampled_softmax_with_cross_entropy
# ----------------------------------------------------------------------------------------------
def sampled_case(num_true, seed, n=4, k=9, s=4, hits=True, dups=True):
    r = rng(seed)
    label = np.stack([r.choice(k, size=num_true, replace=False) for _ in range(n)]).astype(np.int64)
    # Negatives avoid the row's labels (drawn with replacement); hits and repeats are then placed on purpose.
    negatives = np.stack([r.choice([c for c in range(k) if c not in label[i]], size=s) for i in range(n)])
    if hits:
        negatives[0, 0] = label[0, -1]
        negatives[n - 1, s - 1] = label[n - 1, 0]
    if dups:
        negatives[1, 1] = negatives[1, 2]
    samples = np.concatenate([label, negatives], axis=1).astype(np.int64)
    return r.normal(size=(n, k)) * 2, label, samples, r.uniform(0.01, 2.0, size=samples.shape)


@pytest.mark.parametrize("remove", [True, False], ids=["remove-hits", "keep-hits"])
@pytest.mark.parametrize("num_true", [1, 2, 3, 4], ids=lambda t: "T%d" % t)
def test_sampled_swce_matches_loop(num_true, remove):
    logits, label, samples, probabilities = sampled_case(num_true, 10 + num_true)
    loss = ref.sampled_softmax_with_cross_entropy(
        logits, label, samples.shape[1] - num_true, num_true=num_true, remove_accidental_hits=remove,
        use_customized_samples=True, customized_samples=samples, customized_probabilities=probabilities)
    assert loss.shape == (label.shape[0], 1) and loss.dtype == np.float64
    assert_close(loss, loop_sampled_swce(logits, label, samples, probabilities, remove), RTOL64, ATOL64, "loss")


def test_sampled_swce_hit_removal_changes_only_rows_with_hits():
    logits, label, samples, probabilities = sampled_case(2, 15)
    kwargs = dict(num_true=2, use_customized_samples=True, customized_samples=samples,
                  customized_probabilities=probabilities)
    removed = ref.sampled_softmax_with_cross_entropy(logits, label, 4, remove_accidental_hits=True, **kwargs)
    kept = ref.sampled_softmax_with_cross_entropy(logits, label, 4, remove_accidental_hits=False, **kwargs)
    rows_with_hits = [0, 3]
    assert np.all(removed[rows_with_hits] < kept[rows_with_hits])  # removing a column lowers the lse
    np.testing.assert_array_equal(removed[[1, 2]], kept[[1, 2]])


def test_sampled_swce_internal_sampler_uses_log_uniform_candidates():
    """Without customized samples, the negatives are one seeded log-uniform unique draw for the batch,
    corrected by its expected counts (the documented Paddle behaviour)."""
    logits = rng(16).normal(size=(3, 12))
    label = np.array([[1], [5], [11]])
    loss = ref.sampled_softmax_with_cross_entropy(logits, label, 4, seed=7)
    candidates, true_expected, sampled_expected = ref.log_uniform_candidate_sampler(label, 1, 4, True, 12, seed=7)
    samples = np.concatenate([label, np.tile(candidates, (3, 1))], axis=1)
    probabilities = np.concatenate([true_expected, np.tile(sampled_expected, (3, 1))], axis=1)
    assert_close(loss, loop_sampled_swce(logits, label, samples, probabilities, True), RTOL64, ATOL64, "loss")
    np.testing.assert_array_equal(loss, ref.sampled_softmax_with_cross_entropy(logits, label, 4, seed=7))


# ----------------------------------------------------------------------------------------------
# sampled_softmax_loss
# ----------------------------------------------------------------------------------------------
def ssl_case(num_true, seed, batch=4, num_classes=11, dim=3, num_sampled=5):
    r = rng(seed)
    labels = np.stack([r.choice(num_classes, size=num_true, replace=False) for _ in range(batch)]).astype(np.int64)
    candidates = r.integers(0, num_classes, size=num_sampled).astype(np.int64)
    candidates[0] = labels[0, 0]  # an accidental hit
    candidates[2] = candidates[1]  # a duplicate
    sampled_values = (candidates, r.uniform(0.05, 3.0, size=(batch, num_true)), r.uniform(0.05, 3.0, size=num_sampled))
    return dict(weights=r.normal(size=(num_classes, dim)), biases=r.normal(size=num_classes), labels=labels,
                inputs=r.normal(size=(batch, dim)), sampled_values=sampled_values, num_classes=num_classes,
                num_sampled=num_sampled)


SHARDINGS = [pytest.param(None, "mod", id="dense")] + [
    pytest.param(p, strategy, id="%s%d" % (strategy, p)) for strategy in ("mod", "div") for p in (1, 2, 3, 4)]


def call_ssl(case, weights, num_true, strategy, remove, fn=None, **extra):
    fn = fn or ref.sampled_softmax_loss
    return fn(weights, case["biases"], case["labels"], case["inputs"], case["num_sampled"], case["num_classes"],
              num_true=num_true, sampled_values=case["sampled_values"], remove_accidental_hits=remove,
              partition_strategy=strategy, **extra)


@pytest.mark.parametrize("remove", [True, False], ids=["remove-hits", "keep-hits"])
@pytest.mark.parametrize("num_shards, strategy", SHARDINGS)
@pytest.mark.parametrize("num_true", [1, 3], ids=lambda t: "T%d" % t)
def test_sampled_softmax_loss_matches_loop(num_true, num_shards, strategy, remove):
    case = ssl_case(num_true, 20 + num_true)
    weights = case["weights"] if num_shards is None else split_weights(case["weights"], num_shards, strategy)
    loss = call_ssl(case, weights, num_true, strategy, remove)
    assert loss.shape == (4,) and loss.dtype == np.float64
    want = loop_ssl(case["weights"], case["biases"], case["labels"], case["inputs"], case["sampled_values"], remove)
    assert_close(loss, want, RTOL64, ATOL64, "loss")


@pytest.mark.parametrize("num_shards", [1, 2, 3, 4, 5, 11, 12])
@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_shard_layout_matches_embedding_lookup(strategy, num_shards):
    sizes = [len(s) for s in split_weights(np.zeros((11, 1)), num_shards, strategy)]
    assert ref.shard_layout(11, num_shards, strategy) == sizes
    assert sum(sizes) == 11


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_sharded_weight_gradients_reassemble_to_the_dense_gradient(strategy):
    """The shard gradients are the dense gradient cut with the strategy's layout (3 uneven shards)."""
    case = ssl_case(2, 25)
    dense = call_ssl(case, case["weights"], 2, strategy, True, fn=ref.sampled_softmax_loss_grad)
    shards = call_ssl(case, split_weights(case["weights"], 3, strategy), 2, strategy, True,
                      fn=ref.sampled_softmax_loss_grad)
    assert [g.shape[0] for g in shards["weights"]] == [4, 4, 3]
    np.testing.assert_allclose(join_weights(shards["weights"], 11, strategy), dense["weights"], rtol=1e-14,
                               atol=1e-15)


def test_sampled_softmax_loss_default_sampler():
    """sampled_values=None defaults to log_uniform_candidate_sampler(labels, T, S, unique=True, num_classes)."""
    case = ssl_case(2, 26)
    kwargs = dict(num_true=2, remove_accidental_hits=True, seed=11)
    loss = ref.sampled_softmax_loss(case["weights"], case["biases"], case["labels"], case["inputs"], 5, 11, **kwargs)
    sampled = ref.log_uniform_candidate_sampler(case["labels"], 2, 5, True, 11, seed=11)
    assert len(set(sampled[0].tolist())) == 5
    want = loop_ssl(case["weights"], case["biases"], case["labels"], case["inputs"], sampled, True)
    assert_close(loss, want, RTOL64, ATOL64, "loss")


@pytest.mark.parametrize("range_max", [1, 2, 10, 1000, 10 ** 6])
def test_log_uniform_probability_matches_formula(range_max):
    k = np.unique(np.r_[0, 1, 2, np.geomspace(1, range_max, 20).astype(np.int64) - 1, range_max - 1])
    k = k[(k >= 0) & (k < range_max)]
    got = ref.log_uniform_probability(k, range_max)
    want = [loop_log_uniform(int(c), range_max) for c in k]
    # The doc formula log(k+2) - log(k+1) cancels for large k (relative error ~eps*log(k)/P*log(R)),
    # so it is only a 1e-9-relative yardstick; the sum and the exact ratio test below are tighter.
    assert_close(got, want, 1e-9, 0.0, "P(k)")
    assert got.dtype == np.float64


@pytest.mark.parametrize("range_max", [1, 7, 500])
def test_log_uniform_probability_sums_to_one(range_max):
    p = ref.log_uniform_probability(np.arange(range_max), range_max)
    assert np.all(p > 0)
    assert abs(math.fsum(p.tolist()) - 1.0) < 1e-13
    assert np.all(np.diff(p) < 0)


def test_log_uniform_probability_large_k_is_accurate():
    """P(k) = log1p(1/(k+1)) / log(R+1): compare with a 50-digit series for log1p at k = 10^9."""
    k, range_max = 10 ** 9, 2 * 10 ** 9
    x = Fraction(1, k + 1)
    log1p = sum((-1) ** (n + 1) * x ** n / n for n in range(1, 6))  # remaining terms < x^6
    want = float(log1p) / math.log(range_max + 1)
    got = float(ref.log_uniform_probability(np.array([k]), range_max)[0])
    assert abs(got - want) <= 4e-16 * want


# ----------------------------------------------------------------------------------------------
# Low precision: same inputs, rounded to the dtype, against float64 arithmetic on those values
# ----------------------------------------------------------------------------------------------
def check_low_precision(got, want, dtype, scale, what):
    assert got.dtype == dtype_of(dtype), "%s: dtype %s" % (what, got.dtype)
    rtol, atol = low_precision_tolerance(dtype, scale)
    assert_close(got, want, rtol, atol, what)


@pytest.mark.parametrize("soft_label", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_swce_low_precision(dtype, soft_label):
    logits = quantize(rng(30).normal(size=(2, 3, 6)) * 3, dtype)
    if soft_label:
        label = rng(31).uniform(size=logits.shape)
        label = quantize(label / label.sum(axis=1, keepdims=True), dtype)
    else:
        label = labels_for(logits.shape, 1, 31)
    upstream = quantize(rng(32).uniform(-2, 2, size=(2, 1, 6)), dtype)
    got = ref.softmax_with_cross_entropy_grad(logits, label, soft_label=soft_label, return_softmax=True, axis=1,
                                              upstream=upstream)
    want = ref.softmax_with_cross_entropy_grad(widen(logits), widen(label) if soft_label else label,
                                               soft_label=soft_label, return_softmax=True, axis=1,
                                               upstream=widen(upstream))
    want_loss, want_softmax = loop_swce(logits, label, soft_label=soft_label, axis=1)
    assert_close(want["loss"], want_loss, RTOL64, ATOL64, "float64 loss vs loop")
    scale = 1 + float(np.abs(widen(logits)).max())
    for key in ("loss", "softmax", "logits"):
        check_low_precision(got[key], want[key], dtype, scale if key == "loss" else 2.0, key)
    plain = ref.softmax_with_cross_entropy(logits, label, soft_label=soft_label, axis=1)
    assert plain.dtype == logits.dtype


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_sampled_swce_low_precision(dtype):
    logits, label, samples, probabilities = sampled_case(2, 33)
    logits, probabilities = quantize(logits, dtype), quantize(probabilities, dtype)
    upstream = quantize(rng(34).uniform(-2, 2, size=(4, 1)), dtype)
    kwargs = dict(num_true=2, use_customized_samples=True, customized_samples=samples)
    got = ref.sampled_softmax_with_cross_entropy_grad(logits, label, 4, customized_probabilities=probabilities,
                                                      upstream=upstream, **kwargs)
    want = loop_sampled_swce(logits, label, samples, probabilities, True)
    want_grad = ref.sampled_softmax_with_cross_entropy_grad(
        widen(logits), label, 4, customized_probabilities=widen(probabilities), upstream=widen(upstream), **kwargs)
    scale = 1 + float(np.abs(widen(logits)).max() + np.abs(np.log(widen(probabilities))).max())
    check_low_precision(got["loss"], want, dtype, scale, "loss")
    check_low_precision(got["logits"], want_grad["logits"], dtype, 4.0, "grad logits")
    loss = ref.sampled_softmax_with_cross_entropy(logits, label, 4, customized_probabilities=probabilities, **kwargs)
    assert loss.dtype == logits.dtype


@pytest.mark.parametrize("num_shards", [None, 3], ids=["dense", "mod3"])
@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_sampled_softmax_loss_low_precision(dtype, num_shards):
    case = ssl_case(2, 35)
    for key in ("weights", "biases", "inputs"):
        case[key] = quantize(case[key], dtype)
    candidates, true_expected, sampled_expected = case["sampled_values"]
    case["sampled_values"] = (candidates, quantize(true_expected, dtype), quantize(sampled_expected, dtype))
    weights = case["weights"] if num_shards is None else split_weights(case["weights"], num_shards, "mod")
    upstream = quantize(rng(36).uniform(-2, 2, size=4), dtype)
    got = call_ssl(case, weights, 2, "mod", True, fn=ref.sampled_softmax_loss_grad, upstream=upstream)
    wide = dict(case, weights=widen(case["weights"]), biases=widen(case["biases"]), inputs=widen(case["inputs"]),
                sampled_values=(case["sampled_values"][0],) + tuple(widen(v) for v in case["sampled_values"][1:]))
    want = call_ssl(wide, wide["weights"], 2, "mod", True, fn=ref.sampled_softmax_loss_grad, upstream=widen(upstream))
    want_loss = loop_ssl(wide["weights"], wide["biases"], wide["labels"], wide["inputs"], wide["sampled_values"], True)
    assert_close(want["loss"], want_loss, RTOL64, ATOL64, "float64 loss vs loop")
    # Logits are dot products of 3 terms of size ~3 plus log(expected) ~ 3: scale ~ 10.
    check_low_precision(got["loss"], want_loss, dtype, 10.0, "loss")
    check_low_precision(got["inputs"], want["inputs"], dtype, 10.0, "grad inputs")
    check_low_precision(got["biases"], want["biases"], dtype, 4.0, "grad biases")
    got_w = got["weights"] if num_shards is None else join_weights(got["weights"], 11, "mod")
    check_low_precision(got_w, want["weights"], dtype, 10.0, "grad weights")


# ----------------------------------------------------------------------------------------------
# Valid input the frameworks take and only the oracle accepts (the contender declares it unsupported)
# ----------------------------------------------------------------------------------------------
@pytest.mark.reference_only
@pytest.mark.parametrize("shape, axis", [((3, 4), -1), ((4, 3), 0), ((2, 5, 3), 1)])
def test_hard_label_of_rank_r_minus_1_is_read_with_the_class_axis_inserted(shape, axis):
    """Paddle's dimension rule: a label without the size-1 class axis gets it at ``axis``; the loss
    keeps the size-1 axis, exactly as for the full-rank label."""
    r = rng(40)
    logits = r.normal(size=shape)
    full = r.integers(0, shape[axis], size=tuple(1 if i == axis % len(shape) else n for i, n in enumerate(shape)))
    upstream = r.normal(size=full.shape)
    short = ref.softmax_with_cross_entropy_grad(logits, full.squeeze(axis), axis=axis, upstream=upstream)
    expected = ref.softmax_with_cross_entropy_grad(logits, full, axis=axis, upstream=upstream)
    assert short["loss"].shape == full.shape
    for name in ("loss", "logits"):
        np.testing.assert_array_equal(short[name], expected[name])


def _ssl_inputs(seed, num_true=2, num_classes=11, dim=3, batch=4):
    r = rng(seed)
    labels = np.stack([r.choice(num_classes, num_true, replace=False) for _ in range(batch)]).astype(np.int64)
    values = (np.array([1, 4, 7, 9]), r.uniform(0.1, 1.0, size=(batch, num_true)), r.uniform(0.1, 1.0, size=4))
    return (r.normal(size=(num_classes, dim)), r.normal(size=num_classes), labels, r.normal(size=(batch, dim)),
            values, r.normal(size=batch))


@pytest.mark.reference_only
@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_sampled_softmax_loss_takes_biases_sharded_like_the_weights(strategy):
    """tf.nn.embedding_lookup reads a list of bias shards as it reads the weights; the bias gradient
    comes back as a list of shards."""
    weights, biases, labels, inputs, values, upstream = _ssl_inputs(41)
    shards = split_weights(weights, 3, strategy)
    bias_shards = [b[:, 0] for b in split_weights(biases[:, None], 3, strategy)]
    kwargs = dict(labels=labels, inputs=inputs, num_sampled=4, num_classes=11, num_true=2, sampled_values=values,
                  partition_strategy=strategy, upstream=upstream)
    sharded = ref.sampled_softmax_loss_grad(shards, bias_shards, **kwargs)
    dense = ref.sampled_softmax_loss_grad(shards, biases, **kwargs)
    np.testing.assert_array_equal(sharded["loss"], dense["loss"])
    np.testing.assert_array_equal(sharded["inputs"], dense["inputs"])
    assert isinstance(sharded["biases"], list) and len(sharded["biases"]) == 3
    joined = join_weights([g[:, None] for g in sharded["biases"]], 11, strategy)[:, 0]
    np.testing.assert_array_equal(joined, dense["biases"])
    with pytest.raises(ValueError, match="biases"):
        ref.sampled_softmax_loss(shards, bias_shards[:2], **{k: v for k, v in kwargs.items() if k != "upstream"})


@pytest.mark.reference_only
def test_sampled_softmax_loss_broadcasts_a_true_expected_count_of_one_column():
    weights, biases, labels, inputs, (candidates, _, sampled_q), upstream = _ssl_inputs(42, num_true=3)
    column = np.array([[0.25], [0.5], [0.125], [1.0]])
    kwargs = dict(labels=labels, inputs=inputs, num_sampled=4, num_classes=11, num_true=3, upstream=upstream)
    broadcast = ref.sampled_softmax_loss_grad(weights, biases, sampled_values=(candidates, column, sampled_q), **kwargs)
    explicit = ref.sampled_softmax_loss_grad(weights, biases, sampled_values=(
        candidates, np.repeat(column, 3, axis=1), sampled_q), **kwargs)
    for name in ("loss", "inputs", "weights", "biases"):
        np.testing.assert_array_equal(broadcast[name], explicit[name])
