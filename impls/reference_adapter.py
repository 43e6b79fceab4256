"""The reference as an adapter: ``numpy`` on the CPU, ``cupy`` on the GPU (same code path)."""
from __future__ import annotations

import numpy as np

from impls import dtypes
from impls.base import Adapter, OpSupport
from impls.caseio import flatten_gradients
from impls.ops import OPS


class NumpyReference(Adapter):
    name = "numpy"
    devices = ("cpu",)
    ops = {op: OpSupport("native", dtypes.NAMES, note="impls/reference.py") for op in OPS}

    def load(self, device):
        self.device = device
        self.xp = np
        return np.__version__

    def _cast(self, case):
        dtype = dtypes.numpy_dtype(case.dtype)

        def cast(array):
            array = array.astype(dtype) if array.dtype.kind == "f" else array
            return self.xp.asarray(array)

        return cast

    def prepare(self, case):
        cast = self._cast(case)
        op = OPS[case.op]
        # Forward only (the benchmark's "forward" mode) is the loss without any gradient work.
        return op.reference_forward(), op.reference_grad(), cast(case.upstream), case.reference_kwargs(cast)

    def compute(self, state, backward=True):
        forward, grad, upstream, kwargs = state
        if backward:
            return grad(upstream=upstream, **kwargs)
        loss = forward(**kwargs)
        return {"loss": loss[0] if isinstance(loss, tuple) else loss}  # (loss, softmax) when asked

    def to_numpy(self, outputs):
        return {name: self._to_numpy(value) for name, value in flatten_gradients(outputs).items()}

    def _to_numpy(self, array):
        return np.asarray(array)


class CupyReference(NumpyReference):
    name = "cupy"
    devices = ("gpu",)
    # CuPy has no bfloat16 arrays.
    ops = {op: OpSupport("native", [d for d in dtypes.NAMES if d != "bfloat16"], note="impls/reference.py on CuPy")
           for op in OPS}

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
