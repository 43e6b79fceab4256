"""Softmax cross-entropy over the last axis, reading the classes in chunks.

This is the kind of kernel the suite is for: a memory-saving rewrite of a library loss (here an
online log-sum-exp, as fused GPU kernels do) whose author wants to know it computes the same loss
and gradient as the frameworks.
"""
import numpy as np

CHUNK = 256


def logsumexp_chunked(z, chunk=CHUNK):
    """log(sum(exp(z), -1)) keeping only a running max and a rescaled running sum per row."""
    running_max = np.full(z.shape[:-1], -np.inf, dtype=z.dtype)
    running_sum = np.zeros(z.shape[:-1], dtype=z.dtype)
    for start in range(0, z.shape[-1], chunk):
        block = z[..., start:start + chunk]
        new_max = np.maximum(running_max, block.max(axis=-1))
        safe = np.where(np.isfinite(new_max), new_max, 0)
        running_sum = running_sum * np.exp(running_max - safe) + np.exp(block - safe[..., None]).sum(axis=-1)
        running_max = new_max
    return np.log(running_sum) + np.where(np.isfinite(running_max), running_max, 0)


def softmax_cross_entropy(logits, label, soft_label, upstream):
    """(loss with a trailing axis of 1, gradient of sum(upstream * loss) with respect to logits)."""
    lse = logsumexp_chunked(logits)[..., None]
    softmax = np.exp(logits - lse)
    if soft_label:
        loss = (label * (lse - logits)).sum(axis=-1, keepdims=True)
        grad = softmax * label.sum(axis=-1, keepdims=True) - label
    else:
        loss = lse - np.take_along_axis(logits, label, axis=-1)
        grad = softmax
        np.put_along_axis(grad, label, np.take_along_axis(grad, label, axis=-1) - 1, axis=-1)
    return loss, grad * upstream
