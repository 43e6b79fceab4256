"""The suite's torch adapter (impls/torch_adapter.py), copied verbatim by `conformance search` for the
standalone reproducers beside it (regenerated with each one): it needs NumPy and torch only.
"""
from __future__ import annotations

import numpy as np


class Unsupported(Exception):
    """Raised by ``run`` when a case turns out to be inexpressible in the framework."""


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


class TorchAdapter(Adapter):
    ops = ('softmax_with_cross_entropy', 'sampled_softmax_with_cross_entropy', 'sampled_softmax_loss')  # the ops the adapter declares

    devices = ('cpu', 'gpu')

    name = 'torch'

    def load(self, device: str) -> str:
        import torch  # noqa: PLC0415 - the core must read declarations without importing torch

        if device == "gpu" and not torch.cuda.is_available():
            raise RuntimeError("torch %s: CUDA is not available, cannot run on gpu" % torch.__version__)
        self.torch = torch
        self.device = device
        self._device = torch.device("cuda" if device == "gpu" else "cpu")
        return torch.__version__

    def prepare(self, case):
        torch = self.torch
        dtype = getattr(torch, case.dtype)
        # The op's differentiable inputs are autograd leaves; the gradient of input ``x`` is returned
        # as ``grad/x`` (shard ``weights/i`` gives ``grad/weights/i``, the flat name the spec asks for).
        leaves = OPS[case.op].differentiable_in(case.params)  # a soft label too: torch differentiates it
        tensors = {}
        for name, array in case.inputs.items():
            is_float = np.issubdtype(array.dtype, np.floating)
            tensor = torch.as_tensor(array, dtype=dtype if is_float else torch.int64, device=self._device)
            tensors[name] = tensor.requires_grad_(name.split("/")[0] in leaves)
        return case.op, case.params, tensors

    def compute(self, state, backward=True):
        torch = self.torch
        op, params, tensors = state
        compute = self._loss_function(op)
        if not backward:
            with torch.no_grad():  # inference: no autograd graph is recorded
                loss, outputs = compute(params, tensors)
            outputs["loss"] = loss
            return outputs
        loss, outputs = compute(params, tensors)

        grad_names = [name for name, tensor in tensors.items() if tensor.requires_grad]
        grads = torch.autograd.grad((loss * tensors["upstream"]).sum(), [tensors[n] for n in grad_names])
        outputs["loss"] = loss
        outputs.update(("grad/" + name, grad) for name, grad in zip(grad_names, grads))
        return outputs

    def _loss_function(self, op):
        """``(params, tensors) -> (loss, extra outputs)`` for the op, run eagerly."""
        return {
            "softmax_with_cross_entropy": self._softmax_with_cross_entropy,
            "sampled_softmax_with_cross_entropy": self._sampled_softmax_with_cross_entropy,
            "sampled_softmax_loss": self._sampled_softmax_loss,
        }[op]

    def to_numpy(self, outputs) -> dict:
        return {name: self._numpy(tensor) for name, tensor in outputs.items()}

    def synchronize(self):
        if self._device.type == "cuda":
            self.torch.cuda.synchronize(self._device)

    def _numpy(self, tensor) -> np.ndarray:
        tensor = tensor.detach().cpu()
        if tensor.layout == self.torch.sparse_coo:  # a sparse gradient: to_dense sums repeated ids
            tensor = tensor.to_dense()
        # NumPy has no bfloat16; float32 holds every bfloat16 value exactly.
        if tensor.dtype == self.torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy()

    def _softmax_with_cross_entropy(self, params, t):
        F = self.torch.nn.functional
        logits, label, axis = t["logits"], t["label"], params["axis"]
        # cross_entropy's own form: classes on dim 1 ([N, C, d1, ...]), hard targets [N, d1, ...] and soft
        # targets of the input's shape.  Only the class axis is moved (torch itself rejects an axis out
        # of range) and only a size-1 class axis is squeezed from a hard label: a label of the wrong
        # rank, batch or dtype reaches torch as it is.
        rows = logits.movedim(axis, 1) if logits.dim() > 1 else logits
        if params["soft_label"]:
            # Probability targets; ignore_index applies to class indices only (in Paddle too).
            target = label.movedim(axis, 1) if label.dim() > 1 else label
            loss = F.cross_entropy(rows, target, reduction="none")
        else:
            target = label.squeeze(axis) if label.dim() == logits.dim() else label
            loss = F.cross_entropy(rows, target, reduction="none", ignore_index=params["ignore_index"])
        loss = loss.unsqueeze(axis if axis >= 0 else axis + logits.dim())
        outputs = {}
        if params["return_softmax"]:
            outputs["softmax"] = F.softmax(logits.detach(), dim=axis)
        return loss, outputs

    def _sampled_softmax_with_cross_entropy(self, params, t):
        if not params.get("use_customized_samples", True):
            raise Unsupported("torch has no sampler: only customized samples can be expressed")
        num_true = params["num_true"]
        samples = t["customized_samples"]
        # Only the sampled columns of the [N, K] logits are read; gather's backward scatter-adds, so
        # duplicate samples accumulate into the dense logits gradient.
        z = t["logits"].gather(1, samples) - self.torch.log(t["customized_probabilities"])
        loss = self._true_class_loss(z, num_true, params["remove_accidental_hits"], samples[:, num_true:], t["label"])
        return loss.unsqueeze(1), {}

    def _sampled_softmax_loss(self, params, t):
        torch = self.torch
        if "biases" not in t:  # biases as a list of shards (feature sharded_biases)
            raise Unsupported("torch has no lookup over a list of bias shards")
        labels, sampled, inputs = t["labels"], t["sampled_candidates"], t["inputs"]
        batch, num_true = labels.shape
        ids = torch.cat([labels.reshape(-1), sampled])
        rows = self._embedding_lookup(params, t, ids)
        # Sparse gradients, as a PyTorch user trains embeddings: the rows of ``ids`` only.
        bias = torch.gather(t["biases"], 0, ids, sparse_grad=True)
        true_w, sampled_w = rows[: batch * num_true].view(batch, num_true, -1), rows[batch * num_true:]
        true_b, sampled_b = bias[: batch * num_true].view(batch, num_true), bias[batch * num_true:]
        true_logits = torch.einsum("bd,btd->bt", inputs, true_w) + true_b - torch.log(t["true_expected_count"])
        sampled_logits = inputs @ sampled_w.t() + sampled_b - torch.log(t["sampled_expected_count"])
        z = torch.cat([true_logits, sampled_logits], 1)
        loss = self._true_class_loss(z, num_true, params["remove_accidental_hits"], sampled.expand(batch, -1), labels)
        return loss, {}

    def _true_class_loss(self, z, num_true, remove_accidental_hits, negatives, labels):
        """Cross-entropy of ``z`` [N, T + S] with label 1/T on its first T columns.

        When asked, a negative column whose class equals one of its row's labels (an accidental hit)
        is set to ``-inf`` so its softmax weight and gradient are exactly 0.  Only the true columns of
        ``log_softmax`` are read, so a ``-inf`` column never meets a zero label (no ``0 * -inf``).
        """
        if remove_accidental_hits:
            hits = (negatives.unsqueeze(1) == labels.unsqueeze(2)).any(1)
            z = self.torch.cat([z[:, :num_true], z[:, num_true:].masked_fill(hits, float("-inf"))], 1)
        return -self.torch.log_softmax(z, 1)[:, :num_true].mean(1)

    def _embedding_lookup(self, params, t, ids):
        """Rows ``ids`` of the weights, sharded or not, as tf.nn.embedding_lookup finds them; each
        shard's gradient is a sparse COO tensor of the rows read (``F.embedding(sparse=True)``)."""
        torch = self.torch
        embedding = torch.nn.functional.embedding
        if params.get("num_shards", 0) == 0:
            return embedding(ids, t["weights"], sparse=True)
        shards = [t["weights/%d" % i] for i in range(params["num_shards"])]
        count = len(shards)
        if params["partition_strategy"] == "mod":
            shard_of, row_of = ids % count, torch.div(ids, count, rounding_mode="floor")
        else:
            # "div", with TensorFlow's own arithmetic: the first ``extras`` shards hold one more row.
            # With fewer classes than shards (``per_shard == 0``) every id is in the first ``extras``
            # shards, where TensorFlow's other branch would divide by zero: ``short`` keeps it finite.
            per_shard, extras = divmod(sum(int(w.shape[0]) for w in shards), count)
            short = max(per_shard, 1)
            shard_of = torch.maximum(
                torch.div(ids, per_shard + 1, rounding_mode="floor"),
                torch.div(ids - extras, short, rounding_mode="floor"),
            )
            row_of = torch.where(shard_of < extras, ids % (per_shard + 1), (ids - extras) % short)
        # Gather from each shard only its own ids, then put the rows back in ``ids`` order.
        positions = [(shard_of == i).nonzero().squeeze(1) for i in range(count)]
        gathered = torch.cat([embedding(row_of[p], w, sparse=True) for w, p in zip(shards, positions)])
        return gathered.index_select(0, torch.argsort(torch.cat(positions)))


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
