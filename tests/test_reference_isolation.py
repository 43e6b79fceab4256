"""The oracle stays a textbook: no compiled kernels, no contender code, in its source or its process.

Speed work belongs in the contender (``impls/numpy_fast/``, whose float32 rows run numba kernels); the
oracle that writes every golden output is plain NumPy/CuPy.  Checked on the source (what the oracle's
files import) and on a fresh process that computes golden outputs of every op the way the corpus does.
"""
import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORACLE = REPO / "impls" / "reference"
FORBIDDEN = ("numba", "llvmlite", "impls.numpy_fast", "impls.numpy_fast_adapter", "impls.numpy_floors")


def _imports(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {"%s.%s" % (node.module, alias.name) for alias in node.names}
    return names


def test_the_oracle_source_imports_no_kernels_and_no_contender():
    files = sorted(ORACLE.glob("*.py"))
    assert files, ORACLE
    found = {p.name: sorted(n for n in _imports(p) if n.split(".")[0] in ("numba", "llvmlite")
                            or any(n == f or n.startswith(f + ".") for f in FORBIDDEN)) for p in files}
    assert not any(found.values()), found


def test_computing_goldens_loads_no_kernels(tmp_path):
    """A fresh interpreter builds the first stored case of every op (oracle forward and gradient, as
    ``conformance corpus`` does) and reads back which modules it loaded."""
    script = (
        "import sys\n"
        "from conformance import corpus\n"
        "from impls.ops import OPS\n"
        "for op in OPS.values():\n"
        "    corpus.build_case(next(iter(op.cases())))\n"
        "print(' '.join(m for m in %r if m in sys.modules))\n" % (FORBIDDEN,))
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", "the oracle's process loaded: %s" % result.stdout.strip()


WORKER_SCRIPT = (
    "import sys\n"
    "import impls.worker\n"  # the worker's own module, as `python -m impls.worker` imports it
    "from conformance import corpus\n"
    "from impls import get_adapter\n"
    "from impls.caseio import Case\n"
    "adapter = get_adapter(sys.argv[1])\n"
    "adapter.load('cpu')\n"
    "seen = set()\n"
    "for entry in corpus.load_manifest(corpus.DEFAULT_CASES_DIR)['cases']:\n"
    "    if entry['op'] in seen or entry.get('invalid') or entry['op'] not in adapter.ops:\n"
    "        continue\n"
    "    seen.add(entry['op'])\n"
    "    adapter.run(Case.read(corpus.DEFAULT_CASES_DIR / entry['file']))\n"
    "print(' '.join(m for m in %r if m in sys.modules))\n" % (FORBIDDEN,))


def test_the_oracle_impls_worker_loads_no_kernels_and_the_contenders_does():
    """The ``numpy`` impl's worker (a case of every op) loads nothing of the contender; the same script
    for ``numpy-fast`` does load its package, so the check can see what it looks for."""
    loaded = {}
    for impl in ("numpy", "numpy-fast"):
        result = subprocess.run([sys.executable, "-c", WORKER_SCRIPT, impl], cwd=REPO, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        loaded[impl] = result.stdout.split()
    assert loaded["numpy"] == [], "the oracle's worker loaded: %s" % loaded["numpy"]
    assert "impls.numpy_fast" in loaded["numpy-fast"]
