"""Analytic gradients of impls/reference/ against float64 central differences.

Every ``*_grad`` returns the gradient of ``sum(upstream * loss)``; here that scalar is rebuilt from
the *forward* function and differentiated numerically (helpers_reference.numeric_grad; the step and
tolerance are justified there: h = 1e-5, error ~1e-9, tolerance 1e-6).  Upstreams are non-uniform
(positive, negative and zero entries) so a gradient that ignores or mis-broadcasts them fails.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers_reference import assert_grad, numeric_grad, ref, rng, split_weights, upstream_like
from helpers_reference import each_implementation  # noqa: F401 - the fixture, used by pytestmark

pytestmark = pytest.mark.usefixtures("each_implementation")

# ----------------------------------------------------------------------------------------------
# softmax_with_cross_entropy
# ----------------------------------------------------------------------------------------------
SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 3, 2, 3)]
RANK_AXES = [pytest.param(shape, axis, id="rank%d-axis%d" % (len(shape), axis))
             for shape in SHAPES for axis in range(-len(shape), len(shape))]


def loss_shape(shape, axis):
    axis %= len(shape)
    return shape[:axis] + (1,) + shape[axis + 1:]


def hard_labels(shape, axis, seed):
    k = shape[axis]
    return rng(seed).integers(0, k, size=loss_shape(shape, axis)).astype(np.int64)


def soft_labels(shape, axis, seed, total=1.0):
    """Random soft labels along ``axis`` summing to ``total`` (one entry zeroed when possible)."""
    y = rng(seed).uniform(0.1, 1.0, size=shape)
    if shape[axis] > 2:
        index = [slice(None)] * len(shape)
        index[axis] = 1
        y[tuple(index)] = 0.0
    return y / y.sum(axis=axis, keepdims=True) * total


def swce_loss(logits, label, **kwargs):
    out = ref.softmax_with_cross_entropy(logits, label, **kwargs)
    if kwargs.get("return_softmax"):
        assert isinstance(out, tuple) and len(out) == 2
        return out[0]
    return out


def check_swce_grad(logits, label, upstream, **kwargs):
    def f():
        return float(np.sum(upstream * swce_loss(logits, label, **kwargs)))

    out = ref.softmax_with_cross_entropy_grad(logits, label, upstream=upstream, **kwargs)
    np.testing.assert_array_equal(out["loss"], swce_loss(logits, label, **kwargs))
    assert out["logits"].shape == logits.shape
    assert_grad(out["logits"], numeric_grad(f, logits), "d sum(upstream*loss) / d logits")
    if kwargs.get("soft_label"):  # a soft label is differentiable too
        assert out["label"].shape == label.shape
        assert_grad(out["label"], numeric_grad(f, label), "d sum(upstream*loss) / d label")
    else:
        assert "label" not in out
    return out


@pytest.mark.parametrize("shape, axis", RANK_AXES)
def test_swce_hard_label_grad(shape, axis):
    logits = rng(1).normal(size=shape) * 2
    label = hard_labels(shape, axis, 2)
    check_swce_grad(logits, label, upstream_like(label.shape, 3), axis=axis)


@pytest.mark.parametrize("total", [pytest.param(1.0, id="sum1"), pytest.param(2.5, id="sum2.5"),
                                   pytest.param(0.3, id="sum0.3")])
@pytest.mark.parametrize("shape, axis", RANK_AXES)
def test_swce_soft_label_grad(shape, axis, total):
    logits = rng(4).normal(size=shape) * 2
    label = soft_labels(shape, axis, 5, total)
    check_swce_grad(logits, label, upstream_like(loss_shape(shape, axis), 6), soft_label=True, axis=axis)


IGNORE_CASES = [
    # (id, shape, axis, ignore_index, positions to set to ignore_index: a tuple index into the label)
    pytest.param((3, 4), -1, -100, (1, 0), id="rank2-single"),
    pytest.param((3, 4), 0, -100, (0, 2), id="rank2-axis0-single"),
    pytest.param((2, 3, 4), -1, -100, (1, slice(None), 0), id="rank3-whole-row"),
    pytest.param((2, 4, 3), 1, -100, (0, 0, slice(None)), id="rank3-axis1-whole-row"),
    pytest.param((3, 4), -1, -100, (slice(None), 0), id="rank2-all-ignored"),
    pytest.param((3, 4), -1, 2, (0, 0), id="rank2-in-range-2"),
    pytest.param((2, 3, 4), 2, 2, (1, slice(None), 0), id="rank3-in-range-2-row"),
    pytest.param((3, 4), -1, 255, (2, 0), id="rank2-ignore-255"),
]


@pytest.mark.parametrize("shape, axis, ignore_index, where", IGNORE_CASES)
def test_swce_ignore_index_grad(shape, axis, ignore_index, where):
    logits = rng(7).normal(size=shape)
    label = hard_labels(shape, axis, 8)
    if 0 <= ignore_index < shape[axis]:
        label[label == ignore_index] = (ignore_index + 1) % shape[axis]  # only `where` is ignored
    label[where] = ignore_index
    ignored = label == ignore_index
    upstream = upstream_like(label.shape, 9) + 0.5  # nonzero where it matters
    out = check_swce_grad(logits, label, upstream, ignore_index=ignore_index, axis=axis)
    assert np.all(out["loss"][ignored] == 0)
    assert np.all(out["loss"][~ignored] > 0)
    # The whole class vector of an ignored position has exactly zero gradient.
    mask = np.broadcast_to(ignored, logits.shape)
    assert np.all(out["logits"][mask] == 0)
    assert np.all(out["logits"][~mask] != 0)


@pytest.mark.parametrize("soft_label", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("shape, axis", [pytest.param((3, 4), -1, id="rank2-axis-1"),
                                         pytest.param((2, 3, 4), 1, id="rank3-axis1")])
def test_swce_return_softmax_grad(shape, axis, soft_label):
    logits = rng(10).normal(size=shape)
    label = soft_labels(shape, axis, 11) if soft_label else hard_labels(shape, axis, 11)
    upstream = upstream_like(loss_shape(shape, axis), 12)
    out = check_swce_grad(logits, label, upstream, soft_label=soft_label, return_softmax=True, axis=axis)
    plain = ref.softmax_with_cross_entropy_grad(logits, label, soft_label=soft_label, axis=axis, upstream=upstream)
    np.testing.assert_array_equal(out["logits"], plain["logits"])
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    np.testing.assert_allclose(out["softmax"], e / e.sum(axis=axis, keepdims=True), rtol=1e-14, atol=1e-16)


def test_swce_default_upstream_is_ones():
    logits = rng(13).normal(size=(3, 5))
    label = hard_labels((3, 5), -1, 14)
    with_ones = ref.softmax_with_cross_entropy_grad(logits, label, upstream=np.ones((3, 1)))
    default = ref.softmax_with_cross_entropy_grad(logits, label)
    np.testing.assert_array_equal(default["logits"], with_ones["logits"])
    check_swce_grad(logits, label, np.ones((3, 1)))


# ----------------------------------------------------------------------------------------------
# sampled_softmax_with_cross_entropy (customized samples)
# ----------------------------------------------------------------------------------------------
N, K, S = 3, 8, 4


def sampled_inputs(num_true, variant, seed):
    """Labels [N, T] and customized samples [N, T+S] whose negatives differ per row.

    variant: "plain" (negatives avoid the row's labels, no repeats), "hits" (a negative equals one of
    the row's labels), "dups" (a negative repeats within the row), "hits-dups" (both).
    """
    r = rng(seed)
    label = np.stack([r.choice(K, size=num_true, replace=False) for _ in range(N)]).astype(np.int64)
    negatives = []
    for i in range(N):
        pool = [c for c in range(K) if c not in label[i]]
        row = list(r.choice(pool, size=S, replace=False))
        if "hits" in variant:
            row[0] = label[i, -1]
        if "dups" in variant:
            row[S - 1] = row[1]
        negatives.append(row)
    samples = np.concatenate([label, np.array(negatives, dtype=np.int64)], axis=1)
    probabilities = r.uniform(0.05, 1.5, size=samples.shape)
    return label, samples, probabilities


SAMPLED_VARIANTS = ["plain", "hits", "dups", "hits-dups"]


@pytest.mark.parametrize("remove", [True, False], ids=["remove-hits", "keep-hits"])
@pytest.mark.parametrize("variant", SAMPLED_VARIANTS)
@pytest.mark.parametrize("num_true", [1, 2, 3, 4], ids=lambda t: "T%d" % t)
def test_sampled_swce_grad(num_true, variant, remove):
    label, samples, probabilities = sampled_inputs(num_true, variant, 20 + num_true)
    logits = rng(21).normal(size=(N, K)) * 1.5
    upstream = upstream_like((N, 1), 22)
    kwargs = dict(num_samples=S, num_true=num_true, remove_accidental_hits=remove, use_customized_samples=True,
                  customized_samples=samples, customized_probabilities=probabilities)

    def f():
        return float(np.sum(upstream * ref.sampled_softmax_with_cross_entropy(logits, label, **kwargs)))

    out = ref.sampled_softmax_with_cross_entropy_grad(logits, label, upstream=upstream, **kwargs)
    assert out["loss"].shape == (N, 1) and out["logits"].shape == (N, K)
    np.testing.assert_array_equal(out["loss"], ref.sampled_softmax_with_cross_entropy(logits, label, **kwargs))
    assert_grad(out["logits"], numeric_grad(f, logits), "d/d logits")
    # Classes that no column of a row samples get exactly zero gradient (the dense gradient is sparse).
    for i in range(N):
        unsampled = sorted(set(range(K)) - set(samples[i].tolist()))
        assert np.all(out["logits"][i, unsampled] == 0)


def test_sampled_swce_grad_with_internal_sampler():
    """use_customized_samples=False: the seeded log-uniform draw is fixed, so the loss is smooth in logits."""
    logits = rng(23).normal(size=(N, K))
    label = rng(24).integers(0, K, size=(N, 2)).astype(np.int64)
    upstream = upstream_like((N, 1), 25)
    kwargs = dict(num_samples=3, num_true=2, seed=5)

    def f():
        return float(np.sum(upstream * ref.sampled_softmax_with_cross_entropy(logits, label, **kwargs)))

    out = ref.sampled_softmax_with_cross_entropy_grad(logits, label, upstream=upstream, **kwargs)
    assert_grad(out["logits"], numeric_grad(f, logits), "d/d logits")


# ----------------------------------------------------------------------------------------------
# sampled_softmax_loss (TensorFlow): inputs, weights (dense or sharded), biases
# ----------------------------------------------------------------------------------------------
B, D, NUM_CLASSES, NUM_SAMPLED = 3, 2, 10, 5

SHARDINGS = [pytest.param(None, "mod", id="dense")] + [
    pytest.param(p, strategy, id="%s%d" % (strategy, p)) for strategy in ("mod", "div") for p in (1, 2, 3, 4)]


def ssl_inputs(num_true, seed):
    """Inputs whose shared candidate set has an accidental hit (row 0's first label) and a duplicate."""
    r = rng(seed)
    labels = np.stack([r.choice(NUM_CLASSES, size=num_true, replace=False) for _ in range(B)]).astype(np.int64)
    candidates = r.choice(NUM_CLASSES, size=NUM_SAMPLED, replace=False).astype(np.int64)
    candidates[0] = labels[0, 0]
    candidates[-1] = candidates[1]
    sampled_values = (candidates, r.uniform(0.1, 2.0, size=(B, num_true)), r.uniform(0.1, 2.0, size=NUM_SAMPLED))
    return dict(weights=r.normal(size=(NUM_CLASSES, D)), biases=r.normal(size=NUM_CLASSES) * 0.5,
                labels=labels, inputs=r.normal(size=(B, D)), sampled_values=sampled_values)


@pytest.mark.parametrize("remove", [True, False], ids=["remove-hits", "keep-hits"])
@pytest.mark.parametrize("num_shards, strategy", SHARDINGS)
@pytest.mark.parametrize("num_true", [1, 2, 3], ids=lambda t: "T%d" % t)
def test_sampled_softmax_loss_grad(num_true, num_shards, strategy, remove):
    case = ssl_inputs(num_true, 30 + num_true)
    weights = case["weights"] if num_shards is None else split_weights(case["weights"], num_shards, strategy)
    upstream = upstream_like((B,), 31)
    kwargs = dict(num_sampled=NUM_SAMPLED, num_classes=NUM_CLASSES, num_true=num_true,
                  sampled_values=case["sampled_values"], remove_accidental_hits=remove, partition_strategy=strategy)
    x, biases, labels = case["inputs"], case["biases"], case["labels"]

    def f():
        return float(np.sum(upstream * ref.sampled_softmax_loss(weights, biases, labels, x, **kwargs)))

    out = ref.sampled_softmax_loss_grad(weights, biases, labels, x, upstream=upstream, **kwargs)
    np.testing.assert_array_equal(out["loss"], ref.sampled_softmax_loss(weights, biases, labels, x, **kwargs))
    assert_grad(out["inputs"], numeric_grad(f, x), "d/d inputs")
    assert_grad(out["biases"], numeric_grad(f, biases), "d/d biases")
    if num_shards is None:
        assert_grad(out["weights"], numeric_grad(f, weights), "d/d weights")
    else:
        assert isinstance(out["weights"], list) and len(out["weights"]) == num_shards
        for p, shard in enumerate(weights):
            assert out["weights"][p].shape == shard.shape
            assert_grad(out["weights"][p], numeric_grad(f, shard), "d/d weights[%d]" % p)


@pytest.mark.parametrize("num_shards, strategy", [pytest.param(None, "mod", id="dense"),
                                                  pytest.param(3, "div", id="div3")])
def test_sampled_softmax_loss_grad_with_internal_sampler(num_shards, strategy):
    """sampled_values=None with a fixed seed: the candidate set is fixed, the loss smooth."""
    case = ssl_inputs(2, 40)
    weights = case["weights"] if num_shards is None else split_weights(case["weights"], num_shards, strategy)
    upstream = upstream_like((B,), 41)
    kwargs = dict(num_sampled=4, num_classes=NUM_CLASSES, num_true=2, partition_strategy=strategy, seed=3)
    x, biases, labels = case["inputs"], case["biases"], case["labels"]

    def f():
        return float(np.sum(upstream * ref.sampled_softmax_loss(weights, biases, labels, x, **kwargs)))

    out = ref.sampled_softmax_loss_grad(weights, biases, labels, x, upstream=upstream, **kwargs)
    assert_grad(out["inputs"], numeric_grad(f, x), "d/d inputs")
    assert_grad(out["biases"], numeric_grad(f, biases), "d/d biases")
    shards = [weights] if num_shards is None else weights
    grads = [out["weights"]] if num_shards is None else out["weights"]
    for p, (shard, grad) in enumerate(zip(shards, grads)):
        assert_grad(grad, numeric_grad(f, shard), "d/d weights[%d]" % p)
