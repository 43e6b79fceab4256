"""The oracle's float64 outputs against exact values (mpmath, 256 bits; tests/helpers_exact.py).

Each output element must lie within 1 ulp of the exact value of that element (not of a scale), on
inputs chosen for heavy cancellation: a dominant class (``p - 1`` and the loss both tiny), near-
uniform rows, huge spreads, the defect found by porting the frameworks' unit tests (hard label on
``[[37.43, 0.0]]``), a one-hot soft label, both sampled ops with a dominant true class.  The inputs
make every logit exact in float64 (sampled probabilities 1, small integer weights), so what is
measured is the oracle's own arithmetic.

Bounds, by output (measured worst in brackets):

* 1 ulp: the loss of a hard label, a one-hot soft label and one true class (sampled ops), and the
  gradient at the label, ``p - 1`` (the outputs where cancellation used to lose everything).
* 2 ulp: the softmax and the gradient away from the label, ``e_j / s`` [1.2]: a quotient of an
  exponential and a sum, each already rounded (NumPy's float64 ``exp`` is not correctly rounded),
  rounded once more; and the loss of a general soft label [1.4], a sum of K rounded products.
  Correct rounding there would need more than float64 arithmetic in the oracle.
* Inherent cancellation: a general soft label (and T > 1 true classes) whose softmax is close to
  the label, where ``p * sum(label) - label`` cancels whatever the order of evaluation: 4 ulp of
  the larger of the two terms that cancel.
"""
from __future__ import annotations

import numpy as np
import pytest

from impls import numpy_dispatch
from helpers_reference import ref
import helpers_exact as exact  # skips this module when mpmath is missing

ONE_ULP = 1.0  # the exact value rounds to float64 within 0.5 ulp; the oracle's own error fills the rest
TWO_ULP = 2.0  # quotients of rounded values and sums of rounded terms (see the module docstring)


@pytest.fixture(autouse=True, scope="module")
def libm_exp_and_log():
    """The bounds assume libm's float64 exp/log: NumPy 1.23's AVX-512 loops measured 1.2-1.9 ulp off
    on these inputs (the conformance pytest plugin pins the dispatch before NumPy is imported)."""
    if not numpy_dispatch.is_pinned():
        pytest.fail("NumPy dispatches to its AVX-512 float64 loops (%s); set %s=%r before NumPy is imported"
                    % (", ".join(numpy_dispatch.active_avx512_targets()), numpy_dispatch.VARIABLE,
                       numpy_dispatch.pinned_env().get(numpy_dispatch.VARIABLE, "")))


def assert_within_ulps(actual, expected, what, bound=ONE_ULP):
    errors = exact.ulps(actual, expected)
    worst = np.unravel_index(np.argmax(errors), errors.shape) if errors.size else None
    assert errors.max(initial=0.0) <= bound, "%s: %.3g ulp at %s (got %r, exact %s)" % (
        what, errors.max(), worst, np.asarray(actual)[worst], exact.mpmath.nstr(expected[worst], 20))


def _rows(seed):
    """Rows of heavy cancellation, all exact in float64."""
    r = np.random.default_rng(seed)
    dominant = np.round(r.normal(0, 2, size=(6, 9)) * 64) / 64
    dominant[np.arange(6), np.arange(6)] += np.array([30.0, 37.43, 40.0, 45.5, 20.0, 700.0])
    near_uniform = 3.25 + r.integers(-4, 5, size=(4, 9)) * 2.0 ** -40
    spread = np.round(r.uniform(-1e4, 1e4, size=(4, 9)))
    return np.concatenate([dominant, near_uniform, spread])


HARD_CASES = {
    "frameworks-unit-test": (np.array([[37.43, 0.0]]), np.array([[0]])),
    "cancellation-rows": (_rows(1), np.concatenate([np.arange(6), [0, 3, 5, 8], [1, 2, 3, 4]])[:, None]),
    "label-not-dominant": (_rows(2), np.full((14, 1), 8)),
}


@pytest.mark.parametrize("name", sorted(HARD_CASES))
def test_hard_label_within_one_ulp(name):
    logits, label = HARD_CASES[name]
    got = ref.softmax_with_cross_entropy_grad(logits, label, return_softmax=True)
    want = exact.swce(logits, label)
    at_label = label == np.arange(logits.shape[1])
    assert_within_ulps(got["loss"], want["loss"], name + " loss")
    assert_within_ulps(got["logits"][at_label], want["logits"][at_label], name + " p - 1")
    assert_within_ulps(got["logits"][~at_label], want["logits"][~at_label], name + " p", TWO_ULP)
    assert_within_ulps(got["softmax"], want["softmax"], name + " softmax", TWO_ULP)


def test_the_frameworks_unit_test_defect():
    """p - 1 is minus the other class's share, not e/s - 1 after s rounded to e."""
    got = ref.softmax_with_cross_entropy_grad(np.array([[37.43, 0.0]]), np.array([[0]]))["logits"]
    other = np.exp(-37.43) / (1 + np.exp(-37.43))
    np.testing.assert_array_equal(got, [[-other, other]])
    assert got[0, 0] != 0


@pytest.mark.parametrize("name", sorted(HARD_CASES))
def test_one_hot_soft_label_is_the_hard_label(name):
    logits, label = HARD_CASES[name]
    one_hot = (label == np.arange(logits.shape[1])).astype(np.float64)
    hard = ref.softmax_with_cross_entropy_grad(logits, label, return_softmax=True)
    soft = ref.softmax_with_cross_entropy_grad(logits, one_hot, soft_label=True, return_softmax=True)
    for output in ("loss", "softmax", "logits"):
        np.testing.assert_array_equal(soft[output], hard[output], err_msg=output)


def test_general_soft_label_cancellation_is_bounded():
    """Inherent cancellation: ``g_j = p_j * S - l_j`` is the difference of ``(S - l_j) p_j`` and
    ``l_j (1 - p_j)``, each computed within ~2 ulp; when they nearly cancel, the error is bounded
    by a few ulp of the larger term, not of ``g_j``."""
    logits = _rows(3)
    r = np.random.default_rng(4)
    label = r.dirichlet(np.ones(9), size=logits.shape[0])
    label[0] = np.exp(logits[0] - logits[0].max()) / np.exp(logits[0] - logits[0].max()).sum()  # p ~ l
    got = ref.softmax_with_cross_entropy_grad(logits, label, soft_label=True, return_softmax=True)
    want = exact.swce(logits, label, soft_label=True)
    assert_within_ulps(got["loss"], want["loss"], "loss", TWO_ULP)
    assert_within_ulps(got["softmax"], want["softmax"], "softmax", TWO_ULP)
    s_total = label.sum(axis=1, keepdims=True)
    p = got["softmax"]
    terms = np.maximum(np.abs((s_total - label) * p), np.abs(label * (1 - p)))
    error = np.abs(np.vectorize(float)(np.asarray(got["logits"], dtype=object) - want["logits"]))
    assert np.all(error <= 4 * np.spacing(terms) + 2 ** -1074)


@pytest.mark.parametrize("num_true", [1, 2])
def test_sampled_softmax_with_cross_entropy_dominant_true_class(num_true):
    r = np.random.default_rng(5)
    n, k, num_samples = 5, 12, 6
    logits = np.round(r.normal(0, 2, size=(n, k)) * 64) / 64
    label = np.stack([r.choice(k, num_true, replace=False) for _ in range(n)])
    negatives = np.stack([r.choice(np.setdiff1d(np.arange(k), row), num_samples, replace=False) for row in label])
    samples = np.concatenate([label, negatives], axis=1)
    logits[np.arange(n)[:, None], label] += np.array([30.0, 37.43, 40.0, 0.0, 700.0])[:, None]  # one row not
    probabilities = np.ones(samples.shape)  # log q = 0: every sampled logit is exact
    got = ref.sampled_softmax_with_cross_entropy_grad(logits, label, num_samples, num_true, True, True, samples,
                                                      probabilities)
    want = exact.sswce(logits, label, samples, probabilities, num_true)
    assert_within_ulps(got["loss"], want["loss"], "loss")
    if num_true == 1:  # exactly the hard-label case
        at_label = label == np.arange(k)
        assert_within_ulps(got["logits"][at_label], want["logits"][at_label], "p - 1")
        assert_within_ulps(got["logits"][~at_label], want["logits"][~at_label], "p", TWO_ULP)
    else:  # p - 1/T on the true columns: inherent cancellation when p ~ 1/T (bound as for soft labels)
        error = np.abs(np.vectorize(float)(np.asarray(got["logits"], dtype=object) - want["logits"]))
        assert np.all(error <= 4 * np.spacing(1.0 / num_true))


def test_sampled_softmax_loss_dominant_true_class():
    """Integer weights and inputs (dot products exact), expected counts 1 (log = 0): exact logits."""
    r = np.random.default_rng(6)
    batch, num_classes, dim, num_sampled = 4, 20, 3, 5
    weights = r.integers(-3, 4, size=(num_classes, dim)).astype(np.float64)
    biases = r.integers(-2, 3, size=num_classes).astype(np.float64)
    labels = np.array([[0], [1], [2], [3]])
    biases[:4] += np.array([35.0, 40.0, 0.0, 700.0])
    inputs = r.integers(-2, 3, size=(batch, dim)).astype(np.float64)
    candidates = np.array([5, 9, 11, 14, 19])
    true_expected, sampled_expected = np.ones((batch, 1)), np.ones(num_sampled)
    got = ref.sampled_softmax_loss_grad(weights, biases, labels, inputs, num_sampled, num_classes,
                                        sampled_values=(candidates, true_expected, sampled_expected))
    want = exact.ssl(weights, biases, labels, inputs, candidates, true_expected, sampled_expected)
    assert_within_ulps(got["loss"], want["loss"], "loss")
    assert_within_ulps(got["biases"], want["biases"], "biases")  # each id appears once: one term each
