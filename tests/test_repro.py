"""Reproducers cannot drift: every one is generated (``conformance repro``, conformance/reproducers.py).

* every committed reproducer under ``repro/`` that names its generating command is regenerated here
  and compared byte for byte, and ``repro/found/`` holds exactly one per divergence of the found
  corpus, with no copy of the suite's modules beside them;
* the standalone script embeds the suite's adapter and tolerance rule by generation: here for a
  test-only adapter that needs no framework, run in a clean subprocess after moving it elsewhere,
  exit 0 while the divergence holds and an AssertionError once it does not; for every framework find,
  rendered and checked statically (its imports, its names, its case data) without the framework;
* the command line: good and bad input.
"""
import ast
import builtins
import inspect
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conformance import compare, corpus, deviations, found, reproducers
from impls.caseio import Case
from impls.support import convention_of

REPO = reproducers.REPO_ROOT
FOUND = REPO / "cases" / "found"
COMMITTED = reproducers.committed()
SIGNATURES = [(entry["id"], key) for entry in corpus.load_manifest(FOUND)["cases"] for key in entry["signatures"]]


def conformance(*args, env=None):
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=300)


def _clean_env():
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONFORMANCE_TEST_ADAPTERS")}


@pytest.mark.parametrize("path", COMMITTED, ids=[p.relative_to(REPO).as_posix() for p in COMMITTED])
def test_committed_reproducers_are_what_the_generator_writes(path):
    assert path.read_text(encoding="utf-8") == reproducers.regenerate(path), (
        "%s differs from what its command writes today; regenerate it: %s"
        % (path.relative_to(REPO), reproducers.generated_command(path)))


def test_repro_found_holds_one_generated_reproducer_per_found_divergence():
    """No copies of the suite's modules, nothing hand-written, nothing stale: one generated file per
    signature of the found corpus (what ``conformance search`` wrote for it)."""
    files = sorted(p.name for p in (REPO / "repro" / "found").iterdir() if p.name != "__pycache__")
    expected = sorted(reproducers.reproducer_name(key.split("|")[0], case_id) for case_id, key in SIGNATURES)
    assert files == expected
    assert all(REPO / "repro" / "found" / name in COMMITTED for name in files)
    # A known deviation's reproducer is a short hand-written script of the one framework
    # (tests/test_deviations.py runs them), never a generated file carrying the suite's code.
    deviation_scripts = {REPO / d.reproducer.split()[1] for d in deviations.load().entries}
    assert not deviation_scripts & set(COMMITTED), sorted(p.name for p in deviation_scripts & set(COMMITTED))


def _unbound_names(source: str) -> set:
    """Names read somewhere in the script that nothing in it binds (nor builtins): what a renderer that
    missed a definition would leave."""
    tree = ast.parse(source)
    bound = set(dir(builtins)) | {"__file__", "__name__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound


@pytest.mark.parametrize("case_id,key", SIGNATURES, ids=["%s-%s" % (k.split("|")[0], c) for c, k in SIGNATURES])
def test_the_standalone_reproducer_of_every_find_renders(case_id, key, tmp_path, monkeypatch):
    """Checked without the framework: the script compiles, binds every name it reads, imports NumPy,
    the standard library and the impl's framework only, and its module body (frameworks are imported
    in the adapter's load, not at the top) runs and gives the case's inputs exactly."""
    from test_deviations import REPRODUCER_MAY_IMPORT, _imported, _stdlib

    impl = key.split("|")[0]
    script = tmp_path / "elsewhere" / "repro.py"
    reproducers.write(script, case_id, impl, standalone_script=True)
    text = script.read_text(encoding="utf-8")
    assert not _unbound_names(text)
    modules = _imported(script)
    assert modules <= REPRODUCER_MAY_IMPORT[impl] | {"numpy"} | _stdlib(), sorted(modules)
    assert inspect.getsource(compare.allowed_error) in text and inspect.getsource(compare.judge_elements) in text
    namespace = {"__name__": "not_main", "__file__": str(script)}
    exec(compile(text, str(script), "exec"), namespace)  # noqa: S102 - the generated script's definitions
    monkeypatch.setattr(sys, "argv", [str(script)])  # a case read from its file: the default path
    stored = Case.read(FOUND / next(e["file"] for e in corpus.load_manifest(FOUND)["cases"] if e["id"] == case_id))
    inputs, golden = namespace["load_case"]()
    assert sorted(inputs) == sorted(stored.inputs)
    for name, value in stored.inputs.items():
        assert inputs[name].dtype == value.dtype and inputs[name].shape == value.shape
        assert np.array_equal(inputs[name], value, equal_nan=value.dtype.kind == "f"), name
    status, output = key.split("|")[2:4]
    if status == "fail":
        assert np.array_equal(golden, stored.golden_for(convention_of(impl, stored.op))[output], equal_nan=True)


def _found_corpus(tmp_path, case_id, signature):
    """A found corpus holding one stored case of the main corpus, as if the search had found it."""
    entry = next(e for e in corpus.load_manifest()["cases"] if e["id"] == case_id)
    target = tmp_path / "found" / entry["file"]
    target.parent.mkdir(parents=True)
    shutil.copyfile(REPO / "cases" / entry["file"], target)
    found.merge_manifest(tmp_path / "found", [dict(entry, signatures=[signature])])
    return tmp_path / "found"


def test_standalone_script_of_a_test_adapter_runs_alone_and_fails_once_fixed(tmp_path):
    case_id = "softmax_with_cross_entropy-base-soft-f32"
    found_dir = _found_corpus(tmp_path, case_id, "test-standalone-soft|softmax_with_cross_entropy|fail|loss|numeric|"
                                                 "soft_label")
    test_only = {"CONFORMANCE_TEST_ADAPTERS": "1"}
    made = conformance("repro", case_id, "--impl", "test-standalone-soft", "--standalone", "--found-dir",
                       str(found_dir), "--out", str(tmp_path / "made" / "repro.py"), env=test_only)
    assert made.returncode == 0, made.stderr
    moved = tmp_path / "moved" / "repro.py"  # the case is written into it: it runs wherever it goes
    moved.parent.mkdir()
    shutil.move(str(tmp_path / "made" / "repro.py"), str(moved))
    shutil.rmtree(found_dir)
    text = moved.read_text(encoding="utf-8")
    assert inspect.getsource(compare.allowed_error) in text and "def check(" in text
    done = subprocess.run([sys.executable, str(moved)], cwd=tmp_path, capture_output=True, text=True,
                          env=_clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loss at (0, 0)" in done.stdout

    # Its gradients are right: the script asserting a divergence there says it is gone.
    _found_corpus(tmp_path, case_id, "test-standalone-soft|softmax_with_cross_entropy|fail|loss|numeric|soft_label")
    text = conformance("repro", case_id, "--impl", "test-standalone-soft", "--standalone", "--found-dir",
                       str(found_dir), "--expect", "fail:grad/logits", env=test_only)
    assert text.returncode == 0, text.stderr
    (tmp_path / "fixed.py").write_text(text.stdout, encoding="utf-8")
    done = subprocess.run([sys.executable, str(tmp_path / "fixed.py")], cwd=tmp_path, capture_output=True, text=True,
                          env=_clean_env(), timeout=120)
    assert done.returncode == 1 and "no longer diverges: grad/logits is within the tolerance" in done.stderr


def test_a_large_case_is_read_from_its_file(tmp_path, monkeypatch):
    """Too many values to write into the script: it reads the .npz given as its argument (by default
    the case's path relative to where the script was written)."""
    case_id = "softmax_with_cross_entropy-K1000-soft-f64"
    monkeypatch.setenv("CONFORMANCE_TEST_ADAPTERS", "1")
    script = reproducers.write(tmp_path / "repro.py", case_id, "test-standalone-soft", standalone_script=True,
                               expect="fail:loss")
    assert "INPUTS = " not in script.read_text() and "CASE_FILE = " in script.read_text()
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          env=_clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    moved = tmp_path / "moved.py"
    shutil.move(str(script), str(moved))  # elsewhere: the case file is its argument
    case_file = REPO / "cases" / "softmax_with_cross_entropy" / (case_id + ".npz")
    done = subprocess.run([sys.executable, str(moved), str(case_file)], cwd=tmp_path, capture_output=True, text=True,
                          env=_clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr


def test_adapter_based_reproducer_runs_and_regenerates(tmp_path, monkeypatch):
    case_id = "softmax_with_cross_entropy-base-soft-f64"
    found_dir = _found_corpus(tmp_path, case_id, "test-wrong-soft|softmax_with_cross_entropy|fail|loss|numeric|"
                                                 "soft_label")
    made = conformance("repro", case_id, "--impl", "test-wrong-soft", "--found-dir", str(found_dir),
                       "--out", str(tmp_path / "repro.py"), env={"CONFORMANCE_TEST_ADAPTERS": "1"})
    assert made.returncode == 0, made.stderr
    done = subprocess.run([sys.executable, str(tmp_path / "repro.py")], cwd=tmp_path, capture_output=True, text=True,
                          env=_clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("CONFORMANCE_TEST_ADAPTERS", "1")
    assert reproducers.regenerate(tmp_path / "repro.py") == (tmp_path / "repro.py").read_text()


def test_repro_command_line_errors_are_one_line():
    bad = {"unknown case nonesuch": ("nonesuch", "--impl", "torch"),
           "unknown impl nonesuch": ("softmax_with_cross_entropy-base-soft-f32", "--impl", "nonesuch"),
           "no divergence of numpy is recorded": ("sampled_softmax_loss-scale0.5-hbdfdcec198-f16", "--impl", "numpy"),
           "--expect: expected": ("softmax_with_cross_entropy-base-soft-f32", "--impl", "numpy", "--expect", "fail"),
           "has no output softmax": ("softmax_with_cross_entropy-base-soft-f32", "--impl", "numpy", "--expect",
                                     "fail:softmax"),
           "numpy: no standalone reproducer": ("softmax_with_cross_entropy-base-soft-f32", "--impl", "numpy",
                                               "--expect", "fail:loss", "--standalone")}
    for words, args in bad.items():
        result = conformance("repro", *args)
        assert result.returncode == 2 and result.stdout == "", (words, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and words in result.stderr, (words, result.stderr)
        assert result.stderr.startswith("conformance repro: ")


def test_repro_writes_to_stdout_by_default():
    result = conformance("repro", "sampled_softmax_loss-scale0.5-hbdfdcec198-f16", "--impl", "tensorflow")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('"""tensorflow: sampled_softmax_loss, fail loss\n')
    command = "conformance repro sampled_softmax_loss-scale0.5-hbdfdcec198-f16 --impl tensorflow"
    assert "Generated by\n`%s`;" % command in result.stdout
    assert "reproduce(ROOT / 'cases/found/sampled_softmax_loss/" in result.stdout
