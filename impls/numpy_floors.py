"""Floors of the NumPy contender: work that any NumPy implementation of an op and mode cannot avoid.

The benchmark (``impls/bench.py``) times the parts below after the contender's own timing, in the
same worker and the same run, on the benchmark case itself; the largest part's median is the row's
``floor_s``.  The report then tells a missed 0.7x target that a NumPy implementation cannot reach
(the floor alone exceeds the budget) from one that it merely has not reached.

What a floor claims.  Each *part* is one piece of work that every NumPy implementation of the op
and mode has to do on that case, on this machine, done here the cheapest way we know (each part may
list several *ways*; the benchmark keeps the fastest).  The parts are lower bounds each, so the
floor is the largest of them, not their sum.  Inside a part, passes are added only where the
argument below says why their times add up.  The assumptions behind every claim:

* NumPy ufuncs cannot fuse: each ufunc call is at least one pass over its operands, and a pass
  that needs a result of an earlier pass starts after it.
* A pass is timed into a preallocated buffer (no page faults, unless a way exists to use them:
  then both are timed), on the contender's own row blocks and thread pool (``_row_blocks``,
  ``_for_blocks`` of ``impls/numpy_fast/core.py``) wherever the contender parallelises that work; a
  part over ``[B, K]`` runs both in whole blocks and, where a row fits, in row chunks that stay in
  the L2 cache between consecutive passes (``_schedules``), so that a cache-blocked implementation
  would not beat the floor by the memory traffic it saves.
* The arithmetic is float32 for float32/float16/bfloat16 cases (float64 for float64): nothing
  narrower is accurate enough for the suite's tolerances.

Parts per op (only the ``numpy-fast`` ops; it has no ``cross_entropy``):

* ``softmax_with_cross_entropy``, forward: ``exp`` of every logit and each row's sum of them.  The
  loss of a row is ``log(sum(exp(z))) - z_label``, which depends on every logit; the sum reads the
  exponentials, so within a row chunk the two passes are sequential, and across threads their work
  adds up.  (No row maximum: the contender shows a shift-free exp is accurate enough.)  The row
  sums both ways NumPy offers fast: ``sum`` and a BLAS dot product per row (``_row_sums``).
  Forward+backward: the same, then one in-place multiply of the ``[B, K]`` exponentials by each
  row's ``upstream / sum``, which writes the gradient; it needs the row sum, which exists only once
  the row's exp pass has ended.  (Subtracting the label's ``upstream`` touches B elements: left out.)
  float16/bfloat16: also the conversions of the logits to float32 and of the gradient to the case
  dtype, each a separate part (done into a cache-resident chunk, so a conversion fused into the exp
  loop by NumPy's buffering would not beat it; the output conversion writes the real ``[B, K]``
  result, which any implementation must write).
* ``sampled_softmax_with_cross_entropy``, forward: gathering the ``B*(T+S)`` sampled logits.
  Forward+backward: the dense ``[B, K]`` logits gradient, zero but for its ``B*(T+S)`` entries:
  every element must be written, or come zeroed from the operating system, and the entries
  scattered after that; two ways are timed: filling a preallocated array on the contender's fill
  blocks, or ``np.zeros`` (pages zeroed by the kernel when first written), each followed by a plain
  scatter (``out[positions] = values``, no cheaper than the accumulating ``np.add.at`` any correct
  implementation needs for duplicate samples).
* ``sampled_softmax_loss``, forward: the sampled logits ``x @ W_s.T`` ([B, D] x [D, S]).
  Forward+backward: that, then the input gradient ``dz @ W_s`` and the sampled weight-gradient rows
  ``dz.T @ x``.  The last two need ``dz``, which needs the first; they are independent of each other,
  but NumPy's BLAS already runs each on every core, so running them side by side would not do their
  arithmetic in less time (at the grid's sizes; for the smallest products thread start-up
  dominates and the part is small beside the op anyway).  No 16-bit conversions: they are
  ``(B + B*T + S) * D`` elements, small beside the products, and left out.

The compiled kernels.  Where numba is installed the contender's float32 rows of the two
logits-based ops run compiled row kernels (``impls/numpy_fast/kernels.py``) that fuse these passes (the
exponentials, sums and scaling of a row, and its zero fill, gather and scatter, while the row is
in cache), so the first assumption above does not hold for them: those cases get no floor
(``served_by_kernels``), and the report says "no floor measured" for them.  The weights-based op's
products stay OpenBLAS's in the kernels' path too, and the 16-bit cases stay NumPy calls: their
floors still bound the contender.

Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from impls import numpy_fast as fast
from impls.numpy_fast import core as fast_core  # its switches, read there at call time
from impls.ops.sampled_softmax_loss import SAMPLED_SOFTMAX_LOSS
from impls.ops.sampled_softmax_with_cross_entropy import SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY
from impls.ops.softmax_with_cross_entropy import SOFTMAX_WITH_CROSS_ENTROPY

# Row chunks of at most this many elements (at least one row): 128 KiB of float32, which stays in
# the L2 cache from one pass of a chunk to the next.
_CHUNK_ELEMENTS = 1 << 15


def _compute_dtype(dtype):
    return np.float64 if dtype == np.float64 else np.float32


def _case_dtype(case):
    """The NumPy dtype the case computes in (``ml_dtypes.bfloat16`` for bfloat16)."""
    if case.dtype == "bfloat16":
        import ml_dtypes  # noqa: PLC0415 - only a bfloat16 case needs it

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(case.dtype)


def _on_blocks(rows, row_elements, function, min_elements=None):
    """A zero-argument call running ``function(start, stop)`` on the contender's row blocks and threads."""
    blocks = fast._row_blocks(np, rows, row_elements, min_elements)
    return lambda: fast._for_blocks(blocks, function)


def _schedules(rows, row_elements, chunk_pass):
    """The ways of running ``chunk_pass(start, a, b)`` over rows ``a:b`` of every row block ``start:stop``.

    On the contender's row blocks and threads, each block either as one chunk (as the contender
    runs it) or, where a row fits, in row chunks of at most ``_CHUNK_ELEMENTS`` elements, which stay
    in the L2 cache from one pass to the next.  Both are timed and the faster counts: small chunks
    save memory traffic but cost a Python step each, and the threads then wait on the GIL
    (measured: [128, 10^4] exp, row sums and multiply on two threads took 1.3 ms in whole blocks,
    2.7 ms in chunks of 3 rows).  ``start`` lets a pass address a cache-resident scratch area of
    its block, the same rows in both schedules: ``scratch[start : start + b - a]``.
    """
    chunk = _CHUNK_ELEMENTS // max(row_elements, 1)  # 0: a row alone is larger than a chunk

    def schedule(step):
        def run(start, stop):
            size = step or stop - start
            for a in range(start, stop, size):
                chunk_pass(start, a, min(a + size, stop))
        return _on_blocks(rows, row_elements, run)

    return [schedule(None), schedule(chunk)] if 0 < chunk < rows else [schedule(None)]


def _softmax_parts(case, backward):
    stored = case.inputs["logits"]
    rows, classes = stored.shape
    dtype = _case_dtype(case)
    cdtype = _compute_dtype(dtype)
    z = stored.astype(cdtype, copy=False)  # the case's float32 storage itself where it is the compute dtype
    scale = (case.inputs["upstream"].astype(cdtype).reshape(rows, 1)) if backward else None
    work = np.empty_like(z)

    def exp_sum_scale(row_sums):
        def chunk_pass(start, a, b):
            with np.errstate(over="ignore"), fast_core._row_broadcast_speed(np):
                e = np.exp(z[a:b], out=work[a:b])
                s = row_sums(e)
                if backward:
                    e *= scale[a:b] / s
        return chunk_pass

    name = "exp + row sums" + (" + gradient multiply" if backward else "")
    ways = _schedules(rows, classes, exp_sum_scale(lambda e: fast._row_sums(np, e, 1)))
    if cdtype == np.float32 and classes > fast_core._DOT_ROW_SUMS_MAX:
        # Rows the contender sums with NumPy's sum (a dot product per row holds the GIL, see
        # numpy_fast.core._row_sums): the dot products are faster on one thread, so they are a way too.
        ones = fast._float32_ones(classes)
        ways += _schedules(rows, classes, exp_sum_scale(lambda e: np.matmul(e[:, None, :], ones)))
    parts = OrderedDict([(name, ways)])
    if dtype == cdtype:
        return parts
    narrow = stored.astype(dtype)
    converted = np.empty_like(z)

    def convert_in(start, a, b):  # into the block's first rows: cache-resident when chunked
        np.copyto(converted[start : start + b - a], narrow[a:b], casting="unsafe")

    parts["%s -> %s of the logits" % (dtype.name, np.dtype(cdtype).name)] = _schedules(rows, classes, convert_in)
    if not backward:  # the forward's only output in the case dtype is the loss, [B]
        return parts
    # Gradient-like values (a softmax of these logits: mostly tiny, subnormal in float16), read from
    # the block's first rows (cache-resident when chunked) and converted into the real [B, K] output.
    gradient = np.exp(z)
    gradient /= gradient.sum(axis=1, keepdims=True)
    out = np.empty((rows, classes), dtype=dtype)

    def convert_out(start, a, b):
        np.copyto(out[a:b], gradient[start : start + b - a], casting="unsafe")

    def convert_out_bit_exact(start, a, b):  # the contender's float16 conversion, faster than NumPy's
        np.copyto(out[a:b], fast._float32_to_float16(gradient[start : start + b - a]))

    ways = _schedules(rows, classes, convert_out)
    if dtype == np.float16:
        ways += _schedules(rows, classes, convert_out_bit_exact)
    parts["%s -> %s of the gradient" % (np.dtype(cdtype).name, dtype.name)] = ways
    return parts


def _sampled_logits_parts(case, backward):
    stored = case.inputs["logits"]
    rows, classes = stored.shape
    dtype = _case_dtype(case)
    samples = np.ascontiguousarray(case.inputs["customized_samples"])
    width = samples.shape[1]
    flat_logits = stored.astype(dtype, copy=False).reshape(-1)  # gathered in the case dtype, as the op's input is
    positions = samples + (np.arange(rows, dtype=samples.dtype) * classes)[:, None]
    gathered = np.empty(positions.shape, dtype=flat_logits.dtype)

    def gather(start, stop):
        np.take(flat_logits, positions[start:stop], out=gathered[start:stop])

    parts = OrderedDict([("gather of the sampled logits", [_on_blocks(rows, width, gather)])])
    if not backward:
        return parts
    values = np.full(positions.shape, 1.0 / width, dtype=dtype)  # gradient-sized, never subnormal
    fill_blocks = fast._sswce_blocks(np, rows, width, classes)  # the contender's own blocks
    local = {(a, b): (positions[a:b] - a * classes).reshape(-1) for a, b in fill_blocks}
    preallocated = np.empty((rows, classes), dtype=dtype)

    def fill_and_scatter(start, stop):
        out = preallocated[start:stop].reshape(-1)
        out.fill(0)
        out[local[start, stop]] = values[start:stop].reshape(-1)

    def kernel_zeroed():
        grad = np.zeros((rows, classes), dtype=dtype)

        def scatter(start, stop):
            grad[start:stop].reshape(-1)[local[start, stop]] = values[start:stop].reshape(-1)

        fast._for_blocks(fill_blocks, scatter)
        return grad  # freed by the caller, after its clock stops

    parts["zeroed dense [B, K] gradient + scatter"] = [lambda: fast._for_blocks(fill_blocks, fill_and_scatter),
                                                      kernel_zeroed]
    return parts


def _sampled_weights_parts(case, backward):
    cdtype = _compute_dtype(_case_dtype(case))
    x = np.ascontiguousarray(case.inputs["inputs"].astype(cdtype, copy=False))
    candidates = case.inputs["sampled_candidates"]
    shards = case.weight_shards
    weights = shards[0] if len(shards) == 1 else np.concatenate(shards)  # the bench's cases are unsharded
    w_sampled = np.ascontiguousarray(weights[candidates].astype(cdtype))
    batch, samples = x.shape[0], w_sampled.shape[0]
    dz = np.full((batch, samples), 1.0 / samples, dtype=cdtype)  # softmax-sized, never subnormal
    logits, grad_x, grad_rows = (np.empty((batch, samples), cdtype), np.empty_like(x), np.empty_like(w_sampled))

    def forward():
        np.matmul(x, w_sampled.T, out=logits)

    def forward_backward():
        np.matmul(x, w_sampled.T, out=logits)
        np.matmul(dz, w_sampled, out=grad_x)
        np.matmul(dz.T, x, out=grad_rows)

    if backward:
        return OrderedDict([("3 matrix products (x @ W_s.T, dz @ W_s, dz.T @ x)", [forward_backward])])
    return OrderedDict([("sampled logits x @ W_s.T", [forward])])


# op -> (case, backward) -> OrderedDict(part name -> [ways]); each way a zero-argument call.  The
# floors are the contender's (they time its own blocks and threads), so they live with it, not in
# the ops' modules; an op without an entry has no floor.
_PARTS = OrderedDict([
    (SOFTMAX_WITH_CROSS_ENTROPY.name, _softmax_parts),
    (SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY.name, _sampled_logits_parts),
    (SAMPLED_SOFTMAX_LOSS.name, _sampled_weights_parts),
])


# The ops whose float32 rows the compiled kernels fuse beyond NumPy calls (see the module doc).
_FUSED_BY_KERNELS = (SOFTMAX_WITH_CROSS_ENTROPY.name, SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY.name)


def served_by_kernels(case) -> bool:
    """Whether the contender computes the case with its compiled kernels, which its NumPy-call
    floors do not bound."""
    return case.op in _FUSED_BY_KERNELS and case.dtype == "float32" and fast_core._KERNELS and fast_core._SHIFT_FREE_EXP


def floor_parts(case, backward):
    """``{part name: [way, ...]}`` for a benchmark case (see the module doc); empty for an op
    without floors and for a case the compiled kernels serve.  A way is a zero-argument call doing
    the part once; it may return an array the caller frees after timing."""
    parts = _PARTS.get(case.op)
    return parts(case, backward) if parts and not served_by_kernels(case) else OrderedDict()
