"""The contender's ``softmax_with_cross_entropy`` (Paddle): the full softmax over every class.

Float32 hard labels with the class axis last go through the compiled row kernel where numba is
installed (``kernels.swce_hard``); everything else, and every row the kernel leaves, through
the NumPy calls here, in row blocks on the thread pool.

Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import numpy as np

from impls.numpy_fast import kernels
from impls.numpy_fast import core
from impls.numpy_fast.core import (_NO_UPSTREAM, _cast_out, _check_float, _check_range, _compute_dtype, _for_blocks,
                                   _quiet, _row_blocks, _row_sums, _upstream)
from impls.reference import _array_module, _check_int, _check_shape


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
    if (core._KERNELS and core._SHIFT_FREE_EXP and xp is np and logits.dtype == np.float32 and not soft_label
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
    kernels.swce_hard(rows, labels, int(ignore_index), *core._SHIFT_FREE_SUM_RANGE, ups, want_grad, grad, loss, served)
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


def _exp_and_sum(xp, z, axis, out=None, shift_free=True):
    """``(e, s, shift)``: ``e = exp(z - shift)`` in the compute dtype, ``s`` its sums along ``axis``.

    ``shift`` (keepdims) is 0 for the rows computed shift-free (see ``_SHIFT_FREE_EXP``;
    ``shift_free=False`` shifts every row), else the row maximum, or 0 for a row that is all
    ``-inf`` (so that it yields ``s = 0`` and NaN rather than ``-inf - -inf`` leaking into other
    arithmetic); None when every row was computed shift-free.  ``e`` is written to ``out`` when
    given, else to a new array; ``z`` is left as it was.
    """
    cdtype = _compute_dtype(xp, z.dtype)
    if shift_free and core._SHIFT_FREE_EXP and cdtype == xp.float32:
        if z.dtype == cdtype:
            e = xp.exp(z, out=out)
        else:  # float16/bfloat16: converting first is faster than NumPy's exp converting as it goes
            converted = z.astype(cdtype)
            e = xp.exp(converted, out=converted if out is None else out)
        s = _row_sums(xp, e, axis)
        low, high = core._SHIFT_FREE_SUM_RANGE
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
    with _quiet(xp), core._row_broadcast_speed(xp):
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
