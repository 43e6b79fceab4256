"""The contender's ``sampled_softmax_loss`` (TensorFlow r1.4): sampled softmax on weights, shards allowed.

The logits come from matmuls of the inputs with the gathered weight rows; the softmax
cross-entropy over them is the shared ``sampled_core``.  The weight and bias gradients are sparse
(:class:`impls.caseio.SparseRows`), summed by the compiled kernel where numba is installed
(``kernels.sum_repeated_rows``).

Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import numpy as np

from impls.numpy_fast import kernels
from impls.caseio import SparseRows
from impls.numpy_fast import core
from impls.numpy_fast.core import (_cast_out, _check_float, _check_positive, _check_range, _compute_dtype, _quiet,
                                   _scatter_add)
from impls.numpy_fast.sampled_core import _sampled_core
from impls.reference import (_array_module, _check_count, _check_int, _check_shape, log_uniform_candidate_sampler,
                             shard_layout)


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
    if core._KERNELS and xp is np and rows.dtype == np.float32 and bias_values.dtype == np.float32:
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
