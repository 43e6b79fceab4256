"""The Python 3.8 environment of ``paddle-legacy`` (paddlepaddle 1.8.5): found, or made and cached.

paddlepaddle 1.8.5, the only Paddle with the native ``sampled_softmax_with_cross_entropy`` op, has
wheels for Python <= 3.8 only, and imports only beside ``numpy<1.24`` and ``protobuf<3.21`` (newer
protobuf fails with "Descriptors cannot be created directly").  Those pins are declared once, as the
``paddle-legacy`` extra in pyproject.toml; ``conformance setup`` installs the project with that extra
into ``.venv-legacy`` next to the project, with the first Python 3.8 it finds.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV = REPO_ROOT / ".venv-legacy"
IMPL = "paddle-legacy"
EXTRA = "paddle-legacy"
WANTED = (3, 8)


class SetupError(Exception):
    """The legacy environment cannot be made here; the message says what is missing."""


def venv_python(venv: Path = VENV) -> Path:
    return Path(venv) / "bin" / "python"


def _version(python: str):
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def find_python38() -> str:
    """A working Python 3.8 interpreter: ``python3.8`` on PATH, else one that pyenv installed.

    A pyenv shim named ``python3.8`` answers "command not found" when 3.8 is not the active
    version, so every candidate is asked its version before it is used.
    """
    candidates = [shutil.which("python3.8")]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.8*", "bin", "python3.8")), reverse=True)
    candidates += ["/usr/bin/python3.8", "/usr/local/bin/python3.8"]
    for candidate in filter(None, candidates):
        if _version(candidate) == WANTED:
            return candidate
    raise SetupError("paddle-legacy needs Python 3.8 (paddlepaddle 1.8.5 has no wheels for newer Pythons) and none "
                     "was found: install one (e.g. `pyenv install 3.8.18` or your distribution's python3.8) and run "
                     "`conformance setup`, or pass --python paddle-legacy=/path/to/python3.8 with paddlepaddle==1.8.5 "
                     "installed")


def is_ready(python) -> bool:
    """Whether ``python`` imports paddle 1.8's fluid API (what the adapter needs)."""
    try:
        result = subprocess.run([str(python), "-c", "import paddle.fluid"], capture_output=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def setup(venv: Path = VENV, python: str = None, say=print) -> Path:
    """Make (or repair) the cached legacy environment; return its interpreter.  Idempotent."""
    target = venv_python(venv)
    if target.exists() and is_ready(target):
        say("paddle-legacy: %s is ready" % target)
        return target
    python = python or find_python38()
    say("paddle-legacy: creating %s with %s (about 30 s)" % (venv, python))
    steps = [[python, "-m", "venv", str(venv)],
             [str(target), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              "-e", "%s[%s]" % (REPO_ROOT, EXTRA)]]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise SetupError("paddle-legacy: `%s` failed: %s" % (" ".join(step), " | ".join(tail)))
    if not is_ready(target):
        raise SetupError("paddle-legacy: %s was made but cannot import paddle.fluid" % target)
    say("paddle-legacy: ready (%s)" % target)
    return target


def interpreter(overrides: dict = None):
    """The interpreter to run paddle-legacy with, or ``None`` when none is set up.

    ``--python paddle-legacy=PATH``, ``$CONFORMANCE_PYTHON_PADDLE_LEGACY``, the tox environment,
    the cached ``.venv-legacy``, or this interpreter when it is itself a Python 3.8.
    """
    overrides = overrides or {}
    if overrides.get(IMPL):
        return overrides[IMPL]
    if os.environ.get("CONFORMANCE_PYTHON_PADDLE_LEGACY"):
        return os.environ["CONFORMANCE_PYTHON_PADDLE_LEGACY"]
    for candidate in (REPO_ROOT / ".tox" / IMPL / "bin" / "python", venv_python()):
        if candidate.exists():
            return str(candidate)
    if sys.version_info[:2] == WANTED:
        return sys.executable
    return None
