"""The oracle's ``softmax_with_cross_entropy`` (Paddle): hard or soft labels, ``ignore_index``, any ``axis``."""
from __future__ import annotations



from impls.reference.core import (_array_module, _check_float, _check_int, _check_logits_axis, _check_range,
                                  _check_shape, _cross_entropy, _quiet, _shifted_exp, _upstream)


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
