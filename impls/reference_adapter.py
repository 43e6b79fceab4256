"""The oracle as an impl: ``numpy`` (CPU) and ``cupy`` (GPU) run the textbook ``impls/reference/``, the
code that writes the golden outputs.

The speed contender's impls (``numpy-fast``, ``cupy-fast``) are ``impls/numpy_fast_adapter.py``: they
reuse this adapter's shape over their own module (``module_name``, imported by ``load``), so nothing
of the contender, its numba kernels or its thread pool is imported by the oracle's worker.
"""
from __future__ import annotations

import importlib

import numpy as np

from impls import dtypes as _dtypes
from impls.base import Adapter, OpSupport
from impls.caseio import SparseRows, flatten_gradients
from impls.ops import OPS

# The oracle computes every documented convention; as an impl it answers the first one's (torch's),
# the base golden (the contender's impls declare the same).
_ORACLE_CONVENTION = "torch"


def oracle_ops(note, dtypes=_dtypes.NAMES, unsupported=None, ops=tuple(OPS)):
    """The declarations of an impl with the oracle's API: every op native, judged by torch's convention."""
    return {op: OpSupport("native", dtypes, (unsupported or {}).get(op, ()), note=note,
                          convention=_ORACLE_CONVENTION if OPS[op].conventions else "") for op in ops}


class NumpyReference(Adapter):
    name = "numpy"
    devices = ("cpu",)
    module_name = "impls.reference"
    ops = oracle_ops("impls/reference/")

    def load(self, device):
        self.device = device
        self.xp = np
        self.module = importlib.import_module(self.module_name)
        return np.__version__

    def _cast(self, case):
        dtype = _dtypes.numpy_dtype(case.dtype)

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
            return getattr(self.module, op + "_grad")(upstream=upstream, **kwargs)
        loss = getattr(self.module, op)(**kwargs)  # forward only: no gradient work
        return {"loss": loss[0] if isinstance(loss, tuple) else loss}  # (loss, softmax) when asked

    def to_numpy(self, outputs):
        # Sparse weight and bias gradients (the contender's SparseRows) are densified here, outside timing.
        return {name: SparseRows(self._to_numpy(value.indices), self._to_numpy(value.values),
                                 value.dense_shape).dense()
                if isinstance(value, SparseRows) else self._to_numpy(value)
                for name, value in flatten_gradients(outputs).items()}

    def _to_numpy(self, array):
        return np.asarray(array)


CUPY_DTYPES = ("float16", "float32", "float64")  # CuPy has no bfloat16 arrays


class CupyReference(NumpyReference):
    name = "cupy"
    devices = ("gpu",)
    ops = oracle_ops("impls/reference/ on CuPy", CUPY_DTYPES)

    def load(self, device):
        import cupy  # noqa: PLC0415 - only the GPU worker imports CuPy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("cupy: no CUDA device visible")
        self.device, self.xp = device, cupy
        self.module = importlib.import_module(self.module_name)
        return cupy.__version__

    def _to_numpy(self, array):
        return self.xp.asnumpy(array)

    def synchronize(self):
        self.xp.cuda.Device().synchronize()  # the current device: every stream's queued work


ADAPTERS = {adapter.name: adapter for adapter in (NumpyReference, CupyReference)}
ADAPTER = NumpyReference
