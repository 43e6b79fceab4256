"""The shared core of the NumPy/CuPy contender (``impls/numpy_fast/``): what every op module uses.

Array-module plumbing and the fast argument checks, the bit-exact float32 -> float16 conversion,
the row blocks and their thread pool, the compiled kernels' switch, the shift-free exponentials'
range and the BLAS row sums.  The module-level switches here (``_KERNELS``, ``_SHIFT_FREE_EXP``,
``_SHIFT_FREE_SUM_RANGE``, ``_THREADS``, ``_PARALLEL_MIN_ELEMENTS``, ``_BLOCK_ELEMENTS``,
``_row_broadcast_speed``) are read from this module at call time (the op modules write
``core._KERNELS``, never a copy of it), so that the tests and the floors can set them in one place.

Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from impls.numpy_fast import kernels
from impls import reference
from impls.reference import _check_shape

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
# The compiled row kernels (impls/numpy_fast/kernels.py) where numba is installed: they serve float32
# NumPy arrays where the exponentials are taken shift-free (``_SHIFT_FREE_EXP``); everything else,
# and every row they flag, takes the NumPy calls of the op modules.
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


def _scatter_add(xp, out, index, values):
    """``out[index] += values`` with repeated indices accumulating (``np.add.at`` / ``cupyx.scatter_add``)."""
    if xp is np:
        np.add.at(out, index, values)
    else:
        import cupyx  # noqa: PLC0415

        cupyx.scatter_add(out, index, values)
