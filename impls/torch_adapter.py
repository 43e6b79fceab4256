"""PyTorch adapter.

``cross_entropy`` is native (``F.cross_entropy``: class weights, ignore_index, reductions, label
smoothing, probability targets), judged against torch's documented convention; probabilities in
(``use_softmax=False``) are composed on ``log(p)`` (``F.nll_loss`` where it applies).
``softmax_with_cross_entropy`` is native (``F.cross_entropy`` with ``reduction="none"``); PyTorch has
no sampled softmax, so both sampled ops are composed the way a PyTorch user would write them: gather
only the sampled rows/columns, mask accidental hits with ``-inf`` and take ``log_softmax`` over the
``T + S`` columns.  Gradients come from autograd of ``sum(upstream * loss)``.
"""
from __future__ import annotations

import numpy as np

from impls.base import Adapter, OpSupport, Unsupported
from impls.ops import OPS


class TorchAdapter(Adapter):
    name = "torch"
    devices = ("cpu", "gpu")
    ops = {
        "softmax_with_cross_entropy": OpSupport(
            "native",
            note="F.cross_entropy(reduction='none', ignore_index=...) on logits with the class axis moved to dim 1 "
            "([N, C, d1, ...], torch's own form; class-index targets with the size-1 class axis squeezed for "
            "hard labels, probability targets for soft labels); "
            "F.softmax for return_softmax; numeric_stable_mode has no counterpart (always stable)",
        ),
        "sampled_softmax_with_cross_entropy": OpSupport(
            "composed",
            note="logits.gather(1, customized_samples) - log(customized_probabilities), "
            "masked_fill(-inf) on accidental hits, -log_softmax over the T+S columns averaged "
            "over the T true columns; the sampler is not composed (customized samples only)",
        ),
        "sampled_softmax_loss": OpSupport(
            "composed",
            unsupported_features=("sharded_biases",),
            note="sharded_biases: PyTorch has no lookup over a list of shards, the adapter would stitch them itself; "
            "F.embedding(sparse=True) of the label and sampled rows per weight shard (tf.nn.embedding_lookup "
            "'mod'/'div' id mapping, stitched back with index_select) and torch.gather(sparse_grad=True) "
            "of the biases, so the weight and bias gradients are sparse COO tensors (uncoalesced, "
            "densified outside timing), einsum/matmul logits + biases "
            "- log(expected_count), masked_fill(-inf) on accidental hits, -log_softmax averaged "
            "over the T true columns",
        ),
        "cross_entropy": OpSupport(
            "native",
            convention="torch",
            note="F.cross_entropy(weight=, ignore_index=, reduction=, label_smoothing=) with the class axis moved to "
            "dim 1, class-index or probability targets (all native); use_softmax=False is composed: "
            "F.nll_loss(log(p), weight=, ignore_index=, reduction=) (torch's documented NLLLoss of "
            "log-probabilities) for class indices, and torch's label-smoothing / probability-target formula "
            "written on log(p) otherwise (-sum w_c t_c log p_c, the mean over the weights of the targets)",
        ),
    }

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
            "cross_entropy": self._cross_entropy,
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

    def _cross_entropy(self, params, t):
        F = self.torch.nn.functional
        axis = params["axis"]
        # torch's own form: classes on dim 1 ([N, C, d1, ...]); the class-index target is the logits'
        # shape without the class axis (already so), a probability target is moved like the logits.
        rows = t["logits"].movedim(axis, 1) if t["logits"].dim() > 1 else t["logits"]
        label = t["label"]
        target = label.movedim(axis, 1) if params["soft_label"] and label.dim() > 1 else label
        options = dict(weight=t.get("weight"), reduction=params["reduction"])
        if not params["soft_label"]:
            options["ignore_index"] = params["ignore_index"]
        if params["use_softmax"]:
            return F.cross_entropy(rows, target, label_smoothing=params["label_smoothing"], **options), {}
        return self._cross_entropy_of_log(self.torch.log(rows), target, params, options), {}

    def _cross_entropy_of_log(self, log_p, target, params, options):
        """torch's cross-entropy formulas on log-probabilities (use_softmax=False): F.nll_loss for class
        indices, else torch's documented label-smoothing and probability-target formulas, composed."""
        torch, F = self.torch, self.torch.nn.functional
        smoothing, weight, reduction = params["label_smoothing"], options["weight"], options["reduction"]
        if not params["soft_label"] and not smoothing:
            return F.nll_loss(log_p, target, **options)
        classes = log_p.shape[1]
        w = (weight if weight is not None else torch.ones(classes, dtype=log_p.dtype)).view(
            [1, classes] + [1] * (log_p.dim() - 2))
        if params["soft_label"]:
            per_position = -(log_p * ((1 - smoothing) * target + smoothing / classes) * w).sum(1)
            return {"none": per_position, "sum": per_position.sum(), "mean": per_position.mean()}[reduction]
        # Class indices with smoothing, as torch's cross_entropy composes it: (1 - eps) * nll + eps / C *
        # smooth, ignored positions 0, the mean over the weights of the non-ignored targets.
        ignored = target == params["ignore_index"]
        nll = F.nll_loss(log_p, target, **options)
        smooth = (-(log_p * w).sum(1)).masked_fill(ignored, 0.0)
        if reduction == "mean":
            safe = target.masked_fill(ignored, 0)
            denominator = (w.flatten()[safe] * (~ignored)).sum()
            smooth = smooth.sum() / denominator
        elif reduction == "sum":
            smooth = smooth.sum()
        return (1 - smoothing) * nll + smooth * (smoothing / classes)

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
        loss = self._dense(self._sampled_loss_from_rows)(
            inputs, rows, bias, t["true_expected_count"], t["sampled_expected_count"], labels, sampled,
            params["remove_accidental_hits"])
        return loss, {}

    def _sampled_loss_from_rows(self, inputs, rows, bias, true_expected_count, sampled_expected_count, labels,
                                sampled, remove_accidental_hits):
        """sampled_softmax_loss after the lookups: dense tensors in, the loss out (see ``_dense``)."""
        torch = self.torch
        batch, num_true = labels.shape
        true_w, sampled_w = rows[: batch * num_true].view(batch, num_true, -1), rows[batch * num_true:]
        true_b, sampled_b = bias[: batch * num_true].view(batch, num_true), bias[batch * num_true:]
        true_logits = torch.einsum("bd,btd->bt", inputs, true_w) + true_b - torch.log(true_expected_count)
        sampled_logits = inputs @ sampled_w.t() + sampled_b - torch.log(sampled_expected_count)
        z = torch.cat([true_logits, sampled_logits], 1)
        return self._true_class_loss(z, num_true, remove_accidental_hits, sampled.expand(batch, -1), labels)

    def _dense(self, function):
        """The part of a loss that is dense tensors in and out, as this mode runs it (eagerly here).

        The sparse lookups before it (``F.embedding(sparse=True)``, ``gather(sparse_grad=True)``)
        stay outside it: their forward outputs are dense rows, only their gradients are sparse."""
        return function

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


# Ops whose gradient the eager adapter keeps sparse (an embedding's): inductor cannot compile a sparse
# gradient, so torch-compile compiles only their dense part, as a PyTorch user training embeddings does.
SPARSE_GRADIENT_OPS = ("sampled_softmax_loss",)


class TorchCompileAdapter(TorchAdapter):
    """The same loss functions under ``torch.compile`` (inductor on the CPU, dynamic shapes).

    The forward is compiled; autograd differentiates the compiled graph (AOTAutograd compiles its
    backward too).  Compilation happens in the first call of each op, params and dtype (untimed
    warm-up in the benchmark; in a conformance run it is part of the case's first run).  A compiled
    result that differs from eager PyTorch is a finding about the compiler.
    """

    name = "torch-compile"
    compiled_from = "torch"
    # Measured here: 10 to 30 s of compilation per case on 2 loaded cores (55 cases in 15 minutes).
    opt_in = "compiles each case (10-30 s a case on 2 cores): run it by name, --impl torch-compile"
    ops = {op: support.noted("; the loss after the sparse lookups under torch.compile(dynamic=True), inductor: "
                             "the embedding and bias lookups with sparse gradients run eagerly (inductor cannot "
                             "compile a sparse gradient: 'Cannot access storage of SparseTensorImpl')"
                             if op in SPARSE_GRADIENT_OPS else "; the loss under torch.compile(dynamic=True), inductor")
           for op, support in TorchAdapter.ops.items()}

    def load(self, device):
        version = super().load(device)
        import torch._dynamo  # noqa: PLC0415

        # Every (op, params, dtype) is a guard set of its own: the corpus needs more than the
        # default 8 recompilations per function, past which torch silently falls back to eager.
        torch._dynamo.config.cache_size_limit = 1024
        torch._dynamo.config.accumulated_cache_size_limit = 4096
        self._compiled = {}
        return version

    def _loss_function(self, op):
        if op in SPARSE_GRADIENT_OPS:  # eager sparse lookups around a compiled dense part (see _dense)
            return super()._loss_function(op)
        return self._compile(super()._loss_function(op))

    def _dense(self, function):
        return self._compile(function)

    def _compile(self, function):
        key = function.__name__
        if key not in self._compiled:
            self._compiled[key] = self.torch.compile(function, dynamic=True, fullgraph=False)
        return self._compiled[key]


ADAPTER = TorchAdapter
ADAPTERS = {"torch": TorchAdapter, "torch-compile": TorchCompileAdapter}
