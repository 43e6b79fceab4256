"""PaddlePaddle 3.x (dynamic graph) adapter.

* ``softmax_with_cross_entropy`` is Paddle's own op: every option goes straight through.
* ``sampled_softmax_with_cross_entropy``: the native ``sample_logits`` op was removed after 1.8
  (see /work/shared/FACTS.md), so the adapter composes the 1.8 semantics from Paddle ops.
* ``sampled_softmax_loss`` (TensorFlow's API) is composed too: weight rows are gathered shard by
  shard, so nothing of size ``[B, num_classes]`` is ever built.

Paddle is imported in ``load`` only.  Gradients are those of ``sum(upstream * loss)``, taken with
``paddle.grad``.  This module must import on Python 3.8 (the core reads its declarations there).
"""
from __future__ import annotations

import numpy as np

from impls.base import Adapter, OpSupport, Unsupported
from impls.caseio import SparseRows, flatten_gradients

# Paddle 3.3.1's CPU kernels used here (cross_entropy_with_softmax, take_along_axis, logsumexp,
# matmul, where, mean...) are registered for float32/float64 only: float16/bfloat16 raise
# "kernel ... is not registered" on CPU.  The CUDA build also has float16/bfloat16 kernels, but no
# Paddle GPU build could be run for this suite, so only what was verified is declared.
_DTYPES = ("float32", "float64")


class PaddleAdapter(Adapter):
    name = "paddle"
    devices = ("cpu", "gpu")
    ops = {
        "softmax_with_cross_entropy": OpSupport(
            "native", _DTYPES, unsupported_features=("label_rank_minus_1",), no_gradient=("label",),
            note="paddle.nn.functional.softmax_with_cross_entropy; label_rank_minus_1: the op requires a label "
                 "of the logits' rank (3.3.1 raises 'Op is invalid' for [N] with [N, C]); no_gradient label: "
                 "paddle.grad returns None for a soft label (its backward has a logits gradient only)"),
        "sampled_softmax_with_cross_entropy": OpSupport(
            "composed", _DTYPES,
            note="no sample_logits op after Paddle 1.8: take_along_axis, -log q, mask hits, logsumexp"),
        "sampled_softmax_loss": OpSupport(
            "composed", _DTYPES, unsupported_features=("sharded_biases",),
            note="sharded_biases: Paddle has no lookup over a list of shards; per-shard "
                 "paddle.nn.functional.embedding(sparse=True) (mod/div like tf.nn.embedding_lookup), whose "
                 "weight gradient paddle.grad returns as SelectedRows (densified outside timing); the bias "
                 "gradient is dense [num_classes]: embedding needs a 2-D table, and the backward of "
                 "unsqueeze/reshape of a [K] bias fails on SelectedRows in 3.3.1, so biases use paddle.gather; "
                 "matmul, logsumexp"),
        "cross_entropy": OpSupport(
            "native", _DTYPES, no_gradient=("label",), convention="paddle",
            note="paddle.nn.functional.cross_entropy with every option as it is (weight, ignore_index, reduction, "
                 "soft_label, axis, use_softmax, label_smoothing); its documented loss shape for probability "
                 "targets with reduction='none' keeps the class axis with size 1, which is squeezed; no_gradient "
                 "label: paddle.grad gives no gradient for a probability target (only the class-weight factor's "
                 "part when weight is given)"),
    }

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

    # -- helpers -------------------------------------------------------------------------------

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

    def _logits_and_label_grads(self, loss, upstream, t, soft_label) -> dict:
        """grad/logits, and grad/label for a soft label where Paddle gives one: its answer for the label
        as it is (None, no gradient, is left out, not made zero)."""
        if not soft_label:
            (grad,) = self._grads(loss, upstream, [t["logits"]])
            return {"grad/logits": grad}
        grads = self.paddle.grad([(loss * upstream).sum()], [t["logits"], t["label"]], allow_unused=True)
        return {"grad/logits": grads[0]} if grads[1] is None else {"grad/logits": grads[0], "grad/label": grads[1]}

    # -- ops -----------------------------------------------------------------------------------

    # Each op is split in ``_prepare_<op>(case)`` (inputs as tensors: untimed) and
    # ``_<op>(p, t, backward)`` (the computation: timed), which returns tensors under flat names.

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
        if backward:
            result.update(self._logits_and_label_grads(loss, t["upstream"], t, p["soft_label"]))
        if softmax is not None:
            result["softmax"] = softmax
        return result

    def _prepare_cross_entropy(self, case) -> dict:
        x, soft = case.inputs, case.params["soft_label"]
        tensors = {"logits": self._float(x["logits"], case.dtype, grad=True),
                   "label": self._label(x["label"], case.dtype, grad=soft),
                   "upstream": self._float(case.upstream, case.dtype)}
        if "weight" in x:  # class weights: an input of the case only when it has them
            tensors["weight"] = self._float(x["weight"], case.dtype)
        return tensors

    def _cross_entropy(self, p, t, backward) -> dict:
        logits, label = t["logits"], t["label"]
        loss = self.paddle.nn.functional.cross_entropy(
            logits, label, weight=t.get("weight"), ignore_index=p["ignore_index"], reduction=p["reduction"],
            soft_label=p["soft_label"], axis=p["axis"], use_softmax=p["use_softmax"],
            label_smoothing=p["label_smoothing"])
        if p["soft_label"] and p["reduction"] == "none" and loss.ndim == logits.ndim:
            # Documented: "if soft_label = True, the dimension of return value is [N_1, ..., N_k, 1]".
            loss = loss.squeeze(p["axis"])
        result = {"loss": loss}
        if backward:
            # The cotangent in the shape Paddle gave the loss (the same elements): a loss of another shape
            # than documented (class indices with label_smoothing keep a size-1 class axis) is compared
            # as it is, and must not broadcast the gradient's cotangent into a wrong one.
            upstream = t["upstream"].reshape(loss.shape)
            result.update(self._logits_and_label_grads(loss, upstream, t, p["soft_label"]))
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


ADAPTER = PaddleAdapter
