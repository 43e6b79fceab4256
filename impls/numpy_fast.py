"""The fast NumPy/CuPy contender (impls ``numpy-fast``/``cupy-fast``): the reference's API, tuned for speed.

This is not the oracle: the golden outputs come from the textbook ``impls/reference.py``, and this
module is checked against them with the same tolerances as every framework.  It is the suite's
answer to "how fast can NumPy arrays be": row blocks on a thread pool, a small ufunc buffer for
row-wise broadcasts, shift-free float32 exponentials, BLAS row sums and a bit-exact float32 -> float16
conversion (each measured and described where defined; tests/test_numpy_fast.py checks that none
of them changes a bit of any result except the shift-free exponentials, held to the suite's
tolerance).  Where numba is installed, float32 rows go through compiled row kernels instead
(``impls/numpy_kernels.py``: a row's whole softmax cross-entropy in one pass while it is in cache,
rows on OpenMP threads; tests/test_numpy_kernels.py holds them to the NumPy path); the NumPy calls
below serve every other dtype and every row a kernel leaves to them.  Unlike the oracle, ``sampled_softmax_loss_grad`` returns its weight and bias gradients
as :class:`impls.caseio.SparseRows` (the sampled rows only), as the frameworks return an embedding
lookup's gradient, so its cost does not grow with ``num_classes``; the adapter densifies them for
comparison.  Valid input the oracle accepts but this
module does not (sharded ``biases``, a rank R-1 hard label, a ``[B, 1]`` ``true_expected_count``)
raises here, and the adapter declares those features unsupported.

One code path serves NumPy arrays on the CPU and CuPy arrays on the GPU: the array module is taken
from the arrays passed in and results come back as the same array type, in the input's dtype.  No
deep-learning framework is imported.  Arithmetic runs in float64 for float64 inputs and in float32
for float32/float16/bfloat16 inputs (never accumulating below float32).  In float32 the softmax
exponentials are taken without subtracting the row maximum wherever that is as accurate (see
``_SHIFT_FREE_EXP``), and the loss's final ``log(sum) - logit`` is then taken in float64.

Argument names and defaults are those of the frameworks' documentation (Paddle for the first two
losses, TensorFlow r1.4 for ``sampled_softmax_loss``).  Each loss ``f`` has an analytic ``f_grad``
taking the same arguments plus ``upstream`` and returning ``{"loss": ..., <argument>: gradient}``
for the gradient of ``sum(upstream * loss)``.

Documented behaviour for unusual but valid input (no error is raised, the answer is the limit):

* ``-inf`` logits take no probability mass; a hard label on a ``-inf`` logit gives ``+inf`` loss.
* A row whose logits along ``axis`` are all ``-inf`` has no softmax: its loss, softmax and
  gradient are NaN.  NaN logits make their row NaN; a ``+inf`` logit makes its row NaN.
* Soft labels need not sum to 1: the loss is ``-sum(label * log_softmax)`` and the gradient is the
  exact derivative ``softmax * sum(label) - label`` (not ``softmax - label``).

Invalid input raises ``ValueError`` or ``TypeError`` naming the argument and what was expected.

Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from impls import numpy_kernels as kernels
from impls import reference
from impls.caseio import SparseRows
# The oracle's sampler, shard layout and argument checks (fast paths for the usual valid input below):
# nothing else there is worth speeding up.
from impls.reference import (_array_module, _check_count, _check_int, _check_shape, log_uniform_candidate_sampler,
                             log_uniform_probability, shard_layout)

__all__ = [
    "softmax_with_cross_entropy",
    "softmax_with_cross_entropy_grad",
    "sampled_softmax_with_cross_entropy",
    "sampled_softmax_with_cross_entropy_grad",
    "sampled_softmax_loss",
    "sampled_softmax_loss_grad",
    "log_uniform_candidate_sampler",
    "log_uniform_probability",
    "shard_layout",
]

FLOAT_NAMES = reference.FLOAT_NAMES


# --------------------------------------------------------------------------------------------
# Array-module plumbing and argument checks
# --------------------------------------------------------------------------------------------
def _quiet(xp):
    """Silence NumPy's overflow/invalid warnings where -inf and NaN are documented results."""
    return np.errstate(invalid="ignore", divide="ignore", over="ignore") if xp is np else contextlib.nullcontext()


_NUMPY_1 = int(np.__version__.split(".")[0]) < 2


@contextlib.contextmanager
def _row_broadcast_speed(xp):
    """NumPy's smallest ufunc buffer (16 elements) while row-wise broadcast arithmetic runs.

    Measured (NumPy 2.4): ``[B, K] - [B, 1]`` with rows shorter than the default 8192-element
    buffer runs about 2-3x slower than a contiguous ``[B, K] - scalar`` ([128, 1000]: about 60 vs
    20 us); with a 16-element buffer it runs at the contiguous speed.  No operand here needs
    casting, so the buffer size changes only how the loops are split, never a result.  The setting
    is per thread (every row block sets its own).

    Not on NumPy 1.x: there a reduction along a row is summed buffer by buffer, so the buffer size
    changes the summation order (measured on 1.23: 54 of 64 row sums of a [64, 1000] float32 array
    differ), and a 16-element buffer makes the sum nearly sequential, less accurate.
    """
    if xp is not np or _NUMPY_1:
        yield
        return
    previous = np.setbufsize(16)
    try:
        yield
    finally:
        np.setbufsize(previous)


_FLOAT_DTYPES = frozenset(np.dtype(name) for name in FLOAT_NAMES if name != "bfloat16")


def _check_float(name, array):
    if getattr(array, "dtype", None) not in _FLOAT_DTYPES:  # a set lookup: dtype.name is computed in Python
        reference._check_float(name, array)  # bfloat16 passes there; anything else raises


def _check_range(xp, name, ids, upper, allowed=None):
    """The oracle's check, after two reductions without temporaries for the usual all-valid ids."""
    if ids.size == 0 or (int(ids.min()) >= 0 and int(ids.max()) < upper):
        return
    reference._check_range(xp, name, ids, upper, allowed)


def _check_positive(xp, name, array):
    """The oracle's check; returns the smallest value (a float; inf for an empty array)."""
    smallest = float(array.min()) if array.size else float("inf")
    if array.size == 0 or (smallest > 0 and bool(array.max() < xp.inf)):  # NaN fails both
        return smallest
    reference._check_positive(xp, name, array)
    return smallest


def _compute_dtype(xp, dtype):
    """float64 stays float64; everything narrower is computed in float32."""
    return xp.float64 if dtype == xp.float64 else xp.float32


_U32 = np.uint32
_F16_REBIAS = _U32((((15 - 127) << 23) + 0xFFF) & 0xFFFFFFFF)  # float32 -> float16 exponent, plus half-ulp - 1
_F16_MIN_NORMAL_BITS = _U32(113 << 23)  # 2**-14 as float32 bits: below it the result is subnormal (or 0)
_F16_OVERFLOW_BITS = _U32(143 << 23)  # 2**16 as float32 bits: from it on the result is inf (or NaN)
_F32_INF_BITS = _U32(255 << 23)


def _float32_to_float16(x):
    """``x.astype(float16)`` bit for bit (round to nearest even), several times faster on NumPy.

    NumPy converts float32 to float16 in software (about 3 ns an element, 60 ns when the result is
    subnormal, as most of a softmax gradient over 10^4 classes is); this is the same rounding in
    whole-array integer arithmetic.  Normal results: drop 13 mantissa bits rounding to nearest even
    and rebias the exponent.  Subnormal results: adding 0.5 in float32 rounds ``|x|`` to a multiple
    of 2**-24 (the float16 subnormal step) by the FPU's own round-to-nearest-even, and the low bits
    of the sum are the float16 bits.  Overflow gives inf, NaN stays NaN (quiet, payload kept).
    Tested against ``astype`` over every float32 exponent, subnormal boundary and tie.
    """
    f = np.ascontiguousarray(x, dtype=np.float32).view(_U32)
    a = f & _U32(0x7FFFFFFF)
    out = a >> _U32(13)  # in place from here on: fewer new arrays, fewer page faults
    out &= _U32(1)
    with np.errstate(over="ignore"):  # wraps for the small and huge values replaced below
        out += a
        out += _F16_REBIAS
    out >>= _U32(13)
    if a.size and a.min() < _F16_MIN_NORMAL_BITS:  # (min of an empty array raises)
        with np.errstate(invalid="ignore"):  # signalling NaNs among the values that are not low
            sub = np.add(a.view(np.float32), np.float32(0.5)).view(_U32)
        sub -= _U32(126 << 23)
        # out = where(a < 2**-14, sub, out) without branches or a bool mask: np.copyto(where=) and
        # np.where mispredict on a mask true for about half the elements (a softmax gradient), and
        # a bool operand is cast through a buffer; each took 5 to 15 times as long as this.  The
        # mask: a - 2**-14 has its top bit set exactly where a < 2**-14 (a < 2**31), and an
        # arithmetic shift spreads that bit to all 32.
        low = a - _F16_MIN_NORMAL_BITS
        np.right_shift(low.view(np.int32), 31, out=low.view(np.int32))
        sub ^= out
        sub &= low
        out ^= sub
    high = a >= _F16_OVERFLOW_BITS
    if high.any():
        nan = a > _F32_INF_BITS
        special = np.where(nan, _U32(0x7E00) | ((a >> _U32(13)) & _U32(0x3FF)), _U32(0x7C00))
        np.copyto(out, special, where=high)
    f = f >> _U32(16)
    f &= _U32(0x8000)
    out |= f
    return out.astype(np.uint16).view(np.float16)


def _cast_out(xp, array, dtype):
    """``array`` in the caller's dtype, without a copy when it already is (see ``_float32_to_float16``)."""
    if xp is np and array.dtype == np.float32 and np.dtype(dtype) == np.float16:
        return _float32_to_float16(array)
    return array.astype(dtype, copy=False)


# Row-parallel NumPy: the losses are independent per row, so large NumPy inputs are cut into blocks
# of rows (at least one per core) and computed on a thread per core (NumPy releases the GIL in its
# loops).  Each row is computed by the same operations whatever block it falls in, so results are
# bit-identical to a single block.  CuPy runs one block: the GPU parallelises inside each kernel.
_PARALLEL_MIN_ELEMENTS = 1 << 18  # below this, thread hand-offs cost more than they save
_BLOCK_ELEMENTS = 1 << 20  # measured: smaller blocks lose more to the GIL than they gain in cache
_THREADS = int(os.environ.get("CONFORMANCE_REFERENCE_THREADS", "0")) or len(
    os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1))
_POOL = None
_POOL_LOCK = threading.Lock()
# The compiled row kernels (impls/numpy_kernels.py) where numba is installed: they serve float32
# NumPy arrays where the exponentials are taken shift-free (``_SHIFT_FREE_EXP``); everything else,
# and every row they flag, takes the NumPy calls below.
_KERNELS = kernels.AVAILABLE
kernels.set_threads(_THREADS)


def _row_blocks(xp, n_rows, row_elements, min_elements=None):
    """``[(start, stop), ...]`` covering ``n_rows`` rows of ``row_elements`` each.

    One block below ``min_elements`` (default ``_PARALLEL_MIN_ELEMENTS``) elements in all.
    """
    if min_elements is None:
        min_elements = _PARALLEL_MIN_ELEMENTS
    if xp is not np or _THREADS < 2 or n_rows * row_elements < min_elements:
        return [(0, n_rows)]
    total = n_rows * row_elements
    step = -(-n_rows // max(_THREADS, -(-total // _BLOCK_ELEMENTS)))  # at least one block per thread
    return [(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def _for_blocks(blocks, function):
    """``function(start, stop)`` for every block, on the thread pool when there is more than one."""
    global _POOL
    if len(blocks) == 1:
        function(*blocks[0])
        return
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="reference")
    for future in [_POOL.submit(function, start, stop) for start, stop in blocks]:
        future.result()  # re-raises a block's exception


def _upstream(xp, upstream, shape, dtype):
    if upstream is None:
        return xp.ones(shape, dtype=dtype)
    _check_float("upstream", upstream)
    _check_shape("upstream", upstream, shape)
    return upstream.astype(dtype, copy=False)


# --------------------------------------------------------------------------------------------
# softmax_with_cross_entropy (Paddle)
# --------------------------------------------------------------------------------------------
def _swce(logits, label, soft_label, ignore_index, return_softmax, axis, upstream, want_grad):
    xp = _array_module(logits, label)
    _check_float("logits", logits)
    if logits.ndim < 1:
        raise ValueError("logits: expected an array of rank >= 1, got a scalar")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -logits.ndim <= axis < logits.ndim:
        raise ValueError("axis: expected an int in [%d, %d], got %r" % (-logits.ndim, logits.ndim - 1, axis))
    axis = int(axis) % logits.ndim
    num_classes = logits.shape[axis]
    if num_classes < 1:
        raise ValueError("logits: expected at least one class along axis %d, got shape %s"
                         % (axis, tuple(logits.shape)))
    loss_shape = logits.shape[:axis] + (1,) + logits.shape[axis + 1 :]
    if soft_label:
        _check_float("label", label)
        _check_shape("label", label, logits.shape)
    else:
        _check_int("label", label)
        _check_shape("label", label, loss_shape)
        _check_range(xp, "label", label, num_classes, allowed=ignore_index)

    cdtype = _compute_dtype(xp, logits.dtype)
    u = _upstream(xp, upstream, loss_shape, cdtype) if want_grad else None
    if (_KERNELS and _SHIFT_FREE_EXP and xp is np and logits.dtype == np.float32 and not soft_label
            and not return_softmax and axis == logits.ndim - 1 and logits.size):
        return _swce_kernel(logits, label, ignore_index, u, want_grad, loss_shape)
    blocks = _row_blocks(xp, logits.size // max(num_classes, 1), num_classes) if axis == logits.ndim - 1 else [None]
    if len(blocks) == 1:
        return _swce_rows(xp, logits, label, soft_label, ignore_index, return_softmax, axis, u, want_grad)
    # Class axis last: rows [R, K], computed block by block straight into the outputs.
    rows = logits.reshape(-1, num_classes)
    labels = label.reshape(rows.shape[0], -1)
    ups = u.reshape(-1, 1) if want_grad else None
    result = {"loss": xp.empty(loss_shape, dtype=logits.dtype)}
    if return_softmax:
        result["softmax"] = xp.empty(logits.shape, dtype=logits.dtype)
    if want_grad:
        result["logits"] = xp.empty(logits.shape, dtype=logits.dtype)
        if soft_label:
            result["label"] = xp.empty(logits.shape, dtype=logits.dtype)
    flat = {name: value.reshape(-1, value.shape[-1]) for name, value in result.items()}

    def block(start, stop):
        grad_out = flat["logits"][start:stop] if want_grad else None
        part = _swce_rows(xp, rows[start:stop], labels[start:stop], soft_label, ignore_index, return_softmax, 1,
                          ups[start:stop] if want_grad else None, want_grad, grad_out)
        for name, value in part.items():
            if value is not grad_out:  # else the gradient was computed where it belongs
                flat[name][start:stop] = value

    _for_blocks(blocks, block)
    return result


def _swce_kernel(logits, label, ignore_index, u, want_grad, loss_shape):
    """``_swce`` for float32 hard labels, class axis last, by the compiled row kernel; the rows it
    does not serve (a shift-free sum out of range: every NaN or +inf row too) again by ``_swce_rows``."""
    k = logits.shape[-1]
    rows = np.ascontiguousarray(logits).reshape(-1, k)
    labels = np.ascontiguousarray(label).reshape(-1)
    ups = np.ascontiguousarray(u).reshape(-1) if want_grad else _NO_UPSTREAM
    grad = np.empty(rows.shape, dtype=np.float32)  # the exponentials go here, and the gradient when wanted
    loss = np.empty(rows.shape[0], dtype=np.float64)
    served = np.empty(rows.shape[0], dtype=np.bool_)
    kernels.swce_hard(rows, labels, int(ignore_index), *_SHIFT_FREE_SUM_RANGE, ups, want_grad, grad, loss, served)
    loss = loss.astype(np.float32)
    if not served.all():
        redo = np.flatnonzero(~served)
        part = _swce_rows(np, rows[redo], labels[redo, None], False, ignore_index, False, 1,
                          ups[redo, None] if want_grad else None, want_grad)
        loss[redo] = part["loss"][:, 0]
        if want_grad:
            grad[redo] = part["logits"]
    result = {"loss": loss.reshape(loss_shape)}
    if want_grad:
        result["logits"] = grad.reshape(logits.shape)
    return result


_NO_UPSTREAM = np.empty(0, dtype=np.float32)  # the kernels' upstream argument when there is no gradient


# Shift-free exponentials.  A softmax is usually computed as exp(z - max(z)) so that nothing
# overflows; that costs two passes over [B, K] (the row maximum, the subtraction) and rounds every
# z - max.  When a row's sum of exp(z) lies within ``_SHIFT_FREE_SUM_RANGE``, exp(z) itself is as
# accurate (no argument is rounded): the sum is a normal number whose reciprocal is normal, and an
# exponential that is subnormal is below 2^-63 of the sum, far under any tolerance.  The sums are
# checked after the fact and the rows outside the range are recomputed with the shift, so every
# row's result depends on that row alone (not on the block or batch it came in).  Used for float32
# arithmetic only: float64, in which the golden outputs are computed, keeps the textbook shift.
_SHIFT_FREE_EXP = True
_SHIFT_FREE_SUM_RANGE = (2.0 ** -63, 2.0 ** 64)


# Row sums by BLAS.  NumPy's pairwise sum is scalar code here, about 0.42 ns an element, while a
# dot product of each row with ones runs at 0.13-0.17 ns (measured, NumPy 2.4 and its OpenBLAS).
# ``e[..., None, :] @ ones`` calls one dot product per row, so a row's sum depends on that row alone
# (tested: the same bits alone, in any batch or block, and at any offset), as with ``sum``.
# Accuracy: at most 4 ulp from the exact sum (math.fsum) of 10^3 to 10^6 exponentials, against
# 2 ulp for NumPy's pairwise sum; the suite's float32 tolerance is max(16, 2*sqrt(K)) ulp.
# Only rows of at most ``_DOT_ROW_SUMS_MAX`` elements: NumPy's matmul holds the GIL through that
# loop (measured: a Python thread ran at half speed beside it, at full speed beside ``sum``), so
# the row blocks of long rows, which run on threads, lost what it saved (measured with two
# threads, rows of 1000-2000: 12-20% faster; rows of 4000-30000: 2-5% slower).  The choice depends
# on the row length only, so it keeps every row's bits independent of its batch.  float32 only
# (float64, the golden dtype, keeps NumPy's sum), and not on NumPy 1.x, whose older OpenBLAS was
# both slower and less exact there (65 ulp at 10^6).
_DOT_ROW_SUMS = not _NUMPY_1
_DOT_ROW_SUMS_MAX = 2048


@functools.lru_cache(maxsize=8)
def _float32_ones(length):
    """A read-only float32 vector of ones: one allocation per row length, not one per call."""
    ones = np.ones(length, dtype=np.float32)
    ones.flags.writeable = False
    return ones


def _row_sums(xp, e, axis):
    """``e.sum(axis=axis, keepdims=True)``; for float32 NumPy rows, by a dot product per row (see above)."""
    if not (_DOT_ROW_SUMS and xp is np and e.dtype == np.float32 and e.ndim >= 1 and axis in (e.ndim - 1, -1)
            and e.strides[-1] == 4 and 1 < e.shape[-1] <= _DOT_ROW_SUMS_MAX):
        return e.sum(axis=axis, keepdims=True)
    return np.matmul(e[..., None, :], _float32_ones(e.shape[-1]))  # [..., 1, K] @ [K] -> [..., 1]


def _exp_and_sum(xp, z, axis, out=None, shift_free=True):
    """``(e, s, shift)``: ``e = exp(z - shift)`` in the compute dtype, ``s`` its sums along ``axis``.

    ``shift`` (keepdims) is 0 for the rows computed shift-free (see ``_SHIFT_FREE_EXP``;
    ``shift_free=False`` shifts every row), else the row maximum, or 0 for a row that is all
    ``-inf`` (so that it yields ``s = 0`` and NaN rather than ``-inf - -inf`` leaking into other
    arithmetic); None when every row was computed shift-free.  ``e`` is written to ``out`` when
    given, else to a new array; ``z`` is left as it was.
    """
    cdtype = _compute_dtype(xp, z.dtype)
    if shift_free and _SHIFT_FREE_EXP and cdtype == xp.float32:
        if z.dtype == cdtype:
            e = xp.exp(z, out=out)
        else:  # float16/bfloat16: converting first is faster than NumPy's exp converting as it goes
            converted = z.astype(cdtype)
            e = xp.exp(converted, out=converted if out is None else out)
        s = _row_sums(xp, e, axis)
        low, high = _SHIFT_FREE_SUM_RANGE
        if s.size == 0 or (bool(s.min() >= low) and bool(s.max() <= high)):  # NaN fails both
            return e, s, None
        in_range = (s >= low) & (s <= high)
        shifted_e, shifted_s, shift = _exp_and_sum(xp, z, axis, shift_free=False)
        xp.copyto(e, shifted_e, where=~in_range)
        return e, xp.where(in_range, s, shifted_s), xp.where(in_range, 0, shift)
    if z.dtype != cdtype:  # float16/bfloat16: NumPy's ufuncs on them convert element by element, slowly
        z = z.astype(cdtype)
        out = z if out is None else out
    shift = z.max(axis=axis, keepdims=True)  # exact in any dtype
    shift = xp.where(shift == -xp.inf, 0, shift)
    e = xp.subtract(z, shift, out=out)
    xp.exp(e, out=e)
    return e, _row_sums(xp, e, axis), shift


def _along_axis(xp, a, at, axis):
    """``(flat, index)``: ``flat[index]`` are the elements ``take_along_axis(a, at, axis)``.

    For C-ordered 2-D ``a`` with ``axis=1`` (every row block): a 1-D take and scatter on flat
    positions are several times faster in NumPy than ``take_along_axis``/``put_along_axis``, which
    build broadcast index arrays.  Otherwise ``flat`` is None (use the along-axis functions).
    """
    if a.ndim == 2 and axis == 1 and a.flags.c_contiguous and at.shape == (a.shape[0], 1):
        return a.reshape(-1), at[:, 0].astype(xp.int64) + xp.arange(0, a.size, a.shape[1], dtype=xp.int64)
    return None, None


def _take_at(xp, a, at, axis):
    flat, index = _along_axis(xp, a, at, axis)
    return xp.take_along_axis(a, at, axis=axis) if flat is None else xp.take(flat, index)[:, None]


def _add_at(xp, a, at, values, axis):
    """``a[at along axis] += values`` in place (``at`` holds one index per row)."""
    flat, index = _along_axis(xp, a, at, axis)
    if flat is None:
        xp.put_along_axis(a, at, xp.take_along_axis(a, at, axis=axis) + values, axis=axis)
    else:
        flat[index] += values.reshape(-1)


def _swce_rows(xp, logits, label, soft_label, ignore_index, return_softmax, axis, u, want_grad, grad_out=None):
    """The checked computation on (a block of rows of) the inputs; ``u`` the upstream in the compute dtype.

    ``grad_out``: where the logits gradient goes (the block's rows of the result); the exponentials
    are computed there when its dtype is the compute dtype, which saves copying the block's gradient.
    """
    out_dtype = logits.dtype
    cdtype = _compute_dtype(xp, logits.dtype)
    with _quiet(xp), _row_broadcast_speed(xp):
        work = grad_out if grad_out is not None and grad_out.dtype == cdtype else None
        if soft_label:
            # Not shift-free: log(s) * sum(y) - sum(y * z) would cancel where the loss is small.
            e, s, shift = _exp_and_sum(xp, logits, axis, out=work, shift_free=False)
            y = label.astype(cdtype)
            z = logits.astype(cdtype, copy=False) - shift
            # 0 * -inf would be NaN: a class with zero label weight contributes nothing.
            yz = xp.where(y == 0, 0, y * z) if bool(xp.isinf(logits).any()) else y * z
            y_sum = y.sum(axis=axis, keepdims=True)
            loss = xp.log(s) * y_sum - yz.sum(axis=axis, keepdims=True)
            # A float32 z = logits - shift overflows to -inf in a row spanning more than FLT_MAX
            # (a logit near -FLT_MAX below a maximum > 0), making its loss and label gradient inf
            # or NaN where the oracle's float64 ones are finite.  Such rows (found by their loss:
            # rows with finite losses pay nothing) get z and the loss again in float64; the other
            # rows keep their float32 bits, so a row's result never depends on its block.
            z64 = None
            if cdtype != xp.float64:
                redo = ~xp.isfinite(loss)
                if bool(redo.any()):
                    z64 = logits.astype(xp.float64) - shift
                    yz = xp.where(y == 0, 0, y * z64)
                    loss = xp.where(redo, xp.log(s.astype(xp.float64)) * y_sum - yz.sum(axis=axis, keepdims=True),
                                    loss)
        else:
            ignored = label == ignore_index
            any_ignored = bool(ignored.any())
            at = xp.where(ignored, 0, label) if any_ignored else label  # a valid index in every row
            e, s, shift = _exp_and_sum(xp, logits, axis, out=work)
            picked = _take_at(xp, logits, at, axis).astype(cdtype)  # z_label, exact
            # log(s) + (shift - z_label).  With the row maximum as the shift both terms are
            # non-negative; shift-free, both can be large where the loss is small, so the sum is
            # taken in float64 (exact enough for float32 operands).
            loss = xp.log(s.astype(xp.float64, copy=False))
            loss = loss - picked if shift is None else loss + (shift.astype(xp.float64, copy=False) - picked)
            if any_ignored:
                loss = xp.where(ignored, 0, loss)
        result = {"loss": _cast_out(xp, loss.astype(cdtype, copy=False), out_dtype)}
        if return_softmax or want_grad:
            inv_s = 1 / s
        if return_softmax:
            result["softmax"] = _cast_out(xp, e * inv_s, out_dtype)
        if want_grad:
            if soft_label:  # d loss / d label = -log_softmax = log(s) - (logits - shift)
                label_grad = u * (xp.log(s) - z)
                if z64 is not None:
                    label_grad = xp.where(redo, u * (xp.log(s) - z64), label_grad)
                result["label"] = _cast_out(xp, label_grad, out_dtype)
            grad = e  # reuse the exp buffer: grad = u * (softmax * sum(y) - y)
            if soft_label:
                grad *= u * y_sum * inv_s
                grad -= u * y
            else:
                if any_ignored:
                    u = xp.where(ignored, 0, u)
                grad *= u * inv_s
                _add_at(xp, grad, at, -u, axis)
                if any_ignored:  # 0 even where the row's softmax is undefined (all -inf, NaN)
                    grad = xp.where(ignored, 0, grad)
            result["logits"] = _cast_out(xp, grad, out_dtype)
    return result


def softmax_with_cross_entropy(logits, label, soft_label=False, ignore_index=-100, numeric_stable_mode=True,
                               return_softmax=False, axis=-1):
    """Paddle's softmax_with_cross_entropy; ``(loss, softmax)`` when ``return_softmax``.

    ``numeric_stable_mode`` is accepted for signature compatibility: the reference is always stable.
    """
    result = _swce(logits, label, soft_label, ignore_index, return_softmax, axis, None, want_grad=False)
    return (result["loss"], result["softmax"]) if return_softmax else result["loss"]


def softmax_with_cross_entropy_grad(logits, label, soft_label=False, ignore_index=-100, numeric_stable_mode=True,
                                    return_softmax=False, axis=-1, upstream=None):
    """``{"loss", "logits"}`` (plus ``"softmax"`` when asked, and ``"label"`` for soft labels): the
    gradients of ``sum(upstream * loss)``."""
    return _swce(logits, label, soft_label, ignore_index, return_softmax, axis, upstream, want_grad=True)


# --------------------------------------------------------------------------------------------
# The shared sampled-softmax core: softmax cross-entropy over [true columns | sampled columns]
# --------------------------------------------------------------------------------------------
def _sampled_core(xp, z_true, z_sampled, hit_ids, offset, upstream, want_grad, recompute=None):
    """Softmax cross-entropy of the rows ``[z_true | z_sampled]`` with label 1/T on the T true columns.

    The two blocks of columns are separate arrays (or two views of one), so that the ``[B, S]``
    sampled logits of ``sampled_softmax_loss`` are used where the matmul wrote them, never copied
    beside the true ones.  ``offset`` (``[S]`` or None) is added to ``z_sampled`` first; ``hit_ids``,
    ``(true_ids [N, T], candidates [S])`` or None, removes each sampled column whose candidate is one
    of its row's true ids (its probability becomes exactly 0, the limit of Paddle's ``-1e20`` and
    TensorFlow's ``-FLT_MAX``).  Both arrays
    are overwritten: with ``want_grad`` they hold the gradient of ``sum(upstream * loss)``.  Returns
    the loss ``[N]``.

    ``recompute(rows)``, when given, returns those rows' ``(z_true, z_sampled)`` afresh (as the
    caller first computed them): the exponentials are then taken shift-free, in place (see
    ``_SHIFT_FREE_EXP``), and the rows whose sums leave the range are recomputed with the shift;
    float32 NumPy rows then go to the compiled kernel (``numpy_kernels.sampled_core``).
    """
    n = z_true.shape[0]
    u = _upstream(xp, upstream, (n,), z_true.dtype) if want_grad else None
    loss = xp.empty(n, dtype=z_true.dtype)
    shift_free = recompute is not None and _SHIFT_FREE_EXP and z_true.dtype == xp.float32

    def hits(rows):
        if hit_ids is None:
            return None
        true_ids, candidates = hit_ids
        if true_ids.shape[1] == 1:
            return true_ids[rows] == candidates
        return (true_ids[rows][:, :, None] == candidates[None, None, :]).any(axis=1)

    if _KERNELS and shift_free and xp is np and n:
        true_ids, candidates = hit_ids if hit_ids is not None else (np.empty((0, 1), np.int64), np.empty(0, np.int64))
        served = np.empty(n, dtype=np.bool_)
        kernels.sampled_core(z_true, z_sampled, offset, true_ids, candidates, hit_ids is not None,
                             *_SHIFT_FREE_SUM_RANGE, _NO_UPSTREAM if u is None else u, want_grad, loss, served)
        if not served.all():  # again, from their logits, with the shift
            redo = np.flatnonzero(~served)
            zt, zs = recompute(redo)
            loss[redo], _ = _sampled_rows(xp, zt, zs, offset, hits(redo), None if u is None else u[redo], False)
            z_true[redo], z_sampled[redo] = zt, zs
        return loss

    def block(start, stop):
        hit = hits(slice(start, stop))
        ups = u[start:stop] if want_grad else None
        loss[start:stop], redo = _sampled_rows(xp, z_true[start:stop], z_sampled[start:stop], offset, hit, ups,
                                               shift_free)
        if redo is not None:  # rows out of the shift-free range: again, from their logits, with the shift
            zt, zs = recompute(start + redo)
            loss[start + redo], _ = _sampled_rows(xp, zt, zs, offset, None if hit is None else hit[redo],
                                                  None if ups is None else ups[redo], False)
            z_true[start + redo], z_sampled[start + redo] = zt, zs

    _for_blocks(_row_blocks(xp, n, z_true.shape[1] + z_sampled.shape[1]), block)
    return loss


def _sampled_rows(xp, zt, zs, offset, hit, u, shift_free):
    """``_sampled_core`` on a block of rows, in place: ``(loss, redo)``.

    ``redo``: the rows (indices into the block) whose shift-free sums left the range, their results
    not computed; None when there are none (always when not ``shift_free``).
    """
    num_true = zt.shape[1]
    redo = None
    with _quiet(xp), _row_broadcast_speed(xp):
        if offset is not None:
            zs += offset
        if hit is not None:
            zs[hit] = -xp.inf
        if shift_free:
            # loss = log(s) - mean(z_true): both can be large where the loss is small, so in float64.
            mean_true = zt.astype(xp.float64).sum(axis=1) / num_true
            for e in (zt, zs):
                xp.exp(e, out=e)
            s = zt.sum(axis=1, keepdims=True) + _row_sums(xp, zs, 1)
            low, high = _SHIFT_FREE_SUM_RANGE
            if s.size and not (bool(s.min() >= low) and bool(s.max() <= high)):  # NaN fails both
                redo = xp.flatnonzero(~((s >= low) & (s <= high)))
            loss = (xp.log(s.astype(xp.float64))[:, 0] - mean_true).astype(zt.dtype)
        else:
            m = xp.maximum(zt.max(axis=1, keepdims=True), zs.max(axis=1, keepdims=True))
            m = xp.where(m == -xp.inf, 0, m)
            # lse - mean(z_true) = log(s) + mean(m - z_true): non-negative terms, no cancellation.
            # In float64, as the oracle: a float32 gap m - z_true (up to 2 * FLT_MAX) or the sum
            # of T gaps (each up to FLT_MAX) overflows where the loss itself is finite, e.g. a
            # sampled logit near FLT_MAX over true logits near 0 (loss ~ FLT_MAX).  [N, T] only.
            mean_gap = (m.astype(xp.float64, copy=False) - zt.astype(xp.float64, copy=False)).mean(axis=1)
            for e in (zt, zs):
                e -= m
                xp.exp(e, out=e)
            s = zt.sum(axis=1, keepdims=True) + _row_sums(xp, zs, 1)
            loss = (xp.log(s.astype(xp.float64, copy=False))[:, 0] + mean_gap).astype(zt.dtype, copy=False)
        if u is not None:
            _to_gradient(xp, zt, zs, s, u)
    return loss, redo


def _to_gradient(xp, et, es, s, u):
    """The exponentials ``[et | es]`` of rows summing to ``s`` become the gradient of ``u * loss``
    (label 1/T on the T true columns), in place."""
    scale = u[:, None] / s
    es *= scale
    et *= scale
    et -= u[:, None] / et.shape[1]


# --------------------------------------------------------------------------------------------
# sampled_softmax_with_cross_entropy (Paddle 1.8, logits-based, per-row samples)
# --------------------------------------------------------------------------------------------
def _sswce(logits, label, num_samples, num_true, remove_accidental_hits, use_customized_samples,
           customized_samples, customized_probabilities, seed, upstream, want_grad):
    xp = _array_module(logits, label, customized_samples, customized_probabilities)
    _check_float("logits", logits)
    if logits.ndim != 2:
        raise ValueError("logits: expected a 2-D array [N, K], got shape %s" % (tuple(logits.shape),))
    n, k = logits.shape
    _check_count("num_true", num_true, 1)
    _check_count("num_samples", num_samples, 1, k)
    _check_int("label", label)
    _check_shape("label", label, (n, num_true))
    _check_range(xp, "label", label, k)
    if use_customized_samples:
        if customized_samples is None or customized_probabilities is None:
            raise ValueError("customized_samples, customized_probabilities: required when use_customized_samples=True")
        samples, probabilities = customized_samples, customized_probabilities
        _check_int("customized_samples", samples)
        _check_shape("customized_samples", samples, (n, num_true + num_samples))
        _check_range(xp, "customized_samples", samples, k)
        _check_float("customized_probabilities", probabilities)
        _check_shape("customized_probabilities", probabilities, samples.shape)
        p_min = _check_positive(xp, "customized_probabilities", probabilities)
        if not bool((samples[:, :num_true] == label).all()):
            raise ValueError("customized_samples: expected the first num_true=%d columns to equal label" % num_true)
    else:
        # One log-uniform candidate set for the batch, as Paddle's sampler draws it.
        candidates, true_expected, sampled_expected = log_uniform_candidate_sampler(
            label, num_true, num_samples, True, k, seed=seed)
        samples = xp.concatenate([label, xp.broadcast_to(candidates, (n, num_samples))], axis=1)
        probabilities = xp.concatenate([true_expected, xp.broadcast_to(sampled_expected, (n, num_samples))], axis=1)
        p_min = min(float(true_expected.min()), float(sampled_expected.min())) if n else float("inf")

    # C order (a copy if not): the gathers below then walk each row's logits in order.
    samples, probabilities = xp.ascontiguousarray(samples), xp.ascontiguousarray(probabilities)
    if upstream is not None:  # documented as the loss's shape [N, 1]
        _check_float("upstream", upstream)
        _check_shape("upstream", upstream, (n, 1))
        upstream = upstream[:, 0]
    cdtype = _compute_dtype(xp, logits.dtype)
    u = _upstream(xp, upstream, (n,), cdtype) if want_grad else None
    rows_k = xp.ascontiguousarray(logits).reshape(n, k)
    loss = xp.empty(n, dtype=cdtype)
    # Zero-filled block by block (on the block threads).  Not np.zeros: measured 1.2-1.3x slower at
    # K = 10^5 and 10^6 (calloc's fresh pages are not huge pages, and the scatter faults each in).
    grad = xp.empty((n, k), dtype=logits.dtype) if want_grad else None
    # Shift-free, exp(logit - log p) is taken as exp(logit) / p: one division instead of a
    # logarithm an element (the logarithms cost more than the exponentials).  It is also closer to
    # the exact value (two roundings, not the rounding of logit - log p amplified by the exponential).
    # The rows whose sums leave the range are recomputed with the shift, as ``_sampled_core`` does;
    # the range's lower end also keeps an exponential that underflowed (absolute error below
    # 2^-149, divided by p at least ``p_min``) far below a float32 ulp of the row's sum: the sum of
    # the T+S errors is at most 2^-39 of it.  The compiled kernel flushes exponentials below 2^-126
    # (FLT_MIN) to 0, so its lower end is 2^23 times higher for the same margin.
    shift_free = _SHIFT_FREE_EXP and cdtype == xp.float32 and n > 0
    low = max(_SHIFT_FREE_SUM_RANGE[0], samples.shape[1] * 2.0 ** -110 / p_min) if shift_free else None
    kernel_low = max(_SHIFT_FREE_SUM_RANGE[0], samples.shape[1] * 2.0 ** -87 / p_min) if shift_free else None

    def block(start, stop):
        _sswce_rows(xp, rows_k[start:stop], label[start:stop], samples[start:stop], probabilities[start:stop],
                    num_true, remove_accidental_hits, None if u is None else u[start:stop], loss[start:stop],
                    None if grad is None else grad[start:stop], low)

    if _KERNELS and shift_free and xp is np and logits.dtype == np.float32:
        _sswce_kernel(rows_k, label, samples, probabilities, remove_accidental_hits, kernel_low, u, loss, grad)
    else:
        _for_blocks(_sswce_blocks(xp, n, samples.shape[1], k), block)
    result = {"loss": _cast_out(xp, loss[:, None], logits.dtype)}
    if want_grad:
        result["logits"] = grad
    return result


def _sswce_kernel(logits, label, samples, probabilities, remove_accidental_hits, low, u, loss, grad):
    """``_sswce``'s rows by the compiled row kernel (float32 logits), ``loss`` and ``grad`` written in
    place; the rows it does not serve (a sum out of the shift-free range) again by ``_sswce_rows``
    with the shift."""
    n, k = logits.shape
    p = np.ascontiguousarray(probabilities, dtype=np.float32)  # as the NumPy path divides by them
    label = np.ascontiguousarray(label, dtype=np.int64)
    samples = np.ascontiguousarray(samples, dtype=np.int64)
    e = np.empty(samples.shape, dtype=np.float32)
    served = np.empty(n, dtype=np.bool_)
    kernels.sswce_rows(logits, label, samples, p, bool(remove_accidental_hits), low, _SHIFT_FREE_SUM_RANGE[1],
                       _NO_UPSTREAM if u is None else u, grad is not None,
                       _NO_GRADIENT if grad is None else grad, loss, e, served,
                       kernels.streams(grad, samples.shape[1]))
    if not served.all():
        redo = np.flatnonzero(~served)
        part_loss = np.empty(len(redo), dtype=loss.dtype)
        part_grad = None if grad is None else np.empty((len(redo), k), dtype=grad.dtype)
        _sswce_rows(np, logits[redo], label[redo], samples[redo], p[redo], label.shape[1], remove_accidental_hits,
                    None if u is None else u[redo], part_loss, part_grad, None)
        loss[redo] = part_loss
        if grad is not None:
            grad[redo] = part_grad


_NO_GRADIENT = np.empty((0, 0), dtype=np.float32)  # the kernels' gradient argument when there is none


# A zero-filled element of the dense gradient costs about 1/16 of a sampled column's gather,
# exponential and scatter (measured: [64, 10^4] with S=64 spends most of its time in the fill).
_FILL_PER_SAMPLE = 16


def _sswce_blocks(xp, n, width, k):
    """The row blocks of ``_sswce``: a block gathers, exponentiates and scatters its rows' ``width``
    (T+S) columns and zero-fills their ``k``.  Measured: two blocks took 1.4-3.9x as long as one at
    B <= 128, K <= 10^4 (the GIL changes hands between the threads' many small NumPy calls), one
    block 1.3-1.6x as long as several at K >= 10^5."""
    return _row_blocks(xp, n, width + k // _FILL_PER_SAMPLE)


def _sswce_rows(xp, logits, label, samples, probabilities, num_true, remove_accidental_hits, u, loss, grad, low):
    """``_sswce`` on a block of rows: ``loss`` (and ``grad`` when not None) written in place.

    ``low``: the shift-free range's lower end for these inputs, or None to take every row with the
    shift (float64, and inputs the shift-free form does not serve).
    """
    n, k = logits.shape
    cdtype = loss.dtype
    with _quiet(xp), _row_broadcast_speed(xp):
        # Row-major flat positions of the samples: a 1-D take and scatter are several times faster
        # in NumPy than take_along_axis and 2-D fancy indexing, which build broadcast index arrays.
        flat = samples + (xp.arange(n, dtype=xp.int64) * k)[:, None]
        flat_logits = logits.reshape(-1)

        def sampled_logits(rows=slice(None)):
            """``logits[rows, samples[rows]]`` in the compute dtype."""
            if flat_logits.dtype == cdtype:  # the ids are checked, and NumPy buffers mode="raise" outputs
                return xp.take(flat_logits, flat[rows], **({"mode": "clip"} if xp is np else {}))
            return xp.take(flat_logits, flat[rows]).astype(cdtype)

        def shifted(rows, z):
            """The textbook form on ``z = sampled_logits(rows)``: ``_sampled_rows`` with the shift."""
            z -= xp.log(probabilities[rows].astype(cdtype))
            zt, zs = z[:, :num_true], z[:, num_true:]
            return _sampled_rows(xp, zt, zs, None, None if hit is None else hit[rows], None if u is None else u[rows],
                                 False)[0]

        hit = None
        if remove_accidental_hits:
            if num_true == 1:
                hit = samples[:, 1:] == label
            else:
                hit = (samples[:, num_true:, None] == label[:, None, :]).any(axis=2)
        z = sampled_logits()
        if low is None:
            loss[:] = shifted(slice(None), z)
        else:
            p = probabilities.astype(cdtype, copy=False)
            # loss = log(s) - mean(z_true): both can be large where the loss is small, so in float64.
            true_p = p[:, :num_true].astype(xp.float64)
            mean_true = (z[:, :num_true].astype(xp.float64) - xp.log(true_p)).sum(axis=1) / num_true
            if hit is not None:
                z[:, num_true:][hit] = -xp.inf
            xp.exp(z, out=z)
            z /= p
            s = _row_sums(xp, z, 1)
            high = _SHIFT_FREE_SUM_RANGE[1]
            redo = None
            if s.size and not (bool(s.min() >= low) and bool(s.max() <= high)):  # NaN fails both
                redo = xp.flatnonzero(~((s >= low) & (s <= high)))
            loss[:] = (xp.log(s.astype(xp.float64))[:, 0] - mean_true).astype(cdtype)
            if u is not None:
                _to_gradient(xp, z[:, :num_true], z[:, num_true:], s, u)
            if redo is not None:  # rows out of the shift-free range: again, from their logits, with the shift
                fresh = sampled_logits(redo)
                loss[redo] = shifted(redo, fresh)
                z[redo] = fresh
        if grad is None:
            return
        # Scatter-add into the dense rows: duplicate samples in a row accumulate, as the chain rule says.
        out = grad.reshape(-1)
        out.fill(0)
        at, values = flat.reshape(-1), z.reshape(-1)
        if grad.dtype == cdtype:
            _scatter_add(xp, out, at, values)
        else:  # accumulate in the compute dtype; only the sampled positions are non-zero: convert just those
            sums = xp.zeros(out.size, dtype=cdtype)
            _scatter_add(xp, sums, at, values)
            out[at] = _cast_out(xp, sums[at], grad.dtype)


def sampled_softmax_with_cross_entropy(logits, label, num_samples, num_true=1, remove_accidental_hits=True,
                                       use_customized_samples=False, customized_samples=None,
                                       customized_probabilities=None, seed=0):
    """Paddle's sampled softmax cross-entropy on logits ``[N, K]``; returns the loss ``[N, 1]``."""
    return _sswce(logits, label, num_samples, num_true, remove_accidental_hits, use_customized_samples,
                  customized_samples, customized_probabilities, seed, None, want_grad=False)["loss"]


def sampled_softmax_with_cross_entropy_grad(logits, label, num_samples, num_true=1, remove_accidental_hits=True,
                                            use_customized_samples=False, customized_samples=None,
                                            customized_probabilities=None, seed=0, upstream=None):
    """``{"loss" [N, 1], "logits" [N, K]}``: the gradient of ``sum(upstream * loss)``, upstream ``[N, 1]``."""
    return _sswce(logits, label, num_samples, num_true, remove_accidental_hits, use_customized_samples,
                  customized_samples, customized_probabilities, seed, upstream, want_grad=True)


# --------------------------------------------------------------------------------------------
# sampled_softmax_loss (TensorFlow, weights-based, shared samples, sharded weights)
# --------------------------------------------------------------------------------------------
def _shard_of(xp, ids, num_classes, num_shards, partition_strategy):
    """``(shard, row)`` of every class id under the strategy."""
    if partition_strategy == "mod":
        return ids % num_shards, ids // num_shards
    base, extra = divmod(num_classes, num_shards)
    boundary = extra * (base + 1)  # ids below this live in the first `extra` (longer) shards
    long_shard = ids // (base + 1)
    short_shard = extra + (ids - boundary) // max(base, 1)
    shard = xp.where(ids < boundary, long_shard, short_shard)
    start = xp.where(shard < extra, shard * (base + 1), boundary + (shard - extra) * base)
    return shard, ids - start


def _gather_rows(xp, shards, ids, num_classes, partition_strategy):
    if len(shards) == 1:
        return shards[0][ids]
    shard, row = _shard_of(xp, ids, num_classes, len(shards), partition_strategy)
    out = xp.empty((ids.shape[0], shards[0].shape[1]), dtype=shards[0].dtype)
    for p, weights in enumerate(shards):
        mask = shard == p
        out[mask] = weights[row[mask]]
    return out


def _scatter_add(xp, out, index, values):
    """``out[index] += values`` with repeated indices accumulating (``np.add.at`` / ``cupyx.scatter_add``)."""
    if xp is np:
        np.add.at(out, index, values)
    else:
        import cupyx  # noqa: PLC0415

        cupyx.scatter_add(out, index, values)


def _embedding_gradients(xp, ids, rows, bias_values, layout, partition_strategy, dtype):
    """Weight and bias gradients of ``weights[ids[i]] += rows[i]``, ``biases[ids[i]] += bias_values[i]``.

    Returns ``(shards, biases)`` as :class:`impls.caseio.SparseRows` in ``dtype``, as the frameworks
    return an embedding lookup's gradient (TensorFlow's ``IndexedSlices``, PyTorch's sparse
    gradients): one per weight shard (shard-local row ids, ``dense_shape`` ``[rows_p, D]``) and one
    ``[num_classes]`` for the biases, so no work or memory grows with ``num_classes``.  Each distinct
    id appears once, ids ascending: the ids are sorted once (stable) and the repeats of an id are
    added to its first row in their original order (``np.add.at``), as a sequential sum would, so
    densifying gives the bits of a sequential dense scatter-add.  ``rows`` and ``bias_values`` are
    the caller's scratch: they are overwritten.
    """
    num_classes, dim = sum(layout), rows.shape[1]
    if _KERNELS and xp is np and rows.dtype == np.float32 and bias_values.dtype == np.float32:
        indices, heads = kernels.sum_repeated_rows(ids, rows, bias_values)  # the same additions, one call
    else:
        # CuPy's argsort is a stable radix sort and takes no ``kind``; its repeats are added atomically.
        order = xp.argsort(ids, kind="stable") if xp is np else xp.argsort(ids)
        sorted_ids = ids[order]
        first = xp.empty(sorted_ids.size, dtype=bool)
        first[:1] = True
        xp.not_equal(sorted_ids[1:], sorted_ids[:-1], out=first[1:])
        heads = order[first]  # the first occurrence of each distinct id
        if not bool(first.all()):
            repeats = ~first
            later = order[repeats]
            head = heads[xp.cumsum(first)[repeats] - 1]
            for values in (rows, bias_values):
                _scatter_add(xp, values, head, values[later])
        indices = sorted_ids[first]
    weight_rows = _cast_out(xp, rows[heads], dtype)
    biases = SparseRows(indices, _cast_out(xp, bias_values[heads], dtype), (num_classes,))
    if len(layout) == 1:
        return [SparseRows(indices, weight_rows, (num_classes, dim))], biases
    shard, row = _shard_of(xp, indices, num_classes, len(layout), partition_strategy)
    shards = []
    for p, size in enumerate(layout):
        mine = shard == p
        shards.append(SparseRows(row[mine], weight_rows[mine], (size, dim)))
    return shards, biases


def _ssl(weights, biases, labels, inputs, num_sampled, num_classes, num_true, sampled_values,
         remove_accidental_hits, partition_strategy, seed, upstream, want_grad):
    sharded = isinstance(weights, (list, tuple))
    shards = list(weights) if sharded else [weights]
    if not shards:
        raise ValueError("weights: expected an array [num_classes, dim] or a non-empty list of shards")
    xp = _array_module(inputs, biases, labels, *shards)
    _check_float("inputs", inputs)
    if inputs.ndim != 2:
        raise ValueError("inputs: expected a 2-D array [batch_size, dim], got shape %s" % (tuple(inputs.shape),))
    batch, dim = inputs.shape
    _check_count("num_classes", num_classes, 1)
    _check_count("num_true", num_true, 1)
    _check_count("num_sampled", num_sampled, 1)
    if partition_strategy not in ("mod", "div"):
        raise ValueError("partition_strategy: expected 'mod' or 'div', got %r" % (partition_strategy,))
    layout = shard_layout(num_classes, len(shards), partition_strategy)
    for p, (w, rows) in enumerate(zip(shards, layout)):
        name = "weights[%d]" % p if sharded else "weights"
        _check_float(name, w)
        if w.dtype != inputs.dtype:
            raise TypeError("%s: expected dtype %s (that of inputs), got %s" % (name, inputs.dtype, w.dtype))
        _check_shape(name, w, (rows, dim))
    _check_float("biases", biases)
    if biases.dtype != inputs.dtype:
        raise TypeError("biases: expected dtype %s (that of inputs), got %s" % (inputs.dtype, biases.dtype))
    _check_shape("biases", biases, (num_classes,))
    _check_int("labels", labels)
    _check_shape("labels", labels, (batch, num_true))
    _check_range(xp, "labels", labels, num_classes)
    if sampled_values is None:
        sampled_values = log_uniform_candidate_sampler(labels, num_true, num_sampled, True, num_classes, seed=seed)
    if not isinstance(sampled_values, (list, tuple)) or len(sampled_values) != 3:
        raise ValueError("sampled_values: expected a tuple (sampled_candidates, true_expected_count, "
                         "sampled_expected_count)")
    candidates, true_expected, sampled_expected = sampled_values
    _check_int("sampled_values[0] (sampled_candidates)", candidates)
    _check_shape("sampled_values[0] (sampled_candidates)", candidates, (num_sampled,))
    _check_range(xp, "sampled_values[0] (sampled_candidates)", candidates, num_classes)
    _check_float("sampled_values[1] (true_expected_count)", true_expected)
    _check_shape("sampled_values[1] (true_expected_count)", true_expected, (batch, num_true))
    _check_positive(xp, "sampled_values[1] (true_expected_count)", true_expected)
    _check_float("sampled_values[2] (sampled_expected_count)", sampled_expected)
    _check_shape("sampled_values[2] (sampled_expected_count)", sampled_expected, (num_sampled,))
    _check_positive(xp, "sampled_values[2] (sampled_expected_count)", sampled_expected)

    cdtype = _compute_dtype(xp, inputs.dtype)
    x = inputs.astype(cdtype, copy=False)
    flat_labels = labels.reshape(-1)
    # The true and sampled rows in one buffer [B*T + S, D]: the backward reuses it for the weight
    # gradient's rows once they are read (on this VM a fresh page costs about two passes over it).
    ids = xp.concatenate([flat_labels, candidates])
    w_rows = _gather_rows(xp, shards, ids, num_classes, partition_strategy).astype(cdtype, copy=False)
    w_true = w_rows[: batch * num_true].reshape(batch, num_true, dim)
    w_sampled = w_rows[batch * num_true :]
    b = biases.astype(cdtype, copy=False)

    def sampled_logits(rows):  # [B, T] and [B, S] (the offset of the sampled ones is added later)
        with _quiet(xp):
            z_true = xp.einsum("bd,btd->bt", x[rows], w_true[rows]) + b[labels[rows]]
            z_true -= xp.log(true_expected[rows].astype(cdtype))
        return z_true, x[rows] @ w_sampled.T

    with _quiet(xp):
        offset = b[candidates] - xp.log(sampled_expected.astype(cdtype))
    dz_true, dz_sampled = sampled_logits(slice(None))  # the logits, then (in place) their gradient
    hit_ids = (labels, candidates) if remove_accidental_hits else None
    loss = _sampled_core(xp, dz_true, dz_sampled, hit_ids, offset, upstream, want_grad, recompute=sampled_logits)
    result = {"loss": _cast_out(xp, loss, inputs.dtype)}
    if not want_grad:
        return result
    grad_inputs = dz_sampled @ w_sampled
    if num_true == 1:  # the same product einsum forms, in the rows' own buffer (they are not read again)
        grad_inputs += xp.multiply(w_true[:, 0], dz_true, out=w_true[:, 0])
    else:
        grad_inputs += xp.einsum("bt,btd->bd", dz_true, w_true)
    result["inputs"] = _cast_out(xp, grad_inputs, inputs.dtype)
    # The weight gradient's rows [B*T + S, D], written over the gathered rows (no longer needed).
    rows = w_rows  # a gather's (or conversion's) own array: never the caller's weights
    xp.multiply(dz_true[:, :, None], x[:, None, :], out=rows[: batch * num_true].reshape(batch, num_true, dim))
    xp.matmul(dz_sampled.T, x, out=rows[batch * num_true :])
    weight_grads, result["biases"] = _embedding_gradients(
        xp, ids, rows, xp.concatenate([dz_true.ravel(), dz_sampled.sum(axis=0)]), layout, partition_strategy,
        inputs.dtype)
    result["weights"] = weight_grads if sharded else weight_grads[0]
    return result


def sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1, sampled_values=None,
                         remove_accidental_hits=True, partition_strategy="mod", seed=None):
    """TensorFlow's sampled_softmax_loss (r1.4 signature); returns the per-example loss ``[B]``.

    Memory grows with ``B*(T+S)`` and ``(T+S)*D``: no ``[B, num_classes]`` array is ever built.
    """
    return _ssl(weights, biases, labels, inputs, num_sampled, num_classes, num_true, sampled_values,
                remove_accidental_hits, partition_strategy, seed, None, want_grad=False)["loss"]


def sampled_softmax_loss_grad(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1,
                              sampled_values=None, remove_accidental_hits=True, partition_strategy="mod", seed=None,
                              upstream=None):
    """``{"loss", "inputs", "weights", "biases"}``; ``weights`` is a list of shard gradients for a shard list.

    The weight and bias gradients are :class:`impls.caseio.SparseRows` (``.dense()`` gives the
    arrays the oracle returns); ``loss`` and ``inputs`` are arrays.
    """
    return _ssl(weights, biases, labels, inputs, num_sampled, num_classes, num_true, sampled_values,
                remove_accidental_hits, partition_strategy, seed, upstream, want_grad=True)
