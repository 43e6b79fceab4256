"""The oracle's shared core: argument checks and the one computation every loss is made of.

The oracle (``impls.reference``) computes softmax cross-entropy, both sampled softmax losses, their
sampler and the ``cross_entropy`` loss users call (under each framework's documented convention), as
a textbook: this module holds what they share, and each op has a short file of its own beside it.

Every golden output of the corpus is computed here, by code written to be checked, not to be fast
(the contender is ``impls/numpy_fast/``): plain array math, generic over the array module (NumPy
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

import numpy as np

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
