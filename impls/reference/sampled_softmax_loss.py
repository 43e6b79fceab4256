"""The oracle's ``sampled_softmax_loss`` (TensorFlow): weights-based, shared samples, sharded weights."""
from __future__ import annotations

import numpy as np

from impls.reference.core import (_array_module, _check_count, _check_float, _check_int, _check_positive,
                                  _check_range, _check_shape, _sampled, _scatter_add, _upstream)
from impls.reference.sampler import log_uniform_candidate_sampler


# --------------------------------------------------------------------------------------------
# sampled_softmax_loss (TensorFlow, weights-based, shared samples, sharded weights)
# --------------------------------------------------------------------------------------------
def shard_layout(num_classes, num_shards, partition_strategy):
    """Rows per shard for ``tf.nn.embedding_lookup``'s ``"mod"`` and ``"div"`` strategies."""
    if partition_strategy == "mod":
        return [len(range(p, num_classes, num_shards)) for p in range(num_shards)]
    if partition_strategy == "div":
        base, extra = divmod(num_classes, num_shards)
        return [base + (1 if p < extra else 0) for p in range(num_shards)]
    raise ValueError("partition_strategy: expected 'mod' or 'div', got %r" % (partition_strategy,))


def _join(xp, shards, partition_strategy):
    """The dense ``[num_classes, ...]`` array of shards: "mod" interleaves them, "div" stacks them."""
    if partition_strategy == "div" or len(shards) == 1:
        return xp.concatenate(shards)
    dense = xp.empty((sum(len(p) for p in shards),) + shards[0].shape[1:], dtype=shards[0].dtype)
    for p, shard in enumerate(shards):
        dense[p::len(shards)] = shard
    return dense


def _split(xp, dense, layout, partition_strategy):
    """Inverse of ``_join``."""
    if partition_strategy == "div":
        return xp.split(dense, np.cumsum(layout)[:-1].tolist())
    return [dense[p::len(layout)] for p in range(len(layout))]


def _check_shards(name, arrays, sharded, layout, row_shape, dtype):
    for p, (array, rows) in enumerate(zip(arrays, layout)):
        label = "%s[%d]" % (name, p) if sharded else name
        _check_float(label, array)
        if array.dtype != dtype:
            raise TypeError("%s: expected dtype %s (that of inputs), got %s" % (label, dtype, array.dtype))
        _check_shape(label, array, (rows,) + row_shape)


def _ssl(weights, biases, labels, inputs, num_sampled, num_classes, num_true, sampled_values,
         remove_accidental_hits, partition_strategy, seed, upstream, want_grad):
    sharded = isinstance(weights, (list, tuple))
    shards = list(weights) if sharded else [weights]
    if not shards:
        raise ValueError("weights: expected an array [num_classes, dim] or a non-empty list of shards")
    sharded_biases = isinstance(biases, (list, tuple))
    bias_shards = list(biases) if sharded_biases else [biases]
    xp = _array_module(inputs, labels, *shards, *bias_shards)
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
    _check_shards("weights", shards, sharded, layout, (dim,), inputs.dtype)
    if sharded_biases and len(bias_shards) != len(shards):
        raise ValueError("biases: expected %d shards laid out like the weights, got %d" % (len(shards), len(bias_shards)))
    _check_shards("biases", bias_shards, sharded_biases, layout if sharded_biases else [num_classes], (),
                  inputs.dtype)
    _check_int("labels", labels, (batch, num_true))
    _check_range(xp, "labels", labels, num_classes)
    if sampled_values is None:
        sampled_values = log_uniform_candidate_sampler(labels, num_true, num_sampled, True, num_classes, seed=seed)
    if not isinstance(sampled_values, (list, tuple)) or len(sampled_values) != 3:
        raise ValueError("sampled_values: expected a tuple (sampled_candidates, true_expected_count, "
                         "sampled_expected_count)")
    candidates, true_expected, sampled_expected = sampled_values
    names = ["sampled_values[%d] (%s)" % item for item in
             enumerate(("sampled_candidates", "true_expected_count", "sampled_expected_count"))]
    _check_int(names[0], candidates, (num_sampled,))
    _check_range(xp, names[0], candidates, num_classes)
    # true_expected_count [B, 1] broadcasts over the true columns
    _check_float(names[1], true_expected, None if tuple(true_expected.shape) == (batch, 1) else (batch, num_true))
    _check_float(names[2], sampled_expected, (num_sampled,))
    for name, counts in zip(names[1:], (true_expected, sampled_expected)):
        _check_positive(xp, name, counts)
    u = _upstream(xp, upstream, (batch,)) if want_grad else None

    f64 = xp.float64
    w = _join(xp, [s.astype(f64) for s in shards], partition_strategy)  # [K, D]
    b = _join(xp, [s.astype(f64) for s in bias_shards], partition_strategy)  # [K]
    x = inputs.astype(f64)
    w_true, w_sampled = w[labels], w[candidates]  # [B, T, D], [S, D]
    # Dot products as products summed by NumPy's own reduction, not BLAS: a BLAS kernel's summation
    # order depends on the CPU it picks, and a golden output must not.
    z_true = (x[:, None, :] * w_true).sum(axis=-1) + b[labels] - xp.log(true_expected.astype(f64))
    z_sampled = (x[:, None, :] * w_sampled).sum(axis=-1) + b[candidates] - xp.log(sampled_expected.astype(f64))
    hits = (labels[:, :, None] == candidates).any(axis=1) if remove_accidental_hits else None  # [B, S]
    loss, dz = _sampled(xp, z_true, z_sampled, hits, u)
    result = {"loss": loss.astype(inputs.dtype)}
    if not want_grad:
        return result
    dz_true, dz_sampled = dz[:, :num_true], dz[:, num_true:]
    result["inputs"] = ((dz_true[:, :, None] * w_true).sum(axis=1)
                        + (dz_sampled[:, :, None] * w_sampled).sum(axis=1)).astype(inputs.dtype)
    # weights[id] and biases[id] of every true and sampled id receive their rows' gradients.
    ids = xp.concatenate([labels.ravel(), candidates])
    grad_w, grad_b = xp.zeros_like(w), xp.zeros_like(b)
    _scatter_add(xp, grad_w, ids, xp.concatenate([(dz_true[:, :, None] * x[:, None, :]).reshape(-1, dim),
                                                  (dz_sampled[:, :, None] * x[:, None, :]).sum(axis=0)]))
    _scatter_add(xp, grad_b, ids, xp.concatenate([dz_true.ravel(), dz_sampled.sum(axis=0)]))
    result["weights"] = [g.astype(inputs.dtype) for g in _split(xp, grad_w, layout, partition_strategy)]
    if not sharded:
        result["weights"] = result["weights"][0]
    result["biases"] = ([g.astype(inputs.dtype) for g in _split(xp, grad_b, layout, partition_strategy)]
                        if sharded_biases else grad_b.astype(inputs.dtype))
    return result


def sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1, sampled_values=None,
                         remove_accidental_hits=True, partition_strategy="mod", seed=None):
    """TensorFlow's sampled_softmax_loss (r1.4 signature); returns the per-example loss ``[B]``."""
    return _ssl(weights, biases, labels, inputs, num_sampled, num_classes, num_true, sampled_values,
                remove_accidental_hits, partition_strategy, seed, None, want_grad=False)["loss"]


def sampled_softmax_loss_grad(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1,
                              sampled_values=None, remove_accidental_hits=True, partition_strategy="mod", seed=None,
                              upstream=None):
    """``{"loss", "inputs", "weights", "biases"}``; a list of shard gradients for a list of shards."""
    return _ssl(weights, biases, labels, inputs, num_sampled, num_classes, num_true, sampled_values,
                remove_accidental_hits, partition_strategy, seed, upstream, want_grad=True)
