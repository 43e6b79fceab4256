"""The adapter that plugs the chunked kernel into the conformance suite (no edit to the suite).

It has the shape of every adapter (impls/base.py): declarations, ``load``, and ``prepare`` /
``compute`` / ``to_numpy``.  It declares honestly what the kernel does not handle, so those cases
are reported as unsupported rather than failed.
"""
import numpy as np

from impls.base import Adapter, OpSupport

from chunked_ce.kernel import softmax_cross_entropy


class ChunkedAdapter(Adapter):
    name = "chunked-ce"
    devices = ("cpu",)
    ops = {
        "softmax_with_cross_entropy": OpSupport(
            "native", ("float32", "float64"),
            unsupported_features=("axis_not_last", "rank1", "ignore_index", "return_softmax"),
            no_gradient=("label",),  # the kernel differentiates the logits only
            note="chunked_ce.kernel: online log-sum-exp over chunks of 256 classes, last axis only; "
                 "no soft-label gradient"),
    }

    def load(self, device):
        self.device = device
        return "0.1.0 (numpy %s)" % np.__version__

    def prepare(self, case):
        dtype = np.dtype(case.dtype)
        label = case.inputs["label"]
        label = label.astype(dtype) if case.params["soft_label"] else label
        return case.inputs["logits"].astype(dtype), label, case.params["soft_label"], case.upstream.astype(dtype)

    def compute(self, state, backward=True):
        loss, grad = softmax_cross_entropy(*state)
        return {"loss": loss, "grad/logits": grad} if backward else {"loss": loss}

    def to_numpy(self, outputs):
        return outputs
