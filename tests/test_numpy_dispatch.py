"""NumPy's dispatch pin (impls/numpy_dispatch.py): it turns NumPy's AVX-512 loops off, and
every worker's interpreter gets names its own NumPy knows (NumPy 1.x ignores 2.x's, with a warning)."""
import json
import os
import shlex
import subprocess
import sys

import pytest

from conformance import legacy_env, runner
from impls import numpy_dispatch

VARIABLE = numpy_dispatch.VARIABLE


def _active_avx512_targets_in_a_child(extra_env):
    env = {key: value for key, value in os.environ.items() if key != VARIABLE}
    out = subprocess.run([sys.executable, "-c", "import json; from impls import numpy_dispatch as d; "
                          "print(json.dumps(d.active_avx512_targets()))"], env=dict(env, **extra_env),
                         check=True, stdout=subprocess.PIPE, universal_newlines=True, timeout=120).stdout
    return json.loads(out)


def test_the_pinned_dispatch_turns_every_avx512_loop_off():
    """On a CPU without AVX-512 both lists are empty and this checks only that the pin is harmless."""
    assert _active_avx512_targets_in_a_child({}) == list(numpy_dispatch.avx512_targets())
    assert _active_avx512_targets_in_a_child(numpy_dispatch.pinned_env()) == []
    assert numpy_dispatch.is_pinned()  # this process: the plugin pinned it before NumPy was imported


def test_another_interpreter_gets_the_pin_read_from_its_own_numpy(tmp_path):
    other = tmp_path / "python"  # another path: for_interpreter cannot know it runs the same NumPy
    other.write_text("#!/bin/sh\nexec %s \"$@\"\n" % shlex.quote(sys.executable))
    other.chmod(0o755)
    env = numpy_dispatch.for_interpreter({VARIABLE: "NOT_A_NUMPY_FEATURE", "KEPT": "1"}, str(other))
    assert env == dict(KEPT="1", **numpy_dispatch.pinned_env(sys.executable))
    assert numpy_dispatch.for_interpreter({VARIABLE: "AS_SET"}, sys.executable) == {VARIABLE: "AS_SET"}
    assert numpy_dispatch.for_interpreter({"KEPT": "1"}, str(other)) == {"KEPT": "1"}  # nothing pinned, none added


def test_an_interpreter_without_numpy_gets_no_pin(tmp_path):
    assert numpy_dispatch.avx512_targets(str(tmp_path / "no-such-python")) == ()


LEGACY_PYTHON = legacy_env.interpreter()


@pytest.mark.skipif(LEGACY_PYTHON is None or os.path.abspath(LEGACY_PYTHON) == os.path.abspath(sys.executable),
                    reason="no Python 3.8 environment (conformance setup) beside this interpreter")
def test_a_python38_worker_starts_under_this_interpreters_pin(monkeypatch, tmp_path):
    """Before the pin was translated, NumPy 1.23 ignored NumPy 2.x's names and kept its AVX-512 loops."""
    monkeypatch.setenv(VARIABLE, "X86_V4 AVX512_ICL AVX512_SPR")
    worker = runner.Worker("numpy", "cpu", LEGACY_PYTHON, log_dir=tmp_path)
    try:
        worker.start()
        assert worker.info["numpy"].startswith("1.") and worker.info["numpy_avx512"] == []
    finally:
        worker.stop()
