"""The oracle's ``cross_entropy`` under each documented convention: exact values, bad input, and the
facts that make the conventions differ.

* Exactness: every output against each convention's documented formula evaluated with mpmath
  (tests/helpers_exact.py: the loss by the definition at 3000 bits, gradients by numerical
  differentiation of that definition at 256 bits), on small inputs exact in float64.  Bound: 4 ulp
  of the exact loss, 4 ulp of a gradient's largest entry (its entries cancel where the softmax meets
  a smoothed or soft target, as for softmax_with_cross_entropy's soft labels); measured worst: loss
  1, grad/logits 2, grad/label 1.  The oracle rounds each per-class term (a logsumexp, a product with a weight and a smoothed target),
  their sum and a division once each in float64, and NumPy's ``exp``/``log`` are within 1 ulp but
  not correctly rounded; 4 ulp bounds those roundings with room, while a wrong formula
  (another convention's denominator, a missing weight) is off by far more (percent-level here).
* Errors: a wrong type or dtype is a TypeError, a wrong value or shape a ValueError, and the message
  names the argument (as tests/test_reference_errors.py checks the other ops).
* Conventions: where documentation differs, the conventions give different numbers, and where a
  convention documents no formula the oracle says so (``ConventionUndefined``) instead of guessing.

Works on Python 3.8 + numpy 1.23.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from helpers_reference import ref
import helpers_exact as exact  # skips this module when mpmath is missing

ULPS = 4.0  # see the module docstring

LOGITS = np.array([[1.5, -0.25, 3.0, 0.5], [-2.0, 0.75, 0.125, 1.0], [0.0, 0.0, 0.5, -1.5]])
HARD = np.array([2, -100, 1])
SOFT = np.array([[0.25, 0.0, 0.5, 0.25], [0.125, 0.375, 0.25, 0.25], [0.0, 1.0, 0.0, 0.0]])
WEIGHT = np.array([0.5, 2.0, 1.25, 0.75])
SAMPLE_WEIGHT = np.array([0.0, 1.5, 0.625])
PROBS = np.array([[0.125, 0.25, 0.5, 0.125], [0.0625, 0.4375, 0.25, 0.25], [1e-9, 0.5, 0.25, 0.25 - 1e-9]])

EXACT_CASES = {
    # name: kwargs of both the oracle and the exact definition
    "hard-weight-ignore-mean": dict(logits=LOGITS, label=HARD, weight=WEIGHT),
    "hard-weight-ignore-smooth-sum": dict(logits=LOGITS, label=np.array([2, 0, 1]), weight=WEIGHT,
                                          label_smoothing=0.25, reduction="sum"),
    "hard-ignore-smooth-none": dict(logits=LOGITS, label=HARD, label_smoothing=0.125, reduction="none",
                                    upstream=np.array([0.5, -1.25, 2.0])),
    "soft-weight-mean": dict(logits=LOGITS, label=SOFT, weight=WEIGHT, soft_label=True, upstream=np.array(-1.5)),
    "soft-smooth-none": dict(logits=LOGITS, label=SOFT, soft_label=True, label_smoothing=0.2, reduction="none"),
    "prob-hard-mean": dict(logits=PROBS, label=np.array([2, 1, 0]), use_softmax=False),
    "prob-soft-weight-sum": dict(logits=PROBS, label=SOFT, soft_label=True, weight=WEIGHT, use_softmax=False,
                                 reduction="sum"),
    "prob-soft-none": dict(logits=PROBS, label=SOFT, soft_label=True, use_softmax=False, reduction="none"),
    # Keras's per-position sample weights (an exact 0 among them); only the keras convention has them
    "hard-sw-weight-ignore-mean": dict(logits=LOGITS, label=HARD, weight=WEIGHT, sample_weight=SAMPLE_WEIGHT),
    "soft-sw-smooth-none": dict(logits=LOGITS, label=SOFT, soft_label=True, label_smoothing=0.2, reduction="none",
                                sample_weight=SAMPLE_WEIGHT, upstream=np.array([0.5, -1.25, 2.0])),
    "prob-hard-sw-sum": dict(logits=PROBS, label=np.array([2, 1, 0]), use_softmax=False, reduction="sum",
                             sample_weight=SAMPLE_WEIGHT),
}


def _defined(convention, kwargs):
    try:
        ref.cross_entropy(**{k: v for k, v in kwargs.items() if k != "upstream"}, convention=convention)
        return True
    except ref.ConventionUndefined:
        return False


PAIRS = [pytest.param(name, convention, id="%s-%s" % (name, convention))
         for name in EXACT_CASES for convention in ref.CONVENTIONS if _defined(convention, EXACT_CASES[name])]


def test_every_convention_is_checked_somewhere():
    assert {pair.values[1] for pair in PAIRS} == set(ref.CONVENTIONS)


@pytest.mark.parametrize("name, convention", PAIRS)
def test_within_ulps_of_the_documented_formula(name, convention):
    kwargs = EXACT_CASES[name]
    got = ref.cross_entropy_grad(convention=convention, **kwargs)
    want = exact.cross_entropy(convention=convention, **kwargs)
    assert sorted(got) == sorted(want)
    for output, expected in want.items():
        actual = np.asarray(got[output], dtype=np.float64)
        assert actual.shape == np.shape(expected), output
        # The loss is a sum of non-negative terms: ulps of itself.  A gradient entry p_c * S - a_c cancels
        # where the softmax meets the (smoothed, soft) target, whatever the order of evaluation: ulps of
        # the output's largest entry, the size of the terms that cancel.
        scale = 0.0 if output == "loss" else max(float(abs(mpv)) for mpv in np.ravel(expected))
        for index in np.ndindex(*actual.shape):
            x = expected[index]
            if exact.mpmath.isnan(x):
                assert np.isnan(actual[index]), (output, index)
                continue
            allowed = ULPS * np.spacing(max(abs(float(x)), scale, 1e-300))
            assert abs(actual[index] - float(x)) <= allowed, "%s %s: %r, exact %s" % (
                output, index, actual[index], exact.mpmath.nstr(x, 20))


# ----------------------------------------------------------------------------------------------
# Bad input names the argument
# ----------------------------------------------------------------------------------------------
BAD = [
    pytest.param(dict(label=np.array([2, 4, 1])), ValueError, "label", id="label-too-large"),
    pytest.param(dict(label=np.array([2, -1, 1])), ValueError, "label", id="label-negative-not-ignore-index"),
    pytest.param(dict(label=np.array([2.0, 0.0, 1.0])), TypeError, "label", id="label-float"),
    pytest.param(dict(label=np.array([[2], [0], [1]])), ValueError, "label", id="label-with-class-axis"),
    pytest.param(dict(label=SOFT[:, :3], soft_label=True), ValueError, "label", id="soft-label-shape"),
    pytest.param(dict(label=SOFT.astype(np.int64), soft_label=True), TypeError, "label", id="soft-label-int"),
    pytest.param(dict(weight=WEIGHT[:3]), ValueError, "weight", id="weight-length"),
    pytest.param(dict(weight=WEIGHT.astype(np.float32)), TypeError, "weight", id="weight-dtype"),
    pytest.param(dict(weight=np.arange(4)), TypeError, "weight", id="weight-int"),
    pytest.param(dict(sample_weight=SAMPLE_WEIGHT[:2], convention="keras"), ValueError, "sample_weight",
                 id="sample-weight-length"),
    pytest.param(dict(sample_weight=SAMPLE_WEIGHT.astype(np.float32), convention="keras"), TypeError,
                 "sample_weight", id="sample-weight-dtype"),
    pytest.param(dict(reduction="avg"), ValueError, "reduction", id="reduction"),
    pytest.param(dict(label_smoothing=1.5), ValueError, "label_smoothing", id="label-smoothing-above-1"),
    pytest.param(dict(label_smoothing=-0.1), ValueError, "label_smoothing", id="label-smoothing-negative"),
    pytest.param(dict(axis=2), ValueError, "axis", id="axis"),
    pytest.param(dict(ignore_index=1.5), TypeError, "ignore_index", id="ignore-index-float"),
    pytest.param(dict(soft_label=1), TypeError, "soft_label", id="soft-label-not-bool"),
    pytest.param(dict(use_softmax="no"), TypeError, "use_softmax", id="use-softmax-not-bool"),
    pytest.param(dict(convention="tensorflow"), ValueError, "convention", id="convention"),
    pytest.param(dict(logits=LOGITS[:, :0]), ValueError, "logits", id="no-classes"),
    pytest.param(dict(logits=LOGITS.astype(np.int64)), TypeError, "logits", id="logits-int"),
]


@pytest.mark.parametrize("kwargs, error, name", BAD)
@pytest.mark.parametrize("grad", [False, True], ids=["forward", "grad"])
def test_bad_input_names_the_argument(kwargs, error, name, grad):
    call = dict(dict(logits=LOGITS, label=HARD), **kwargs)
    with pytest.raises(error, match=re.escape(name)):
        (ref.cross_entropy_grad if grad else ref.cross_entropy)(**call)


def test_upstream_of_a_reduced_loss_is_0d():
    with pytest.raises(ValueError, match="upstream"):
        ref.cross_entropy_grad(LOGITS, HARD, upstream=np.ones(3))


# ----------------------------------------------------------------------------------------------
# The conventions part ways where their documentation does
# ----------------------------------------------------------------------------------------------
def _loss(convention, **kwargs):
    return float(ref.cross_entropy(LOGITS, **dict(dict(label=HARD), **kwargs), convention=convention))


def test_weighted_mean_denominator_differs_between_torch_and_keras():
    torch, keras = _loss("torch", weight=WEIGHT), _loss("keras", weight=WEIGHT)
    total = float(ref.cross_entropy(LOGITS, HARD, WEIGHT, reduction="sum"))
    assert torch == pytest.approx(total / (WEIGHT[2] + WEIGHT[1]), rel=1e-15)  # the weights of the valid targets
    assert keras == pytest.approx(total / 2, rel=1e-15)  # the count of the valid positions
    assert _loss("optax", weight=WEIGHT) == keras


def test_unweighted_mean_with_ignored_positions_is_over_the_kept_ones():
    # Paddle too: ignored targets "do not contribute to the loss" (its ignore_index documentation, and
    # what paddle 3.3.1 does for ignore_index >= 0); its division by every position when ignore_index is
    # negative is the known deviation paddle-cross-entropy-mean-counts-ignored-positions.
    total = float(ref.cross_entropy(LOGITS, HARD, reduction="sum"))
    assert _loss("torch") == _loss("keras") == _loss("optax") == _loss("paddle") == pytest.approx(total / 2, rel=1e-15)


def test_all_ignored_mean():
    label = np.full(3, -100)
    assert np.isnan(_loss("torch", label=label)) and np.isnan(_loss("optax", label=label))
    assert _loss("keras", label=label) == 0.0 and _loss("paddle", label=label) == 0.0
    assert _loss("paddle", label=label, weight=WEIGHT) == 0.0  # paddle divides by max(sum of weights, 1) there
    grad = ref.cross_entropy_grad(LOGITS, label, convention="torch")["logits"]
    assert np.array_equal(grad, np.zeros_like(LOGITS))  # nothing is a target: no gradient


def test_smoothing_with_weights_torch_keeps_per_class_weights_paddle_weights_the_row():
    torch = _loss("torch", label=np.array([2, 0, 1]), weight=WEIGHT, label_smoothing=0.3, reduction="sum")
    paddle = _loss("paddle", label=np.array([2, 0, 1]), weight=WEIGHT, label_smoothing=0.3, reduction="sum")
    keras = _loss("keras", label=np.array([2, 0, 1]), weight=WEIGHT, label_smoothing=0.3, reduction="sum")
    assert len({torch, paddle, keras}) == 3 and abs(torch - paddle) > 1e-3 * abs(torch)


def test_keras_clips_probabilities_and_torch_does_not():
    label = np.array([0, 1, 0])  # the third row's target has probability 1e-9
    torch = ref.cross_entropy(PROBS, label, use_softmax=False, reduction="none", convention="torch")
    keras = ref.cross_entropy(PROBS, label, use_softmax=False, reduction="none", convention="keras")
    assert torch[2] == pytest.approx(-np.log(1e-9), rel=1e-15)
    assert keras[2] == pytest.approx(-np.log(1e-7 / (1e-7 + 0.5 + 0.25 + (0.25 - 1e-9))), rel=1e-12)


@pytest.mark.parametrize("convention, kwargs", [
    ("keras", dict(label=SOFT, soft_label=True, weight=WEIGHT)),
    ("optax", dict(label=SOFT, soft_label=True, weight=WEIGHT)),
    ("optax", dict(logits=PROBS, use_softmax=False)),
    ("paddle", dict(label_smoothing=0.1)),  # HARD has an ignored position
    ("keras", dict(label_smoothing=0.1)),
], ids=["keras-soft-weight", "optax-soft-weight", "optax-probabilities", "paddle-smooth-ignore",
        "keras-smooth-ignore"])
def test_undocumented_combinations_are_not_guessed(convention, kwargs):
    call = dict(dict(logits=LOGITS, label=HARD), **kwargs)
    with pytest.raises(ref.ConventionUndefined, match=convention):
        ref.cross_entropy(convention=convention, **call)
    ref.cross_entropy(convention="torch", **call)  # torch documents every combination


@pytest.mark.parametrize("convention", ["torch", "paddle", "optax"])
def test_sample_weights_are_keras_only(convention):
    with pytest.raises(ref.ConventionUndefined, match="sample weights"):
        ref.cross_entropy(LOGITS, HARD, sample_weight=SAMPLE_WEIGHT, convention=convention)


def test_keras_sample_weight_scales_each_loss_and_the_mean_still_counts_the_kept_positions():
    plain = ref.cross_entropy(LOGITS, HARD, reduction="none", convention="keras")
    weighted = ref.cross_entropy(LOGITS, HARD, reduction="none", convention="keras", sample_weight=SAMPLE_WEIGHT)
    assert list(weighted) == [0.0, 0.0, 0.625 * plain[2]]  # position 1 is ignored, position 0 weighs 0
    mean = ref.cross_entropy(LOGITS, HARD, convention="keras", sample_weight=SAMPLE_WEIGHT)
    assert mean == pytest.approx(0.625 * plain[2] / 2, rel=1e-15)  # 2 positions are not ignored
    grad = ref.cross_entropy_grad(LOGITS, HARD, convention="keras", sample_weight=SAMPLE_WEIGHT)["logits"]
    assert not grad[0].any() and not grad[1].any()
