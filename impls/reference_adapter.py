"""The reference as an adapter: ``numpy`` on the CPU, ``cupy`` on the GPU (same code path)."""
from __future__ import annotations

import numpy as np

from impls import reference
from impls.base import ALL_DTYPES, Adapter, OpSupport
from impls.caseio import flatten_gradients, numpy_dtype

_GRAD_FUNCTIONS = {
    "softmax_with_cross_entropy": reference.softmax_with_cross_entropy_grad,
    "sampled_softmax_with_cross_entropy": reference.sampled_softmax_with_cross_entropy_grad,
    "sampled_softmax_loss": reference.sampled_softmax_loss_grad,
}
# Forward only (the benchmark's "forward" mode): the loss without any gradient work.
_FORWARD_FUNCTIONS = {
    "softmax_with_cross_entropy": reference.softmax_with_cross_entropy,
    "sampled_softmax_with_cross_entropy": reference.sampled_softmax_with_cross_entropy,
    "sampled_softmax_loss": reference.sampled_softmax_loss,
}


class NumpyReference(Adapter):
    name = "numpy"
    devices = ("cpu",)
    ops = {op: OpSupport("native", ALL_DTYPES, note="impls/reference.py") for op in _GRAD_FUNCTIONS}

    def load(self, device):
        self.device = device
        self.xp = np
        return np.__version__

    def _cast(self, case):
        dtype = numpy_dtype(case.dtype)

        def cast(array):
            array = array.astype(dtype) if array.dtype.kind == "f" else array
            return self.xp.asarray(array)

        return cast

    def prepare(self, case):
        cast = self._cast(case)
        return case.op, cast(case.upstream), case.reference_kwargs(cast)

    def compute(self, state, backward=True):
        op, upstream, kwargs = state
        if backward:
            return _GRAD_FUNCTIONS[op](upstream=upstream, **kwargs)
        loss = _FORWARD_FUNCTIONS[op](**kwargs)
        return {"loss": loss[0] if isinstance(loss, tuple) else loss}  # (loss, softmax) when asked

    def to_numpy(self, outputs):
        return {name: self._to_numpy(value) for name, value in flatten_gradients(outputs).items()}

    def _to_numpy(self, array):
        return np.asarray(array)


class CupyReference(NumpyReference):
    name = "cupy"
    devices = ("gpu",)
    # CuPy has no bfloat16 arrays.
    ops = {op: OpSupport("native", ("float16", "float32", "float64"), note="impls/reference.py on CuPy")
           for op in _GRAD_FUNCTIONS}

    def load(self, device):
        import cupy  # noqa: PLC0415 - only the GPU worker imports CuPy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("cupy: no CUDA device visible")
        self.device, self.xp = device, cupy
        return cupy.__version__

    def _to_numpy(self, array):
        return self.xp.asnumpy(array)

    def synchronize(self):
        self.xp.cuda.Device().synchronize()  # the current device: every stream's queued work


ADAPTERS = {"numpy": NumpyReference, "cupy": CupyReference}
ADAPTER = NumpyReference
