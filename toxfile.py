"""tox's inline plugin (tox >= 4 loads ``toxfile.py`` beside tox.ini): find Python 3.8 for paddle-legacy.

With pyenv, ``python3.8`` on PATH is a shim that answers "command not found" unless 3.8 is the
active version, so tox cannot find the interpreter that ``basepython = python3.8`` asks for.  This
puts a directory holding only a ``python3.8`` link to a real Python 3.8 (found as ``conformance
setup`` finds it) first on PATH, so plain ``tox`` (or ``python3 -m tox``) runs every environment.
Without any Python 3.8, tox skips paddle-legacy as before (skip_missing_interpreters).
"""
import os
import tempfile

from tox.plugin import impl


@impl
def tox_add_core_config(core_conf, state):  # noqa: ARG001 - the hook's signature
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "_legacy_env", Path(__file__).resolve().parent / "conformance" / "legacy_env.py")
    legacy_env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(legacy_env)  # no project install needed: tox runs before it
    try:
        python = legacy_env.find_python38()
    except legacy_env.SetupError:
        return
    link_dir = Path(tempfile.mkdtemp(prefix="conformance-py38-"))
    (link_dir / "python3.8").symlink_to(python)
    os.environ["PATH"] = str(link_dir) + os.pathsep + os.environ.get("PATH", "")
