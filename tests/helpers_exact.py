"""Exact values of the three losses and their gradients, with mpmath at 3000 bits, for small inputs.

Independent of ``impls/reference/``: every formula is the definition, evaluated in high precision
on the exact values of the float64 inputs (``mpmath.mpf(float)`` is exact), so rounding the result
once to float64 gives the correctly rounded answer.  Used by tests/test_reference_exact.py.
Works on Python 3.8 + numpy 1.23 as well.
"""
from __future__ import annotations

import numpy as np

mpmath = __import__("pytest").importorskip("mpmath")
# mpmath's global context: every mpmath function below computes at 3000 bits.  A float64 result
# needs the exact value resolved down to 2^-1074: a loss log(1 + x) = x for x ~ 1e-300 needs about
# 1000 bits more than the 53 of the answer; below ~1e-900 both the float and this give 0.
mpmath.mp.prec = 3000


def _row(z, label, label_sum, u):
    """``(loss, softmax, gradient)`` of ``-sum(label * log_softmax(z))`` for one row, by the definition."""
    z = [mpmath.mpf(float(v)) for v in z]
    e = [mpmath.exp(v) for v in z]
    s = mpmath.fsum(e)
    log_s = mpmath.log(s)
    loss = mpmath.fsum(l * (log_s - v) for l, v in zip(label, z) if l != 0)
    p = [v / s for v in e]
    return loss, p, [u * (pi * label_sum - l) for pi, l in zip(p, label)]


def swce(logits, label, soft_label=False, ignore_index=-100, axis=-1, upstream=None):
    """``{"loss", "softmax", "logits"}`` as arrays of mpf (same shapes as the reference's)."""
    axis = axis % logits.ndim
    if not soft_label and label.ndim == logits.ndim - 1:
        label = np.expand_dims(label, axis)
    loss_shape = logits.shape[:axis] + (1,) + logits.shape[axis + 1:]
    u = np.ones(loss_shape) if upstream is None else upstream
    z, lab, u = (np.moveaxis(a, axis, -1) for a in (logits, label, u))
    k = z.shape[-1]
    out = {"loss": np.empty(z.shape[:-1] + (1,), dtype=object), "softmax": np.empty(z.shape, dtype=object),
           "logits": np.empty(z.shape, dtype=object)}
    for index in np.ndindex(*z.shape[:-1]):
        if soft_label:
            weights = [mpmath.mpf(float(v)) for v in lab[index]]
        elif lab[index][0] == ignore_index:
            weights = [0] * k
        else:
            weights = [1 if j == lab[index][0] else 0 for j in range(k)]
        loss, p, g = _row(z[index], weights, mpmath.fsum(weights), mpmath.mpf(float(u[index][0])))
        if not soft_label and lab[index][0] == ignore_index:
            loss, g = 0, [0] * k
        out["loss"][index] = [loss]
        out["softmax"][index], out["logits"][index] = p, g
    return {name: np.moveaxis(value, -1, axis) for name, value in out.items()}


def sampled(z_true, z_sampled, hits, u):
    """Loss ``[N]`` and gradient ``[N, T+S]`` of rows ``[z_true | z_sampled]`` (mpf), label 1/T."""
    n, num_true = z_true.shape
    loss, grad = np.empty(n, dtype=object), np.empty((n, num_true + z_sampled.shape[1]), dtype=object)
    for i in range(n):
        z = list(z_true[i]) + [mpmath.mpf("-inf") if hits is not None and hits[i, j] else v
                               for j, v in enumerate(z_sampled[i])]
        label = [mpmath.mpf(1) / num_true] * num_true + [0] * z_sampled.shape[1]
        e = [mpmath.exp(v) for v in z]
        s = mpmath.fsum(e)
        loss[i] = mpmath.log(s) - mpmath.fsum(z_true[i]) / num_true
        grad[i] = [mpmath.mpf(float(u[i])) * (v / s - l) for v, l in zip(e, label)]
    return loss, grad


def sswce(logits, label, samples, probabilities, num_true, remove_accidental_hits=True, upstream=None):
    """``{"loss" [N, 1], "logits" [N, K]}`` (mpf) for customized samples."""
    n, k = logits.shape
    z = np.array([[mpmath.mpf(float(logits[i, c])) - mpmath.log(mpmath.mpf(float(q)))
                   for c, q in zip(samples[i], probabilities[i])] for i in range(n)], dtype=object)
    hits = (samples[:, num_true:, None] == label[:, None, :]).any(axis=2) if remove_accidental_hits else None
    u = np.ones(n) if upstream is None else upstream[:, 0]
    loss, dz = sampled(z[:, :num_true], z[:, num_true:], hits, u)
    grad = np.array([[mpmath.mpf(0)] * k for _ in range(n)], dtype=object)
    for i in range(n):
        for j, c in enumerate(samples[i]):
            grad[i, c] += dz[i, j]
    return {"loss": loss[:, None], "logits": grad}


def ssl(weights, biases, labels, inputs, candidates, true_expected, sampled_expected, remove_accidental_hits=True,
        upstream=None):
    """``{"loss", "inputs", "weights", "biases"}`` (mpf) for dense ``weights`` [K, D] and ``biases`` [K]."""
    mpf = np.vectorize(lambda v: mpmath.mpf(float(v)), otypes=[object])
    w, b, x = mpf(weights), mpf(biases), mpf(inputs)
    true_expected = np.broadcast_to(true_expected, labels.shape)
    batch, num_true = labels.shape
    z_true = np.array([[mpmath.fsum(x[i] * w[c]) + b[c] - mpmath.log(mpmath.mpf(float(true_expected[i, t])))
                        for t, c in enumerate(labels[i])] for i in range(batch)], dtype=object)
    z_sampled = np.array([[mpmath.fsum(x[i] * w[c]) + b[c] - mpmath.log(mpmath.mpf(float(q)))
                           for c, q in zip(candidates, sampled_expected)] for i in range(batch)], dtype=object)
    hits = (labels[:, :, None] == candidates).any(axis=1) if remove_accidental_hits else None
    u = np.ones(batch) if upstream is None else upstream
    loss, dz = sampled(z_true, z_sampled, hits, u)
    ids = np.concatenate([labels, np.broadcast_to(candidates, (batch, len(candidates)))], axis=1)
    grad_x = np.array([[mpmath.fsum(dz[i, j] * w[c, d] for j, c in enumerate(ids[i])) for d in range(x.shape[1])]
                       for i in range(batch)], dtype=object)
    grad_w = np.array([[mpmath.mpf(0)] * x.shape[1] for _ in range(w.shape[0])], dtype=object)
    grad_b = np.array([mpmath.mpf(0)] * w.shape[0], dtype=object)
    for i in range(batch):
        for j, c in enumerate(ids[i]):
            grad_w[c] = grad_w[c] + dz[i, j] * x[i]
            grad_b[c] += dz[i, j]
    return {"loss": loss, "inputs": grad_x, "weights": grad_w, "biases": grad_b}


def ulps(actual, exact):
    """``|actual - exact|`` in units of the float64 spacing at ``exact``, elementwise (NaN/inf positional)."""
    actual = np.asarray(actual, dtype=np.float64)
    out = np.zeros(actual.shape)
    for index in np.ndindex(*actual.shape):
        a, x = actual[index], exact[index]
        x = mpmath.mpf(x)
        if mpmath.isnan(x) or mpmath.isinf(x) or not np.isfinite(a):
            out[index] = 0.0 if (np.isnan(a) and mpmath.isnan(x)) or a == float(x) else np.inf
            continue
        spacing = mpmath.mpf(float(np.spacing(abs(float(x))))) if x != 0 else mpmath.mpf(2) ** -1074
        out[index] = float(abs(mpmath.mpf(float(a)) - x) / spacing)
    return out


# ----------------------------------------------------------------------------------------------
# cross_entropy: each convention's documented formula (impls/ops.CROSS_ENTROPY_CONVENTIONS), by
# the definition; gradients by mpmath's numerical differentiation of that definition.
# ----------------------------------------------------------------------------------------------
def _ce_total(z, y, weight, soft, reduction, ignore_index, eps, use_softmax, convention, u, dtype_eps,
              sample_weight=None):
    """The documented loss (a list per position, or a number) for rows ``z`` [N][C] of mpf."""
    n, c = len(z), len(z[0])
    w = [mpmath.mpf(1)] * c if weight is None else [mpmath.mpf(float(v)) for v in weight]
    losses, denominators = [], []
    for i in range(n):
        valid = soft or y[i] != ignore_index
        t = list(y[i]) if soft else [1 if j == y[i] else 0 for j in range(c)]
        t = [(1 - mpmath.mpf(eps)) * v + mpmath.mpf(eps) / c for v in t]
        if use_softmax:
            s = mpmath.fsum(mpmath.exp(v) for v in z[i])
            neg_log_q = [mpmath.log(s) - v for v in z[i]]
        elif convention == "keras":
            lo, hi = dtype_eps
            if not soft and not eps:  # sparse: clip, then a softmax of the logs
                clipped = [min(max(v, lo), hi) for v in z[i]]
                neg_log_q = [mpmath.log(mpmath.fsum(clipped)) - mpmath.log(v) for v in clipped]
            else:  # categorical: renormalise, then clip
                total = mpmath.fsum(z[i])
                neg_log_q = [-mpmath.log(min(max(v / total, lo), hi)) for v in z[i]]
        else:
            neg_log_q = [-mpmath.log(v) for v in z[i]]
        w_label = mpmath.fsum(wj * tj for wj, tj in zip(w, t)) if convention == "paddle" and weight is not None \
            else (w[y[i]] if not soft and valid else 1)
        if convention == "torch":
            loss = mpmath.fsum(wj * tj * q for wj, tj, q in zip(w, t, neg_log_q))
            share = (w[y[i]] if not soft and valid else 1)
        else:
            loss = w_label * mpmath.fsum(tj * q for tj, q in zip(t, neg_log_q))
            share = w_label if convention == "paddle" and weight is not None else 1
        if sample_weight is not None:  # Keras: sample_weight times the loss; the mean's count unchanged
            loss = mpmath.mpf(float(sample_weight[i])) * loss
        losses.append(loss if valid else mpmath.mpf(0))
        denominators.append(share if (valid or (convention == "paddle" and weight is None)) else 0)
    if reduction == "none":
        return losses
    total = mpmath.fsum(losses)
    if reduction == "sum":
        return total
    denominator = mpmath.fsum(denominators)
    if denominator == 0:
        return mpmath.mpf(0) if convention == "keras" else mpmath.nan
    return total / denominator


def cross_entropy(logits, label, weight=None, soft_label=False, reduction="mean", ignore_index=-100,
                  label_smoothing=0.0, use_softmax=True, convention="torch", upstream=None, keras_clip=(1e-7, 1 - 1e-7),
                  sample_weight=None):
    """``{"loss", "logits", "label" (soft)}`` as arrays of mpf for [N, C] logits (classes last):
    the loss by each convention's documented formula and the gradients of ``sum(upstream * loss)``
    by numerical differentiation of it (256 bits)."""
    n, c = logits.shape
    z = [[mpmath.mpf(float(v)) for v in row] for row in logits]
    y = [[mpmath.mpf(float(v)) for v in row] for row in label] if soft_label else [int(v) for v in label]
    lo, hi = (mpmath.mpf(float(v)) for v in keras_clip)
    u = upstream if upstream is not None else (np.ones(n) if reduction == "none" else np.ones(()))

    def total(zz, yy):
        value = _ce_total(zz, yy, weight, soft_label, reduction, ignore_index, label_smoothing, use_softmax,
                          convention, u, (lo, hi), sample_weight)
        if reduction == "none":
            return mpmath.fsum(mpmath.mpf(float(ui)) * v for ui, v in zip(u, value))
        return mpmath.mpf(float(u)) * value

    loss = _ce_total(z, y, weight, soft_label, reduction, ignore_index, label_smoothing, use_softmax, convention,
                     u, (lo, hi), sample_weight)
    out = {"loss": np.array(loss, dtype=object) if reduction == "none" else np.array(loss, dtype=object)}
    with mpmath.workprec(256):
        def partial(which, i, j):
            def moved(h):
                zz = [row[:] for row in z]
                yy = [row[:] for row in y] if soft_label else y
                (zz if which == "logits" else yy)[i][j] += h
                return total(zz, yy)
            return +mpmath.diff(moved, 0)
        out["logits"] = np.array([[partial("logits", i, j) for j in range(c)] for i in range(n)], dtype=object)
        if soft_label:
            out["label"] = np.array([[partial("label", i, j) for j in range(c)] for i in range(n)], dtype=object)
    return out
