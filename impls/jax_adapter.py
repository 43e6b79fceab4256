"""JAX adapter (jax + optax, jitted), written as a JAX user would write the losses.

* ``cross_entropy`` follows optax's convention: optax's two cross-entropies (``where`` for ignored
  positions) and ``smooth_labels`` are native; class weights and the reductions are composed as an
  optax user writes them (optax's losses have neither).

* ``softmax_with_cross_entropy`` is native: ``optax.softmax_cross_entropy_with_integer_labels``
  for hard labels, with its ``axis`` argument for the class axis and its ``where`` argument for
  Paddle's ``ignore_index`` (the positions whose label equals it are left out); ``optax.softmax_cross_entropy``
  for soft labels; ``jax.nn.softmax`` for ``return_softmax``.
* Both sampled ops are composed (JAX and optax have no sampled softmax): the sampled logits are
  gathered, and the loss is ``optax.softmax_cross_entropy`` with label 1/T on the T true columns and
  its ``where`` argument leaving out accidental hits, which is how optax expresses a masked softmax.

Every computation is one ``jax.jit`` function per (op, static parameters, mode), traced on first use;
gradients are ``jax.vjp`` of the loss, pulled back with the case's ``upstream``.  float64 needs
``jax_enable_x64``, which ``load`` sets (JAX computes in float32 otherwise).  JAX is imported only in
``load``.  Must import (not run) on Python 3.8.
"""
from __future__ import annotations

import os

import numpy as np

from impls.base import Adapter, NotNative, OpSupport
from impls.ops import OPS


class JaxAdapter(Adapter):
    name = "jax"
    devices = ("cpu", "gpu")
    ops = {
        "softmax_with_cross_entropy": OpSupport(
            "native",
            note="optax.softmax_cross_entropy_with_integer_labels(axis=..., where=label != ignore_index) "
                 "for hard labels, optax.softmax_cross_entropy(axis=...) for soft labels, jax.nn.softmax; "
                 "jax.vjp for gradients, jax.jit",
        ),
        "sampled_softmax_with_cross_entropy": OpSupport(
            "composed",
            note="jnp.take_along_axis(logits, customized_samples) - log(customized_probabilities), "
                 "optax.softmax_cross_entropy with label 1/T on the T true columns and where=~hit "
                 "(accidental hits left out)",
        ),
        "sampled_softmax_loss": OpSupport(
            "composed",
            note="jnp.take of the label and sampled rows per weight shard (tf.nn.embedding_lookup 'mod'/'div' "
                 "id mapping), einsum/matmul logits + biases - log(expected_count), optax.softmax_cross_entropy "
                 "with label 1/T on the true columns and where=~hit; the weight and bias gradients are dense "
                 "[num_classes, D] and [num_classes] arrays inside timing: JAX has no sparse gradient for "
                 "jnp.take (its transpose is a scatter-add into zeros)",
        ),
        "cross_entropy": OpSupport(
            "native",
            convention="optax",
            note="native: optax.softmax_cross_entropy_with_integer_labels(axis=, where=label != ignore_index) for "
                 "class indices, optax.softmax_cross_entropy(axis=) for probability targets, optax.smooth_labels "
                 "(on jax.nn.one_hot rows for class indices, where= for ignored positions); composed as an optax "
                 "user writes them (optax has no such options): class weights as loss * weight[label], the "
                 "reductions as loss.sum() and jnp.mean(loss, where=label != ignore_index); jax.vjp, jax.jit. "
                 "Probability inputs and weighted probability targets: optax documents no formula",
        ),
    }

    def __init__(self):
        super().__init__()
        self._compiled = {}
        self._last = None

    def load(self, device):
        # Chosen before import: a CPU run never initialises CUDA.
        os.environ["JAX_PLATFORMS"] = "cuda" if device == "gpu" else "cpu"
        import jax  # noqa: PLC0415 - frameworks are imported only here
        import optax  # noqa: PLC0415

        jax.config.update("jax_enable_x64", True)  # float64 cases; float32 inputs stay float32
        self.jax, self.jnp, self.optax = jax, jax.numpy, optax
        self.device = device
        self._device = jax.devices()[0]
        return "%s (optax %s)" % (jax.__version__, optax.__version__)

    def prepare(self, case):
        jnp = self.jnp
        dtype = jnp.dtype(case.dtype)  # "bfloat16" -> jnp.bfloat16; inputs are stored as float32
        arrays = {}
        for name, array in case.inputs.items():
            target = dtype if np.issubdtype(array.dtype, np.floating) else jnp.int64
            arrays[name] = self.jax.device_put(jnp.asarray(array, dtype=target), self._device)
        static = tuple(sorted((k, v) for k, v in case.params.items() if not isinstance(v, (list, dict))))
        return case.op, static, arrays

    def compute(self, state, backward=True):
        op, static, arrays = state
        key = (op, static, bool(backward), tuple(sorted(arrays)))
        if key not in self._compiled:
            self._compiled[key] = self.jax.jit(self._program(op, dict(static), backward, sorted(arrays)))
        self._last = self._compiled[key](arrays)
        return self._last

    def synchronize(self):
        if self._last is not None:
            self.jax.block_until_ready(self._last)

    def to_numpy(self, outputs):
        result = {}
        for name, value in outputs.items():
            if value.dtype == self.jnp.bfloat16:
                value = value.astype(self.jnp.float32)  # exact; spares the caller ml_dtypes
            result[name] = np.asarray(value)
        return result

    # -- the programs: pure functions of the arrays, traced once per key -------------------------
    def _program(self, op, params, backward, names):
        loss_of = {"softmax_with_cross_entropy": self._softmax_with_cross_entropy,
                   "sampled_softmax_with_cross_entropy": self._sampled_softmax_with_cross_entropy,
                   "sampled_softmax_loss": self._sampled_softmax_loss,
                   "cross_entropy": self._cross_entropy}[op]
        leaves = [n for n in names if n.split("/")[0] in OPS[op].differentiable_in(params)]

        def program(arrays):
            def loss(*differentiable):
                return loss_of(params, dict(arrays, **dict(zip(leaves, differentiable))))

            extras = {}
            if op == "softmax_with_cross_entropy" and params["return_softmax"]:
                extras["softmax"] = self.jax.nn.softmax(arrays["logits"], axis=params["axis"])
            if not backward:
                return dict(extras, loss=loss(*[arrays[n] for n in leaves]))
            value, pullback = self.jax.vjp(loss, *[arrays[n] for n in leaves])
            grads = pullback(arrays["upstream"].astype(value.dtype))
            return dict(extras, loss=value, **{"grad/" + n: g for n, g in zip(leaves, grads)})

        return program

    def _softmax_with_cross_entropy(self, params, a):
        jnp, optax = self.jnp, self.optax
        logits, axis = a["logits"], params["axis"]  # an axis out of range is for JAX to reject
        if params["soft_label"]:
            loss = optax.softmax_cross_entropy(logits, a["label"], axis=axis)
        else:
            label = a["label"]
            if label.ndim == logits.ndim:  # the size-1 class axis; a rank R-1 label is optax's own form
                label = jnp.squeeze(label, axis)
            loss = optax.softmax_cross_entropy_with_integer_labels(
                logits, label, axis=axis, where=label != params["ignore_index"])
        return jnp.expand_dims(loss, axis)

    def _cross_entropy(self, params, a):
        jnp, optax = self.jnp, self.optax
        logits, label, axis, smoothing = a["logits"], a["label"], params["axis"], params["label_smoothing"]
        if params["soft_label"]:
            target = optax.smooth_labels(label, smoothing, axis=axis) if smoothing else label
            loss = optax.softmax_cross_entropy(logits, target, axis=axis)  # weighted: undefined, never asked
            return self._reduce(loss, None, params["reduction"])
        valid = label != params["ignore_index"]
        if smoothing:
            one_hot = self.jax.nn.one_hot(label, logits.shape[axis], dtype=logits.dtype, axis=axis)
            target = optax.smooth_labels(one_hot, smoothing, axis=axis)
            loss = optax.softmax_cross_entropy(logits, target, axis=axis, where=jnp.expand_dims(valid, axis))
        else:
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, label, axis=axis, where=valid)
        if "weight" in a:  # a sample weight per position, weight[label] (0 where ignored)
            if a["weight"].shape != (logits.shape[axis],):  # jnp indexing would clamp: the adapter would decide
                raise NotNative("class weights are composed by the adapter (weight[label]); optax has no "
                                "weight argument to check shape %s" % (a["weight"].shape,))
            loss = loss * jnp.where(valid, a["weight"][jnp.where(valid, label, 0)], 0)
        return self._reduce(loss, valid, params["reduction"])

    def _reduce(self, loss, where, reduction):
        if reduction not in ("none", "sum", "mean"):
            raise NotNative("the reduction is composed by the adapter; optax has no reduction argument to "
                            "check %r" % (reduction,))
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        return self.jnp.mean(loss, where=where)

    def _true_class_loss(self, z, num_true, hit):
        """Cross-entropy of ``z`` [N, T+S] with label 1/T on the T true columns; hits left out."""
        jnp = self.jnp
        label = jnp.concatenate([jnp.full(z[:, :num_true].shape, 1.0 / num_true, z.dtype),
                                 jnp.zeros(z[:, num_true:].shape, z.dtype)], axis=1)
        where = None
        if hit is not None:
            where = jnp.concatenate([jnp.ones(z[:, :num_true].shape, bool), ~hit], axis=1)
        return self.optax.softmax_cross_entropy(z, label, where=where)

    def _sampled_softmax_with_cross_entropy(self, params, a):
        jnp = self.jnp
        num_true, samples = params["num_true"], a["customized_samples"]
        z = jnp.take_along_axis(a["logits"], samples, axis=1) - jnp.log(a["customized_probabilities"])
        hit = None
        if params["remove_accidental_hits"]:
            hit = (samples[:, num_true:, None] == a["label"][:, None, :]).any(axis=2)
        return self._true_class_loss(z, num_true, hit)[:, None]

    def _sampled_softmax_loss(self, params, a):
        jnp = self.jnp
        labels, sampled, inputs = a["labels"], a["sampled_candidates"], a["inputs"]
        batch, num_true = labels.shape
        ids = jnp.concatenate([labels.reshape(-1), sampled])
        rows = self._embedding_lookup(params, a, "weights", ids)
        bias = self._embedding_lookup(params, a, "biases", ids) if "biases/0" in a else jnp.take(a["biases"], ids)
        true_w, sampled_w = rows[: batch * num_true].reshape(batch, num_true, -1), rows[batch * num_true:]
        true_b, sampled_b = bias[: batch * num_true].reshape(batch, num_true), bias[batch * num_true:]
        true_logits = jnp.einsum("bd,btd->bt", inputs, true_w) + true_b - jnp.log(a["true_expected_count"])
        sampled_logits = inputs @ sampled_w.T + sampled_b - jnp.log(a["sampled_expected_count"])
        hit = None
        if params["remove_accidental_hits"]:
            hit = (sampled[None, None, :] == labels[:, :, None]).any(axis=1)
        return self._true_class_loss(jnp.concatenate([true_logits, sampled_logits], axis=1), num_true, hit)

    def _embedding_lookup(self, params, a, name, ids):
        """Rows ``ids`` of ``weights`` (or of sharded ``biases``), sharded or not, as
        tf.nn.embedding_lookup finds them."""
        jnp = self.jnp
        count = params.get("num_shards", 0)
        if count == 0:
            return jnp.take(a[name], ids, axis=0)
        shards = [a["%s/%d" % (name, i)] for i in range(count)]
        if shards[0].ndim == 1:  # bias shards: the same lookup on rows of one element
            return self._embedding_lookup(params, {"%s/%d" % (name, i): w[:, None] for i, w in enumerate(shards)},
                                          name, ids)[:, 0]
        if params["partition_strategy"] == "mod":
            shard_of, row_of = ids % count, ids // count
        else:
            # "div", with TensorFlow's arithmetic: the first ``extras`` shards hold one more row.
            per_shard, extras = divmod(sum(int(w.shape[0]) for w in shards), count)
            short = max(per_shard, 1)
            shard_of = jnp.maximum(ids // (per_shard + 1), (ids - extras) // short)
            row_of = jnp.where(shard_of < extras, ids % (per_shard + 1), (ids - extras) % short)
        # Every shard gathers every id (clipped into range) and the owner's row is selected: a
        # data-independent shape, as jit needs.
        gathered = jnp.stack([jnp.take(w, jnp.clip(row_of, 0, w.shape[0] - 1), axis=0) for w in shards])
        return jnp.take_along_axis(gathered, shard_of[None, :, None], axis=0)[0]


ADAPTER = JaxAdapter
