"""The oracle: softmax cross-entropy, both sampled softmax losses, their sampler and the
``cross_entropy`` loss users call (under each framework's documented convention), as a textbook.

Every golden output of the corpus is computed here, by code written to be checked, not to be fast
(the contender is ``impls/numpy_fast.py``): plain array math, generic over the array module (NumPy
or CuPy, taken from the inputs), all in float64, each output rounded once to the input dtype.

Argument names and defaults are those of the frameworks' documentation (Paddle for the first two
losses, TensorFlow r1.4 for ``sampled_softmax_loss``).  Each loss ``f`` has an analytic ``f_grad``
taking the same arguments plus ``upstream`` and returning ``{"loss": ..., <argument>: gradient}``
for the gradient of ``sum(upstream * loss)``.

All the losses are one computation (``_cross_entropy``): rows of logits ``z`` and label weights
``l`` (a one-hot row for a hard label, ``1/T`` on the ``T`` true columns of a sampled row), with
``m = max(z)``, ``e = exp(z - m)``, ``s = sum(e) = 1 + rest`` (``rest``: the sum without the
maximum's own ``e = 1``) and ``S = sum(l)``:

* loss ``= -sum(l * log_softmax(z)) = sum(l * (m - z)) + S * log1p(rest)``: two sums of
  non-negative terms (for ``l >= 0``), so the loss is accurate even when it is tiny;
* gradient ``= softmax * S - l = ((S - l) * e - l * (s - e)) / s``, where ``s - e`` (the other
  classes' share of ``e``) and ``S - l`` (of the label) are summed directly from the other entries
  at the row's largest entry (``_shares``): so ``p - 1`` for a dominant class is ``-rest / s``, not
  ``e / s - 1`` after ``s`` rounded to ``e``.  Where one of its two terms is small next to the
  result, it is written as ``-l`` or ``S - l`` plus that small term instead (``_gradient``), so
  that the rounding of ``s`` cannot lose it: at a soft label's largest entry too, ``p * S - l`` is
  then correctly rounded (but for a few hundredths of an ulp, and before an upstream's own rounding)
  when the label's sums are exact.

A one-hot soft label and one true class (``T = 1``) take exactly the operations of a hard label.
Where ``p_j`` is close to ``l_j / S`` (a general soft label, ``T > 1``) the gradient's two terms
cancel: that is inherent in the formula, whatever order it is computed in.  So is the rounding of
the sampled ops' logits (``logit - log q``, ``x . w + b - log q``) to float64 at the scale of
``|z|``, and of the sums that form ``grad/inputs`` and the weight and bias gradients.

Documented behaviour for unusual but valid input (no error is raised, the answer is the limit):

* ``-inf`` logits take no probability mass; a hard label on a ``-inf`` logit gives ``+inf`` loss.
* A row whose logits along ``axis`` are all ``-inf`` has no softmax: its loss, softmax and
  gradient are NaN.  NaN logits make their row NaN; a ``+inf`` logit makes its row NaN.
* Soft labels need not sum to 1: the loss is ``-sum(label * log_softmax)`` and the gradient is the
  exact derivative ``softmax * sum(label) - label`` (not ``softmax - label``).
* A hard label of rank R-1 (``[N]`` for ``[N, C]`` logits) is read with a size-1 axis inserted at
  ``axis`` (Paddle's dimension rule); the loss has the logits' shape with size 1 at ``axis``, as
  for a full-rank label.
* ``sampled_softmax_loss`` takes ``biases`` as one ``[num_classes]`` array or as a list of shards
  laid out like the weights (as ``tf.nn.embedding_lookup`` reads them); its gradient comes back in
  the same form.  ``true_expected_count`` may be ``[B, 1]``, broadcast over the ``num_true`` columns.

``cross_entropy`` writes each documented convention (``CONVENTIONS``; the rules and their sources are
``impls.ops.CROSS_ENTROPY_CONVENTIONS``) as class coefficients ``a`` (the smoothed target, times the
class weights for torch), a per-position factor ``g`` (weight[label], or paddle's sum_i weight_i
label_i) and a share ``d`` of the mean's denominator: ``loss_n = g_n * sum_c a_nc * (-log q_nc)``,
``mean = sum_n loss_n / sum_n d_n``; ``q`` is the softmax (through ``_cross_entropy``) or, with
``use_softmax=False``, the probabilities as the convention takes their log (keras clips at 1e-7).

Invalid input raises ``ValueError`` or ``TypeError`` naming the argument and what was expected.

Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

__all__ = ["softmax_with_cross_entropy", "softmax_with_cross_entropy_grad", "sampled_softmax_with_cross_entropy",
           "sampled_softmax_with_cross_entropy_grad", "sampled_softmax_loss", "sampled_softmax_loss_grad",
           "log_uniform_candidate_sampler", "log_uniform_probability", "shard_layout", "cross_entropy",
           "cross_entropy_grad", "CONVENTIONS", "ConventionUndefined"]

FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")


# --------------------------------------------------------------------------------------------
# Array module and argument checks
# --------------------------------------------------------------------------------------------
def _array_module(*arrays):
    """numpy, or cupy when any argument is a CuPy array (cupy is imported only then)."""
    for array in arrays:
        if type(array).__module__.split(".")[0] == "cupy":
            import cupy  # noqa: PLC0415 - only GPU callers pay for the import

            return cupy
    return np


def _quiet(xp):
    """Silence NumPy's overflow/invalid warnings: -inf and NaN are documented results."""
    return np.errstate(all="ignore") if xp is np else contextlib.nullcontext()


def _first(xp, mask):
    """The index (a tuple) of the first True element of ``mask``, on the host."""
    where = xp.argwhere(mask)[0]
    return tuple(int(i) for i in (where.get() if xp is not np else where))


def _check_float(name, array, shape=None):
    dtype = getattr(array, "dtype", None)
    if dtype is None or dtype.name not in FLOAT_NAMES:
        raise TypeError("%s: expected a float16/bfloat16/float32/float64 array, got %s"
                        % (name, dtype if dtype is not None else type(array).__name__))
    _check_shape(name, array, shape)


def _check_int(name, array, shape=None):
    if not hasattr(array, "dtype") or array.dtype.kind not in "iu":
        raise TypeError("%s: expected an integer array (int64), got %s"
                        % (name, getattr(array, "dtype", type(array).__name__)))
    _check_shape(name, array, shape)


def _check_shape(name, array, shape):
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise ValueError("%s: expected shape %s, got %s" % (name, tuple(shape), tuple(array.shape)))


def _check_range(xp, name, ids, upper, allowed=None):
    """Every id in [0, upper) (or equal to ``allowed``); the message names the first offender."""
    bad = (ids < 0) | (ids >= upper)
    if allowed is not None:
        bad &= ids != allowed
    if bool(bad.any()):
        where = _first(xp, bad)
        extra = " or %d (ignore_index)" % allowed if allowed is not None else ""
        raise ValueError("%s: expected values in [0, %d)%s, got %d at index %s"
                         % (name, upper, extra, int(ids[where]), where))


def _check_positive(xp, name, array):
    ok = xp.isfinite(array) & (array > 0)
    if not bool(ok.all()):
        where = _first(xp, ~ok)
        raise ValueError("%s: expected finite values > 0, got %r at index %s" % (name, float(array[where]), where))


def _check_count(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError("%s: expected an int, got %r" % (name, value))
    if value < low or (high is not None and value >= high):
        upper = "" if high is None else " and < %d" % high
        raise ValueError("%s: expected an int >= %d%s, got %d" % (name, low, upper, value))


def _check_logits_axis(logits, axis):
    """``(axis, num_classes)`` of float logits of rank >= 1 with at least one class on ``axis``."""
    _check_float("logits", logits)
    if logits.ndim < 1:
        raise ValueError("logits: expected an array of rank >= 1, got a scalar")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -logits.ndim <= axis < logits.ndim:
        raise ValueError("axis: expected an int in [%d, %d], got %r" % (-logits.ndim, logits.ndim - 1, axis))
    axis = int(axis) % logits.ndim
    if logits.shape[axis] < 1:
        raise ValueError("logits: expected at least one class along axis %d, got shape %s"
                         % (axis, tuple(logits.shape)))
    return axis, logits.shape[axis]


def _upstream(xp, upstream, shape):
    """The cotangent of the loss in float64 (ones when not given)."""
    if upstream is None:
        return xp.ones(shape, dtype=xp.float64)
    _check_float("upstream", upstream, shape)
    return upstream.astype(xp.float64)


# --------------------------------------------------------------------------------------------
# The one computation: softmax cross-entropy of rows (classes on the last axis)
# --------------------------------------------------------------------------------------------
def _shares(xp, v):
    """``(total, rest, others)`` of non-negative rows ``v`` along the last axis: ``total = sum(v)``
    and ``others = total - v``, except at each row's largest entry, where ``others`` is ``rest``,
    summed from the other entries.  Elsewhere ``total - v >= total / 2``: no cancellation."""
    at = xp.arange(v.shape[-1]) == xp.argmax(v, axis=-1)[..., None]
    rest = xp.where(at, 0, v).sum(axis=-1, keepdims=True)
    total = rest + xp.where(at, v, 0).sum(axis=-1, keepdims=True)
    return total, rest, xp.where(at, rest, total - v)


def _shifted_exp(xp, z):
    """``(m, e, s, rest, e_others)`` along the last axis: the row maximum ``m``, ``e = exp(z - m)``,
    its sum ``s = 1 + rest`` and, per class, the sum of the others' ``e`` (see ``_shares``)."""
    m = z.max(axis=-1, keepdims=True)  # NaN in a row with a NaN; -inf in an all -inf row
    m = xp.where(m == xp.inf, xp.nan, m)  # a +inf logit has no softmax either: a NaN row
    e = xp.exp(z - m)  # all NaN in those rows (-inf - -inf is NaN too)
    s, rest, e_others = _shares(xp, e)  # e == 1 exactly at the maximum: s = 1 + rest
    return m, e, s, rest, e_others


def _cross_entropy(xp, z, label, u):
    """``(loss, softmax, gradient)`` of ``-sum(label * log_softmax(z))`` along the last axis.

    ``z``, ``label``: float64 ``[..., K]``; ``u``: the upstream ``[..., 1]``, or None for no
    gradient.  See the module docstring for the formulas and why they are written so.
    """
    with _quiet(xp):
        m, e, s, rest, e_others = _shifted_exp(xp, z)
        label_sum, _, label_others = _shares(xp, label)
        # A class without label weight adds nothing, even at a -inf logit (0 * inf would be NaN).
        gap = xp.where(label == 0, 0, label * (m - z)).sum(axis=-1, keepdims=True)
        loss = gap + label_sum * xp.log1p(rest)
        grad = None if u is None else u * _gradient(xp, e, s, e_others, label, label_sum, label_others)
    return loss, e / s, grad


def _gradient(xp, e, s, e_others, label, label_sum, label_others):
    """``S * p - l`` per class (``p = e / s``, ``S = sum(l)``), each in the form that keeps it accurate.

    Three forms, equal in exact arithmetic; each is taken where its roundings cost least:

    * ``S * e / s - l`` where ``S * p < l / 64`` (a class with label weight and little probability):
      ``-l`` plus a small term, whose roundings cost a few hundredths of an ulp of the result.
    * ``(S - l) - S * (s - e) / s`` where ``S * (1 - p) < (S - l) / 64``, which (for labels >= 0)
      only happens at the row's largest entry (``e = 1``, ``s - e = rest``): ``S - l`` minus a small
      term.  The general form would divide by ``s = 1 + rest`` rounded, losing the other classes'
      share where ``rest`` is below the spacing of 1: logits ``[37.43, 0]`` with label ``[0.5, 0.5]``
      gave ``0.5``, not ``0.5 - 2**-54``, at class 0 (and a dominant class without label weight gave
      ``S / s``).
    * elsewhere ``((S - l) * e - l * (s - e)) / s``: both shares summed without cancellation
      (``_shares``), divided once.  A one-hot label at its dominant class (``S - l = 0``) takes it:
      ``-rest / s``, bit for bit the hard label's.

    Where ``S`` and ``S - l`` are exact (hard and one-hot labels, dyadic weights such as
    ``[0.5, 0.5]``), the first two forms are correctly rounded but for those hundredths of an ulp;
    otherwise the rounding of the label's sums adds its own error, as it does in the loss.
    """
    general = (label_others * e - label * e_others) / s
    small_p = label_sum * e / s - label
    near_one = label_others - label_sum * e_others / s
    return xp.where(64 * label_sum * e < label * s, small_p,
                    xp.where(64 * label_sum * e_others < label_others * s, near_one, general))


# --------------------------------------------------------------------------------------------
# softmax_with_cross_entropy (Paddle)
# --------------------------------------------------------------------------------------------
def _swce(logits, label, soft_label, ignore_index, axis, upstream, want_grad):
    xp = _array_module(logits, label)
    axis, num_classes = _check_logits_axis(logits, axis)
    loss_shape = logits.shape[:axis] + (1,) + logits.shape[axis + 1:]
    if soft_label:
        _check_float("label", label, logits.shape)
    else:
        _check_int("label", label)
        if label.ndim == logits.ndim - 1 and logits.ndim > 1:  # Paddle's rule: unsqueeze at axis
            _check_shape("label", label, logits.shape[:axis] + logits.shape[axis + 1:])
            label = xp.expand_dims(label, axis)
        _check_shape("label", label, loss_shape)
        _check_range(xp, "label", label, num_classes, allowed=ignore_index)
    u = _upstream(xp, upstream, loss_shape) if want_grad else None

    z = xp.moveaxis(logits.astype(xp.float64), axis, -1)  # rows [..., K]
    ignored = None
    if soft_label:
        weights = xp.moveaxis(label.astype(xp.float64), axis, -1)
    else:
        ignored = xp.moveaxis(label == ignore_index, axis, -1)  # [..., 1]
        weights = ((xp.moveaxis(label, axis, -1) == xp.arange(num_classes)) & ~ignored).astype(xp.float64)
    u_rows = None if u is None else xp.moveaxis(u, axis, -1)
    loss, softmax, grad = _cross_entropy(xp, z, weights, u_rows)
    if ignored is not None:  # 0 even where the row's softmax is undefined (all -inf, NaN)
        loss = xp.where(ignored, 0, loss)
        grad = None if grad is None else xp.where(ignored, 0, grad)
    result = {"loss": loss, "softmax": softmax, "logits": grad}
    if soft_label and u_rows is not None:
        # The loss is linear in the soft label: d loss / d label = -log_softmax(z) = (m - z) + log(s),
        # the loss's own two terms per class (+inf at a -inf logit: more weight there costs infinitely).
        with _quiet(xp):
            m, _, _, rest, _ = _shifted_exp(xp, z)
            result["label"] = u_rows * ((m - z) + xp.log1p(rest))
    return {name: xp.moveaxis(value, -1, axis).astype(logits.dtype) for name, value in result.items()
            if value is not None}


def softmax_with_cross_entropy(logits, label, soft_label=False, ignore_index=-100, numeric_stable_mode=True,
                               return_softmax=False, axis=-1):
    """Paddle's softmax_with_cross_entropy; ``(loss, softmax)`` when ``return_softmax``.

    ``numeric_stable_mode`` is accepted for signature compatibility: the reference is always stable.
    """
    result = _swce(logits, label, soft_label, ignore_index, axis, None, want_grad=False)
    return (result["loss"], result["softmax"]) if return_softmax else result["loss"]


def softmax_with_cross_entropy_grad(logits, label, soft_label=False, ignore_index=-100, numeric_stable_mode=True,
                                    return_softmax=False, axis=-1, upstream=None):
    """``{"loss", "logits"}`` (plus ``"softmax"`` when asked, and ``"label"`` for soft labels): the
    gradients of ``sum(upstream * loss)``."""
    result = _swce(logits, label, soft_label, ignore_index, axis, upstream, want_grad=True)
    if not return_softmax:
        del result["softmax"]
    return result


# --------------------------------------------------------------------------------------------
# Both sampled losses: softmax cross-entropy over [true columns | sampled columns]
# --------------------------------------------------------------------------------------------
def _sampled(xp, z_true, z_sampled, hits, u):
    """Loss ``[N]`` and gradient ``[N, T+S]`` of the rows ``[z_true | z_sampled]`` with label ``1/T``
    on the ``T`` true columns.  ``hits`` ([N, S] bool, or None): sampled columns removed (their
    probability is exactly 0, the limit of Paddle's ``-1e20`` and TensorFlow's ``-FLT_MAX``)."""
    num_true = z_true.shape[1]
    if hits is not None:
        z_sampled = xp.where(hits, -xp.inf, z_sampled)
    z = xp.concatenate([z_true, z_sampled], axis=1)
    label = xp.concatenate([xp.full(num_true, 1.0 / num_true), xp.zeros(z_sampled.shape[1])])
    loss, _, grad = _cross_entropy(xp, z, xp.broadcast_to(label, z.shape), None if u is None else u[:, None])
    return loss[:, 0], grad


def _scatter_add(xp, out, index, values):
    """``out[index] += values`` with repeated indices accumulating, in index order."""
    if xp is np:
        np.add.at(out, index, values)
    else:
        import cupyx  # noqa: PLC0415 - CuPy's scatter-add

        cupyx.scatter_add(out, index, values)


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
    _check_int("label", label, (n, num_true))
    _check_range(xp, "label", label, k)
    if use_customized_samples:
        if customized_samples is None or customized_probabilities is None:
            raise ValueError("customized_samples, customized_probabilities: required when use_customized_samples=True")
        samples, probabilities = customized_samples, customized_probabilities
        _check_int("customized_samples", samples, (n, num_true + num_samples))
        _check_range(xp, "customized_samples", samples, k)
        _check_float("customized_probabilities", probabilities, samples.shape)
        _check_positive(xp, "customized_probabilities", probabilities)
        if not bool((samples[:, :num_true] == label).all()):
            raise ValueError("customized_samples: expected the first num_true=%d columns to equal label" % num_true)
    else:
        # One log-uniform candidate set for the batch, as Paddle's sampler draws it.
        candidates, true_expected, sampled_expected = log_uniform_candidate_sampler(
            label, num_true, num_samples, True, k, seed=seed)
        samples = xp.concatenate([label, xp.broadcast_to(candidates, (n, num_samples))], axis=1)
        probabilities = xp.concatenate([true_expected, xp.broadcast_to(sampled_expected, (n, num_samples))], axis=1)
    u = _upstream(xp, upstream, (n, 1))[:, 0] if want_grad else None  # documented as the loss's [N, 1]

    z = xp.take_along_axis(logits.astype(xp.float64), samples, axis=1) - xp.log(probabilities.astype(xp.float64))
    hits = None
    if remove_accidental_hits:  # a sampled column whose class is one of the row's labels
        hits = (samples[:, num_true:, None] == label[:, None, :]).any(axis=2)
    loss, dz = _sampled(xp, z[:, :num_true], z[:, num_true:], hits, u)
    result = {"loss": loss[:, None].astype(logits.dtype)}
    if want_grad:  # back to the dense [N, K]: duplicate samples in a row accumulate
        grad = xp.zeros(n * k, dtype=xp.float64)
        _scatter_add(xp, grad, (samples + k * xp.arange(n)[:, None]).ravel(), dz.ravel())
        result["logits"] = grad.reshape(n, k).astype(logits.dtype)
    return result


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


# --------------------------------------------------------------------------------------------
# The log-uniform (Zipfian) candidate sampler
# --------------------------------------------------------------------------------------------
def log_uniform_probability(classes, range_max):
    """P(k) = (log(k+2) - log(k+1)) / log(range_max+1), computed as log1p(1/(k+1)) for accuracy."""
    xp = _array_module(classes)
    k = classes.astype(xp.float64)
    return xp.log1p(1.0 / (k + 1.0)) / math.log(range_max + 1.0)


def _expected_count(probability, num_tries, num_sampled, unique):
    if unique and num_tries != num_sampled:
        # P(k is among the tries) = 1 - (1 - P)^tries, computed without cancellation.
        return -np.expm1(num_tries * np.log1p(-probability))
    return probability * num_sampled


def log_uniform_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max, seed=None):
    """Draw ``num_sampled`` classes from the log-uniform distribution over ``[0, range_max)``.

    Returns ``(sampled_candidates [S] int64, true_expected_count [B, num_true], sampled_expected_count
    [S])`` (float64).  With ``unique`` it draws with replacement until ``num_sampled`` distinct
    classes are seen and counts every draw, as TensorFlow and Paddle do.  A fixed ``seed`` repeats
    exactly (NumPy's PCG64 stream); the draw happens on the host and results follow the array type
    of ``true_classes``.
    """
    xp = _array_module(true_classes)
    _check_count("range_max", range_max, 1)
    _check_count("num_true", num_true, 1)
    _check_count("num_sampled", num_sampled, 1)
    if unique and num_sampled > range_max:
        raise ValueError("num_sampled: expected <= range_max=%d when unique=True, got %d" % (range_max, num_sampled))
    _check_int("true_classes", true_classes)
    if true_classes.ndim != 2 or true_classes.shape[1] != num_true:
        raise ValueError("true_classes: expected shape [batch_size, num_true=%d], got %s"
                         % (num_true, tuple(true_classes.shape)))
    _check_range(xp, "true_classes", true_classes, range_max)
    rng = np.random.default_rng(seed)
    log_range = math.log(range_max + 1.0)

    def draw(count):
        # Inverse CDF: exp(u * log(R+1)) - 1 lands in [k, k+1) with probability P(k).
        return (np.exp(rng.random(count) * log_range) - 1.0).astype(np.int64) % range_max

    if not unique:
        candidates, num_tries = draw(num_sampled), num_sampled
    else:
        chunk = max(2 * num_sampled, 1024)
        draws = np.empty(0, dtype=np.int64)
        while True:
            draws = np.concatenate([draws, draw(chunk)])
            values, first = np.unique(draws, return_index=True)
            if values.size >= num_sampled:
                first_seen = np.sort(first)[:num_sampled]
                candidates, num_tries = draws[first_seen], int(first_seen[-1]) + 1
                break
    host_true = true_classes.get() if xp is not np else true_classes
    true_expected = _expected_count(log_uniform_probability(host_true, range_max), num_tries, num_sampled, unique)
    sampled_expected = _expected_count(log_uniform_probability(candidates, range_max), num_tries, num_sampled, unique)
    return xp.asarray(candidates), xp.asarray(true_expected), xp.asarray(sampled_expected)


# --------------------------------------------------------------------------------------------
# cross_entropy: the loss users call, under each framework's documented convention
# --------------------------------------------------------------------------------------------
# The conventions, in the order of the corpus's goldens (the first is the base golden).  What each
# one documents, with its source, is the table ``impls.ops.CROSS_ENTROPY_CONVENTIONS``; the formulas
# below are those texts, written once in terms of the shared core ``_cross_entropy``.
CONVENTIONS = ("torch", "paddle", "keras", "optax")
REDUCTIONS = ("mean", "sum", "none")
KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the clip of probabilities when from_logits=False


class ConventionUndefined(Exception):
    """The convention's documentation gives no formula for this combination of options (for example
    class weights with probability targets in Keras, whose losses take no class weights): no golden
    output exists for it, and an impl following that convention cannot be judged on the case."""


def _ce_check(logits, label, weight, axis, soft_label, reduction, ignore_index, label_smoothing, use_softmax,
              convention):
    axis, num_classes = _check_logits_axis(logits, axis)
    for name, value in (("soft_label", soft_label), ("use_softmax", use_softmax)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError("%s: expected a bool, got %r" % (name, value))
    if reduction not in REDUCTIONS:
        raise ValueError("reduction: expected one of %s, got %r" % (", ".join(REDUCTIONS), reduction))
    if convention not in CONVENTIONS:
        raise ValueError("convention: expected one of %s, got %r" % (", ".join(CONVENTIONS), convention))
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.floating)) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError("label_smoothing: expected a float in [0, 1], got %r" % (label_smoothing,))
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError("ignore_index: expected an int, got %r" % (ignore_index,))
    if soft_label:
        _check_float("label", label, logits.shape)
    else:
        _check_int("label", label, logits.shape[:axis] + logits.shape[axis + 1:])
        _check_range(_array_module(label), "label", label, num_classes, allowed=ignore_index)
    if weight is not None:
        _check_float("weight", weight, (num_classes,))
        if weight.dtype != logits.dtype:
            raise TypeError("weight: expected dtype %s (that of logits), got %s" % (logits.dtype, weight.dtype))
    return axis


def _ce_undefined(convention, soft_label, weighted, use_softmax, smoothing, any_ignored):
    """Why the convention's documentation has no formula for these options (None when it has one)."""
    if convention in ("keras", "optax") and soft_label and weighted:
        return "%s takes no class weights for probability targets" % convention
    if convention == "optax" and not use_softmax:
        return "optax's cross-entropy takes logits only"
    if convention == "paddle" and smoothing and any_ignored:
        return "paddle turns smoothed labels into one-hot rows: ignore_index has no documented effect"
    if convention == "keras" and smoothing and any_ignored:
        return "keras smooths only CategoricalCrossentropy targets, which take no ignore_class"
    return None


def _ce_neg_log_q(xp, p, convention, hard, smoothing, dtype):
    """``(phi, dphi)`` for probabilities ``p`` [..., C] (use_softmax=False): ``phi = -log q`` per class,
    ``q`` the probabilities the convention takes the log of, and ``dphi(a)`` the gradient of
    ``sum(a * phi)`` with respect to ``p``.

    torch (F.nll_loss of log p) and paddle: ``q = p``.  keras: its sparse loss clips p to
    ``[eps, 1 - eps]`` and renormalises (a softmax of the log), its categorical loss (soft labels,
    or smoothed hard labels as one-hot rows) renormalises then clips; both bounds in the case dtype.
    A clipped entry passes no gradient (tf.clip_by_value passes it at the bounds themselves)."""
    if convention != "keras":
        return -xp.log(p), lambda a: -xp.where(a == 0, 0, a / p)
    lo = float(np.asarray(KERAS_EPSILON, dtype=dtype).astype(np.float64))
    hi = float(np.asarray(1 - KERAS_EPSILON, dtype=dtype).astype(np.float64))
    if hard and not smoothing:  # sparse_categorical_crossentropy: log(clip(p)) into a softmax
        c = xp.clip(p, lo, hi)
        inside = (p >= lo) & (p <= hi)
        total = c.sum(axis=-1, keepdims=True)
        return (xp.log(total) - xp.log(c),
                lambda a: xp.where(inside, a.sum(axis=-1, keepdims=True) / total - xp.where(a == 0, 0, a / p), 0))
    total = p.sum(axis=-1, keepdims=True)  # categorical_crossentropy: p / sum(p), then clip
    r = p / total
    inside = (r >= lo) & (r <= hi)
    return (-xp.log(xp.clip(r, lo, hi)),
            lambda a: xp.where(inside, xp.where(a == 0, 0, -a / p), 0)
            + xp.where(inside, a, 0).sum(axis=-1, keepdims=True) / total)


def _ce(logits, label, weight, axis, soft_label, reduction, ignore_index, label_smoothing, use_softmax, convention,
        upstream, want_grad):
    axis = _ce_check(logits, label, weight, axis, soft_label, reduction, ignore_index, label_smoothing,
                     use_softmax, convention)
    xp = _array_module(logits, label, *([] if weight is None else [weight]))
    num_classes = logits.shape[axis]
    eps = float(label_smoothing)
    f64 = xp.float64
    z = xp.moveaxis(logits.astype(f64), axis, -1)  # rows [..., C]
    if soft_label:
        ignored = xp.zeros(z.shape[:-1] + (1,), dtype=bool)
        target = xp.moveaxis(label.astype(f64), axis, -1)
    else:
        ignored = (label == ignore_index)[..., None]
        target = ((label[..., None] == xp.arange(num_classes)) & ~ignored).astype(f64)
    any_ignored = bool(ignored.any())
    why = _ce_undefined(convention, soft_label, weight is not None, use_softmax, eps > 0, any_ignored)
    if why:
        raise ConventionUndefined("cross_entropy, %s convention: %s" % (convention, why))
    loss_shape = z.shape[:-1]
    u = _upstream(xp, upstream, loss_shape if reduction == "none" else ()) if want_grad else None

    # The smoothed target t = (1 - eps) * label + eps / C (every convention documents this mixture).
    smoothed = (1 - eps) * target + eps / num_classes if eps else target
    w = xp.ones(num_classes, dtype=f64) if weight is None else weight.astype(f64)
    # Per position: class coefficients a, a factor g, and the position's share d of the mean's denominator:
    # loss_n = g_n * sum_c a_nc * (-log q_nc), mean = sum_n loss_n / sum_n d_n.
    valid = (~ignored).astype(f64)  # [..., 1]
    w_label = (target * w).sum(axis=-1, keepdims=True) if not soft_label else None  # w[y], 0 where ignored
    if convention == "torch":
        # Class weights weight each class's term; mean over the weights of the non-ignored targets
        # (class indices) or over the positions (probabilities).
        # (Class indices without smoothing: the same product as w[y] * -log p_y, written as the other
        # conventions write it so that equal formulas give equal bits.)
        a, g = (smoothed, w_label) if not soft_label and not eps else (w * smoothed, valid)
        d = w_label if not soft_label else valid
    elif convention == "paddle":
        # The loss of a position times weight[label] (hard) or sum_i weight_i * label_i (soft and
        # smoothed labels); mean over those factors with weights, else over the positions whose target
        # is not ignored (ignored targets "do not contribute to the loss").
        a = smoothed
        g = valid if weight is None else (w * smoothed).sum(axis=-1, keepdims=True) * valid
        d = valid if weight is None else g
    else:
        # keras (sample_weight = weight[label]; mean over the non-ignored positions) and optax (a user
        # multiplies by weight[label] and takes the mean over `where`).
        a = smoothed
        g = valid if weight is None else w_label
        d = valid
    a = xp.where(ignored, 0, a)
    count = d.sum()
    scale = None
    if u is not None:  # d total / d loss_n
        # An empty mean: keras's and paddle's loss is the constant 0; elsewhere 0/0 is NaN; the gradient is 0
        # anyway (every position is ignored).
        scale = (0 * u if reduction == "mean" and count == 0 else u / count if reduction == "mean" else u) \
            * xp.ones(loss_shape, dtype=f64)
        scale = scale[..., None]

    with _quiet(xp):
        if use_softmax:
            rows, _, grad_z = _cross_entropy(xp, z, a, None if scale is None else scale * g)
            m, _, _, rest, _ = _shifted_exp(xp, z)
            phi = (m - z) + xp.log1p(rest)  # -log_softmax per class
        else:
            phi, dphi = _ce_neg_log_q(xp, z, convention, not soft_label, eps > 0, logits.dtype)
            rows = xp.where(a == 0, 0, a * phi).sum(axis=-1, keepdims=True)
            grad_z = None if scale is None else scale * g * dphi(a)
        per_position = xp.where(ignored, 0, g * rows)  # 0 even where the row has no softmax
        if reduction == "none":
            loss = per_position[..., 0]
        elif reduction == "sum":
            loss = per_position.sum()
        else:  # keras divides with divide_no_nan, paddle by max(count, 1) where count is 0: an empty mean
            # is 0 there, 0/0 = NaN elsewhere
            loss = per_position.sum() / count if (count != 0 or convention not in ("keras", "paddle")) \
                else xp.zeros((), f64)
        result = {"loss": loss}
        if scale is not None:
            result["logits"] = xp.where(ignored, 0, grad_z)
            if soft_label:
                # d loss_n / d label_c through the smoothed target: (1 - eps) * d/dt.
                if convention == "torch":
                    grad_t = w * phi
                elif convention == "paddle" and weight is not None:
                    grad_t = g * phi + w * rows  # the factor sum_i w_i t_i depends on the label too
                else:
                    grad_t = phi
                grad_label = scale * (1 - eps) * grad_t
                if convention == "paddle" and weight is not None and reduction == "mean":
                    # the denominator sum_n sum_i w_i t_ni depends on the label as well
                    grad_label = grad_label - u * per_position.sum() / count ** 2 * (1 - eps) * w
                result["label"] = grad_label
    out = {"loss": result["loss"].astype(logits.dtype)}
    if "logits" in result:
        out["logits"] = xp.moveaxis(result["logits"], -1, axis).astype(logits.dtype)
    if "label" in result:
        out["label"] = xp.moveaxis(result["label"], -1, axis).astype(logits.dtype)
    return out


def cross_entropy(logits, label, weight=None, axis=-1, soft_label=False, reduction="mean", ignore_index=-100,
                  label_smoothing=0.0, use_softmax=True, convention="torch"):
    """The cross-entropy loss as the ``convention``'s framework documents it (see ``CONVENTIONS``).

    ``logits`` [..., C, ...] with the classes on ``axis`` (probabilities when ``use_softmax`` is
    False); ``label``: int class indices of the logits' shape without ``axis`` (``soft_label``
    False; ``ignore_index`` marks positions without a target) or probabilities of the logits' shape
    (True); ``weight``: optional class weights [C].  Returns the loss of each position
    (``reduction="none"``) or their sum or mean (a 0-d array).  Raises :class:`ConventionUndefined`
    where the convention documents no formula for the options."""
    return _ce(logits, label, weight, axis, soft_label, reduction, ignore_index, label_smoothing, use_softmax,
               convention, None, want_grad=False)["loss"]


def cross_entropy_grad(logits, label, weight=None, axis=-1, soft_label=False, reduction="mean", ignore_index=-100,
                       label_smoothing=0.0, use_softmax=True, convention="torch", upstream=None):
    """``{"loss", "logits"}`` (and ``"label"`` for probability targets): the gradients of
    ``sum(upstream * loss)``; ``upstream`` has the loss's shape (0-d for sum and mean)."""
    return _ce(logits, label, weight, axis, soft_label, reduction, ignore_index, label_smoothing, use_softmax,
               convention, upstream, want_grad=True)
