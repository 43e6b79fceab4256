"""The float dtypes of the suite, declared once: names, short names, eps, sizes and storage.

Every module that needs a dtype fact reads it here (the corpus's case ids, the comparison's eps,
the benchmark's input synthesis, the pytest markers, the adapters' declarations).

bfloat16 has no portable ``.npy`` dtype and no NumPy dtype of its own: its values are *stored* as
float32 (every bfloat16 number is exactly a float32) and *computed* with ``ml_dtypes.bfloat16``,
imported only when asked (the worker side runs on Python 3.8 where ml_dtypes may be missing).

Worker side: no framework, Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np


class DtypeInfo:
    """One float dtype: ``name`` (the case dtype), ``short`` (in case ids: ``f32``), ``eps`` (the gap
    between 1 and the next number, 2**-mantissa bits), ``itemsize`` (bytes), ``storage`` (the NumPy
    dtype name it is stored in)."""

    def __init__(self, name: str, short: str, mantissa_bits: int, itemsize: int, storage: str):
        self.name = name
        self.short = short
        self.eps = 2.0 ** -mantissa_bits
        self.itemsize = itemsize
        self.storage = storage

    def __repr__(self):
        return "DtypeInfo(%r)" % self.name


# In order of precision, the order every table and loop uses.
DTYPES = OrderedDict((info.name, info) for info in (
    DtypeInfo("float16", "f16", 10, 2, "float16"),
    DtypeInfo("bfloat16", "bf16", 7, 2, "float32"),
    DtypeInfo("float32", "f32", 23, 4, "float32"),
    DtypeInfo("float64", "f64", 52, 8, "float64"),
))
NAMES = tuple(DTYPES)
SHORT = {name: info.short for name, info in DTYPES.items()}
EPS = {name: info.eps for name, info in DTYPES.items()}
ITEMSIZE = {name: info.itemsize for name, info in DTYPES.items()}


def info(dtype: str) -> DtypeInfo:
    """The :class:`DtypeInfo` of a case dtype name (raises ValueError naming the expected ones)."""
    try:
        return DTYPES[dtype]
    except (KeyError, TypeError):
        raise ValueError("dtype: expected one of %s, got %r" % (", ".join(NAMES), dtype)) from None


def storage_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype a float input of the given case dtype is stored in (bfloat16 -> float32)."""
    return np.dtype(info(dtype).storage)


def numpy_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype to compute in; bfloat16 comes from ml_dtypes (imported only when asked)."""
    if dtype == "bfloat16":
        import ml_dtypes  # noqa: PLC0415 - optional dependency, only bfloat16 needs it

        return np.dtype(ml_dtypes.bfloat16)
    return storage_dtype(dtype)


def round_to(values, dtype: str) -> np.ndarray:
    """Float values rounded (to nearest, ties to even) to ``dtype``, returned in its storage dtype.

    Every stored float input of the suite, the corpus's and the benchmark's, is rounded here, so a
    stored bfloat16 value is always exactly a bfloat16 number.
    """
    return np.asarray(values).astype(numpy_dtype(dtype)).astype(storage_dtype(dtype))
