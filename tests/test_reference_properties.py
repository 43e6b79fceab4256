"""Property tests (hypothesis, derandomized so CI is deterministic) over random shapes, axes and layouts.

Skipped where hypothesis is not installed (the Python 3.8 environment).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers_reference import join_weights, ref, split_weights
from helpers_reference import each_implementation  # noqa: F401 - the fixture, used by pytestmark

pytestmark = pytest.mark.usefixtures("each_implementation")

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

DETERMINISTIC = settings(derandomize=True, max_examples=60, deadline=None, database=None)

finite_logits = st.floats(-30, 30, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def swce_inputs(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    logits = draw(hnp.arrays(np.float64, shape, elements=finite_logits))
    label_shape = list(shape)
    label_shape[axis] = 1
    label = draw(hnp.arrays(np.int64, tuple(label_shape), elements=st.integers(0, shape[axis] - 1)))
    return logits, label, axis


@DETERMINISTIC
@given(swce_inputs())
def test_swce_is_logsumexp_minus_picked_logit(inputs):
    logits, label, axis = inputs
    loss, softmax = ref.softmax_with_cross_entropy(logits, label, return_softmax=True, axis=axis)
    x, y, lo, sm = (np.moveaxis(a, axis, -1) for a in (logits, label, loss, softmax))
    for idx in np.ndindex(*x.shape[:-1]):
        row = [float(v) for v in x[idx]]
        m = max(row)
        s = math.fsum(math.exp(v - m) for v in row)
        want = math.log(s) + (m - row[int(y[idx][0])])
        assert abs(lo[idx][0] - want) <= 1e-12 * max(1.0, want)
        assert abs(math.fsum(sm[idx].tolist()) - 1.0) <= 1e-13
        assert np.all(sm[idx] >= 0)
    assert np.all(loss >= 0)


@DETERMINISTIC
@given(swce_inputs(), st.floats(-50, 50, allow_nan=False, width=64))
def test_swce_is_shift_invariant(inputs, shift):
    logits, label, axis = inputs
    a = ref.softmax_with_cross_entropy(logits, label, axis=axis)
    b = ref.softmax_with_cross_entropy(logits + shift, label, axis=axis)
    # |shift| <= 50 and |logits| <= 30: rounding of logits + shift moves each logit by <= 80 * eps.
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@DETERMINISTIC
@given(st.integers(1, 40), st.integers(1, 9), st.sampled_from(["mod", "div"]))
def test_shard_layout_round_trips(num_classes, num_shards, strategy):
    dense = np.arange(num_classes, dtype=np.float64)[:, None]
    shards = split_weights(dense, num_shards, strategy)
    assert ref.shard_layout(num_classes, num_shards, strategy) == [len(s) for s in shards]
    np.testing.assert_array_equal(join_weights(shards, num_classes, strategy), dense)


@DETERMINISTIC
@given(st.integers(1, 25), st.integers(1, 6), st.sampled_from(["mod", "div"]), st.integers(0, 2 ** 31))
def test_sharded_loss_equals_dense_loss(num_classes, num_shards, strategy, seed):
    """The same classes laid out in shards give the loss of the dense matrix (K and P arbitrary,
    including more shards than classes)."""
    r = np.random.default_rng(seed)
    weights, biases = r.normal(size=(num_classes, 2)), r.normal(size=num_classes)
    labels, inputs = r.integers(0, num_classes, size=(3, 1)), r.normal(size=(3, 2))
    sampled_values = (r.integers(0, num_classes, size=4), r.uniform(0.1, 1, size=(3, 1)), r.uniform(0.1, 1, size=4))
    kwargs = dict(sampled_values=sampled_values, partition_strategy=strategy)
    dense = ref.sampled_softmax_loss(weights, biases, labels, inputs, 4, num_classes, **kwargs)
    sharded = ref.sampled_softmax_loss(split_weights(weights, num_shards, strategy), biases, labels, inputs, 4,
                                       num_classes, **kwargs)
    np.testing.assert_array_equal(sharded, dense)


@st.composite
def float32_rows(draw, max_rows=5, max_classes=40):
    """float32 logits [B, K] whose rows sit anywhere in [-130, 130]: some rows run shift-free, some not."""
    rows = draw(st.integers(1, max_rows))
    classes = draw(st.integers(2, max_classes))
    spread = draw(hnp.arrays(np.float32, (rows, classes), elements=st.floats(-12, 12, width=32)))
    offsets = draw(hnp.arrays(np.float32, (rows, 1), elements=st.floats(-130, 130, width=32)))
    label = draw(hnp.arrays(np.int64, (rows, 1), elements=st.integers(0, classes - 1)))
    return (spread + offsets).astype(np.float32), label


@DETERMINISTIC
@given(float32_rows())
def test_float32_swce_is_within_the_suite_tolerance_of_exact_math(inputs):
    """Shift-free or not, float32 results stay within the tolerance the suite gives every framework.

    The exact answer is computed in float64 (math.fsum) from the float32 inputs; the bound is
    compare.py's ``eps * max(16, 2*sqrt(K)) * (|exact| + scale)``, scale the largest |logit| for the loss.
    """
    logits, label = inputs
    out = ref.softmax_with_cross_entropy_grad(logits, label)
    classes = logits.shape[1]
    rtol = float(np.finfo(np.float32).eps) * max(16.0, 2.0 * math.sqrt(classes))
    scale = float(np.abs(logits).max())
    for row in range(logits.shape[0]):
        values = [float(v) for v in logits[row]]
        top = max(values)
        total = math.fsum(math.exp(v - top) for v in values)
        picked = int(label[row, 0])
        want_loss = math.log(total) + (top - values[picked])
        assert abs(float(out["loss"][row, 0]) - want_loss) <= rtol * (abs(want_loss) + scale)
        for k, v in enumerate(values):
            want = math.exp(v - top) / total - (1.0 if k == picked else 0.0)
            assert abs(float(out["logits"][row, k]) - want) <= rtol * (abs(want) + 1.0), (row, k)
