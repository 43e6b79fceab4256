"""NumPy's CPU-dependent float64 loops, and the pinned dispatch that every x86-64 machine reproduces.

NumPy chooses its float64 exp/log/log1p/expm1 loops by the CPU: with AVX-512 its own SIMD
implementations (NumPy 1.22+ and 2.x), without them libm's (glibc), and their last bits differ.
Measured: 196 of 262 case files regenerated with other bytes on an AMD EPYC (AVX2) than on the Intel
Xeon (AVX-512) that wrote them; and NumPy 1.23's AVX-512 loops put the oracle 1.2-1.9 ulp from the
exact values where libm's keep it within 1 (tests/test_reference_exact.py, on Python 3.8).

So the corpus is generated, and the test suite runs, with NumPy's AVX-512 dispatch targets disabled
(``NPY_DISABLE_CPU_FEATURES``).  Their names depend on the NumPy version (2.x: ``X86_V4 AVX512_ICL
AVX512_SPR``; 1.x: ``AVX512F AVX512CD AVX512_SKX ...``), and NumPy warns about and ignores a name
outside its own dispatch list or one this CPU lacks (NumPy 1.23 given 2.x's names keeps its AVX-512
loops), so they are read from the installed NumPy in a child process.  This module does not
import NumPy, so the pytest plugin can pin the dispatch before anything else imports it.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

VARIABLE = "NPY_DISABLE_CPU_FEATURES"
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def active_avx512_targets() -> list:
    """The AVX-512 targets this process's NumPy dispatches to (imports NumPy).  NumPy 2.x calls
    AVX-512 "X86_V4", its x86-64 microarchitecture level."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as umath
    return [name for name in umath.__cpu_dispatch__
            if name.startswith(("AVX512", "X86_V4")) and umath.__cpu_features__.get(name)]


@functools.lru_cache(maxsize=None)
def avx512_targets(python: str = sys.executable) -> tuple:
    """The AVX-512 targets the NumPy of ``python`` would use on this CPU (empty without AVX-512 or
    without NumPy), read in a child interpreter without the variable, so that this process need not
    import NumPy and another interpreter's NumPy (a Python 3.8 worker's 1.x) gets its own names."""
    env = {key: value for key, value in os.environ.items() if key != VARIABLE}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, env.get("PYTHONPATH")]))
    try:
        out = subprocess.run([python, "-c", "import json; from impls.numpy_dispatch import "
                              "active_avx512_targets as t; print(json.dumps(t()))"], env=env, check=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True,
                             timeout=120).stdout
        return tuple(json.loads(out))
    except (OSError, subprocess.SubprocessError, ValueError):  # no such interpreter, no NumPy: nothing to pin
        return ()


def pinned_env(python: str = sys.executable) -> dict:
    """The environment variables that pin a new process of ``python`` to NumPy's non-AVX-512 loops."""
    targets = avx512_targets(python)
    return {VARIABLE: " ".join(targets)} if targets else {}


def for_interpreter(env: dict, python: str) -> dict:
    """``env`` for a process of another interpreter: a pin's names hold for one NumPy version only
    (NumPy 1.x ignores 2.x's, with a warning), so that interpreter gets the pin made for its own NumPy."""
    if VARIABLE not in env or os.path.abspath(python) == os.path.abspath(sys.executable):
        return env
    env = {key: value for key, value in env.items() if key != VARIABLE}
    return dict(env, **pinned_env(python))


def pin_this_process() -> None:
    """Pin the dispatch of this process (and the processes it starts) unless NumPy is imported
    already or the variable is set (the user's choice stands); :func:`is_pinned` tells what NumPy
    actually does."""
    if "numpy" not in sys.modules and VARIABLE not in os.environ:
        os.environ.update(pinned_env())


def is_pinned() -> bool:
    """Whether this process's NumPy runs without its AVX-512 loops (imports NumPy)."""
    return not active_avx512_targets()
