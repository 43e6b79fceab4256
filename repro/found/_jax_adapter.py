"""The suite's jax adapter (impls/jax_adapter.py), copied verbatim by `conformance search` for the
standalone reproducers beside it (regenerated with each one): it needs NumPy and jax, optax only.
"""
from __future__ import annotations

import numpy as np
import os


class Adapter:
    ops = ()  # the ops the adapter declares

    devices = ('cpu',)

    opt_in = ''

    name = ''

    def __init__(self):
        self.device = None

    def load(self, device: str) -> str:
        raise NotImplementedError

    def prepare(self, case):
        """Untimed: the case's inputs as framework tensors on the device, and whatever else
        ``compute`` needs (op, parameters); the returned state can be computed many times."""
        raise NotImplementedError

    def compute(self, state, backward: bool = True):
        """Timed: the loss (``backward=False``) or the loss and its gradients (``backward=True``)
        as framework objects, keyed like the flat outputs or ready for ``to_numpy``."""
        raise NotImplementedError

    def to_numpy(self, outputs) -> dict:
        """Framework outputs of ``compute`` -> flat output names -> NumPy arrays."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Block until the device has finished its queued work; nothing to wait for on the CPU."""

    def run(self, case) -> dict:
        return self.to_numpy(self.compute(self.prepare(case), backward=True))


class JaxAdapter(Adapter):
    ops = ('softmax_with_cross_entropy', 'sampled_softmax_with_cross_entropy', 'sampled_softmax_loss')  # the ops the adapter declares

    devices = ('cpu', 'gpu')

    name = 'jax'

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

    def _program(self, op, params, backward, names):
        loss_of = {"softmax_with_cross_entropy": self._softmax_with_cross_entropy,
                   "sampled_softmax_with_cross_entropy": self._sampled_softmax_with_cross_entropy,
                   "sampled_softmax_loss": self._sampled_softmax_loss}[op]
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


# -- stand-ins for the suite's registry and case object -------------------------------------------
class OpInfo:
    """What the adapter asks the registry: which inputs of the op are differentiable."""

    def __init__(self, differentiable):
        self.differentiable = tuple(differentiable)

    def differentiable_in(self, params):
        return self.differentiable


OPS = {}  # op -> OpInfo, filled by the reproducer for its op


def _shards(inputs, prefix):
    if prefix in inputs:
        return inputs[prefix]
    return [inputs["%s/%d" % (prefix, i)] for i in range(sum(1 for k in inputs if k.startswith(prefix + "/")))]


class Case:
    """A stored case: its inputs as NumPy arrays (bfloat16 ones stored as float32), op, dtype, params."""

    def __init__(self, op, dtype, params, inputs):
        self.op, self.dtype, self.params, self.inputs = op, dtype, params, inputs

    upstream = property(lambda self: self.inputs["upstream"])
    weight_shards = property(lambda self: [self.inputs["weights"]] if "weights" in self.inputs
                             else _shards(self.inputs, "weights"))
    bias_shards = property(lambda self: _shards(self.inputs, "biases"))


def assert_diverges(adapter, case, stored, status, output, rtol, scale):
    """Run the case and assert the divergence ``conformance search`` found: ``fail`` (``output`` differs
    from the stored golden one: a non-finite golden value not matched exactly, or a finite one off by
    more than ``rtol * (|golden| + scale)``, the suite's tolerance rule), ``error`` (the call raises
    where the oracle answers), ``crash`` or ``timeout`` (the call kills or hangs the process)."""
    import numpy

    if status == "error":
        try:
            adapter.run(case)
        except Exception as error:  # the divergence: the oracle answers this valid input
            print("raises: %s: %s" % (type(error).__name__, error))
            return
        raise AssertionError("no longer raises")
    outputs = adapter.run(case)  # a crash or a timeout: this call kills or hangs the process
    if status != "fail":
        raise AssertionError("returned: no longer %s" % ("crashes" if status == "crash" else "hangs"))
    assert output in outputs, "no longer diverges: the output is missing"
    golden = stored["golden/" + output]
    actual = numpy.asarray(outputs[output], dtype=numpy.float64)
    if actual.shape != golden.shape:
        print("%s: shape %s, expected %s" % (output, actual.shape, golden.shape))
        return
    finite = numpy.isfinite(golden)
    nonfinite = (~finite & ~((numpy.isnan(actual) & numpy.isnan(golden)) | (actual == golden))) | (
        finite & ~numpy.isfinite(actual))
    allowed = rtol * (numpy.abs(numpy.where(finite, golden, 0.0)) + scale)
    excess = numpy.where(finite & numpy.isfinite(actual), numpy.abs(actual - golden) / allowed, 0.0)
    wrong = numpy.argwhere(nonfinite | (excess > 1.0))
    if wrong.size:
        at = tuple(int(i) for i in wrong[0])
        print("%s at %s: %r, golden %r (%d elements differ)" % (output, at, float(actual[at]), float(golden[at]),
                                                              len(wrong)))
    assert nonfinite.any() or excess.max(initial=0.0) > 1.0, "no longer diverges: within the tolerance"
