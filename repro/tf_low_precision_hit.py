"""tensorflow: sampled_softmax_loss, fail loss

sampled_softmax_loss is tensorflow's own op, called as the adapter calls it:
tf.nn.sampled_softmax_loss (TF2 API): one weight matrix or a 'div' shard list (a list of one shard
is the same layout under 'mod' and 'div'); partition_mod: TF2's op has no partition_strategy (impl
tensorflow-v1 runs those); the case's samples are passed as sampled_values; sharded biases as a list
(TF looks them up with embedding_lookup like the weights); the weight and bias gradients are the
tape's tf.IndexedSlices (the looked-up rows), converted to dense arrays outside timing.

Found by `conformance search`: tensorflow|sampled_softmax_loss|fail|loss|nonfinite(actual nan, expected finite)|accidental_hits+remove_accidental_hits
Case sampled_softmax_loss-scale0.5-hbdfdcec198-f16: found by search: B=1, K=2, D=1, T=1, S=1 shared,
one weight matrix, accidental hits: some (removed)
Needs NumPy and keras, tensorflow only: the suite's tensorflow adapter (impls/tensorflow_adapter.py)
and its tolerance rule (conformance/compare.py) are embedded below, verbatim, and so is the case
(its inputs and the golden float64 loss, the oracle's). Exit status 0 means the divergence still
shows; an AssertionError, that it is gone.

Generated from the suite's source by
`conformance repro sampled_softmax_loss-scale0.5-hbdfdcec198-f16 --impl tensorflow --standalone --out repro/tf_low_precision_hit.py`;
regenerate it rather than edit it.
"""
from __future__ import annotations

import os
import sys

import numpy
import numpy as np


# -- the suite's adapter and what it reaches (impls/), its tolerance rule (conformance/compare.py) ----
class NotNative(Exception):
    """Raised by ``prepare`` when the adapter, not the framework, would decide a case's outcome.

    An adapter never validates, casts, clips or reshapes an input in a way that hides what the
    framework would do with it; where it must (a guard that keeps a framework from corrupting the
    worker's memory, an API translation that cannot pass a malformed input through unchanged), it
    raises this instead, and the row is recorded as ``inapplicable``: not tested natively.
    """


class Unsupported(Exception):
    """Raised by ``run`` when a case turns out to be inexpressible in the framework."""


_KERAS_REDUCTION = {'mean': 'sum_over_batch_size', 'sum': 'sum', 'none': None}


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


keras = None


tf = None


def _cross_entropy(logits, label, weight, upstream, *, soft_label, from_logits, axis, reduction, ignore_class,
                   label_smoothing, dtype, backward=True):
    with tf.GradientTape() as tape:
        tape.watch(logits)
        if soft_label:
            tape.watch(label)  # a probability target is differentiable in Keras too
            loss_fn = keras.losses.CategoricalCrossentropy(
                from_logits=from_logits, label_smoothing=label_smoothing, axis=axis, reduction=reduction,
                dtype=dtype)
            loss = loss_fn(label, logits)
        else:
            loss_fn = keras.losses.SparseCategoricalCrossentropy(
                from_logits=from_logits, ignore_class=ignore_class, axis=axis, reduction=reduction, dtype=dtype)
            sample_weight = None
            if weight is not None:
                # As fit(class_weight=...) does: each position's weight is its class's; an ignored
                # position's is masked by Keras (ignore_class) whatever it is, so it reads class 0's.
                sample_weight = tf.gather(weight, tf.where(tf.equal(label, ignore_class), tf.zeros_like(label), label))
            loss = loss_fn(label, logits, sample_weight=sample_weight)
        target = tf.reduce_sum(loss * upstream) if backward else None
    return _with_gradients(tape, target, loss, logits, label, soft_label)


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


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, tf.IndexedSlices):
        value = tf.convert_to_tensor(value)  # sums the rows of repeated ids (unsorted_segment_sum)
    # bfloat16 -> float32 is exact and spares the caller a dependency on ml_dtypes.
    if value.dtype == tf.bfloat16:
        value = tf.cast(value, tf.float32)
    return value.numpy()


def allowed_error(golden, rtol, scale):
    """The suite's tolerance rule, its one definition: the largest ``|actual - golden|`` accepted at
    each element, ``rtol * (|golden| + scale)`` (a non-finite golden element counts as 0 here: it
    must be matched exactly, see :func:`judge_elements`).  The comparison, the report and every
    reproducer call it; a standalone reproducer embeds this source (``conformance/standalone.py``)."""
    return rtol * (np.abs(np.where(np.isfinite(golden), golden, 0.0)) + scale)


def judge_elements(actual, golden, rtol, scale):
    """``(error, ratio, nonfinite)`` per element of ``actual`` (float64, the shape of ``golden``).

    ``error``: ``|actual - golden|`` where both are finite, else 0; ``ratio``: ``error`` over
    :func:`allowed_error` (above 1 is wrong); ``nonfinite``: a non-finite golden value that is not
    matched exactly (NaN by NaN, an inf by the same inf), or NaN/inf where the golden is finite."""
    finite = np.isfinite(golden)
    same_nonfinite = (np.isnan(actual) & np.isnan(golden)) | (actual == golden)
    nonfinite = (~finite & ~same_nonfinite) | (finite & ~np.isfinite(actual))
    both = finite & np.isfinite(actual)
    error = np.abs(np.subtract(actual, golden, out=np.zeros_like(actual), where=both))  # inf - inf: not taken
    return error, error / allowed_error(golden, rtol, scale), nonfinite


def weight_shards(inputs: dict) -> list:
    """``weights`` or its shards ``weights/0``, ``weights/1``... in shard order."""
    if "weights" in inputs:
        return [inputs["weights"]]
    return [inputs["weights/%d" % i] for i in range(sum(1 for k in inputs if k.startswith("weights/")))]


def bias_shards(inputs: dict):
    """``biases`` as one array, or its shards ``biases/0``, ``biases/1``... laid out like the weights."""
    if "biases" in inputs:
        return inputs["biases"]
    return [inputs["biases/%d" % i] for i in range(sum(1 for k in inputs if k.startswith("biases/")))]


class Adapter:
    ops = ()  # the ops the adapter declares

    devices = ('cpu',)

    compiled_from = ''

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


class TensorflowAdapter(Adapter):
    sampled_api = 'tf.nn'

    jit_compile = None

    ops = ('sampled_softmax_loss', 'softmax_with_cross_entropy', 'sampled_softmax_with_cross_entropy', 'cross_entropy')  # the ops the adapter declares

    devices = ('cpu', 'gpu')

    name = 'tensorflow'

    def __init__(self):
        super().__init__()
        self._device_name = None
        self._functions = {}  # op -> tf.function, made by load

    def load(self, device: str) -> str:
        global tf, keras
        if device not in self.devices:
            raise ValueError("device: expected one of %s, got %r" % (", ".join(self.devices), device))
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        if device == "cpu":
            # Hidden before import so TF never initialises CUDA for a CPU run.
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        import tensorflow  # noqa: PLC0415 - frameworks are imported only here

        import keras as keras_module  # noqa: PLC0415 - Keras 3 on the TensorFlow backend (tf.keras in TF 2.16+)

        tf, keras = tensorflow, keras_module
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
            # Keras's losses read static ranks, which reduce_retracing's relaxed shapes lose: one trace per
            # shape, as a Keras training step with a fixed batch shape has.
            "cross_entropy": _function(_cross_entropy, self.jit_compile, relax_shapes=False),
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
            elif case.op == "cross_entropy":
                args, kwargs = self._run_cross_entropy(case, tensor)
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

    def _run_cross_entropy(self, case, tensor):
        params = case.params
        soft = bool(params["soft_label"])
        smoothing = float(params["label_smoothing"])
        if smoothing and not soft:
            # Declared per case, not as a feature: label smoothing of probability targets Keras does have.
            raise Unsupported("Keras's SparseCategoricalCrossentropy has no label_smoothing (Keras %s); smoothing "
                              "class indices would take the adapter's one-hot conversion" % keras.__version__)
        weight = None
        if "weight" in case.inputs:
            if soft:
                raise Unsupported("Keras takes no class weights for probability targets (fit's class_weight "
                                  "weighs a position by its argmax class, a data-pipeline rule, not the loss's)")
            classes = case.inputs["logits"].shape[int(params["axis"])]
            if case.inputs["weight"].shape != (classes,):
                # The weights never reach Keras: the adapter's weight[label] gather would judge them (and
                # under XLA, gather clamps out-of-range indices instead of raising).
                raise NotNative("weight of shape %s for %d classes: Keras takes no class weights, so no Keras "
                                "contract decides" % (case.inputs["weight"].shape, classes))
            weight = tensor("weight")
        return (tensor("logits"), tensor("label"), weight, tensor("upstream")), dict(
            soft_label=soft, from_logits=bool(params["use_softmax"]), axis=int(params["axis"]),
            reduction=_KERAS_REDUCTION[params["reduction"]], ignore_class=int(params["ignore_index"]),
            label_smoothing=smoothing, dtype=case.dtype)

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


# -- stand-ins for the suite's registry and case object (impls/ops.py, impls/caseio.py) ------------
class OpInfo:
    """The registry's answer for this case: which inputs of the op are differentiable."""

    def __init__(self, differentiable):
        self.differentiable = tuple(differentiable)

    def differentiable_in(self, params):
        return self.differentiable


OPS = {'sampled_softmax_loss': OpInfo(('weights', 'biases', 'inputs'))}


class Case:
    """The stored case as the adapter reads it: inputs in their storage dtype (bfloat16 as float32)."""

    def __init__(self, op, dtype, params, inputs):
        self.op, self.dtype, self.params, self.inputs = op, dtype, params, inputs

    upstream = property(lambda self: self.inputs["upstream"])
    weight_shards = property(lambda self: weight_shards(self.inputs))  # the functions above (impls/ops.py)
    bias_shards = property(lambda self: bias_shards(self.inputs))


# -- the case ----------------------------------------------------------------------------------------
inf, nan = float("inf"), float("nan")


def _array(dtype, shape, values):
    return numpy.array(values, dtype=dtype).reshape(shape)


INPUTS = {
    'biases': _array('float16', (2,), [-0.046875, -0.703125]),
    'inputs': _array('float16', (1, 1), [0.09375]),
    'labels': _array('int64', (1, 1), [0]),
    'sampled_candidates': _array('int64', (1,), [0]),
    'sampled_expected_count': _array('float16', (1,), [0.630859375]),
    'true_expected_count': _array('float16', (1, 1), [0.630859375]),
    'upstream': _array('float16', (1,), [1.875]),
    'weights': _array('float16', (2, 1), [0.703125, -0.5625]),
}
GOLDEN = _array('float64', (1,), [0.0])  # golden/loss


def load_case():
    return INPUTS, GOLDEN


def check(adapter, case, golden):
    """The divergence found: loss differs from the golden one beyond the tolerance."""
    outputs = adapter.run(case)
    assert 'loss' in outputs, "no longer diverges: no loss among the outputs"
    actual = numpy.asarray(outputs['loss'], dtype=numpy.float64)
    if actual.shape != golden.shape:
        print("loss: shape %s, expected %s" % (actual.shape, golden.shape))
        return
    # The suite's tolerance for this case: float16: 16 ulp (max(16, 2*sqrt(n=2))) x (|golden| + scale 1)
    with numpy.errstate(all="ignore"):
        error, ratio, nonfinite = judge_elements(actual, golden, rtol=0.015625, scale=1.0)
    wrong = numpy.argwhere(nonfinite | (ratio > 1.0))
    assert wrong.size, "no longer diverges: loss is within the tolerance (at most %.3g of it)" % ratio.max(
        initial=0.0)
    at = tuple(int(i) for i in wrong[0])
    print("loss at %s: %r, golden %r (%d elements differ)" % (at, float(actual[at]), float(golden[at]),
                                                               len(wrong)))


def main():
    inputs, golden = load_case()
    case = Case('sampled_softmax_loss', 'float16', {'num_classes': 2, 'num_sampled': 1, 'num_shards': 0, 'num_true': 1, 'partition_strategy': 'mod', 'remove_accidental_hits': True}, inputs)
    adapter = TensorflowAdapter()
    print('tensorflow', adapter.load("cpu"))
    check(adapter, case, golden)


if __name__ == "__main__":
    main()
