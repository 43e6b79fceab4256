"""The contender's ``sampled_softmax_with_cross_entropy`` (Paddle 1.8): sampled softmax on logits.

Float32 rows go through the compiled row kernel where numba is installed
(``kernels.sswce_rows``); everything else, and every row the kernel leaves, through the
NumPy calls here, in row blocks on the thread pool.

Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import numpy as np

from impls.numpy_fast import kernels
from impls.numpy_fast import core
from impls.numpy_fast.core import (_NO_UPSTREAM, _cast_out, _check_float, _check_positive, _check_range,
                                   _compute_dtype, _for_blocks, _quiet, _row_blocks, _row_sums, _scatter_add,
                                   _upstream)
from impls.numpy_fast.sampled_core import _sampled_rows, _to_gradient
from impls.reference import _array_module, _check_count, _check_int, _check_shape, log_uniform_candidate_sampler


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
    shift_free = core._SHIFT_FREE_EXP and cdtype == xp.float32 and n > 0
    low = max(core._SHIFT_FREE_SUM_RANGE[0], samples.shape[1] * 2.0 ** -110 / p_min) if shift_free else None
    kernel_low = max(core._SHIFT_FREE_SUM_RANGE[0], samples.shape[1] * 2.0 ** -87 / p_min) if shift_free else None

    def block(start, stop):
        _sswce_rows(xp, rows_k[start:stop], label[start:stop], samples[start:stop], probabilities[start:stop],
                    num_true, remove_accidental_hits, None if u is None else u[start:stop], loss[start:stop],
                    None if grad is None else grad[start:stop], low)

    if core._KERNELS and shift_free and xp is np and logits.dtype == np.float32:
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
    kernels.sswce_rows(logits, label, samples, p, bool(remove_accidental_hits), low, core._SHIFT_FREE_SUM_RANGE[1],
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
    with _quiet(xp), core._row_broadcast_speed(xp):
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
            high = core._SHIFT_FREE_SUM_RANGE[1]
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
