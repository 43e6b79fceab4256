"""`conformance search` against a test-only adapter that is deliberately wrong on one feature.

``test-wrong-soft`` (impls/testing_adapters.py) is the oracle with a soft-label loss 1% too large:
the search must find that group, shrink it to a small case, store it (found corpus, manifest checked
by ``verify``, reproducer), count repeats instead of storing them again, skip it when a known
deviation covers it, and find the same groups again with the same seed.
"""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conformance import cli, corpus, deviations, search
from impls.caseio import Case

REPO = search.REPO_ROOT
SEED, CASES = 3, 40
SOFT_CORE = "test-wrong-soft|softmax_with_cross_entropy|fail|loss|numeric"


@pytest.fixture
def test_adapters(monkeypatch):
    monkeypatch.setenv("CONFORMANCE_TEST_ADAPTERS", "1")


def _search(tmp_path, run, *extra):
    argv = ["search", "--impl", "test-wrong-soft", "--op", "softmax_with_cross_entropy", "--seed", str(SEED),
            "--cases", str(CASES), "--out", str(tmp_path / run), "--found-dir", str(tmp_path / "cases" / "found"),
            "--repro-dir", str(tmp_path / "repro")] + list(extra)
    assert cli.main(argv) == 0
    state = json.loads((tmp_path / run / "search-0of1.json").read_text())
    return state


def test_search_finds_shrinks_stores_and_repeats(tmp_path, test_adapters):
    state = _search(tmp_path, "first")
    assert state["next"] == CASES and state["cases"] > 0
    assert list(state["groups"]) == [SOFT_CORE + "|soft_label"]
    group = state["groups"][SOFT_CORE + "|soft_label"]
    assert group["hits"] >= 2  # later soft-label draws were counted in the group, not stored again

    found = tmp_path / "cases" / "found"
    manifest = corpus.load_manifest(found)
    assert [e["id"] for e in manifest["cases"]] == [group["case"]]
    assert corpus.verify(found) == []
    case = Case.read(found / manifest["cases"][0]["file"])
    # shrunk: one row of two classes (one class gives loss 0, which 1% too large leaves right)
    assert case.inputs["logits"].size <= 4, case.inputs["logits"].shape
    assert case.params["soft_label"] and not case.params["return_softmax"]

    with open(tmp_path / "first" / "found-0of1.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["case"], r["status"], r["signature"]) for r in rows] == [(group["case"], "fail", SOFT_CORE + "|soft_label")]

    reproducers = list((tmp_path / "repro").glob("*.py"))
    assert len(reproducers) == 1
    done = subprocess.run([sys.executable, str(reproducers[0])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loss" in done.stdout

    # the same seed: the same groups; the find is an earlier one now (not stored twice), its stored
    # case re-run for the second run's row
    again = _search(tmp_path, "second")
    assert list(again["groups"]) == list(state["groups"])
    assert again["groups"][SOFT_CORE + "|soft_label"]["case"] == group["case"]
    assert again["groups"][SOFT_CORE + "|soft_label"].get("earlier") is True
    assert len(corpus.load_manifest(found)["cases"]) == 1
    with open(tmp_path / "second" / "found-0of1.csv", newline="") as handle:
        assert [(r["case"], r["status"]) for r in csv.DictReader(handle)] == [(group["case"], "fail")]
    # the same seed in an empty found corpus: the same case, byte for byte (its name is its content)
    fresh = tmp_path / "fresh"
    assert cli.main(["search", "--impl", "test-wrong-soft", "--op", "softmax_with_cross_entropy", "--seed", str(SEED),
                     "--cases", str(CASES), "--out", str(fresh / "run"), "--found-dir", str(fresh / "found"),
                     "--repro-dir", str(fresh / "repro")]) == 0
    assert corpus.load_manifest(fresh / "found")["cases"][0]["sha256"] == manifest["cases"][0]["sha256"]

    # a tampered found case fails verification of the whole corpus folder it sits in
    shutil.copy(found / "MANIFEST.json", tmp_path / "cases" / "MANIFEST.json")  # a stand-in main corpus
    (tmp_path / "cases" / "MANIFEST.json").write_text(json.dumps(
        {"format": corpus.FORMAT_VERSION, "cases": [], "corpus_sha256": ""}))
    assert corpus.verify(tmp_path / "cases") == []
    with open(found / manifest["cases"][0]["file"], "ab") as handle:
        handle.write(b"x")
    assert any("content differs" in p for p in corpus.verify(tmp_path / "cases"))


def test_known_deviation_is_not_a_find(tmp_path, test_adapters, monkeypatch):
    known = deviations.Deviation(key="test-soft", impl="test-wrong-soft", cases=["softmax_with_cross_entropy-*"],
                                 what="deliberately wrong", reproducer="-", source="-", features=["soft_label"])
    monkeypatch.setattr(search.deviations, "load", lambda: deviations.Registry([known]))
    state = _search(tmp_path, "run")
    assert state["groups"] == {} and state["known"] >= 2
    assert not (tmp_path / "cases" / "found").exists()


def test_resume_and_shards(tmp_path, test_adapters):
    finder = search.Search(["test-wrong-soft"], tmp_path / "run", ops=["softmax_with_cross_entropy"], seed=SEED,
                           shard=(1, 2), found_dir=tmp_path / "found", repro_dir=tmp_path / "repro")
    finder.run(max_cases=5)
    resumed = search.Search(["test-wrong-soft"], tmp_path / "run", ops=["softmax_with_cross_entropy"], seed=SEED,
                            shard=(1, 2), found_dir=tmp_path / "found", repro_dir=tmp_path / "repro")
    assert resumed.resume() and resumed.state["next"] == 5
    state = resumed.run(max_cases=8)
    assert state["next"] == 8
    assert all(group["index"] % 2 == 1 for group in state["groups"].values())  # shard 1/2: odd indices
    other = search.Search(["test-wrong-soft"], tmp_path / "run", ops=["sampled_softmax_loss"], seed=SEED,
                          shard=(1, 2))
    with pytest.raises(ValueError, match="resume it with those"):
        other.resume()


def test_an_impl_that_cannot_start_is_skipped(tmp_path, test_adapters):
    said = []
    finder = search.Search(["test-unavailable", "test-wrong-soft"], tmp_path / "run", seed=SEED,
                           found_dir=tmp_path / "found", repro_dir=tmp_path / "repro", notify=said.append)
    state = finder.run(max_cases=3)
    assert state["next"] == 3 and state["runs"]["test-unavailable"] == 0 and state["runs"]["test-wrong-soft"] > 0
    assert len(said) == 1 and "skipped test-unavailable" in said[0]


def test_draws_are_seeded_and_shards_disjoint():
    ops = list(search.OPS)
    first = [search.draw(np.random.default_rng([7, i]), ops) for i in range(20)]
    again = [search.draw(np.random.default_rng([7, i]), ops) for i in range(20)]
    assert first == again
    assert search.parse_shard("1/4") == (1, 4) and search.parse_budget("10m") == 600 and search.parse_budget("90s") == 90
    for bad in ("4/4", "1", "a/b"):
        with pytest.raises(ValueError, match="shard"):
            search.parse_shard(bad)
    with pytest.raises(ValueError, match="budget"):
        search.parse_budget("ten minutes")


def test_found_groups_in_the_report(tmp_path, test_adapters):
    pytest.importorskip("pandas")
    from conformance import report, runner

    _search(tmp_path, "run")
    cases = tmp_path / "cases"
    shutil.copy(REPO / "cases" / "MANIFEST.json", cases / "MANIFEST.json")
    raw = tmp_path / "run"
    runner.run_impl("numpy", "cpu", REPO / "cases", raw, select=lambda e: e["id"] == "softmax_with_cross_entropy-base-hard-f64")
    report.write_report(raw, tmp_path / "out", cases)
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "differences.csv", keep_default_na=False)
    found = table[table["origin"] == report.FOUND_BY_SEARCH]
    assert list(found["impl"]) == ["test-wrong-soft"] and list(found["worst output"]) == ["loss"]
    assert "--cases" in found["reproducer"].iloc[0]
    page = (tmp_path / "out" / "index.html").read_text()
    assert report.FOUND_BY_SEARCH in page
    # The first screen counts the find: no "0 numeric disagreements" above a divergence.
    assert 'class="k-found" href="#differences"><b>1</b>found by the search' in page


def test_a_crash_costs_a_restart_not_the_search(tmp_path, test_adapters, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_TEST_TRIGGER", "-soft-")  # test-segfault dies on every soft-label case
    finder = search.Search(["test-segfault"], tmp_path / "run", ops=["softmax_with_cross_entropy"], seed=SEED,
                           found_dir=tmp_path / "found", repro_dir=tmp_path / "repro")
    state = finder.run(max_cases=16)
    assert state["next"] == 16
    crashes = [key for key in state["groups"] if key.startswith("test-segfault|softmax_with_cross_entropy|crash|")]
    assert crashes and all("soft_label" in key for key in crashes), list(state["groups"])
    assert "SIGSEGV" in (tmp_path / "run" / "found-0of1.csv").read_text()


FOUND_REPRODUCERS = sorted(p for p in (REPO / "repro" / "found").glob("*.py") if not p.name.startswith("_"))


def _impl_of(script):
    return script.read_text(encoding="utf-8").split("Found by `conformance search`: ", 1)[1].split("|", 1)[0]


@pytest.mark.parametrize("script", FOUND_REPRODUCERS, ids=[p.stem for p in FOUND_REPRODUCERS])
def test_found_reproducer_imports_its_framework_only_and_shows_the_divergence(script, request):
    """A stored find's reproducer is standalone (NumPy, its framework, the standard library: the
    adapter's code is copied into it) and exits 0 while the divergence holds."""
    from test_deviations import REPRODUCER_MAY_IMPORT, _imported, _stdlib, framework_python

    impl = _impl_of(script)
    modules = _imported(script)
    allowed = REPRODUCER_MAY_IMPORT[impl] | {"numpy"} | _stdlib()
    assert modules <= allowed, "%s imports %s" % (script.name, sorted(modules - allowed))
    assert modules & REPRODUCER_MAY_IMPORT[impl], "%s does not import %s" % (script.name, impl)
    python = framework_python(impl, request.config)
    done = subprocess.run([python, script.name], cwd=script.parent, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, "%s no longer shows its divergence:\n%s" % (script.name, done.stderr[-2000:])


def test_a_standalone_reproducer_fails_once_the_divergence_is_gone(tmp_path, request):
    """The script's check can fail: rendered for a stored case that torch passes, as if torch had
    diverged on it, it exits non-zero saying the divergence no longer shows."""
    from test_deviations import framework_python

    from conformance import standalone

    python = framework_python("torch", request.config)
    path = REPO / "cases" / "softmax_with_cross_entropy" / "softmax_with_cross_entropy-base-soft-f32.npz"
    case = Case.read(path)
    script = tmp_path / "repro.py"
    text, helper, helper_source = standalone.render("torch", case, str(path), "torch|%s|fail|loss|numeric|soft_label"
                                                    % case.op)
    script.write_text(text)
    (tmp_path / (helper + ".py")).write_text(helper_source)
    done = subprocess.run([python, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "no longer diverges" in done.stderr, done.stderr[-2000:]


def test_same_seed_and_cases_same_groups(tmp_path, test_adapters, capsys):
    """Two runs of one seed and --cases N, each in its own empty found corpus, find the same group
    signatures, and the summary says how many draws it tried (a --budget run is compared by that)."""
    groups, summaries = [], []
    for run in ("one", "two"):
        assert cli.main(["search", "--impl", "test-wrong-soft", "--op", "softmax_with_cross_entropy", "--seed", str(SEED),
                         "--cases", "24",
                         "--out", str(tmp_path / run), "--found-dir", str(tmp_path / run / "found"),
                         "--repro-dir", str(tmp_path / run / "repro")]) == 0
        state = json.loads((tmp_path / run / "search-0of1.json").read_text())
        groups.append(sorted(state["groups"]))
        summaries.append(capsys.readouterr().out)
    assert groups[0] == groups[1] and groups[0]
    assert all("24 draws tried" in text and "--op softmax_with_cross_entropy --seed %d --shard 0/1 --cases 24" % SEED in text for text in summaries)


def test_shards_merge_by_content_hash(tmp_path, test_adapters):
    """Two shards search apart (as CI matrix jobs do); their found corpora, and one of them twice (a
    re-run job), merge into one corpus with each case once, every signature kept, verified."""
    for shard in (0, 1):
        finder = search.Search(["test-wrong-soft"], tmp_path / "run", ops=["softmax_with_cross_entropy"], seed=SEED,
                               shard=(shard, 2), found_dir=tmp_path / ("found%d" % shard),
                               repro_dir=tmp_path / "repro")
        finder.run(max_cases=CASES // 2)
    shards = [corpus.load_manifest(tmp_path / ("found%d" % shard))["cases"] for shard in (0, 1)]
    assert shards[0] and shards[1]
    shutil.copytree(tmp_path / "found0", tmp_path / "found0-again")
    assert cli.main(["merge-found", str(tmp_path / "found0"), str(tmp_path / "found1"), str(tmp_path / "found0-again"),
                     "--into", str(tmp_path / "merged")]) == 0
    merged = corpus.load_manifest(tmp_path / "merged")["cases"]
    ids = [e["id"] for e in merged]
    assert len(ids) == len(set(ids)) == len({e["id"] for e in shards[0] + shards[1]})
    assert {k for e in merged for k in e["signatures"]} == {k for e in shards[0] + shards[1] for k in e["signatures"]}
    assert sorted(p.name for p in (tmp_path / "merged").rglob("*.npz")) == sorted(e["id"] + ".npz" for e in merged)
    assert corpus.verify(tmp_path / "merged") == []
    # a case file of the same name with other content is refused, not replaced
    with open(tmp_path / "merged" / shards[1][0]["file"], "ab") as handle:
        handle.write(b"x")
    with pytest.raises(ValueError, match="other content"):
        search.merge_found([tmp_path / "found1"], tmp_path / "merged")
