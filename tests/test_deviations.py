"""Every known deviation is real: its reproducer runs and shows the deviation under the impl's interpreter."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import deviations, runner
from conformance.pytest_plugin import selected_impls
from impls import get_adapter

REPO = Path(__file__).resolve().parent.parent
FRAMEWORK_MODULE = {"torch": "torch", "tensorflow": "tensorflow", "paddle": "paddle", "paddle-legacy": "paddle.fluid",
                    "jax": "optax", "tensorflow-xla": "tensorflow", "tensorflow-v1": "tensorflow",
                    # Keras imports its backend (KERAS_BACKEND, set for the probe from the adapter's backend)
                    "keras-tensorflow": "keras", "keras-tensorflow-xla": "keras", "keras-jax": "keras",
                    "keras-torch": "keras", "keras-torch-compile": "keras"}
ENTRIES = deviations.load().entries


def test_registry_entries_are_complete_and_unique():
    keys = [d.key for d in ENTRIES]
    assert len(keys) == len(set(keys))
    for entry in ENTRIES:
        assert entry.reproducer.startswith("python repro/")
        assert (REPO / entry.reproducer.split()[1]).is_file(), entry.key


# A reproducer is a framework finding anyone can check with that framework alone: it imports the impl's
# framework (optax is JAX's loss library, the jax adapter's native op; keras is Keras 3, installed with
# TensorFlow 2.16+ and imported by the tensorflow adapter's load, which an on-demand standalone reproducer
# embeds), NumPy, the standard library and helpers of its own in repro/, nothing else (no other
# framework, nothing of this suite).
REPRODUCER_MAY_IMPORT = {"torch": {"torch"}, "tensorflow": {"tensorflow", "keras"},
                         "tensorflow-xla": {"tensorflow", "keras"}, "tensorflow-v1": {"tensorflow", "keras"},
                         "paddle": {"paddle"}, "paddle-legacy": {"paddle"}, "jax": {"jax", "optax"},
                         "keras-tensorflow": {"keras", "tensorflow"}, "keras-tensorflow-xla": {"keras", "tensorflow"},
                         "keras-jax": {"keras", "jax"}, "keras-torch": {"keras", "torch"},
                         "keras-torch-compile": {"keras", "torch"}}


def _stdlib() -> set:
    names = getattr(sys, "stdlib_module_names", None)  # Python >= 3.10
    if names:
        return set(names)
    import pkgutil
    import sysconfig

    return set(sys.builtin_module_names) | {m.name for m in pkgutil.iter_modules([sysconfig.get_paths()["stdlib"]])}


def _imported(script: Path) -> set:
    """Top-level modules a script imports, following imports of sibling helper modules in repro/."""
    found = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            helper = script.parent / (top + ".py")
            found |= _imported(helper) if helper.is_file() else {top}
    return found


@pytest.mark.parametrize("entry", ENTRIES, ids=[d.key for d in ENTRIES])
def test_reproducer_imports_its_framework_only(entry):
    script = REPO / entry.reproducer.split()[1]
    modules = _imported(script)
    allowed = REPRODUCER_MAY_IMPORT[entry.impl] | {"numpy"} | _stdlib()
    assert modules <= allowed, "%s imports %s" % (script.name, sorted(modules - allowed))
    assert modules & REPRODUCER_MAY_IMPORT[entry.impl], "%s does not import %s" % (script.name, entry.impl)


# "paddle" and "paddle-legacy" both import as `paddle`; which one an interpreter has decides which entries apply.
PADDLE_MAJOR = {"paddle": lambda v: not v.startswith("1."), "paddle-legacy": lambda v: v.startswith("1.")}


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def framework_python(impl, config):
    """The interpreter that has ``impl``'s framework, or a skip saying why there is none."""
    selected = selected_impls(config)
    if impl not in selected:
        pytest.skip("%s is not among --impl %s" % (impl, ",".join(selected)))
    python = runner.python_for(impl)
    if python is None:
        pytest.skip("%s has no interpreter set up here (conformance setup)" % impl)
    module = FRAMEWORK_MODULE[impl]
    backend = get_adapter(impl).backend
    env = dict(os.environ, KERAS_BACKEND=backend) if backend else None
    probe = subprocess.run([python, "-c", "import %s" % module], capture_output=True, text=True, env=env)
    if probe.returncode != 0:
        pytest.skip("%s is not installed for %s" % (module, python))
    if impl in PADDLE_MAJOR:
        version = subprocess.run([python, "-c", "import paddle; print(paddle.__version__)"], capture_output=True,
                                 text=True).stdout.strip()
        if not PADDLE_MAJOR[impl](version):
            pytest.skip("paddle %s under %s is not the %s build" % (version, python, impl))
    return python


@pytest.mark.parametrize("entry", ENTRIES, ids=[d.key for d in ENTRIES])
def test_reproducer_shows_the_deviation(entry, request):
    python = framework_python(entry.impl, request.config)
    script = REPO / entry.reproducer.split()[1]
    result = subprocess.run([python, script.name], cwd=script.parent, capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and entry.varies_by_cpu:
        pytest.skip("not shown on this CPU (%s): %s" % (_cpu_model(), entry.varies_by_cpu))
    assert result.returncode == 0, "the reproducer no longer shows %s:\n%s" % (entry.key, result.stderr[-2000:])
