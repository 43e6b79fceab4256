"""Compiled row kernels of the NumPy contender (``impls/numpy_fast/``), where numba is installed.

Why: a NumPy implementation makes one pass over ``[B, K]`` per ufunc (maximum, subtraction,
exponential, sum, scaling, zero fill, gather, scatter), and on small shapes pays a Python call for
each; the frameworks fuse those passes.  These kernels do a row's whole softmax cross-entropy
(and, for the logits-based sampled op, its zero fill, gather and scatter) on that row while it is
in cache, rows spread over the cores with numba's ``prange``.  They read and write NumPy arrays
and change nothing about what is computed, only how: the NumPy path's shift-free formulas
(``core._SHIFT_FREE_EXP``), the loss's final sum in float64.

What differs in rounding from the NumPy path (both are held to the suite's tolerance against the
oracle; tests/test_numpy_kernels.py checks them against the NumPy path and the oracle):

* ``_expf``: a float32 exponential from a Cody-Waite reduction and Cephes' degree-6 polynomial
  (below 1.01 ulp of the exact value, tested), written out so that LLVM vectorises it; NumPy's
  and libm's ``expf`` are calls it cannot vectorise (measured: 4 ns an element as a call, 0.5 ns
  vectorised).  Results below FLT_MIN (arguments below -87.33) are flushed to 0.
* Row sums in the vectorised order of the compiled loop (a row's bits depend on that row alone,
  not on its batch, block or thread).

A row the kernel does not serve (its shift-free sum out of range, which includes every row with a
NaN or ``+inf`` logit) is flagged, and the caller computes it again with the NumPy path and the
shift, so every documented limit of unusual input stays the NumPy path's.  Only float32 arrays with the class axis last come here.

``AVAILABLE`` is False without numba (Python 3.8 environments need not have it) or with
``CONFORMANCE_NUMPY_KERNELS=0``; the contender then runs on NumPy calls alone.

Worker side: must run on Python 3.8 with numpy 1.23 (this module then imports, unavailable).
"""
from __future__ import annotations

import math
import os

import numpy as np

try:  # optional: the contender runs without it
    import numba
    from numba import prange, types
    from numba.extending import intrinsic
    from llvmlite import ir
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

AVAILABLE = numba is not None and os.environ.get("CONFORMANCE_NUMPY_KERNELS", "1") != "0"


def version() -> str:
    """``numba X`` as the worker reports it, or why the kernels are off (their thread count is the
    contender's pool size, reported with the worker's other thread counts: impls/threads.py)."""
    if numba is None:
        return "numba not installed"
    if not AVAILABLE:
        return "numba %s off (CONFORMANCE_NUMPY_KERNELS=0)" % numba.__version__
    return "numba %s" % numba.__version__


def threads() -> int:
    """The kernels' thread count (numba's), 0 when they are off."""
    return numba.get_num_threads() if AVAILABLE else 0


def set_threads(count: int):
    """The kernels' thread count (at most numba's pool size, NUMBA_NUM_THREADS or the cores)."""
    if AVAILABLE:
        numba.set_num_threads(max(1, min(int(count), numba.config.NUMBA_NUM_THREADS)))


if AVAILABLE:
    # OpenMP first: its idle threads spin briefly between calls, as PyTorch's do, so a call hands
    # work to them in about 3 us; numba's own workqueue wakes them each time (30 us a call measured,
    # 90 us after a pause: waking a virtual CPU is slow on this project's VM).
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

    _JIT = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False)
    # Vectorisable reductions may reassociate; the exponential may not (its reduction step relies
    # on exact float32 rounding), nor may anything that must see NaN.
    _REDUCE = {"reassoc", "nsz", "contract"}
    _EXACT = {"nsz", "contract"}

    @intrinsic
    def _int_bits_as_float32(typingctx, bits):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float32))
        return types.float32(types.int32), codegen

    _LOG2E = np.float32(1.4426950408889634)
    _LN2_HI = np.float32(0.693359375)  # ln 2 = _LN2_HI + _LN2_LO; n * _LN2_HI is exact for |n| < 2^15
    _LN2_LO = np.float32(-2.12194440e-4)
    _ROUND = np.float32(12582912.0)  # 1.5 * 2^23: x + _ROUND - _ROUND rounds x to an integer
    _ROUND_BITS = np.int32(0x4B400000)  # the bits of _ROUND: t - _ROUND_BITS is that integer
    _EXP_MIN = np.float32(-87.33654)  # exp below this is below FLT_MIN: flushed to 0
    _EXP_MAX = np.float32(88.0)  # the callers clamp to this (any sum past 2^64 is out of range anyway)

    @numba.njit(fastmath=_EXACT, **_JIT)
    def _expf(x):
        """exp(x) in float32 for x <= 88 (never called with more); 0 below -87.34 and for -inf;
        NaN for NaN (the callers detect a NaN row by its sum)."""
        c = _EXP_MIN if x < _EXP_MIN else x  # not max(): NaN must pass
        t = c * _LOG2E + _ROUND  # the integer n = round(x / ln 2) in the low mantissa bits
        n = t - _ROUND
        r = (c - n * _LN2_HI) - n * _LN2_LO  # |r| <= ln2 / 2, with n * ln2's rounding error removed
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        y = p * r * r + r + np.float32(1.0)
        scale = _int_bits_as_float32(((numba.int32(_float32_bits(t)) - _ROUND_BITS) + np.int32(127)) << 23)
        return np.float32(0.0) if x < _EXP_MIN else y * scale

    @intrinsic
    def _float32_bits(typingctx, value):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.int32))
        return types.int32(types.float32), codegen

    @numba.njit(fastmath=_EXACT, **_JIT)
    def _exp(x, out):
        """out = exp(x), element by element (beyond 88 as at 88: the caller's sum is then out of range;
        NaN stays NaN)."""
        for j in range(x.shape[0]):
            z = x[j]
            out[j] = _expf(_EXP_MAX if z > _EXP_MAX else z)

    @numba.njit(fastmath=_EXACT, **_JIT)
    def _exp_in_place(a):
        """``_exp(a, a)``, as a loop over one array: with two arguments that are the same array the
        loop does not vectorise (measured: 6x slower)."""
        for j in range(a.shape[0]):
            z = a[j]
            a[j] = _expf(_EXP_MAX if z > _EXP_MAX else z)

    @numba.njit(fastmath=_REDUCE, **_JIT)
    def _sum(a):
        s = np.float32(0.0)
        for j in range(a.shape[0]):
            s += a[j]
        return s

    @numba.njit(fastmath=_REDUCE, **_JIT)
    def _scale(a, factor):
        for j in range(a.shape[0]):
            a[j] *= factor

    # A zero fill of a gradient too large for the caches (the logits-based sampled op's dense
    # [B, K] at K >= 10^5) goes to memory with non-temporal stores: an ordinary store first reads
    # each cache line it writes (read for ownership), so a fill moves twice the bytes.  But the
    # streamed lines leave the cache, and the row's scatter-add then reads back each line a sampled
    # column falls in.  Measured on this project's VM (forward+backward, two threads, plain vs
    # streamed): [128, 10^6] S=512 (512 MB) 31 vs 16 ms, [512, 10^5] S=1024 (205 MB) 14-16 vs
    # 10-12 ms; but [4096, 10^4] S=512 (164 MB, a sampled column in one line of 1.2) 26.5 vs 33 ms,
    # and [128, 10^5] S=512 (51 MB, which the caches partly keep) 2.1 vs 2.6 ms.
    _LINE = 16  # float32 elements in a 64-byte cache line
    STREAM_BYTES = 128 << 20  # the whole gradient at least
    STREAM_LINES_PER_COLUMN = 4  # a row's cache lines per sampled column, at least

    def streams(grad, width) -> bool:
        """Whether ``sswce_rows`` zero-fills ``grad [R, K]`` (``width`` columns sampled a row) by
        non-temporal stores."""
        return (grad is not None and grad.nbytes >= STREAM_BYTES
                and grad.shape[1] >= STREAM_LINES_PER_COLUMN * _LINE * width)

    @intrinsic
    def _stream_zero_line(typingctx, row, start):
        """Zeros into ``row[start:start + 16]``, whose address is 64-byte aligned, by one
        non-temporal 64-byte store (``!nontemporal``: movntps on x86, an ordinary store elsewhere)."""
        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            line = ir.VectorType(ir.FloatType(), 16)
            target = builder.bitcast(builder.gep(array.data, [args[1]]), line.as_pointer())
            store = builder.store(ir.Constant(line, None), target, align=64)
            store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
            return context.get_dummy_value()
        return types.void(row, types.intp), codegen

    @intrinsic
    def _store_fence(typingctx):
        """A full fence (mfence on x86): the non-temporal stores before it are globally visible,
        and ordered before every load and store after it, as the ordinary ones are."""
        def codegen(context, builder, signature, args):
            builder.fence("seq_cst")
            return context.get_dummy_value()
        return types.void(), codegen

    @numba.njit(**_JIT)
    def _zero(row, stream):
        """``row[:] = 0`` (a contiguous float32 row); with ``stream`` the 64-byte aligned lines by
        non-temporal stores, then a fence, so that the caller's scatter-add reads the zeros."""
        n = row.shape[0]
        if not stream:
            row[:] = 0
            return
        head = min(n, ((64 - (row.ctypes.data & 63)) & 63) // 4)
        row[:head] = 0
        j = head
        while j + _LINE <= n:
            _stream_zero_line(row, j)
            j += _LINE
        row[j:] = 0
        _store_fence()

    @numba.njit(parallel=True, **_JIT)
    def swce_hard(x, label, ignore_index, low, high, u, want_grad, grad, loss, served):
        """The full softmax's hard-label loss (and gradient) of float32 rows ``x [R, K]``, shift-free.

        ``loss [R]`` float64 gets ``log(s) - x[label]``, s the sum of exp(x); with ``want_grad``,
        ``grad [R, K]`` float32 gets ``u * (softmax - onehot)`` (``u [R]`` float32).  A row whose
        label is ``ignore_index`` gets 0 and a zero gradient.  ``served[i]`` is False for a row whose
        sum is outside ``[low, high]`` (NaN included: a NaN or ``+inf`` logit; an all ``-inf`` row
        sums to 0): its outputs are left for the caller, which computes it with the shift.
        """
        rows = x.shape[0]
        for i in prange(rows):
            lab = label[i]
            if lab == ignore_index:
                loss[i] = 0.0
                if want_grad:
                    grad[i, :] = 0
                served[i] = True
                continue
            xi = x[i]
            e = grad[i]  # the exponentials go where the gradient will be
            _exp(xi, e)
            s = _sum(e)
            served[i] = low <= s <= high
            if not served[i]:
                continue
            loss[i] = math.log(np.float64(s)) - np.float64(xi[lab])
            if want_grad:
                _scale(e, u[i] / s)
                e[lab] -= u[i]

    @numba.njit(fastmath=_EXACT, **_JIT)
    def _sampled_exponentials(xi, ids, p, true_ids, remove_hits, e):
        """e[j] = exp(x[ids[j]]) / p[j]; 0 for a sampled column (j >= T) that hits a true id."""
        num_true = true_ids.shape[0]
        for j in range(ids.shape[0]):  # the gather first: with it in the same loop nothing vectorises
            e[j] = xi[ids[j]]
        for j in range(ids.shape[0]):
            z = e[j]
            e[j] = _expf(_EXP_MAX if z > _EXP_MAX else z) / p[j]  # +inf: a sum out of range; NaN stays
        if remove_hits:
            for t in range(num_true):  # true id by true id, so that the loop over the columns vectorises
                true_id = true_ids[t]
                for j in range(num_true, ids.shape[0]):
                    e[j] = np.float32(0.0) if ids[j] == true_id else e[j]

    @numba.njit(parallel=True, **_JIT)
    def sswce_rows(x, label, samples, probabilities, remove_hits, low, high, u, want_grad, grad, loss, e, served,
                   stream):
        """Paddle's logits-based sampled loss on float32 rows ``x [R, K]``, shift-free.

        Per row: the sampled columns' ``exp(x) / p`` into ``e [R, T+S]`` (a hit column 0), their
        sum s, ``loss[i] = log(s) - mean_t(x[label_t] - log p_t)`` in float64; with ``want_grad``
        the dense ``grad [R, K]`` row is zeroed (``stream``: by non-temporal stores, see ``_zero``) and ``u * (e / s - 1/T on the true columns)`` is
        added at the sampled ids (repeated ids accumulate).  ``served[i]`` is False for a row whose
        sum is outside ``[low, high]`` (NaN included: a NaN logit; a ``+inf`` one gives an
        overflowing sum); the caller computes it with the shift.
        """
        rows, width = samples.shape
        num_true = label.shape[1]
        for i in prange(rows):
            xi, ids, ei = x[i], samples[i], e[i]
            mean_true = 0.0
            for t in range(num_true):
                mean_true += np.float64(xi[ids[t]]) - math.log(np.float64(probabilities[i, t]))
            _sampled_exponentials(xi, ids, probabilities[i], label[i], remove_hits, ei)
            s = _sum(ei)
            if not (low <= s <= high):
                served[i] = False
                continue
            served[i] = True
            loss[i] = math.log(np.float64(s)) - mean_true / num_true
            if want_grad:  # as the NumPy path: each column's value first, then the scatter-add
                gi = grad[i]
                _zero(gi, stream)
                scale = u[i] / s
                share = u[i] / num_true
                for j in range(num_true):
                    gi[ids[j]] += ei[j] * scale - share
                for j in range(num_true, width):
                    gi[ids[j]] += ei[j] * scale

    @numba.njit(fastmath=_EXACT, **_JIT)
    def _add(a, b):
        for j in range(a.shape[0]):
            a[j] += b[j]

    def sampled_core(zt, zs, offset, true_ids, candidates, remove_hits, low, high, u, want_grad, loss, served):
        """TensorFlow's weights-based sampled loss on its float32 sampled logits, shift-free, in place.

        ``zt [B, T]`` and ``zs [B, S]`` are the true and sampled logits (``zs`` before ``offset [S]``
        is added).  Per row: ``zs += offset``, the exponentials of both, a sampled column whose
        candidate equals one of the row's ``true_ids [B, T]`` set to 0 (with ``remove_hits``), their
        sum s, and ``loss[i] = log(s) - mean(zt)`` in float64; with ``want_grad`` both arrays then
        hold the gradient of ``u * loss``: ``u * e / s``, less ``u / T`` on the true columns.
        ``served[i]`` is False for a row whose sum is outside ``[low, high]`` (NaN included): its
        arrays hold exponentials, and the caller computes it again with the shift.
        """
        rows, num_true = zt.shape
        for i in prange(rows):
            ti, si = zt[i], zs[i]
            mean_true = 0.0
            for t in range(num_true):
                mean_true += np.float64(ti[t])
            _add(si, offset)
            _exp_in_place(ti)
            _exp_in_place(si)
            if remove_hits:
                for t in range(num_true):
                    true_id = true_ids[i, t]
                    for j in range(si.shape[0]):
                        si[j] = np.float32(0.0) if candidates[j] == true_id else si[j]
            s = _sum(ti) + _sum(si)
            served[i] = low <= s <= high
            if not served[i]:
                continue
            loss[i] = math.log(np.float64(s)) - mean_true / num_true
            if want_grad:
                scale = u[i] / s
                _scale(si, scale)
                share = u[i] / num_true
                for t in range(num_true):
                    ti[t] = ti[t] * scale - share

    # On one thread: the weights-based op runs OpenBLAS's matrix products right before and after
    # this, and OpenBLAS's idle threads and OpenMP's spin on the same two cores (measured: 8.0 ms
    # a call instead of 1.2 at B=128, K=10^3, S=512, D=128, with this kernel on two threads).
    sampled_core = numba.njit(**_JIT)(sampled_core)

    @numba.njit(**_JIT)
    def sum_repeated_rows(ids, rows, bias_values):
        """``(indices, heads)``: the distinct ``ids`` ascending and the position of each one's first
        occurrence, after the rows (and bias values) of its later occurrences are added to that
        first one in their original order, as ``numpy_fast._embedding_gradients`` does with a stable
        sort and ``np.add.at`` (the same additions in the same order: the same bits)."""
        order = np.argsort(ids, kind="mergesort")  # stable
        heads = np.empty(ids.shape[0], dtype=np.int64)
        indices = np.empty(ids.shape[0], dtype=ids.dtype)
        distinct = 0
        for k in range(ids.shape[0]):
            j = order[k]
            if distinct == 0 or ids[j] != indices[distinct - 1]:
                heads[distinct] = j
                indices[distinct] = ids[j]
                distinct += 1
            else:
                head = heads[distinct - 1]
                for d in range(rows.shape[1]):
                    rows[head, d] += rows[j, d]
                bias_values[head] += bias_values[j]
        return indices[:distinct], heads[:distinct]
