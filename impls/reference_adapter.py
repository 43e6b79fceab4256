"""The NumPy/CuPy implementations as adapters, one shape for all four impls.

* ``numpy`` (CPU) and ``cupy`` (GPU): the textbook oracle ``impls/reference/``, the code that
  writes the golden outputs.
* ``numpy-fast`` (CPU) and ``cupy-fast`` (GPU): the speed contender ``impls/numpy_fast/``, whose
  ``sampled_softmax_loss`` weight and bias gradients are sparse rows (``SparseRows``), densified
  by ``to_numpy``.

Each adapter names its implementation module in ``module_name`` (imported by ``load``, so a worker
of the oracle never imports the contender's thread pool); both modules have the same API.
"""
from __future__ import annotations

import importlib

import numpy as np

from impls import dtypes as _dtypes
from impls.base import Adapter, OpSupport
from impls.caseio import SparseRows, flatten_gradients
from impls.ops import OPS

# Valid input the oracle accepts and the contender was not written for (it raises on them).
_FAST_UNSUPPORTED = {
    "softmax_with_cross_entropy": ("label_rank_minus_1",),
    "sampled_softmax_with_cross_entropy": (),
    "sampled_softmax_loss": ("sharded_biases", "broadcast_true_expected_count"),
}


# The oracle computes every documented convention; as an impl it answers the first one's (torch's),
# the base golden.
_ORACLE_CONVENTION = "torch"
# The contender has no cross_entropy: its speed work is the three softmax ops; the oracle's
# cross_entropy is the only NumPy one (the impl reports "numpy-fast has no cross_entropy").
_FAST_OPS = tuple(op for op in OPS if op != "cross_entropy")


def _ops(note, dtypes=_dtypes.NAMES, unsupported=None, ops=tuple(OPS)):
    return {op: OpSupport("native", dtypes, (unsupported or {}).get(op, ()), note=note,
                          convention=_ORACLE_CONVENTION if OPS[op].conventions else "") for op in ops}


class NumpyReference(Adapter):
    name = "numpy"
    devices = ("cpu",)
    module_name = "impls.reference"
    ops = _ops("impls/reference/")

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
        # The contender's sparse weight and bias gradients are densified here, outside timing.
        return {name: SparseRows(self._to_numpy(value.indices), self._to_numpy(value.values),
                                 value.dense_shape).dense()
                if isinstance(value, SparseRows) else self._to_numpy(value)
                for name, value in flatten_gradients(outputs).items()}

    def _to_numpy(self, array):
        return np.asarray(array)


_CUPY_DTYPES = ("float16", "float32", "float64")  # CuPy has no bfloat16 arrays


class CupyReference(NumpyReference):
    name = "cupy"
    devices = ("gpu",)
    ops = _ops("impls/reference/ on CuPy", _CUPY_DTYPES)

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


class NumpyFast(NumpyReference):
    name = "numpy-fast"
    module_name = "impls.numpy_fast"
    ops = _ops("impls/numpy_fast/", unsupported=_FAST_UNSUPPORTED, ops=_FAST_OPS)

    def load(self, device):
        numpy_version = super().load(device)
        from impls import numpy_kernels  # noqa: PLC0415 - imported by the contender's module

        return "%s; %s" % (numpy_version, numpy_kernels.version())  # numba, or why its kernels are off

    def floor_parts(self, case, backward):
        """The work any NumPy implementation of the case's op and mode must do, as named parts
        (``impls/numpy_floors.py``); the benchmark times them beside the contender."""
        from impls import numpy_floors  # noqa: PLC0415 - only the contender's worker needs it

        return numpy_floors.floor_parts(case, backward)


class CupyFast(CupyReference):
    name = "cupy-fast"
    module_name = "impls.numpy_fast"
    ops = _ops("impls/numpy_fast/ on CuPy", _CUPY_DTYPES, _FAST_UNSUPPORTED, _FAST_OPS)


ADAPTERS = {adapter.name: adapter for adapter in (NumpyReference, CupyReference, NumpyFast, CupyFast)}
ADAPTER = NumpyReference
