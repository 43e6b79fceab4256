"""TensorFlow adapter (TF 2.x, eager front end, compute compiled with ``tf.function``).

* ``sampled_softmax_loss`` is TensorFlow's own op through one public API per impl, with that API's
  own defaults: ``tensorflow`` calls ``tf.nn.sampled_softmax_loss`` (TF2 API, always shards "div":
  a "mod" shard list is unsupported), ``tensorflow-v1`` calls ``tf.compat.v1.nn.sampled_softmax_loss``
  (``partition_strategy`` left at its default "mod" unless the case asks for another value).  The
  two are compared with each other in the report's agreement matrix.
* ``softmax_with_cross_entropy`` (Paddle's op) maps onto ``tf.nn.softmax_cross_entropy_with_logits``
  (soft labels) and ``tf.nn.sparse_softmax_cross_entropy_with_logits`` (hard labels); only Paddle's
  ``ignore_index`` is composed around them.
* ``sampled_softmax_with_cross_entropy`` (Paddle's per-row-sample op) has no TF counterpart (TF shares
  one sample set across the batch), so it is composed from TF primitives.
* ``cross_entropy`` (the loss users call) is Keras's in TensorFlow 2.16+: impls ``keras-tensorflow`` and
  ``keras-tensorflow-xla`` (``impls/keras_adapter.py``) run it, beside Keras on JAX and PyTorch; this
  adapter runs TensorFlow's own ops (``tf.nn``) only.

Gradients are taken with ``tf.GradientTape`` of ``reduce_sum(loss * upstream)``.  TensorFlow is
imported only in :meth:`TensorflowAdapter.load`.
"""
from __future__ import annotations

import os

import numpy as np

from impls import dtypes
from impls.base import Adapter, NotNative, OpSupport, Unsupported

# Filled by ``load``: the module stays importable without TensorFlow.
tf = None

_DTYPES = dtypes.NAMES  # every kernel used has CPU kernels for all four
_SSL_COMMON = ("the case's samples are passed as sampled_values; sharded biases as a list (TF looks them up "
               "with embedding_lookup like the weights); the weight and bias gradients are the tape's "
               "tf.IndexedSlices (the looked-up rows), converted to dense arrays outside timing")


class TensorflowAdapter(Adapter):
    name = "tensorflow"
    devices = ("cpu", "gpu")
    ops = {
        "sampled_softmax_loss": OpSupport(
            "native",
            _DTYPES,
            unsupported_features=("partition_mod",),
            note="tf.nn.sampled_softmax_loss (TF2 API): one weight matrix or a 'div' shard list (a list of one "
            "shard is the same layout under 'mod' and 'div'); partition_mod: TF2's op has no partition_strategy "
            "(impl tensorflow-v1 runs those); " + _SSL_COMMON,
        ),
        "softmax_with_cross_entropy": OpSupport(
            "native",
            _DTYPES,
            note="tf.nn.softmax_cross_entropy_with_logits(axis=...) for soft labels, "
            "tf.nn.sparse_softmax_cross_entropy_with_logits on the axis moved last for hard labels; "
            "TF has no ignore_index: when a label equals it, the adapter composes it (ignored positions "
            "get label 0 and logits 0 before the kernel via tf.where, loss 0 after it); numeric_stable_mode has no "
            "TF equivalent (TF's kernels are always max-shifted)",
        ),
        "sampled_softmax_with_cross_entropy": OpSupport(
            "composed",
            _DTYPES,
            note="tf.gather(logits, customized_samples, batch_dims=1) - log(customized_probabilities); "
            "accidental hits set to the dtype's lowest finite value (tf.where); "
            "tf.nn.softmax_cross_entropy_with_logits with label 1/T on the T true columns",
        ),
    }

    ops_elsewhere = {"cross_entropy": "keras-tensorflow (TensorFlow's loss users call is Keras's)"}
    jit_compile = None  # TensorFlow's default: the graph runs op by op (see TensorflowXlaAdapter)
    sampled_api = "tf.nn"  # the public API sampled_softmax_loss is called through (TensorflowV1Adapter)

    def __init__(self):
        super().__init__()
        self._device_name = None
        self._functions = {}  # op -> tf.function, made by load

    def load(self, device: str) -> str:
        global tf
        if device not in self.devices:
            raise ValueError("device: expected one of %s, got %r" % (", ".join(self.devices), device))
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        if device == "cpu":
            # Hidden before import so TF never initialises CUDA for a CPU run.
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        import tensorflow  # noqa: PLC0415 - frameworks are imported only here

        tf = tensorflow
        if device == "gpu":
            if not tf.config.list_physical_devices("GPU"):
                raise RuntimeError("tensorflow %s sees no GPU (is this a CPU-only build such as "
                                   "tensorflow-cpu, or CUDA_VISIBLE_DEVICES empty?)" % tf.__version__)
            self._device_name = "/GPU:0"
        else:
            self._device_name = "/CPU:0"
        self.device = device
        # One tf.function per op: the graph is traced once per (shapes, static params) and replayed,
        # as a TF user would run a training step; reduce_retracing keeps varying shapes from each
        # costing a trace.
        self._functions = {
            "softmax_with_cross_entropy": _function(_softmax_with_cross_entropy, self.jit_compile),
            "sampled_softmax_with_cross_entropy": _function(_sampled_softmax_with_cross_entropy, self.jit_compile),
            "sampled_softmax_loss": _function(_sampled_softmax_loss, self.jit_compile),
        }
        return tf.__version__

    def prepare(self, case):
        if self._device_name is None:
            raise RuntimeError("tensorflow adapter: run() before load()")
        if case.op not in self.ops:  # tensorflow-v1 has the sampled loss only
            raise Unsupported("%s has no op %r" % (self.name, case.op))
        dtype = tf.as_dtype(case.dtype)  # "bfloat16" -> tf.bfloat16; inputs are stored as float32
        params = case.params
        inputs = case.inputs

        def tensor(name):
            # Converted once per run, on the run's device; floats to the case dtype, integers to int64.
            array = inputs[name]
            cast_to = tf.int64 if np.issubdtype(array.dtype, np.integer) else dtype
            return tf.cast(tf.constant(array), cast_to)

        # The state: (op, positional tensors, static keyword arguments, shard count).
        with tf.device(self._device_name):
            if case.op == "softmax_with_cross_entropy":
                args, kwargs = self._run_softmax_with_cross_entropy(case, tensor)
            elif case.op == "sampled_softmax_with_cross_entropy":
                args = (tensor("logits"), tensor("label"), tensor("customized_samples"),
                        tensor("customized_probabilities"), tensor("upstream"))
                kwargs = dict(num_true=int(params["num_true"]),
                              remove_accidental_hits=bool(params["remove_accidental_hits"]))
            elif case.op == "sampled_softmax_loss":
                args, kwargs = self._run_sampled_softmax_loss(case, tensor)
            else:
                raise Unsupported("tensorflow adapter has no op %r" % (case.op,))
        return case.op, args, kwargs, int(params.get("num_shards", 0))

    def compute(self, state, backward=True):
        op, args, kwargs, num_shards = state
        with tf.device(self._device_name):
            out = self._functions[op](*args, backward=bool(backward), **kwargs)
        if op == "sampled_softmax_loss" and backward:
            bias_grads = out.pop("grad/biases")
            if isinstance(bias_grads, (list, tuple)):  # sharded biases
                out.update(("grad/biases/%d" % i, g) for i, g in enumerate(bias_grads))
            else:
                out["grad/biases"] = bias_grads
            weight_grads = out.pop("grad/weights")
            if num_shards == 0:
                out["grad/weights"] = weight_grads[0]
            else:
                out.update(("grad/weights/%d" % i, g) for i, g in enumerate(weight_grads))
        return out

    def to_numpy(self, outputs) -> dict:
        return {name: _to_numpy(value) for name, value in outputs.items()}

    def synchronize(self):
        if self.device == "gpu":
            # Waits for every queued op on every device (TF >= 2.14; on older TF, eager results
            # are synchronised when read).
            sync = getattr(getattr(tf.test, "experimental", None), "sync_devices", None)
            if sync is not None:
                sync()

    def _run_softmax_with_cross_entropy(self, case, tensor):
        params = case.params
        logits = case.inputs["logits"]
        rank = logits.ndim
        axis = int(params["axis"])
        # An axis out of range is passed as it is: TensorFlow's ops reject it (the adapter does not).
        axis = axis % rank if -rank <= axis < rank else axis
        soft = bool(params["soft_label"])
        ignore_index = None
        if not soft and np.any(case.inputs["label"] == params["ignore_index"]):
            # TF has no ignore_index: the mask is composed only when some label actually equals it.
            ignore_index = int(params["ignore_index"])
        return (tensor("logits"), tensor("label"), tensor("upstream")), dict(
            rank=rank, axis=axis, soft_label=soft, return_softmax=bool(params["return_softmax"]),
            ignore_index=ignore_index, label_has_axis=case.inputs["label"].ndim == rank,
        )

    def _run_sampled_softmax_loss(self, case, tensor):
        params = case.params
        num_shards = int(params.get("num_shards", 0))
        names = ["weights"] if num_shards == 0 else ["weights/%d" % i for i in range(num_shards)]
        # The r1.4 default, as in the reference (and tf.compat.v1's).
        strategy = params.get("partition_strategy", "mod")
        if self.sampled_api == "tf.compat.v1":
            # Left at the v1 default when the case asks for it; any other value is passed as it is,
            # for TensorFlow to judge.
            strategy = None if strategy == "mod" else strategy
        elif strategy not in ("mod", "div"):
            raise NotNative("tf.nn.sampled_softmax_loss has no partition_strategy argument (it always shards "
                            "'div'): the case's %r cannot be passed to it (impl tensorflow-v1 passes it)" % (strategy,))
        elif strategy == "mod" and num_shards > 1:  # declared (partition_mod): reached only when forced
            raise Unsupported("tf.nn.sampled_softmax_loss always shards 'div': a 'mod' shard list is "
                              "inexpressible (impl tensorflow-v1 runs it)")
        biases = case.bias_shards
        biases = [tensor("biases/%d" % i) for i in range(len(biases))] if isinstance(biases, list) \
            else tensor("biases")
        args = ([tensor(n) for n in names], biases, tensor("labels"), tensor("inputs"),
                tensor("sampled_candidates"), tensor("true_expected_count"),
                tensor("sampled_expected_count"), tensor("upstream"))
        return args, dict(
            num_sampled=int(params["num_sampled"]), num_classes=int(params["num_classes"]),
            num_true=int(params["num_true"]),
            remove_accidental_hits=bool(params["remove_accidental_hits"]),
            sharded=num_shards > 0, api=self.sampled_api,
            partition_strategy=strategy if self.sampled_api == "tf.compat.v1" else None,
        )


def _function(python_function, jit_compile=None, relax_shapes=True):
    # No autograph: every Python `if` in the compute functions tests a static parameter.
    # jit_compile=None leaves TF's default (no XLA on the CPU); True compiles the whole step with XLA.
    try:
        return tf.function(python_function, autograph=False, reduce_retracing=relax_shapes, jit_compile=jit_compile)
    except TypeError:  # TF < 2.9 (legacy environments) spells it experimental_relax_shapes
        return tf.function(python_function, autograph=False, experimental_relax_shapes=relax_shapes)


def _dense(gradient, like):
    """Gradients as dense tensors: gathers give IndexedSlices (a representation), unused ones None."""
    if gradient is None:
        return tf.zeros_like(like)
    return tf.convert_to_tensor(gradient)


def _embedding_gradient(gradient, like):
    """An embedding lookup's gradient as the tape gives it: ``tf.IndexedSlices`` of the rows looked
    up (densified by ``to_numpy``, outside timing), zeros for a shard no id falls in."""
    if gradient is None:
        return tf.zeros_like(like)
    return gradient


def _with_gradients(tape, target, loss, logits, label, soft_label) -> dict:
    """``{"loss"}`` and, when ``target`` (sum(loss * upstream)) is given, its gradients: ``grad/logits``,
    and ``grad/label`` for a soft label where TF gives one (None: TF does not differentiate it; not
    invented here)."""
    out = {"loss": loss}
    if target is not None:
        grads = tape.gradient(target, [logits, label] if soft_label else [logits])
        out["grad/logits"] = grads[0]
        if soft_label and grads[1] is not None:
            out["grad/label"] = grads[1]
    return out


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, tf.IndexedSlices):
        value = tf.convert_to_tensor(value)  # sums the rows of repeated ids (unsorted_segment_sum)
    # bfloat16 -> float32 is exact and spares the caller a dependency on ml_dtypes.
    if value.dtype == tf.bfloat16:
        value = tf.cast(value, tf.float32)
    return value.numpy()


def _softmax_with_cross_entropy(logits, label, upstream, *, rank, axis, soft_label, return_softmax,
                                ignore_index, label_has_axis=True, backward=True):
    # `rank` is passed, not read from logits.shape: reduce_retracing may trace with unknown rank.
    with tf.GradientTape() as tape:
        tape.watch(logits)
        if soft_label:
            tape.watch(label)  # TF differentiates a soft label too
            loss = tf.nn.softmax_cross_entropy_with_logits(labels=label, logits=logits, axis=axis)
        else:
            if label_has_axis:  # else a rank R-1 label, already the sparse kernel's form
                label = tf.squeeze(label, axis)
            x = logits
            if ignore_index is not None:
                keep = tf.not_equal(label, ignore_index)
                label = tf.where(keep, label, tf.zeros_like(label))
                # Ignored positions give the kernel logits 0 (not theirs), so their loss and gradient
                # are 0 whatever their logits (an all -inf row would otherwise leak 0 * nan = nan).
                x = tf.where(tf.expand_dims(keep, axis), x, tf.zeros_like(x))
            if axis != rank - 1:
                # The sparse kernel reduces the last axis; moving `axis` last keeps the other axes'
                # order, so the loss is the label's shape without `axis`.
                x = tf.transpose(x, [d for d in range(rank) if d != axis] + [axis])
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=x)
            if ignore_index is not None:
                loss = tf.where(keep, loss, tf.zeros_like(loss))
        loss = tf.expand_dims(loss, axis)
        target = tf.reduce_sum(loss * upstream) if backward else None
    out = _with_gradients(tape, target, loss, logits, label, soft_label)
    if return_softmax:
        out["softmax"] = tf.nn.softmax(logits, axis=axis)
    return out


def _sampled_softmax_with_cross_entropy(logits, label, samples, probabilities, upstream, *,
                                        num_true, remove_accidental_hits, backward=True):
    with tf.GradientTape() as tape:
        tape.watch(logits)
        # Per-row samples: gather row i's sampled columns; the gradient scatters back (duplicates add).
        z = tf.gather(logits, samples, batch_dims=1) - tf.math.log(probabilities)
        if remove_accidental_hits:
            # A negative column is a hit when its sample equals one of the row's labels.  It gets the
            # dtype's lowest finite value, as TF's own sampled losses add -FLT_MAX: its softmax weight
            # is exactly 0.  (Not -inf: the fused kernel would compute label 0 * inf = nan there.
            # Not -FLT_MAX itself: in float16/bfloat16 that casts to -inf.)
            hit = tf.reduce_any(tf.equal(samples[:, num_true:, None], label[:, None, :]), axis=2)
            hit = tf.concat([tf.zeros_like(label, dtype=tf.bool), hit], axis=1)
            z = tf.where(hit, tf.constant(z.dtype.min, z.dtype), z)
        # Soft label 1/T on the T true columns, 0 on the sampled ones.
        soft = tf.concat([tf.fill(tf.shape(z[:, :num_true]), tf.constant(1.0 / num_true, z.dtype)),
                          tf.zeros_like(z[:, num_true:])], axis=1)
        loss = tf.expand_dims(tf.nn.softmax_cross_entropy_with_logits(labels=soft, logits=z), 1)
        if not backward:
            return {"loss": loss}
        target = tf.reduce_sum(loss * upstream)
    return {"loss": loss, "grad/logits": _dense(tape.gradient(target, logits), logits)}


def _sampled_softmax_loss(weights, biases, labels, inputs, sampled_candidates, true_expected_count,
                          sampled_expected_count, upstream, *, num_sampled, num_classes, num_true,
                          remove_accidental_hits, sharded, api, partition_strategy, backward=True):
    with tf.GradientTape() as tape:
        tape.watch([weights, biases, inputs])
        kwargs = dict(
            weights=weights if sharded else weights[0], biases=biases, labels=labels, inputs=inputs,
            num_sampled=num_sampled, num_classes=num_classes, num_true=num_true,
            sampled_values=(sampled_candidates, true_expected_count, sampled_expected_count),
            remove_accidental_hits=remove_accidental_hits,
        )
        if api == "tf.compat.v1":
            if partition_strategy is not None:  # None: the v1 default ("mod")
                kwargs["partition_strategy"] = partition_strategy
            loss = tf.compat.v1.nn.sampled_softmax_loss(**kwargs)
        else:
            loss = tf.nn.sampled_softmax_loss(**kwargs)
        if not backward:
            return {"loss": loss}
        target = tf.reduce_sum(loss * upstream)
    grad_inputs, grad_weights, grad_biases = tape.gradient(target, [inputs, weights, biases])
    out = {
        "loss": loss,
        "grad/inputs": _dense(grad_inputs, inputs),
        "grad/weights": [_embedding_gradient(g, w) for g, w in zip(grad_weights, weights)],
    }
    if isinstance(biases, list):
        out["grad/biases"] = [_embedding_gradient(g, b) for g, b in zip(grad_biases, biases)]
    else:
        out["grad/biases"] = _embedding_gradient(grad_biases, biases)
    return out


class TensorflowXlaAdapter(TensorflowAdapter):
    """The same computations compiled whole by XLA: ``tf.function(jit_compile=True)``.

    Users turn XLA on for speed; it fuses the ops and may reorder their arithmetic, so a difference
    from the eager adapter is a finding about XLA.  Compilation happens in the first call of each
    shape (untimed warm-up in the benchmark).
    """

    name = "tensorflow-xla"
    compiled_from = "tensorflow"
    jit_compile = True
    ops_elsewhere = {"cross_entropy": "keras-tensorflow-xla (TensorFlow's loss users call is Keras's)"}
    ops = {op: support.noted("; whole step under tf.function(jit_compile=True)")
           for op, support in TensorflowAdapter.ops.items()}


class TensorflowV1Adapter(TensorflowAdapter):
    """``sampled_softmax_loss`` through the v1 API, ``tf.compat.v1.nn.sampled_softmax_loss``, with its
    own defaults (``partition_strategy="mod"``): every case, shard lists of either strategy included.

    The TF2 op is a wrapper of this one with ``partition_strategy="div"``; running both as impls
    shows whether the two public APIs agree wherever both can express a case.
    """

    name = "tensorflow-v1"
    sampled_api = "tf.compat.v1"
    ops = {"sampled_softmax_loss": OpSupport(
        "native", _DTYPES,
        note="tf.compat.v1.nn.sampled_softmax_loss with the v1 defaults: partition_strategy left at 'mod' "
        "unless the case asks for another value, which is passed as it is; " + _SSL_COMMON)}


ADAPTER = TensorflowAdapter
ADAPTERS = {"tensorflow": TensorflowAdapter, "tensorflow-xla": TensorflowXlaAdapter,
            "tensorflow-v1": TensorflowV1Adapter}
