"""Implementations under test: the NumPy/CuPy oracle, its fast NumPy/CuPy contender, one adapter per framework.

Everything in this package is the worker side: it runs inside a worker process, on Python 3.8 with
numpy 1.23 as well as on 3.11/3.12 with numpy 2.x, and imports a framework only inside an adapter's
``load``.  The core (``conformance``) reads adapter declarations from here but never calls ``load``.

Impls come from three places, in this order (the report's column order):

* the built-in adapters below;
* installed plugins: any distribution that declares an entry point in the group
  ``conformance.impls``, ``name = "package.module:AdapterClass"``;
* a spec given on the command line, ``--impl package.module:AdapterClass``.  :func:`resolve` imports
  it, registers it under the adapter's ``name`` and records it in ``$CONFORMANCE_IMPLS`` so that the
  worker processes, which inherit the environment, find it under that name too.
"""
from __future__ import annotations

import importlib
import os

# impl name -> module defining ``ADAPTER`` (or ``ADAPTERS``); the order is the report's column order.
ADAPTER_MODULES = {
    "numpy": "impls.reference_adapter",
    "cupy": "impls.reference_adapter",
    "numpy-fast": "impls.numpy_fast_adapter",
    "cupy-fast": "impls.numpy_fast_adapter",
    "torch": "impls.torch_adapter",
    "torch-compile": "impls.torch_adapter",
    "tensorflow": "impls.tensorflow_adapter",
    "paddle": "impls.paddle_adapter",
    "paddle-legacy": "impls.paddle_legacy_adapter",
    "tensorflow-xla": "impls.tensorflow_adapter",
    "tensorflow-v1": "impls.tensorflow_adapter",
    "jax": "impls.jax_adapter",
    "keras-tensorflow": "impls.keras_adapter",
    "keras-tensorflow-xla": "impls.keras_adapter",
    "keras-jax": "impls.keras_adapter",
    "keras-torch": "impls.keras_adapter",
    "keras-torch-compile": "impls.keras_adapter",
}
# The oracle's impls (impls/reference/): correct, not fast; the benchmark runs them only when asked.
ORACLE_IMPLS = ("numpy", "cupy")
# The speed contender's impl per device (impls/numpy_fast/), held against the fastest framework.
CONTENDER_IMPLS = {"cpu": "numpy-fast", "gpu": "cupy-fast"}

ENTRY_POINT_GROUP = "conformance.impls"
SPECS_VARIABLE = "CONFORMANCE_IMPLS"  # "name=package.module:Class;..." registered by resolve()

# Misbehaving adapters (``test-segfault``, ``test-hang``...) for the runner's own tests; reachable
# only with CONFORMANCE_TEST_ADAPTERS=1 in the environment, never listed in reports or the CLI.
TEST_ADAPTERS_MODULE = "impls.testing_adapters"


def _entry_points() -> dict:
    """``name -> "module:Class"`` of the installed ``conformance.impls`` entry points."""
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8 has no importlib.metadata: no plugins
        return {}
    found = metadata.entry_points()
    group = found.select(group=ENTRY_POINT_GROUP) if hasattr(found, "select") else found.get(ENTRY_POINT_GROUP, ())
    return {ep.name: ep.value for ep in group}


def _registered_specs() -> dict:
    specs = {}
    for item in os.environ.get(SPECS_VARIABLE, "").split(";"):
        name, sep, spec = item.partition("=")
        if sep and name and spec:
            specs[name] = spec
    return specs


def command_line_name(name: str) -> str:
    """What to write after ``--impl`` for an impl: its ``package.module:Class`` spec for one that
    :func:`resolve` registered from a spec (its name alone is not known to a new process), else the name."""
    return _registered_specs().get(name, name)


def plugin_specs() -> dict:
    """Out-of-tree impls: installed entry points, then specs registered by :func:`resolve`."""
    specs = _entry_points()
    specs.update(_registered_specs())
    for name in ADAPTER_MODULES:  # a plugin never shadows a built-in impl
        specs.pop(name, None)
    return specs


def impl_names() -> list:
    """Every impl this process knows: the built-ins, then plugins, in report order."""
    return list(ADAPTER_MODULES) + list(plugin_specs())


def compiled_modes() -> dict:
    """``compiled impl -> its eager impl`` for every known impl that declares ``compiled_from``."""
    modes = {}
    for name in impl_names():
        try:
            eager = get_adapter(name).compiled_from
        except ValueError:  # a plugin that cannot be imported here: not a compiled mode we can tell
            continue
        if eager:
            modes[name] = eager
    return modes


def _load_spec(spec: str):
    """The adapter class named by ``package.module:Class``."""
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError("impl: expected package.module:AdapterClass, got %r" % spec)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError("impl %r: cannot import %s (%s); is it installed or on PYTHONPATH?"
                         % (spec, module_name, error)) from None
    adapter = getattr(module, class_name, None)
    if adapter is None:
        raise ValueError("impl %r: module %s has no %s" % (spec, module_name, class_name))
    return adapter


def resolve(text: str) -> str:
    """An impl name for a command-line ``--impl`` item: a known name as is, or a
    ``package.module:Class`` spec imported, checked and registered under the adapter's ``name``."""
    if ":" not in text:
        if text not in impl_names() and not _is_test_adapter(text):
            raise ValueError("impl: expected one of %s or package.module:AdapterClass, got %r"
                             % (", ".join(impl_names()), text))
        return text
    from impls.base import Adapter

    adapter = _load_spec(text)
    if not (isinstance(adapter, type) and issubclass(adapter, Adapter)):
        raise ValueError("impl %r: %r is not a subclass of impls.base.Adapter" % (text, adapter))
    name = adapter.name or text.partition(":")[2]
    if name in ADAPTER_MODULES:
        raise ValueError("impl %r: its name %r is a built-in impl's; give the adapter another name" % (text, name))
    registered = _registered_specs()
    registered[name] = text
    os.environ[SPECS_VARIABLE] = ";".join("%s=%s" % item for item in registered.items())
    return name


def _is_test_adapter(name: str) -> bool:
    return name.startswith("test-") and os.environ.get("CONFORMANCE_TEST_ADAPTERS") == "1"


def get_adapter(name: str):
    """A fresh adapter instance for an impl name or spec (no framework is imported)."""
    if ":" in name:
        name = resolve(name)
    module_name = ADAPTER_MODULES.get(name)
    if module_name is None and _is_test_adapter(name):
        module_name = TEST_ADAPTERS_MODULE
    if module_name is None:
        spec = plugin_specs().get(name)
        if spec is None:
            raise ValueError("impl: expected one of %s or package.module:AdapterClass, got %r"
                             % (", ".join(impl_names()), name))
        adapter = _load_spec(spec)()
        adapter.name = name  # the name it is registered under is the name in every row
        return adapter
    module = importlib.import_module(module_name)
    adapters = getattr(module, "ADAPTERS", None) or {module.ADAPTER.name: module.ADAPTER}
    return adapters[name]()
