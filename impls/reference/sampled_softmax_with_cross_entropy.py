"""The oracle's ``sampled_softmax_with_cross_entropy`` (Paddle 1.8): logits-based, per-row samples."""
from __future__ import annotations



from impls.reference.core import (_array_module, _check_count, _check_float, _check_int, _check_positive,
                                  _check_range, _sampled, _scatter_add, _upstream)
from impls.reference.sampler import log_uniform_candidate_sampler


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
