"""Implementations under test: the NumPy/CuPy oracle, its fast NumPy/CuPy contender, one adapter per framework.

Everything in this package is the worker side: it runs inside a worker process, on Python 3.8 with
numpy 1.23 as well as on 3.11/3.12 with numpy 2.x, and imports a framework only inside an adapter's
``load``.  The core (``conformance``) reads adapter declarations from here but never calls ``load``.
"""
from __future__ import annotations

import importlib
import os

# impl name -> module defining ``ADAPTER``; the order is the report's column order.
ADAPTER_MODULES = {
    "numpy": "impls.reference_adapter",
    "cupy": "impls.reference_adapter",
    "numpy-fast": "impls.reference_adapter",
    "cupy-fast": "impls.reference_adapter",
    "torch": "impls.torch_adapter",
    "tensorflow": "impls.tensorflow_adapter",
    "paddle": "impls.paddle_adapter",
    "paddle-legacy": "impls.paddle_legacy_adapter",
}
# The oracle's impls (impls/reference.py): correct, not fast; the benchmark runs them only when asked.
ORACLE_IMPLS = ("numpy", "cupy")
# The speed contender's impl per device (impls/numpy_fast.py), held against the fastest framework.
CONTENDER_IMPLS = {"cpu": "numpy-fast", "gpu": "cupy-fast"}


# Misbehaving adapters (``test-segfault``, ``test-hang``...) for the runner's own tests; reachable
# only with CONFORMANCE_TEST_ADAPTERS=1 in the environment, never listed in reports or the CLI.
TEST_ADAPTERS_MODULE = "impls.testing_adapters"


def get_adapter(name: str):
    """A fresh adapter instance for an impl name (no framework is imported)."""
    module_name = ADAPTER_MODULES.get(name)
    if module_name is None and name.startswith("test-") and os.environ.get("CONFORMANCE_TEST_ADAPTERS") == "1":
        module_name = TEST_ADAPTERS_MODULE
    if module_name is None:
        raise ValueError("impl: expected one of %s, got %r" % (", ".join(ADAPTER_MODULES), name))
    module = importlib.import_module(module_name)
    adapters = getattr(module, "ADAPTERS", None) or {module.ADAPTER.name: module.ADAPTER}
    return adapters[name]()
