"""The shared sampled-softmax core of the contender: softmax cross-entropy over [true | sampled columns].

Used by both sampled ops: ``weights_sampled`` (``sampled_softmax_loss``) calls ``_sampled_core``
on the logits its matmuls computed; ``logits_sampled`` (``sampled_softmax_with_cross_entropy``)
calls ``_sampled_rows`` and ``_to_gradient`` on the logits it gathered.

Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import numpy as np

from impls.numpy_fast import kernels
from impls.numpy_fast import core
from impls.numpy_fast.core import _NO_UPSTREAM, _for_blocks, _quiet, _row_blocks, _row_sums, _upstream


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
    float32 NumPy rows then go to the compiled kernel (``kernels.sampled_core``).
    """
    n = z_true.shape[0]
    u = _upstream(xp, upstream, (n,), z_true.dtype) if want_grad else None
    loss = xp.empty(n, dtype=z_true.dtype)
    shift_free = recompute is not None and core._SHIFT_FREE_EXP and z_true.dtype == xp.float32

    def hits(rows):
        if hit_ids is None:
            return None
        true_ids, candidates = hit_ids
        if true_ids.shape[1] == 1:
            return true_ids[rows] == candidates
        return (true_ids[rows][:, :, None] == candidates[None, None, :]).any(axis=1)

    if core._KERNELS and shift_free and xp is np and n:
        true_ids, candidates = hit_ids if hit_ids is not None else (np.empty((0, 1), np.int64), np.empty(0, np.int64))
        served = np.empty(n, dtype=np.bool_)
        kernels.sampled_core(z_true, z_sampled, offset, true_ids, candidates, hit_ids is not None,
                             *core._SHIFT_FREE_SUM_RANGE, _NO_UPSTREAM if u is None else u, want_grad, loss, served)
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
    with _quiet(xp), core._row_broadcast_speed(xp):
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
            low, high = core._SHIFT_FREE_SUM_RANGE
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
