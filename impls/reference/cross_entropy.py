"""The oracle's ``cross_entropy``: the loss users call, under each framework's documented convention."""
from __future__ import annotations

import numpy as np

from impls.reference.core import (_array_module, _check_float, _check_int, _check_logits_axis, _check_range,
                                  _cross_entropy, _quiet, _shifted_exp, _upstream)


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
              convention, sample_weight=None):
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
    if sample_weight is not None:
        _check_float("sample_weight", sample_weight, logits.shape[:axis] + logits.shape[axis + 1:])
        if sample_weight.dtype != logits.dtype:
            raise TypeError("sample_weight: expected dtype %s (that of logits), got %s"
                            % (logits.dtype, sample_weight.dtype))
    return axis


def _ce_undefined(convention, soft_label, weighted, use_softmax, smoothing, any_ignored, sample_weighted=False):
    """Why the convention's documentation has no formula for these options (None when it has one)."""
    if sample_weighted and convention != "keras":
        return "%s's cross-entropy takes no per-position sample weights" % convention
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
        upstream, want_grad, sample_weight=None):
    axis = _ce_check(logits, label, weight, axis, soft_label, reduction, ignore_index, label_smoothing,
                     use_softmax, convention, sample_weight)
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
    why = _ce_undefined(convention, soft_label, weight is not None, use_softmax, eps > 0, any_ignored,
                        sample_weight is not None)
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
        # keras (sample_weight = weight[label], times the per-position sample_weight; mean over the
        # non-ignored positions whatever the weights) and optax (a user multiplies by weight[label] and
        # takes the mean over `where`).
        a = smoothed
        g = valid if weight is None else w_label
        if sample_weight is not None:
            g = g * sample_weight.astype(f64)[..., None]
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
                else:  # g: 1, or Keras's sample weight (no class weights for probability targets)
                    grad_t = g * phi
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
                  label_smoothing=0.0, use_softmax=True, convention="torch", sample_weight=None):
    """The cross-entropy loss as the ``convention``'s framework documents it (see ``CONVENTIONS``).

    ``logits`` [..., C, ...] with the classes on ``axis`` (probabilities when ``use_softmax`` is
    False); ``label``: int class indices of the logits' shape without ``axis`` (``soft_label``
    False; ``ignore_index`` marks positions without a target) or probabilities of the logits' shape
    (True); ``weight``: optional class weights [C]; ``sample_weight``: optional weights of the positions
    (the loss's shape under ``reduction="none"``; Keras's, multiplied into each position's loss).  Returns the loss of each position
    (``reduction="none"``) or their sum or mean (a 0-d array).  Raises :class:`ConventionUndefined`
    where the convention documents no formula for the options."""
    return _ce(logits, label, weight, axis, soft_label, reduction, ignore_index, label_smoothing, use_softmax,
               convention, None, want_grad=False, sample_weight=sample_weight)["loss"]


def cross_entropy_grad(logits, label, weight=None, axis=-1, soft_label=False, reduction="mean", ignore_index=-100,
                       label_smoothing=0.0, use_softmax=True, convention="torch", upstream=None, sample_weight=None):
    """``{"loss", "logits"}`` (and ``"label"`` for probability targets): the gradients of
    ``sum(upstream * loss)``; ``upstream`` has the loss's shape (0-d for sum and mean)."""
    return _ce(logits, label, weight, axis, soft_label, reduction, ignore_index, label_smoothing, use_softmax,
               convention, upstream, want_grad=True, sample_weight=sample_weight)
