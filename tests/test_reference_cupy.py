"""The oracle and the contender on CuPy arrays (GPU) give NumPy's results, as CuPy arrays.

Skipped cleanly, with the reason, where CuPy is not installed or no CUDA device is visible.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers_reference import each_implementation  # noqa: F401 - the fixture, used by pytestmark
from helpers_reference import ref, rng, split_weights

cupy = pytest.importorskip("cupy", reason="cupy is not installed: the GPU path of the reference is not tested")


def _gpu_count():
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - no driver, no device: any CUDA error means "no GPU here"
        return 0


pytestmark = [pytest.mark.skipif(_gpu_count() == 0, reason="cupy is installed but no CUDA device is visible"),
              pytest.mark.usefixtures("each_implementation")]

# Same inputs, same float64 arithmetic in a different library: a few ulps of reduction-order noise.
RTOL, ATOL = 1e-12, 1e-14


def to_gpu(value):
    if isinstance(value, np.ndarray):
        return cupy.asarray(value)
    if isinstance(value, (list, tuple)):
        return type(value)(to_gpu(v) for v in value)
    return value


def assert_same(gpu_result, cpu_result, what="result"):
    if isinstance(cpu_result, dict):
        assert set(gpu_result) == set(cpu_result), what
        for key in cpu_result:
            assert_same(gpu_result[key], cpu_result[key], "%s[%s]" % (what, key))
    elif isinstance(cpu_result, (list, tuple)):
        assert len(gpu_result) == len(cpu_result), what
        for i, (g, c) in enumerate(zip(gpu_result, cpu_result)):
            assert_same(g, c, "%s[%d]" % (what, i))
    else:
        assert isinstance(gpu_result, cupy.ndarray), "%s: %s is not a CuPy array" % (what, type(gpu_result))
        assert gpu_result.dtype == cpu_result.dtype and gpu_result.shape == cpu_result.shape, what
        np.testing.assert_allclose(cupy.asnumpy(gpu_result), cpu_result, rtol=RTOL, atol=ATOL, err_msg=what)


def run_both(fn, **kwargs):
    cpu = fn(**kwargs)
    gpu = fn(**{k: to_gpu(v) for k, v in kwargs.items()})
    assert_same(gpu, cpu, fn.__name__)


@pytest.mark.parametrize("soft_label, axis, ignore", [(False, -1, False), (False, 1, True), (True, 0, False)],
                         ids=["hard-last", "hard-axis1-ignore", "soft-axis0"])
def test_swce_on_cupy(soft_label, axis, ignore):
    logits = rng(1).normal(size=(3, 4, 5))
    if soft_label:
        label = rng(2).uniform(size=logits.shape)
    else:
        shape = list(logits.shape)
        shape[axis] = 1
        label = rng(2).integers(0, logits.shape[axis], size=shape).astype(np.int64)
        if ignore:
            label.flat[0] = -100
    upstream = rng(3).uniform(-1, 1, size=label.shape if not soft_label else (1, 4, 5))
    run_both(ref.softmax_with_cross_entropy_grad, logits=logits, label=label, soft_label=soft_label,
             return_softmax=True, axis=axis, upstream=upstream)
    run_both(ref.softmax_with_cross_entropy, logits=logits, label=label, soft_label=soft_label, axis=axis)


def test_swce_unusual_rows_on_cupy():
    logits = np.array([[-np.inf, 0.0, 1.0], [np.nan, 0.0, 0.0], [-np.inf] * 3, [1e4, -1e4, 0.0]])
    label = np.array([[1], [0], [2], [1]])
    cpu = ref.softmax_with_cross_entropy_grad(logits, label, return_softmax=True)
    gpu = ref.softmax_with_cross_entropy_grad(cupy.asarray(logits), cupy.asarray(label), return_softmax=True)
    for key in cpu:
        np.testing.assert_array_equal(np.isnan(cupy.asnumpy(gpu[key])), np.isnan(cpu[key]), err_msg=key)
        np.testing.assert_allclose(cupy.asnumpy(gpu[key]), cpu[key], rtol=RTOL, atol=ATOL, err_msg=key)


def test_sampled_swce_on_cupy():
    logits = rng(4).normal(size=(3, 8))
    label = np.array([[1, 2], [0, 7], [5, 3]])
    samples = np.array([[1, 2, 2, 6, 6], [0, 7, 4, 4, 1], [5, 3, 3, 0, 2]])  # hits and duplicates
    probabilities = rng(5).uniform(0.1, 1.0, size=samples.shape)
    run_both(ref.sampled_softmax_with_cross_entropy_grad, logits=logits, label=label, num_samples=3, num_true=2,
             use_customized_samples=True, customized_samples=samples, customized_probabilities=probabilities,
             upstream=rng(6).uniform(-1, 1, size=(3, 1)))


@pytest.mark.parametrize("num_shards, strategy", [(None, "mod"), (3, "mod"), (4, "div")],
                         ids=["dense", "mod3", "div4"])
def test_sampled_softmax_loss_on_cupy(num_shards, strategy):
    r = rng(7)
    weights = r.normal(size=(10, 3))
    if num_shards is not None:
        weights = split_weights(weights, num_shards, strategy)
    sampled_values = (np.array([1, 4, 4, 9]), r.uniform(0.2, 1.0, size=(2, 2)), r.uniform(0.2, 1.0, size=4))
    run_both(ref.sampled_softmax_loss_grad, weights=weights, biases=r.normal(size=10),
             labels=np.array([[1, 2], [3, 9]]), inputs=r.normal(size=(2, 3)), num_sampled=4, num_classes=10,
             num_true=2, sampled_values=sampled_values, partition_strategy=strategy,
             upstream=r.uniform(-1, 1, size=2))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_float32_arithmetic_on_cupy_shift_free_and_shifted_rows(dtype):
    """The float32 paths (shift-free exponentials, per-row fallback, flat gathers, recompute) on CuPy.

    Row 1 sits at +60 and row 3 at -70, outside the shift-free range: they are recomputed with the
    shift.  CuPy's exp and sums round differently from NumPy's, so the bound is the suite's own
    float32 tolerance (compare.py): eps * max(16, 2*sqrt(n)) relative, n the softmax width.
    """
    r = rng(11)
    logits = r.normal(size=(5, 40)) * 4
    logits[1] += 60
    logits[3] -= 70
    label = r.integers(0, 40, size=(5, 1)).astype(np.int64)
    samples = np.concatenate([label, np.tile(np.arange(0, 36, 3), (5, 1))], axis=1)  # label hits included
    probabilities = r.uniform(0.05, 1.0, size=samples.shape)
    weights, biases, inputs = r.normal(size=(40, 6)) * 3, r.normal(size=40), r.normal(size=(5, 6)) * 3
    sampled_values = (np.arange(1, 40, 4), r.uniform(0.2, 1.0, size=(5, 1)), r.uniform(0.2, 1.0, size=10))
    calls = [
        (ref.softmax_with_cross_entropy_grad, dict(logits=logits, label=label, return_softmax=True)),
        (ref.sampled_softmax_with_cross_entropy_grad,
         dict(logits=logits, label=label, num_samples=12, use_customized_samples=True, customized_samples=samples,
              customized_probabilities=probabilities)),
        (ref.sampled_softmax_loss_grad,
         dict(weights=weights, biases=biases, labels=label, inputs=inputs, num_sampled=10, num_classes=40,
              sampled_values=sampled_values)),
    ]
    rtol = float(np.finfo(dtype).eps) * max(16.0, 2.0 * np.sqrt(40))
    for fn, kwargs in calls:
        kwargs = {k: v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
                  for k, v in kwargs.items()}
        if "sampled_values" in kwargs:
            kwargs["sampled_values"] = tuple(v.astype(dtype) if v.dtype.kind == "f" else v
                                             for v in kwargs["sampled_values"])
        cpu = fn(**kwargs)
        gpu = fn(**{k: to_gpu(v) for k, v in kwargs.items()})
        for key, value in cpu.items():
            got = cupy.asnumpy(gpu[key]).astype(np.float64)
            want = value.astype(np.float64)
            scale = float(np.abs(want).max()) or 1.0
            assert gpu[key].dtype == value.dtype, (fn.__name__, key)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg="%s %s" % (fn.__name__, key))


def test_sampler_on_cupy_draws_the_same_values():
    true_classes = np.array([[0, 5], [2, 3]])
    run_both(ref.log_uniform_candidate_sampler, true_classes=true_classes, num_true=2, num_sampled=6, unique=True,
             range_max=50, seed=9)
