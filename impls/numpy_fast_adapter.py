"""The NumPy/CuPy speed contender as impls: ``numpy-fast`` (CPU) and ``cupy-fast`` (GPU) run
``impls/numpy_fast/`` (float32 rows in its numba kernels, ``impls/numpy_fast/kernels.py``, where numba
is installed) through the oracle adapter's shape (``impls/reference_adapter.py``): the two modules have
the same API.  Its ``sampled_softmax_loss`` weight and bias gradients are sparse rows (``SparseRows``),
densified by ``to_numpy``.
"""
from __future__ import annotations

from impls.ops import OPS
from impls.reference_adapter import CUPY_DTYPES, CupyReference, NumpyReference, oracle_ops

# Valid input the oracle accepts and the contender was not written for (it raises on them).
_UNSUPPORTED = {
    "softmax_with_cross_entropy": ("label_rank_minus_1",),
    "sampled_softmax_with_cross_entropy": (),
    "sampled_softmax_loss": ("sharded_biases", "broadcast_true_expected_count"),
}
# The contender has no cross_entropy: its speed work is the three softmax ops; the oracle's
# cross_entropy is the only NumPy one (the impl reports "numpy-fast has no cross_entropy").
_OPS = tuple(op for op in OPS if op != "cross_entropy")


class NumpyFast(NumpyReference):
    name = "numpy-fast"
    module_name = "impls.numpy_fast"
    ops = oracle_ops("impls/numpy_fast/", unsupported=_UNSUPPORTED, ops=_OPS)

    def load(self, device):
        numpy_version = super().load(device)
        from impls.numpy_fast import kernels  # noqa: PLC0415 - imported by the contender's module

        return "%s; %s" % (numpy_version, kernels.version())  # numba, or why its kernels are off

    def floor_parts(self, case, backward):
        """The work any NumPy implementation of the case's op and mode must do, as named parts
        (``impls/numpy_floors.py``); the benchmark times them beside the contender."""
        from impls import numpy_floors  # noqa: PLC0415 - only the contender's worker needs it

        return numpy_floors.floor_parts(case, backward)


class CupyFast(CupyReference):
    name = "cupy-fast"
    module_name = "impls.numpy_fast"
    ops = oracle_ops("impls/numpy_fast/ on CuPy", CUPY_DTYPES, _UNSUPPORTED, _OPS)


ADAPTERS = {adapter.name: adapter for adapter in (NumpyFast, CupyFast)}
ADAPTER = NumpyFast
