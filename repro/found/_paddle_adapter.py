"""The suite's paddle adapter (impls/paddle_adapter.py), copied verbatim by `conformance search` for the
standalone reproducers beside it (regenerated with each one): it needs NumPy and paddle only.
"""
from __future__ import annotations

import collections
import numpy as np


class SparseRows(collections.namedtuple("SparseRows", "indices values dense_shape")):
    """A gradient that is non-zero in a few rows only: ``dense[indices[i]] += values[i]``.

    The NumPy form of what TensorFlow calls ``IndexedSlices``, PyTorch a sparse COO gradient and
    Paddle ``SelectedRows``: ``indices`` ``[n]`` row ids (repeats allowed), ``values`` ``[n, ...]``
    their rows, ``dense_shape`` the shape of the whole gradient (``values.shape[1:]`` after its
    first axis).  An op computes it (timed); comparison densifies it (untimed).
    """

    def dense(self) -> np.ndarray:
        """The dense NumPy array, repeated rows summed in their order (as ``np.add.at`` does)."""
        values = np.asarray(self.values)
        out = np.zeros(tuple(self.dense_shape), dtype=values.dtype)
        np.add.at(out, np.asarray(self.indices, dtype=np.int64), values)
        return out


class Unsupported(Exception):
    """Raised by ``run`` when a case turns out to be inexpressible in the framework."""


def flatten_gradients(result: dict) -> dict:
    """Turn a reference ``*_grad`` dict (or an adapter's equivalent) into flat output names.

    ``{"loss": L, "softmax": S, "logits": G}`` -> ``{"loss": L, "softmax": S, "grad/logits": G}``;
    a list of shard gradients under ``weights`` becomes ``grad/weights/0``, ``grad/weights/1``, ...
    """
    flat = {}
    for name, value in result.items():
        if name in ("loss", "softmax"):
            flat[name] = value
        elif isinstance(value, (list, tuple)) and not isinstance(value, SparseRows):
            for index, shard in enumerate(value):
                flat["grad/%s/%d" % (name, index)] = shard
        else:
            flat["grad/" + name] = value
    return flat


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


class PaddleAdapter(Adapter):
    ops = ('softmax_with_cross_entropy', 'sampled_softmax_with_cross_entropy', 'sampled_softmax_loss')  # the ops the adapter declares

    devices = ('cpu', 'gpu')

    name = 'paddle'

    def load(self, device: str) -> str:
        import paddle  # noqa: PLC0415 - frameworks are imported in load() only

        if device == "gpu":
            if not paddle.device.is_compiled_with_cuda():
                raise RuntimeError("paddle %s is a CPU-only build: no gpu" % paddle.__version__)
            if paddle.device.cuda.device_count() == 0:
                raise RuntimeError("paddle %s has CUDA but sees no GPU" % paddle.__version__)
            paddle.set_device("gpu:0")
        elif device == "cpu":
            paddle.set_device("cpu")
        else:
            raise ValueError("device: expected 'cpu' or 'gpu', got %r" % (device,))
        self.paddle = paddle
        self.device = device
        return paddle.__version__

    def _float(self, array, dtype, grad=False):
        """A float input in the case dtype (bfloat16 arrives stored as float32) on the device."""
        tensor = self.paddle.to_tensor(array)
        if tensor.dtype != getattr(self.paddle, dtype):
            tensor = tensor.astype(dtype)
        tensor.stop_gradient = not grad
        return tensor

    def _int(self, array):
        return self.paddle.to_tensor(np.asarray(array, dtype=np.int64))

    def _label(self, array, dtype, grad=False):
        """A label as stored: integers as int64, floats in the case dtype.  A float hard label is
        not cast to integers: Paddle sees it and decides (a bad-input case).  ``grad``: a soft label,
        whose gradient is asked of Paddle."""
        return self._float(array, dtype, grad=grad) if array.dtype.kind == "f" else self._int(array)

    @staticmethod
    def _numpy(tensor):
        # NumPy has no bfloat16: widen it (the comparison casts to float64 anyway).
        if str(tensor.dtype).endswith("bfloat16"):
            tensor = tensor.astype("float32")
        if tensor.is_selected_rows():  # a sparse embedding gradient: its rows, summed per id
            rows = tensor.get_selected_rows()
            values = tensor.numpy()  # the [n, D] rows of the ids in ``rows()``
            return SparseRows(np.asarray(rows.rows(), dtype=np.int64), values,
                              (rows.height(),) + values.shape[1:]).dense()
        return tensor.numpy()

    def _grads(self, loss, upstream, inputs):
        """Gradients of sum(upstream * loss) with respect to ``inputs`` (a list of tensors)."""
        grads = self.paddle.grad([(loss * upstream).sum()], inputs, allow_unused=True)
        # An input the loss never reads (an empty weight shard) has a zero gradient.
        return [self.paddle.zeros_like(t) if g is None else g for g, t in zip(grads, inputs)]

    def prepare(self, case):
        method = getattr(self, "_" + case.op, None)
        if method is None or case.op not in self.ops:
            raise Unsupported("paddle has no %s" % case.op)
        return method, case.params, getattr(self, "_prepare_" + case.op)(case)

    def compute(self, state, backward=True):
        method, params, tensors = state
        if backward:
            return method(params, tensors, True)
        with self.paddle.no_grad():  # inference: no autograd graph is recorded
            return method(params, tensors, False)

    def to_numpy(self, outputs) -> dict:
        return {name: self._numpy(tensor) for name, tensor in outputs.items()}

    def synchronize(self):
        if self.device == "gpu":
            self.paddle.device.synchronize()

    def _prepare_softmax_with_cross_entropy(self, case) -> dict:
        x = case.inputs
        return {"logits": self._float(x["logits"], case.dtype, grad=True),
                "label": self._label(x["label"], case.dtype, grad=case.params["soft_label"]),
                "upstream": self._float(case.upstream, case.dtype)}

    def _softmax_with_cross_entropy(self, p, t, backward) -> dict:
        F = self.paddle.nn.functional
        logits, label = t["logits"], t["label"]
        out = F.softmax_with_cross_entropy(
            logits, label, soft_label=p["soft_label"], ignore_index=p["ignore_index"],
            numeric_stable_mode=p["numeric_stable_mode"], return_softmax=p["return_softmax"],
            axis=p["axis"])
        loss, softmax = out if p["return_softmax"] else (out, None)
        result = {"loss": loss}
        if backward and p["soft_label"]:
            # Paddle's answer for the label as it is: None (no gradient) is left out, not made zero.
            grads = self.paddle.grad([(loss * t["upstream"]).sum()], [logits, label], allow_unused=True)
            result["grad/logits"] = grads[0]
            if grads[1] is not None:
                result["grad/label"] = grads[1]
        elif backward:
            (result["grad/logits"],) = self._grads(loss, t["upstream"], [logits])
        if softmax is not None:
            result["softmax"] = softmax
        return result

    def _prepare_sampled_softmax_with_cross_entropy(self, case) -> dict:
        x = case.inputs
        return {"logits": self._float(x["logits"], case.dtype, grad=True),
                "label": self._int(x["label"]),                          # [N, T]
                "samples": self._int(x["customized_samples"]),           # [N, T+S], first T = labels
                "probs": self._float(x["customized_probabilities"], case.dtype),
                "upstream": self._float(case.upstream, case.dtype)}

    def _sampled_softmax_with_cross_entropy(self, p, t, backward) -> dict:
        paddle = self.paddle
        num_true = p["num_true"]
        logits, label, samples, probs = t["logits"], t["label"], t["samples"], t["probs"]

        # z[i, j] = logits[i, samples[i, j]] - log q[i, j]; the backward of take_along_axis
        # scatter-adds, so duplicate samples accumulate into the dense logits gradient.
        z = paddle.take_along_axis(logits, samples, axis=1) - paddle.log(probs)
        if p["remove_accidental_hits"]:
            # A negative column (j >= T) whose class is one of the row's labels gets weight 0.
            is_negative = paddle.arange(samples.shape[1]) >= num_true
            hit = (samples.unsqueeze(2) == label.unsqueeze(1)).any(axis=2) & is_negative
            z = paddle.where(hit, paddle.full_like(z, float("-inf")), z)
        # Soft label 1/T on the first T columns: loss = logsumexp(z) - mean(z_true).
        loss = paddle.logsumexp(z, axis=1, keepdim=True) - z[:, :num_true].mean(axis=1, keepdim=True)
        if not backward:
            return {"loss": loss}
        (grad,) = self._grads(loss, t["upstream"], [logits])
        return {"loss": loss, "grad/logits": grad}

    def _embedding_lookup(self, shards, ids, strategy):
        """tf.nn.embedding_lookup over a list of shards: rows of ``ids`` without concatenating them."""
        paddle = self.paddle
        # sparse=True: each shard's gradient is SelectedRows (the rows read), as Paddle trains embeddings.
        embedding = paddle.nn.functional.embedding
        if len(shards) == 1:
            return embedding(ids, shards[0], sparse=True)
        count = len(shards)
        if strategy == "mod":
            shard_of, row_of = ids % count, ids // count
        elif strategy == "div":
            # Contiguous blocks; the first (total % count) shards hold one extra row each.
            total = sum(int(w.shape[0]) for w in shards)
            size, extra = divmod(total, count)
            cut = extra * (size + 1)
            low, rest = ids < cut, ids - cut
            shard_of = paddle.where(low, ids // (size + 1), extra + rest // max(size, 1))
            row_of = paddle.where(low, ids % (size + 1), rest % max(size, 1))
        else:
            raise Unsupported("partition_strategy %r" % (strategy,))
        rows = paddle.zeros([int(ids.shape[0]), int(shards[0].shape[1])], dtype=shards[0].dtype)
        for index, shard in enumerate(shards):
            if int(shard.shape[0]) == 0:
                continue
            # Clamp the other shards' ids into range; ``where`` drops those rows and their grads.
            picked = embedding(paddle.clip(row_of, 0, int(shard.shape[0]) - 1), shard, sparse=True)
            rows = paddle.where((shard_of == index).unsqueeze(1), picked, rows)
        return rows

    def _prepare_sampled_softmax_loss(self, case) -> dict:
        x = case.inputs
        if "biases" not in x:  # biases as a list of shards (feature sharded_biases)
            raise Unsupported("paddle has no lookup over a list of bias shards")
        return {"shards": [self._float(w, case.dtype, grad=True) for w in case.weight_shards],
                "biases": self._float(x["biases"], case.dtype, grad=True),
                "inputs": self._float(x["inputs"], case.dtype, grad=True),                 # [B, D]
                "labels": self._int(x["labels"]),                                           # [B, T]
                "sampled": self._int(x["sampled_candidates"]),                              # [S]
                "true_count": self._float(x["true_expected_count"], case.dtype),            # [B, T]
                "sampled_count": self._float(x["sampled_expected_count"], case.dtype),      # [S]
                "upstream": self._float(case.upstream, case.dtype)}

    def _sampled_softmax_loss(self, p, t, backward) -> dict:
        paddle = self.paddle
        num_true = p["num_true"]
        shards, biases, inputs, labels = t["shards"], t["biases"], t["inputs"], t["labels"]
        sampled, true_count, sampled_count = t["sampled"], t["true_count"], t["sampled_count"]
        batch = int(labels.shape[0])

        # One lookup for the true and the sampled classes, as TF does.
        ids = paddle.concat([labels.flatten(), sampled])
        rows = self._embedding_lookup(shards, ids, p["partition_strategy"])      # [B*T + S, D]
        row_bias = paddle.gather(biases, ids)
        true_w = rows[: batch * num_true].reshape([batch, num_true, -1])          # [B, T, D]
        true_b = row_bias[: batch * num_true].reshape([batch, num_true])
        sampled_w, sampled_b = rows[batch * num_true:], row_bias[batch * num_true:]

        true_logits = (paddle.matmul(true_w, inputs.unsqueeze(2)).squeeze(2) + true_b
                       - paddle.log(true_count))                                  # [B, T]
        sampled_logits = (paddle.matmul(inputs, sampled_w, transpose_y=True) + sampled_b
                          - paddle.log(sampled_count))                            # [B, S]
        if p["remove_accidental_hits"]:
            hit = (labels.unsqueeze(2) == sampled.reshape([1, 1, -1])).any(axis=1)  # [B, S]
            sampled_logits = paddle.where(
                hit, paddle.full_like(sampled_logits, float("-inf")), sampled_logits)
        z = paddle.concat([true_logits, sampled_logits], axis=1)
        loss = paddle.logsumexp(z, axis=1) - true_logits.mean(axis=1)             # [B]
        if not backward:
            return {"loss": loss}

        grads = self._grads(loss, t["upstream"], shards + [biases, inputs])
        shard_grads = list(grads[: len(shards)])
        result = {
            "loss": loss,
            "inputs": grads[-1],
            "biases": grads[-2],
            "weights": shard_grads if p.get("num_shards", 0) else shard_grads[0],
        }
        return flatten_gradients(result)


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
