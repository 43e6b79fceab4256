"""Invalid input raises ValueError/TypeError naming the argument; documented unusual input behaves as documented.

Convention checked: a wrong *type or dtype* is a TypeError, a wrong *value or shape* is a ValueError,
and the message contains the argument's name (``match`` is a regex search, names are escaped).
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from helpers_reference import ref, rng, split_weights
from helpers_reference import each_implementation  # noqa: F401 - the fixture, used by pytestmark

pytestmark = pytest.mark.usefixtures("each_implementation")

swce = ref.softmax_with_cross_entropy
swce_grad = ref.softmax_with_cross_entropy_grad
sswce = ref.sampled_softmax_with_cross_entropy
sswce_grad = ref.sampled_softmax_with_cross_entropy_grad
ssl = ref.sampled_softmax_loss
ssl_grad = ref.sampled_softmax_loss_grad
sampler = ref.log_uniform_candidate_sampler


def _function(name):
    """This module's function ``name`` when the test runs (each_implementation rebinds it)."""
    return globals()[name]


def raises(exc, name):
    return pytest.raises(exc, match=re.escape(name))


# ----------------------------------------------------------------------------------------------
# softmax_with_cross_entropy
# ----------------------------------------------------------------------------------------------
LOGITS = rng(0).normal(size=(3, 4))
LABEL = np.array([[0], [3], [1]])

SWCE_BAD = [
    # id, kwargs, exception, name in message
    pytest.param(dict(label=np.array([[0], [4], [1]])), ValueError, "label", id="label-too-large"),
    pytest.param(dict(label=np.array([[0], [-1], [1]])), ValueError, "label", id="label-negative"),
    pytest.param(dict(label=np.array([[0], [-100], [1]]), ignore_index=-1), ValueError, "label",
                 id="label-negative-not-ignore-index"),
    pytest.param(dict(label=np.array([[0.0], [3.0], [1.0]])), TypeError, "label", id="label-float-hard"),
    pytest.param(dict(label=np.array([[True], [False], [True]])), TypeError, "label", id="label-bool"),
    pytest.param(dict(label=np.array([[[0]], [[3]], [[1]]])), ValueError, "label", id="label-extra-axis"),
    pytest.param(dict(label=np.array([0, 3])), ValueError, "label", id="label-rank-minus-1-wrong-batch"),
    pytest.param(dict(label=np.array([[0], [3]])), ValueError, "label", id="label-wrong-batch"),
    pytest.param(dict(label=np.array([[0, 1], [3, 2], [1, 0]])), ValueError, "label", id="label-wide"),
    pytest.param(dict(label=np.full((3, 3), 1 / 3), soft_label=True), ValueError, "label", id="soft-label-shape"),
    pytest.param(dict(label=np.ones((3, 4), dtype=np.int64), soft_label=True), TypeError, "label",
                 id="soft-label-int"),
    pytest.param(dict(logits=LOGITS.astype(np.int64)), TypeError, "logits", id="logits-int"),
    pytest.param(dict(logits=LOGITS.tolist()), TypeError, "logits", id="logits-list"),
    pytest.param(dict(logits=np.float64(1.0), label=np.array(0)), ValueError, "logits", id="logits-scalar"),
    pytest.param(dict(axis=2), ValueError, "axis", id="axis-too-large"),
    pytest.param(dict(axis=-3), ValueError, "axis", id="axis-too-small"),
    pytest.param(dict(axis=1.0), ValueError, "axis", id="axis-float"),
    pytest.param(dict(axis=True), ValueError, "axis", id="axis-bool"),
]


@pytest.mark.parametrize("kwargs, exc, name", SWCE_BAD)
@pytest.mark.parametrize("fn", ["swce", "swce_grad"], ids=["forward", "grad"])  # names: see _function
def test_swce_bad_input(fn, kwargs, exc, name):
    fn = _function(fn)
    args = dict(logits=LOGITS, label=LABEL)
    args.update(kwargs)
    with raises(exc, name):
        fn(**args)


def test_swce_empty_class_axis():
    """A class axis of length 0 has no softmax: refuse it by name (not with NumPy's internal
    "zero-size array to reduction operation maximum" message)."""
    with pytest.raises(ValueError, match="logits|label|axis"):
        swce(np.zeros((2, 0)), np.zeros((2, 0)), soft_label=True)
    with pytest.raises(ValueError, match="logits|label|axis"):
        swce(np.zeros((2, 0)), np.zeros((2, 1), dtype=np.int64))


@pytest.mark.parametrize("upstream, exc", [
    pytest.param(np.ones((3,)), ValueError, id="missing-axis"),
    pytest.param(np.ones((3, 4)), ValueError, id="logits-shape"),
    pytest.param(np.ones((3, 1), dtype=np.int64), TypeError, id="int"),
])
def test_swce_bad_upstream(upstream, exc):
    with raises(exc, "upstream"):
        swce_grad(LOGITS, LABEL, upstream=upstream)


# ----------------------------------------------------------------------------------------------
# sampled_softmax_with_cross_entropy
# ----------------------------------------------------------------------------------------------
SL = rng(1).normal(size=(2, 6))
SLABEL = np.array([[1, 4], [0, 2]])
SSAMPLES = np.array([[1, 4, 0, 5, 5], [0, 2, 3, 1, 4]])
SPROBS = np.full((2, 5), 0.3)


def sswce_args(**kwargs):
    args = dict(logits=SL, label=SLABEL, num_samples=3, num_true=2, use_customized_samples=True,
                customized_samples=SSAMPLES, customized_probabilities=SPROBS)
    args.update(kwargs)
    return args


SSWCE_BAD = [
    pytest.param(dict(label=np.array([[1, 6], [0, 2]])), ValueError, "label", id="label-too-large"),
    pytest.param(dict(label=np.array([[1, -1], [0, 2]])), ValueError, "label", id="label-negative"),
    pytest.param(dict(label=SLABEL.astype(np.float64)), TypeError, "label", id="label-float"),
    pytest.param(dict(label=np.array([[1], [0]])), ValueError, "label", id="num-true-mismatch"),
    pytest.param(dict(num_true=3), ValueError, "label", id="num-true-larger-than-label"),
    pytest.param(dict(num_samples=6), ValueError, "num_samples", id="num-samples-equals-classes"),
    pytest.param(dict(num_samples=7), ValueError, "num_samples", id="num-samples-above-classes"),
    pytest.param(dict(num_samples=0), ValueError, "num_samples", id="num-samples-zero"),
    pytest.param(dict(num_samples=2.0), TypeError, "num_samples", id="num-samples-float"),
    pytest.param(dict(num_true=0), ValueError, "num_true", id="num-true-zero"),
    pytest.param(dict(logits=SL[0]), ValueError, "logits", id="logits-1d"),
    pytest.param(dict(logits=SL.astype(np.int32)), TypeError, "logits", id="logits-int"),
    pytest.param(dict(customized_samples=np.array([[4, 1, 0, 5, 5], [0, 2, 3, 1, 4]])), ValueError,
                 "customized_samples", id="samples-first-columns-not-labels"),
    pytest.param(dict(customized_samples=SSAMPLES[:, :4]), ValueError, "customized_samples", id="samples-narrow"),
    pytest.param(dict(customized_samples=np.array([[1, 4, 0, 6, 5], [0, 2, 3, 1, 4]])), ValueError,
                 "customized_samples", id="samples-out-of-range"),
    pytest.param(dict(customized_samples=SSAMPLES.astype(np.float64)), TypeError, "customized_samples",
                 id="samples-float"),
    pytest.param(dict(customized_samples=None), ValueError, "customized_samples", id="samples-missing"),
    pytest.param(dict(customized_probabilities=None), ValueError, "customized_probabilities", id="probs-missing"),
    pytest.param(dict(customized_probabilities=SPROBS[:, :4]), ValueError, "customized_probabilities",
                 id="probs-shape"),
    pytest.param(dict(customized_probabilities=np.where(np.eye(2, 5) > 0, 0.0, 0.3)), ValueError,
                 "customized_probabilities", id="probs-zero"),
    pytest.param(dict(customized_probabilities=np.where(np.eye(2, 5) > 0, -0.2, 0.3)), ValueError,
                 "customized_probabilities", id="probs-negative"),
    pytest.param(dict(customized_probabilities=np.where(np.eye(2, 5) > 0, np.nan, 0.3)), ValueError,
                 "customized_probabilities", id="probs-nan"),
    pytest.param(dict(customized_probabilities=np.where(np.eye(2, 5) > 0, np.inf, 0.3)), ValueError,
                 "customized_probabilities", id="probs-inf"),
    pytest.param(dict(customized_probabilities=np.ones((2, 5), dtype=np.int64)), TypeError,
                 "customized_probabilities", id="probs-int"),
]


@pytest.mark.parametrize("kwargs, exc, name", SSWCE_BAD)
@pytest.mark.parametrize("fn", ["sswce", "sswce_grad"], ids=["forward", "grad"])  # names: see _function
def test_sampled_swce_bad_input(fn, kwargs, exc, name):
    fn = _function(fn)
    with raises(exc, name):
        fn(**sswce_args(**kwargs))


def test_sampled_swce_internal_sampler_checks_num_samples():
    with raises(ValueError, "num_samples"):
        sswce(SL, SLABEL, 6, num_true=2)


@pytest.mark.parametrize("upstream", [
    pytest.param(np.ones((2, 2)), id="N-by-2"),
    pytest.param(np.ones((1, 2)), id="1-by-N"),
    pytest.param(np.ones((3, 1)), id="wrong-batch"),
    pytest.param(np.ones((2, 1, 1)), id="rank3"),
])
def test_sampled_swce_bad_upstream(upstream):
    """upstream is documented as [N, 1] (the loss shape); any other shape must be refused."""
    with raises(ValueError, "upstream"):
        sswce_grad(**sswce_args(upstream=upstream))


# ----------------------------------------------------------------------------------------------
# sampled_softmax_loss
# ----------------------------------------------------------------------------------------------
K, DIM, BATCH = 7, 3, 2


def ssl_args(**kwargs):
    r = rng(2)
    args = dict(weights=r.normal(size=(K, DIM)), biases=r.normal(size=K), labels=np.array([[1], [5]]),
                inputs=r.normal(size=(BATCH, DIM)), num_sampled=3, num_classes=K,
                sampled_values=(np.array([0, 2, 6]), np.full((BATCH, 1), 0.5), np.full(3, 0.4)))
    args.update(kwargs)
    return args


GOOD_SV = ssl_args()["sampled_values"]
W = ssl_args()["weights"]

SSL_BAD = [
    pytest.param(dict(labels=np.array([[1], [7]])), ValueError, "labels", id="labels-too-large"),
    pytest.param(dict(labels=np.array([[1], [-1]])), ValueError, "labels", id="labels-negative"),
    pytest.param(dict(labels=np.array([[1.0], [5.0]])), TypeError, "labels", id="labels-float"),
    pytest.param(dict(labels=np.array([1, 5])), ValueError, "labels", id="labels-1d"),
    pytest.param(dict(num_true=2), ValueError, "labels", id="num-true-mismatch"),
    pytest.param(dict(inputs=np.ones((BATCH, DIM + 1))), ValueError, "weights", id="dim-mismatch"),
    pytest.param(dict(inputs=np.ones(DIM)), ValueError, "inputs", id="inputs-1d"),
    pytest.param(dict(inputs=np.ones((BATCH, DIM), dtype=np.int64)), TypeError, "inputs", id="inputs-int"),
    pytest.param(dict(weights=W[:-1]), ValueError, "weights", id="weights-rows"),
    pytest.param(dict(weights=W.astype(np.float32)), TypeError, "weights", id="weights-dtype"),
    pytest.param(dict(weights=[]), ValueError, "weights", id="weights-empty-list"),
    pytest.param(dict(weights=[W[:3], W[3:6]]), ValueError, "weights", id="shards-do-not-add-up"),
    pytest.param(dict(weights=[W[:3], W[3:]], partition_strategy="div"), ValueError, "weights[0]",
                 id="div-shards-wrong-split"),  # div with K=7, P=2 is [4, 3]
    pytest.param(dict(weights=[W[:3], W[3:5], W[5:6]]), ValueError, "weights[2]",
                 id="mod-shards-wrong-split"),  # mod with K=7, P=3 is [3, 2, 2]
    pytest.param(dict(weights=[W[:4], W[4:].astype(np.float32)], partition_strategy="div"), TypeError,
                 "weights[1]", id="shard-dtype"),
    pytest.param(dict(weights=[W[:4], W[4:]], partition_strategy="xor"), ValueError, "partition_strategy",
                 id="unknown-strategy"),
    pytest.param(dict(weights=[W[:4], W[4:]], partition_strategy="DIV"), ValueError, "partition_strategy",
                 id="strategy-case"),
    pytest.param(dict(biases=np.ones(K - 1)), ValueError, "biases", id="biases-shape"),
    pytest.param(dict(biases=np.ones(K, dtype=np.float32)), TypeError, "biases", id="biases-dtype"),
    pytest.param(dict(num_classes=0), ValueError, "num_classes", id="num-classes-zero"),
    pytest.param(dict(num_classes=7.0), TypeError, "num_classes", id="num-classes-float"),
    pytest.param(dict(num_sampled=0), ValueError, "num_sampled", id="num-sampled-zero"),
    pytest.param(dict(num_sampled=K + 1, sampled_values=None), ValueError, "num_sampled",
                 id="num-sampled-above-classes-unique"),
    pytest.param(dict(sampled_values=GOOD_SV[:2]), ValueError, "sampled_values", id="sv-two-items"),
    pytest.param(dict(sampled_values=np.zeros(3)), ValueError, "sampled_values", id="sv-array"),
    pytest.param(dict(sampled_values=(np.array([0, 2]),) + GOOD_SV[1:]), ValueError, "sampled_values",
                 id="sv-candidates-shape"),
    pytest.param(dict(sampled_values=(np.array([0, 2, 7]),) + GOOD_SV[1:]), ValueError, "sampled_values",
                 id="sv-candidates-range"),
    pytest.param(dict(sampled_values=(np.array([0.0, 2.0, 6.0]),) + GOOD_SV[1:]), TypeError, "sampled_values",
                 id="sv-candidates-float"),
    pytest.param(dict(sampled_values=(GOOD_SV[0], np.full((BATCH, 2), 0.5), GOOD_SV[2])), ValueError,
                 "sampled_values", id="sv-true-expected-shape"),
    pytest.param(dict(sampled_values=(GOOD_SV[0], np.full((BATCH, 1), 0.0), GOOD_SV[2])), ValueError,
                 "sampled_values", id="sv-true-expected-zero"),
    pytest.param(dict(sampled_values=GOOD_SV[:2] + (np.full(2, 0.4),)), ValueError, "sampled_values",
                 id="sv-sampled-expected-shape"),
    pytest.param(dict(sampled_values=GOOD_SV[:2] + (np.array([0.4, np.nan, 0.4]),)), ValueError,
                 "sampled_values", id="sv-sampled-expected-nan"),
    pytest.param(dict(sampled_values=GOOD_SV[:2] + (np.array([0.4, -1.0, 0.4]),)), ValueError,
                 "sampled_values", id="sv-sampled-expected-negative"),
]


@pytest.mark.parametrize("kwargs, exc, name", SSL_BAD)
@pytest.mark.parametrize("fn", ["ssl", "ssl_grad"], ids=["forward", "grad"])  # names: see _function
def test_sampled_softmax_loss_bad_input(fn, kwargs, exc, name):
    fn = _function(fn)
    with raises(exc, name):
        fn(**ssl_args(**kwargs))


def test_sampled_softmax_loss_good_shards_are_accepted():
    # Control for the shard cases above: the layouts the error cases violate do work.
    for strategy in ("mod", "div"):
        loss = ssl(**ssl_args(weights=split_weights(W, 2, strategy), partition_strategy=strategy))
        assert loss.shape == (BATCH,) and np.all(np.isfinite(loss))


def test_sampled_softmax_loss_bad_upstream():
    with raises(ValueError, "upstream"):
        ssl_grad(**ssl_args(upstream=np.ones((BATCH, 1))))


def test_shard_layout_unknown_strategy():
    with raises(ValueError, "partition_strategy"):
        ref.shard_layout(10, 2, "round-robin")


# ----------------------------------------------------------------------------------------------
# log_uniform_candidate_sampler
# ----------------------------------------------------------------------------------------------
TRUE = np.array([[0, 3]])

SAMPLER_BAD = [
    pytest.param(dict(num_sampled=11), ValueError, "num_sampled", id="unique-more-than-range"),
    pytest.param(dict(num_sampled=0), ValueError, "num_sampled", id="num-sampled-zero"),
    pytest.param(dict(range_max=0), ValueError, "range_max", id="range-max-zero"),
    pytest.param(dict(range_max=10.0), TypeError, "range_max", id="range-max-float"),
    pytest.param(dict(num_true=1), ValueError, "true_classes", id="num-true-mismatch"),
    pytest.param(dict(num_true=0), ValueError, "num_true", id="num-true-zero"),
    pytest.param(dict(true_classes=np.array([0, 3])), ValueError, "true_classes", id="true-classes-1d"),
    pytest.param(dict(true_classes=np.array([[0, 10]])), ValueError, "true_classes", id="true-classes-range"),
    pytest.param(dict(true_classes=np.array([[0.0, 3.0]])), TypeError, "true_classes", id="true-classes-float"),
]


@pytest.mark.parametrize("kwargs, exc, name", SAMPLER_BAD)
def test_sampler_bad_input(kwargs, exc, name):
    args = dict(true_classes=TRUE, num_true=2, num_sampled=4, unique=True, range_max=10, seed=0)
    args.update(kwargs)
    with raises(exc, name):
        sampler(**args)


def test_sampler_without_unique_may_exceed_the_range():
    assert sampler(TRUE, 2, 11, False, 10, seed=0)[0].shape == (11,)


# ----------------------------------------------------------------------------------------------
# Documented behaviour for unusual but valid input (module docstring of impls/reference/)
# ----------------------------------------------------------------------------------------------
def test_nan_logit_makes_only_its_row_nan():
    logits = np.array([[0.0, np.nan, 1.0], [0.5, 0.2, -0.3]])
    label = np.array([[0], [2]])
    out = swce_grad(logits, label, return_softmax=True)
    for key in ("loss", "softmax", "logits"):
        assert np.all(np.isnan(out[key][0])), key
        assert np.all(np.isfinite(out[key][1])), key


def test_positive_inf_logit_makes_its_row_nan():
    logits = np.array([[0.0, np.inf, 1.0], [0.5, 0.2, -0.3]])
    out = swce_grad(logits, np.array([[1], [2]]), return_softmax=True)
    for key in ("loss", "softmax", "logits"):
        assert np.all(np.isnan(out[key][0])), key
        assert np.all(np.isfinite(out[key][1])), key


@pytest.mark.parametrize("soft_label", [False, True], ids=["hard", "soft"])
def test_all_neg_inf_row_is_nan(soft_label):
    logits = np.array([[-np.inf] * 3, [0.5, 0.2, -0.3]])
    label = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]) if soft_label else np.array([[1], [2]])
    out = swce_grad(logits, label, soft_label=soft_label, return_softmax=True)
    for key in ("loss", "softmax", "logits"):
        assert np.all(np.isnan(out[key][0])), key
        assert np.all(np.isfinite(out[key][1])), key


def test_all_neg_inf_row_along_a_leading_axis():
    logits = np.zeros((3, 2, 2))
    logits[:, 1, 0] = -np.inf
    out = swce_grad(logits, np.zeros((1, 2, 2), dtype=np.int64), return_softmax=True, axis=0)
    assert np.isnan(out["loss"][0, 1, 0]) and np.all(np.isnan(out["logits"][:, 1, 0]))
    others = [(0, 0), (0, 1), (1, 1)]
    for i, j in others:
        assert out["loss"][0, i, j] == pytest.approx(math.log(3), rel=1e-15)


def test_hard_label_on_neg_inf_logit_is_inf():
    logits = np.array([[-np.inf, 0.0, 1.0]])
    out = swce_grad(logits, np.array([[0]]), return_softmax=True)
    assert out["loss"][0, 0] == np.inf
    assert out["softmax"][0, 0] == 0
    # d/dz of log-sum-exp(z) - z_0: softmax - onehot, finite (the -inf class has softmax 0).
    e = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    np.testing.assert_allclose(out["logits"], [[-1.0, e[0], e[1]]], rtol=1e-15)


def test_neg_inf_logits_take_no_mass_soft():
    logits = np.array([[-np.inf, 0.0, 1.0]])
    label = np.array([[0.0, 0.25, 0.75]])  # zero weight on the -inf class: finite loss, no NaN from 0 * inf
    out = swce_grad(logits, label, soft_label=True, return_softmax=True)
    lse = math.log(1 + math.e)
    assert out["loss"][0, 0] == pytest.approx(0.25 * lse + 0.75 * (lse - 1), rel=1e-15)
    assert out["softmax"][0, 0] == 0 and out["logits"][0, 0] == 0
    assert np.all(np.isfinite(out["logits"]))


@pytest.mark.parametrize("total", [0.0, 0.5, 2.0, 7.25], ids=lambda t: "sum%g" % t)
def test_soft_labels_not_summing_to_one_get_the_exact_gradient(total):
    """Gradient = upstream * (softmax * sum(label) - label), not softmax - label."""
    logits = rng(3).normal(size=(4, 5))
    label = rng(4).uniform(size=(4, 5))
    label = label / label.sum(axis=1, keepdims=True) * total
    upstream = rng(5).uniform(0.5, 2.0, size=(4, 1))
    out = swce_grad(logits, label, soft_label=True, upstream=upstream)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax = e / e.sum(axis=1, keepdims=True)
    want = upstream * (softmax * label.sum(axis=1, keepdims=True) - label)
    np.testing.assert_allclose(out["logits"], want, rtol=1e-13, atol=1e-15)
    if total != 1.0:
        assert not np.allclose(out["logits"], upstream * (softmax - label))


@pytest.mark.parametrize("bad", [-np.inf, np.nan], ids=["all-neg-inf", "nan"])
def test_ignored_position_has_zero_gradient_whatever_its_logits(bad):
    """An ignored position's loss is 0 whatever its logits, so its gradient must be 0 too
    (ADAPTER_SPEC: "0 where label == ignore_index (and gradient 0 there)"), NaN rows included."""
    logits = np.array([[bad] * 3, [0.5, 0.2, -0.3]])
    out = swce_grad(logits, np.array([[-100], [2]]))
    assert out["loss"][0, 0] == 0
    np.testing.assert_array_equal(out["logits"][0], [0.0, 0.0, 0.0])
