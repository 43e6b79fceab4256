"""Every native path is exercised (issue #14 item 4): each public API as its own impl, and each
framework's built-in sampler driving its own sampled loss (``conformance sampler``'s ``via=loss``).

The core's loss-path checks are tested with the test adapters of ``impls/testing_adapters.py``: a
right one passes, and one drawing uniformly, one putting the label behind the candidates and one
leaving accidental hits in the softmax are each caught.  TensorFlow's two APIs run when TensorFlow is
installed (its tox env); Paddle 1.8's loss path runs in ``tests/test_sampler_conformance.py``'s small
grid, which includes the loss settings.
"""
import csv
import importlib.util
import json

import numpy as np
import pytest

from conformance import corpus, runner
from conformance import sampler as cs
from impls.support import why_unsupported

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------------------------
# The two TensorFlow APIs as two impls
# --------------------------------------------------------------------------------------------
SHARDED_MOD = {"op": "sampled_softmax_loss", "dtype": "float32", "features": ["shard_list", "sharded", "partition_mod"]}
SHARDED_DIV = dict(SHARDED_MOD, features=["shard_list", "sharded", "partition_div"])


def test_each_tensorflow_api_declares_what_it_can_express():
    # tf.nn's op always shards 'div': a 'mod' shard list is the v1 API's alone (no silent switch of API).
    assert "partition_mod" in why_unsupported("tensorflow", "cpu", SHARDED_MOD)
    assert "partition_mod" in why_unsupported("tensorflow-xla", "cpu", SHARDED_MOD)
    assert why_unsupported("tensorflow-v1", "cpu", SHARDED_MOD) is None
    for impl in ("tensorflow", "tensorflow-v1", "tensorflow-xla"):
        assert why_unsupported(impl, "cpu", SHARDED_DIV) is None
    # tensorflow-v1 is the sampled loss's v1 API only
    assert why_unsupported("tensorflow-v1", "cpu", {"op": "softmax_with_cross_entropy", "dtype": "float32"})


def _run_cases(impl, case_ids, tmp_path):
    """``case id -> (reply status, outputs)`` of one worker running the stored cases."""
    entries = {e["id"]: e for e in json.loads((corpus.DEFAULT_CASES_DIR / "MANIFEST.json").read_text())["cases"]}
    worker = runner.Worker(impl, "cpu", runner.python_for(impl), log_dir=tmp_path / "logs")
    worker.start()
    results = {}
    try:
        for case_id in case_ids:
            out_file = tmp_path / ("%s-%s.npz" % (impl, case_id))
            reply = worker.request(corpus.DEFAULT_CASES_DIR / entries[case_id]["file"], out_file,
                                   timeout=300)
            outputs = dict(np.load(str(out_file))) if reply.status == "ok" else None
            results[case_id] = (reply.status, outputs, reply.message)
    finally:
        worker.stop()
    return results


@pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed (its tox env runs this)")
def test_tf_nn_and_tf_compat_v1_agree_where_both_express_a_case(tmp_path):
    both = ["sampled_softmax_loss-T3-hits-some-removed-f32", "sampled_softmax_loss-T2-hits-div3-f64",
            "sampled_softmax_loss-T2-hits-mod1-f32"]  # one matrix, a 'div' list, a list of one shard
    mod = "sampled_softmax_loss-T2-hits-mod3-f64"
    v2 = _run_cases("tensorflow", both + [mod], tmp_path)
    v1 = _run_cases("tensorflow-v1", both + [mod], tmp_path)
    for case_id in both:
        assert v2[case_id][0] == v1[case_id][0] == "ok", (case_id, v2[case_id][2], v1[case_id][2])
        a, b = v2[case_id][1], v1[case_id][1]
        assert sorted(a) == sorted(b)
        # tf.nn.sampled_softmax_loss is the v1 function with partition_strategy='div': the same bits
        assert all(a[k].tobytes() == b[k].tobytes() for k in a), case_id
    assert v1[mod][0] == "ok"
    # tensorflow's worker refuses it by its declaration (never by switching to the v1 API)
    assert v2[mod][0] == "unsupported" and "partition_mod" in v2[mod][2], v2[mod]


# --------------------------------------------------------------------------------------------
# The built-in sampler driving the loss
# --------------------------------------------------------------------------------------------
LOSS_SETTINGS = [cs.make_setting(50, 8, True, 4000, seed=5, via="loss"),
                 cs.make_setting(1000, 8, True, 4000, seed=6, via="loss")]
LOSS_CHECKS = ("loss_shape", "true_labels_in_front", "accidental_hits_removed", "loss_vs_oracle")


def _loss_rows(impl, tmp_path, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_TEST_ADAPTERS", "1")
    path, _ = cs.run_impl_sampler(impl, tmp_path, LOSS_SETTINGS)
    return _rows(path)


def test_a_right_sampled_loss_passes_every_check(tmp_path, monkeypatch):
    rows = _loss_rows("test-loss-sampler", tmp_path, monkeypatch)
    assert {r["via"] for r in rows} == {"loss"}
    for setting in LOSS_SETTINGS:
        checks = {r["check"]: r for r in rows if int(r["range_max"]) == setting["range_max"]}
        assert set(LOSS_CHECKS) | {"first_candidate_chi2", "sequential_pit_chi2", "seed_repeat_fresh_process"} <= set(checks)
        for name, row in checks.items():
            expected = cs.APPROXIMATE if name == "expected_count_vs_empirical" else "pass"
            assert row["status"] == expected, (name, row["message"])
    # the hit check has power: the probes include the most probable classes, so draws hit them
    oracle = next(r for r in rows if r["check"] == "loss_vs_oracle")
    assert " 0 of the 0 draws with hits" not in oracle["message"]


@pytest.mark.parametrize("impl, caught", [
    ("test-loss-uniform", ("first_candidate_chi2", "sequential_pit_chi2", "expected_count_rule")),
    ("test-loss-labels-behind", ("true_labels_in_front",)),
    ("test-loss-hits-kept", ("accidental_hits_removed", "loss_vs_oracle")),
])
def test_a_broken_sampled_loss_is_caught(impl, caught, tmp_path, monkeypatch):
    rows = _loss_rows(impl, tmp_path, monkeypatch)
    for setting in LOSS_SETTINGS:
        status = {r["check"]: r["status"] for r in rows if int(r["range_max"]) == setting["range_max"]}
        for name in caught:
            assert status.get(name) in ("fail", "error"), (impl, setting["range_max"], name, status)


@pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed (its tox env runs this)")
def test_tensorflow_loss_draws_what_its_sampler_draws(tmp_path):
    path, _ = cs.run_impl_sampler("tensorflow", tmp_path, LOSS_SETTINGS[:1])
    status = {r["check"]: r for r in _rows(path)}
    for name in ("loss_shape", "drawn_candidates_identity", "loss_vs_oracle", "first_candidate_chi2",
                 "seed_repeat_in_process", "seed_repeat_fresh_process"):
        assert status[name]["status"] == "pass", (name, status[name]["message"])
    # TF's loss returns the loss only: the layout checks say so instead of passing
    assert status["true_labels_in_front"]["status"] == "unsupported"
