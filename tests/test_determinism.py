"""The reference and the stored corpus are deterministic: two runs give bit-identical CPU results.

(``tests/test_corpus.py`` checks that regenerating the corpus in this process reproduces the stored
files byte for byte; here it is regenerated in a fresh interpreter with another hash seed and
single-threaded BLAS, so the corpus cannot depend on either.)
"""
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance import corpus, runner
from impls import get_adapter
from impls.caseio import Case, read_npz
from impls.support import why_unsupported

REPO = Path(__file__).resolve().parent.parent
CASES = corpus.DEFAULT_CASES_DIR
VARYING_COLUMNS = {"seconds", "first_seconds"}  # wall times are the only columns allowed to differ between two runs


@pytest.fixture(scope="module")
def two_reference_runs(tmp_path_factory):
    """The numpy reference over the whole corpus, twice (each case run twice per run), outputs kept."""
    runs = []
    for seed in ("1", "2"):
        out = tmp_path_factory.mktemp("reference-run-" + seed)
        previous = os.environ.get("PYTHONHASHSEED")
        os.environ["PYTHONHASHSEED"] = seed  # the worker inherits it: set ordering must not matter
        try:
            path, _ = runner.run_impl("numpy", "cpu", CASES, out, repeat=2, keep_outputs=True)
        finally:
            if previous is None:
                os.environ.pop("PYTHONHASHSEED")
            else:
                os.environ["PYTHONHASHSEED"] = previous
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        runs.append((rows, out / "outputs" / "numpy-cpu"))
    return runs


def computed_ids():
    """Cases with outputs: the bad-input family has none (the reference raises on it), nor has a case the
    oracle's impl answers no golden for (it follows torch's convention; Keras's sample weights have none)."""
    adapter = get_adapter("numpy")
    ids = []
    for entry in corpus.load_manifest(CASES)["cases"]:
        if entry.get("invalid"):
            continue
        if why_unsupported(adapter, "cpu", Case.read(CASES / entry["file"]).meta) is None:
            ids.append(entry["id"])
    return ids


def test_every_case_is_repeatable_within_a_run(two_reference_runs):
    ids = [e["id"] for e in corpus.load_manifest(CASES)["cases"]]
    computed = set(computed_ids())
    for rows, _ in two_reference_runs:
        assert [r["case"] for r in rows] == ids
        not_repeatable = [(r["case"], r["status"], r["message"]) for r in rows
                          if r["case"] in computed and r["deterministic"] != "True"]
        assert not_repeatable == []


def test_two_runs_give_bit_identical_outputs(two_reference_runs):
    (_, first), (_, second) = two_reference_runs
    expected = sorted(case + ".npz" for case in computed_ids())
    assert sorted(p.name for p in first.iterdir()) == expected
    assert sorted(p.name for p in second.iterdir()) == expected
    for path in sorted(first.iterdir()):
        a, _ = read_npz(path)
        b, _ = read_npz(second / path.name)
        assert sorted(a) == sorted(b), path.name
        for name in a:
            assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, (path.name, name)
            assert a[name].tobytes() == b[name].tobytes(), (path.name, name)  # bits, NaN payloads included
        assert path.read_bytes() == (second / path.name).read_bytes(), path.name


def test_two_runs_give_identical_result_rows(two_reference_runs):
    (first, _), (second, _) = two_reference_runs
    assert len(first) == len(second)
    for a, b in zip(first, second):
        differing = {k for k in a if a[k] != b[k]} - VARYING_COLUMNS
        assert not differing, (a["case"], {k: (a[k], b[k]) for k in differing})


def test_outputs_are_not_all_trivial(two_reference_runs):
    """Guard against a vacuous comparison: every kept output file holds arrays with values."""
    _, outputs = two_reference_runs[0]
    sizes = [sum(np.asarray(v).size for v in read_npz(p)[0].values()) for p in outputs.iterdir()]
    assert min(sizes) > 0


def test_corpus_regenerates_identically_under_another_hash_seed_and_thread_count(tmp_path):
    corpus.generate_pinned(tmp_path, dict(PYTHONHASHSEED="12345", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                                          MKL_NUM_THREADS="1"))
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    # cases/found/ is the search's own corpus (its manifest beside its cases), not the generator's
    stored = sorted(p.relative_to(CASES) for p in CASES.rglob("*") if p.is_file() and "found" not in p.relative_to(CASES).parts)
    assert generated == stored
    for relative in generated:
        assert (tmp_path / relative).read_bytes() == (CASES / relative).read_bytes(), relative
