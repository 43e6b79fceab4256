"""Thread counts of a worker: one number for every library that lets one set it, and what each uses.

The benchmark (``conformance/bench/``) starts each worker with :func:`environment` added to its
environment: ``CONFORMANCE_THREADS=N`` for :func:`configure`, and the variables that OpenMP, the
BLAS libraries and the NumPy contender's row-parallel pool read themselves when they start (NumPy's
BLAS starts when the worker imports NumPy, before any call could change it).  Right after the
adapter's ``load`` the worker calls :func:`configure`, which sets each framework it finds loaded
through the framework's own call and reports the counts in its ready message:

* PyTorch: ``torch.set_num_threads`` / ``set_num_interop_threads`` (read back with the getters);
* TensorFlow: ``tf.config.threading.set_intra_op_parallelism_threads`` / ``inter_op`` (possible
  only before its runtime starts, i.e. before the first op; read back with the getters, where
  ``0`` means TensorFlow's own choice);
* Paddle: ``core.set_num_threads`` (its math libraries' threads; Paddle has no getter, so the
  count stated is the one set);
* NumPy's BLAS: ``threadpoolctl`` when it is installed (set and read back), else the environment
  variable it was started with;
* the NumPy contender's row-parallel pool: its module's ``_THREADS`` (``CONFORMANCE_REFERENCE_THREADS``),
  and its compiled kernels' OpenMP threads (numba's count, set from the same number).

A framework is recognised by its module being imported (a worker loads exactly one framework).
Worker side: must run on Python 3.8.
"""
from __future__ import annotations

import os
import sys

THREADS_VARIABLE = "CONFORMANCE_THREADS"
# Read by the libraries themselves at start-up: OpenMP (PyTorch, Paddle), OpenBLAS / MKL (NumPy),
# the NumPy contender's pool (read when its module is imported, in the adapter's load).
LIBRARY_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "CONFORMANCE_REFERENCE_THREADS")
# The module that holds the NumPy contender's pool size (the oracle has no pool: it is plain NumPy).
_POOL_MODULE = "impls.numpy_fast.core"

_KEPT = []  # threadpoolctl's limiter: kept alive so that its limits stay in force


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity), the default thread count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def environment(threads: int) -> dict:
    """Environment variables that give a worker ``threads`` threads in every library."""
    return {name: str(int(threads)) for name in (THREADS_VARIABLE,) + LIBRARY_VARIABLES}


def requested():
    """The thread count asked of this worker (``$CONFORMANCE_THREADS``), or None."""
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    return int(text) if text else None


def _torch(torch, threads, settings):
    if threads:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # allowed once, before any inter-op work: stated below as it is
            pass
    settings.append(("torch intra-op", torch.get_num_threads()))
    settings.append(("torch inter-op", torch.get_num_interop_threads()))


def _tensorflow(tf, threads, settings):
    threading = tf.config.threading
    if threads:
        try:
            threading.set_intra_op_parallelism_threads(threads)
            threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # the runtime already started: stated below as it is
            pass
    for label, getter in (("intra-op", threading.get_intra_op_parallelism_threads),
                          ("inter-op", threading.get_inter_op_parallelism_threads)):
        count = getter()
        settings.append(("tensorflow " + label, count if count > 0 else None))  # 0: TensorFlow's choice


def _paddle(paddle, threads, settings):
    core = getattr(getattr(paddle, "base", None), "core", None) or getattr(getattr(paddle, "fluid", None), "core", None)
    if threads and core is not None and hasattr(core, "set_num_threads"):
        core.set_num_threads(threads)
        settings.append(("paddle math library", threads))
    else:
        settings.append(("paddle math library", None))


def _numpy_blas(threads, settings):
    try:
        import threadpoolctl  # noqa: PLC0415 - optional
    except ImportError:
        value = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS")
        settings.append(("numpy BLAS (environment)", int(value) if value else None))
        return
    if threads:
        _KEPT.append(threadpoolctl.threadpool_limits(limits=threads, user_api="blas"))
    counts = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
    settings.append(("numpy BLAS (threadpoolctl)", max(counts) if counts else None))


def configure(threads=None) -> dict:
    """Set every loaded library to ``threads`` threads (when given) and state what each uses.

    Returns ``{"threads": N or None, "settings": "torch intra-op 2, ..."}``: ``threads`` is the
    count of the framework that computes (the first found of PyTorch, TensorFlow, Paddle, the NumPy
    contender's pool, NumPy's BLAS); None where it cannot be known.  Never raises: a library that
    refuses is stated as unknown.
    """
    settings = []
    steps = [(name, function) for name, function in (("torch", _torch), ("tensorflow", _tensorflow),
                                                     ("paddle", _paddle)) if name in sys.modules]
    for name, function in steps:
        try:
            function(sys.modules[name], threads, settings)
        except Exception as error:  # noqa: BLE001 - a count we cannot set is stated, never fatal
            settings.append(("%s (%s: %s)" % (name, type(error).__name__, error), None))
    pool = sys.modules.get(_POOL_MODULE)
    if pool is not None:
        settings.append(("numpy contender pool", int(pool._THREADS)))
    kernels = sys.modules.get("impls.numpy_fast.kernels")
    if kernels is not None and kernels.AVAILABLE:
        settings.append(("numpy contender kernels (numba)", kernels.threads()))
    try:
        _numpy_blas(threads, settings)
    except Exception as error:  # noqa: BLE001
        settings.append(("numpy BLAS (%s: %s)" % (type(error).__name__, error), None))
    primary = settings[0][1] if settings else None
    text = ", ".join("%s %s" % (label, "unknown" if count is None else count) for label, count in settings)
    return {"threads": primary, "settings": text}
