"""Small shared helpers for the tests of ``impls/reference/`` (tests/test_reference_*.py).

The generic math tests (forward, gradients, errors, properties) run against both implementations of
the API, the oracle ``impls/reference/`` and the contender ``impls/numpy_fast/``: such a module
declares ``pytestmark = pytest.mark.usefixtures("each_implementation")`` and imports that fixture;
its tests of input only the oracle accepts carry ``@pytest.mark.reference_only``.  The contender's
``sampled_softmax_loss_grad`` returns sparse weight and bias gradients (``SparseRows``); these tests
see them densified, as its adapter's ``to_numpy`` compares them (tests/test_numpy_fast.py checks
the sparse form itself).

Nothing here computes an expected value from the code under test: the helpers are a finite-difference
gradient, dtype tables, input builders, the tensorflow ``embedding_lookup`` shard layout written as a
plain loop, and a chi-square survival function.  Works on Python 3.8 + numpy 1.23 as well as 3.11 +
numpy 2.x.
"""
from __future__ import annotations

import functools
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python -m pytest` from the repo root adds it; other launchers may not
    sys.path.insert(0, str(ROOT))

from impls import numpy_fast  # noqa: E402
from impls import reference as ref  # noqa: E402
from impls.caseio import SparseRows  # noqa: E402

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes is installed in both environments
    ml_dtypes = None

# ----------------------------------------------------------------------------------------------
# Both implementations
# ----------------------------------------------------------------------------------------------
@pytest.fixture(params=[ref, numpy_fast], ids=["reference", "numpy_fast"])
def each_implementation(request, monkeypatch):
    """Runs the test against each implementation: the test module's ``ref`` and its aliases of the
    oracle's functions (``swce = ref.softmax_with_cross_entropy``) are rebound to the module under test."""
    module = request.param
    if module is not ref and request.node.get_closest_marker("reference_only"):
        pytest.skip("input only the oracle accepts (the contender declares the feature unsupported)")
    api = module if module is ref else _with_dense_gradients(module)
    for name, value in list(vars(request.module).items()):
        if value is ref:
            monkeypatch.setattr(request.module, name, api)
        elif callable(value) and getattr(value, "__module__", None) == ref.__name__:
            monkeypatch.setattr(request.module, name, getattr(api, value.__name__))
    return module


def _with_dense_gradients(module):
    """``module`` with its ``sampled_softmax_loss_grad`` returning dense gradients (NumPy or CuPy)."""
    api = types.SimpleNamespace(**vars(module))
    api.sampled_softmax_loss_grad = functools.wraps(module.sampled_softmax_loss_grad)(
        lambda *args, **kwargs: {name: _dense(value)
                                 for name, value in module.sampled_softmax_loss_grad(*args, **kwargs).items()})
    return api


def _dense(value):
    if isinstance(value, list):  # shard gradients
        return [_dense(v) for v in value]
    if not isinstance(value, SparseRows):
        return value
    xp = numpy_fast._array_module(value.values)
    dense = xp.zeros(tuple(value.dense_shape), dtype=value.values.dtype)
    numpy_fast._scatter_add(xp, dense, value.indices, value.values)
    return dense


# ----------------------------------------------------------------------------------------------
# Dtypes
# ----------------------------------------------------------------------------------------------
# Machine epsilon (spacing of floats at 1.0) of every float dtype the reference accepts, hard-coded
# so that bfloat16 does not depend on np.finfo support (absent for ml_dtypes 0.2 on numpy 1.23).
EPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": 2.0 ** -23, "float64": 2.0 ** -52}
# Smallest positive subnormal: the absolute rounding step near zero of a result stored in the dtype.
TINY = {"float16": 2.0 ** -24, "bfloat16": 2.0 ** -133, "float32": 2.0 ** -149, "float64": 2.0 ** -1074}

needs_ml_dtypes = pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes is not installed")


def dtype_of(name):
    """The NumPy dtype for a float dtype name (bfloat16 from ml_dtypes)."""
    if name == "bfloat16":
        if ml_dtypes is None:
            pytest.skip("ml_dtypes is not installed")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


LOW_PRECISION = [
    pytest.param("float32", id="float32"),
    pytest.param("float16", id="float16"),
    pytest.param("bfloat16", id="bfloat16", marks=needs_ml_dtypes),
]


def quantize(array, name):
    """``array`` rounded to the dtype ``name`` (returned in that dtype)."""
    return np.asarray(array, dtype=np.float64).astype(dtype_of(name))


def widen(array):
    """A float64 copy (exact for every float dtype)."""
    return np.asarray(array).astype(np.float32).astype(np.float64) if array.dtype.name == "bfloat16" \
        else np.asarray(array, dtype=np.float64)


def low_precision_tolerance(name, scale):
    """``(rtol, atol)`` for a result computed in float32 (the reference's rule for every dtype narrower
    than float64) and stored in dtype ``name``, against float64 arithmetic on the same (already
    rounded) inputs.

    * Storing the result rounds it by at most eps/2 relative: rtol = eps(dtype) leaves a factor 2.
    * The float32 arithmetic (a log-sum-exp over <= 16 terms, dot products over <= 4 terms, a
      subtraction p - 1 that cancels in gradients) errs by at most ~n * eps32 with n <= 16 terms
      (the worst case of a naive sum), relative to the size of the terms involved, not of the result:
      atol = 16 * eps32 * scale, with ``scale`` the magnitude of those terms (about 1 + max |logit|).
      For float16/bfloat16 this is far below rtol's share.
    * A result that lands among the dtype's subnormals is rounded absolutely: + TINY(dtype).
    For float32 itself, rtol gets the compute error as well: 16 * eps32 (~1.9e-6).
    """
    eps32 = EPS["float32"]
    rtol = max(EPS[name], 16 * eps32)
    return rtol, 16 * eps32 * scale + TINY[name]


def assert_close(actual, expected, rtol, atol, what=""):
    """``|actual - expected| <= atol + rtol * |expected|`` elementwise, infinities and NaNs positional."""
    actual = widen(np.asarray(actual))
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, "%s: shape %s != %s" % (what, actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


# ----------------------------------------------------------------------------------------------
# Central differences
# ----------------------------------------------------------------------------------------------
# Step for float64 central differences.  The error of (f(x+h) - f(x-h)) / 2h is
#   truncation h^2/6 * |f'''|  +  rounding ~ eps * |f| / h,
# minimised near h = (3 eps)^(1/3) ~ 1e-5.  With h = 1e-5, |f| <= ~50 and |f'''| <= ~10 for these
# inputs (logits of size O(1), softmax derivatives bounded by small constants), the error is about
# 2e-10 + 1e-9 ~ 1e-9.  GRAD_ATOL = 1e-6 (plus GRAD_RTOL = 1e-6 relative) leaves a factor >= 1000 of
# margin while any real mistake in a gradient (a missing term, a wrong sign, a dropped duplicate)
# moves it by O(1e-2) or more.
STEP = 1e-5
GRAD_RTOL = 1e-6
GRAD_ATOL = 1e-6


def numeric_grad(f, x, h=STEP):
    """Central-difference gradient of the scalar ``f()`` w.r.t. every element of the float64 array
    ``x``, which ``f`` reads (it is perturbed in place and restored)."""
    assert x.dtype == np.float64
    grad = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        saved = x[idx]
        x[idx] = saved + h
        plus = f()
        x[idx] = saved - h
        minus = f()
        x[idx] = saved
        grad[idx] = (plus - minus) / (2 * h)
    return grad


def assert_grad(analytic, numeric, what):
    assert np.asarray(analytic).dtype == np.float64, what
    np.testing.assert_allclose(analytic, numeric, rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=what)


# ----------------------------------------------------------------------------------------------
# Input builders
# ----------------------------------------------------------------------------------------------
def rng(seed):
    return np.random.default_rng(seed)


def upstream_like(shape, seed):
    """A non-uniform cotangent: positive and negative values and one exact zero."""
    u = rng(seed).uniform(-2.0, 2.0, size=shape)
    u.flat[0] = 0.0
    if u.size > 1:
        u.flat[-1] = 1.75
    return u


def mod_owner(c, num_shards):
    """(shard, row) of class ``c`` under tf.nn.embedding_lookup's "mod" strategy (doc: c % P, c // P)."""
    return c % num_shards, c // num_shards


def div_owner(c, num_classes, num_shards):
    """(shard, row) of class ``c`` under "div": contiguous blocks, the first K % P blocks one longer.

    Written as the plain walk over the blocks that the embedding_lookup documentation describes.
    """
    start = 0
    for p in range(num_shards):
        size = num_classes // num_shards + (1 if p < num_classes % num_shards else 0)
        if c < start + size:
            return p, c - start
        start += size
    raise AssertionError("class %d outside [0, %d)" % (c, num_classes))


def owner(c, num_classes, num_shards, strategy):
    return mod_owner(c, num_shards) if strategy == "mod" else div_owner(c, num_classes, num_shards)


def split_weights(dense, num_shards, strategy):
    """Cut a dense ``[K, D]`` matrix into shards with a loop over classes (independent of the reference)."""
    num_classes = dense.shape[0]
    rows = [[] for _ in range(num_shards)]
    for c in range(num_classes):
        p, r = owner(c, num_classes, num_shards, strategy)
        assert r == len(rows[p]), "classes of a shard must arrive in row order"
        rows[p].append(dense[c])
    return [np.array(r, dtype=dense.dtype).reshape(len(r), dense.shape[1]) for r in rows]


def join_weights(shards, num_classes, strategy):
    """Inverse of :func:`split_weights`: the dense ``[K, D]`` matrix, one class at a time."""
    dense = np.zeros((num_classes, shards[0].shape[1]), dtype=shards[0].dtype)
    for c in range(num_classes):
        p, r = owner(c, num_classes, len(shards), strategy)
        dense[c] = shards[p][r]
    return dense


# ----------------------------------------------------------------------------------------------
# Chi-square
# ----------------------------------------------------------------------------------------------
def chi2_sf(stat, df):
    """P(X >= stat) for X ~ chi-square(df): scipy when installed, else the closed form for even df,
    sf = exp(-x/2) * sum_{i < df/2} (x/2)^i / i!  (a Poisson tail), summed in log space."""
    try:
        from scipy.stats import chi2
    except ImportError:
        chi2 = None
    if chi2 is not None:
        return float(chi2.sf(stat, df))
    return chi2_sf_even(stat, df)


def chi2_sf_even(stat, df):
    if df % 2:
        raise ValueError("df: the closed form needs an even number of degrees of freedom, got %d" % df)
    half = stat / 2.0
    if half == 0:
        return 1.0
    terms = [math.exp(-half + i * math.log(half) - math.lgamma(i + 1)) for i in range(df // 2)]
    return min(1.0, math.fsum(terms))


# ----------------------------------------------------------------------------------------------
# Guard against a sampler that never finishes
# ----------------------------------------------------------------------------------------------
def within(seconds, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, failing the test if it has not returned after ``seconds``.

    Unique sampling draws until enough distinct classes are seen: a sampler that can never reach some
    class (an off-by-one in its range) would loop forever instead of failing.  The call runs in a
    daemon thread, abandoned on timeout (it dies with the process).
    """
    import threading

    box = {}

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail("%s did not return within %g s" % (getattr(fn, "__name__", fn), seconds))
    if "error" in box:
        raise box["error"]
    return box["value"]
