"""Sampler conformance (conformance/sampler/, impls/samplers.py): the statistics, the reference, the frameworks.

The reference runs the ``small`` grid (>= 3*10^4 candidates per setting) through the real CLI and
workers.  The test machinery is itself tested: samplers that are wrong on purpose (off by one,
uniform, not counting repeated tries, a wrong expected-count rule, a different seed) are rejected
at the same family-wise threshold.  TensorFlow and Paddle 1.8 run the same grid when their
interpreter (``runner.python_for``) has them.  No test asserts a timing.
"""
import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance import runner
from conformance import sampler as cs
from impls import get_adapter
from impls import samplers as worker_samplers

REPO = Path(__file__).resolve().parent.parent
SMALL = cs.grid("small")


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _key(row):
    return int(row["range_max"]), int(row["num_sampled"]), row["unique"] in (True, "True")


def _documented_rule_row(row):
    """The one check the documented rule itself fails: with unique sampling, the reported expected
    count (P*S when num_tries == num_sampled, else -expm1(num_tries*log1p(-P))) is not the inclusion
    probability; with num_sampled >= 2 the gap is far beyond the threshold.  TensorFlow's source calls
    the rule approximate, so such a row is marked ``approximate``, not failed (see conformance/sampler/checks.py)."""
    range_max, num_sampled, unique = _key(row)
    return row["check"] == "expected_count_vs_empirical" and unique and num_sampled >= 2


def _assert_conforms(rows, impl):
    assert rows, "no rows"
    problems = []
    for row in rows:
        if row["status"] == "unsupported":
            continue
        expected = cs.APPROXIMATE if _documented_rule_row(row) else "pass"
        if row["status"] != expected:
            problems.append("%s %s %s: %s (expected %s) %s" % (impl, _key(row), row["check"], row["status"],
                                                              expected, row["message"][:300]))
    assert not problems, "\n".join(problems)
    for row in rows:
        if row["p_value"]:
            assert float(row["alpha"]) == cs.FAMILY_ALPHA and int(row["tests_in_family"]) > 1
            assert float(row["threshold"]) <= cs.FAMILY_ALPHA


# -- the statistics ----------------------------------------------------------------------------
@pytest.mark.parametrize("x", [0.01, 0.5, 1.0, 3.84, 10.0, 40.0, 200.0])
def test_chi2_sf_matches_closed_forms(x):
    assert cs.chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-12, abs=1e-300)
    assert cs.chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-12, abs=1e-300)
    assert cs.chi2_sf(x, 4) == pytest.approx(math.exp(-x / 2) * (1 + x / 2), rel=1e-12, abs=1e-300)


def test_chi2_sf_large_dof_is_near_its_median_and_tails():
    for dof in (100, 1000, 5000):
        assert 0.45 < cs.chi2_sf(dof - 2 / 3.0, dof) < 0.55
        assert cs.chi2_sf(dof + 6 * math.sqrt(2 * dof), dof) < 1e-6
        assert cs.chi2_sf(dof - 6 * math.sqrt(2 * dof), dof) > 1 - 1e-6


def test_merge_bins_keeps_totals_and_the_minimum_expectation():
    p = cs.log_uniform_p(10000)
    observed = np.arange(10000) % 7
    obs, exp, starts = cs.merge_bins(observed, 3000 * p)
    assert obs.sum() == observed.sum() and exp.sum() == pytest.approx(3000.0)
    assert (exp >= cs.MIN_EXPECTED).all() and starts[0] == 0 and (np.diff(starts) > 0).all()


def test_holm_decides_in_step_down_order():
    rows = [{"p_value": p, "status": None, "message": ""} for p in (1e-6, 3e-4, 4e-4, 0.02, 0.5)]
    cs.apply_holm(rows, alpha=1e-3)
    # m = 5: 1e-6*5 = 5e-6 <= 1e-3 (reject); 3e-4*4 = 1.2e-3 > 1e-3 (stop: keep the rest)
    assert [r["status"] for r in rows] == ["fail", "pass", "pass", "pass", "pass"]
    assert rows[1]["p_holm"] == pytest.approx(1.2e-3) and rows[2]["p_holm"] == pytest.approx(1.2e-3)
    assert rows[0]["threshold"] == pytest.approx(1e-3 / 5) and rows[4]["threshold"] == pytest.approx(1e-3)


# -- samplers that are wrong on purpose ---------------------------------------------------------
def _fake(setting, q, seed=0, count_repeats=True, rule_p=None):
    """Draws from the distribution ``q`` (non-unique: iid; unique: until S distinct, counting tries),
    reporting the documented expected counts for the probabilities ``rule_p`` (default: P)."""
    rng = np.random.default_rng(seed)
    R, S, D = setting["range_max"], setting["num_sampled"], setting["draws"]
    p = cs.log_uniform_p(R) if rule_p is None else rule_p
    if not setting["unique"]:
        candidates = rng.choice(R, size=(D, S), p=q)
        tries = np.full(D, S)
    else:
        candidates, tries = np.empty((D, S), dtype=np.int64), np.empty(D, dtype=np.int64)
        for d in range(D):
            seen, n = [], 0
            while len(seen) < S:
                n += 1
                value = int(rng.choice(R, p=q))
                if value not in seen:
                    seen.append(value)
            candidates[d], tries[d] = seen, (n if count_repeats else S)
    probes = np.asarray(setting["true_classes"])
    sampled = cs.expected_count_rule(p[candidates], tries[:, None], S)
    true_expected = cs.expected_count_rule(p[probes][None, :], tries[:, None], S)
    return {"candidates": candidates, "sampled_expected": sampled, "true_expected": true_expected}


def _family(setting_list, make):
    """Analyse fake draws for every setting as one Holm family; rows keyed by (setting, check)."""
    rows = []
    reply = {"fingerprint": "a", "fingerprint_repeat": "a", "fingerprint_again": "a",
             "fingerprint_other_seed": "b", "dtype": "float64", "fingerprint_draws": 64}
    for setting in setting_list:
        for row in cs.analyse(setting, make(setting), reply, {"fingerprint": "a"}):
            rows.append(dict(row, setting=(setting["range_max"], setting["num_sampled"], setting["unique"])))
    cs.apply_holm(rows)
    return {(row["setting"], row["check"]): row for row in rows}


def _shifted(R):
    """Off by one: q(k) = P(k + 1) (renormalised), i.e. log(k+3) - log(k+2)."""
    q = cs.log_uniform_p(R + 1)[1:]
    return q / q.sum()


# Fewer draws than the real grid keep the pure-Python unique fakes fast (>= 2*10^4 candidates each).
# (The settings drawn through a loss need the loss's arrays: tests/test_native_paths.py tests those.)
FAKE_GRID = [dict(s, draws=20000 if s["num_sampled"] == 1 else 2500) for s in SMALL if s["via"] == "sampler"]


def test_the_correct_distribution_passes_the_fake_harness():
    rows = _family(FAKE_GRID, lambda s: _fake(s, cs.log_uniform_p(s["range_max"]), seed=1))
    for (setting, check), row in rows.items():
        documented = check == "expected_count_vs_empirical" and setting[2] and setting[1] >= 2
        assert row["status"] == ("fail" if documented else "pass"), (setting, check, row["message"])


@pytest.mark.parametrize("wrong", ["off_by_one", "uniform"])
def test_a_wrong_distribution_is_rejected_at_the_same_threshold(wrong):
    def make(setting):
        R = setting["range_max"]
        q = _shifted(R) if wrong == "off_by_one" else np.full(R, 1.0 / R)
        return _fake(setting, q, seed=2)

    rows = _family(FAKE_GRID, make)
    for setting in FAKE_GRID:
        key = (setting["range_max"], setting["num_sampled"], setting["unique"])
        # unique: the first candidates alone (2500 here for S=8) or, with them, every later candidate
        checks = ["histogram_chi2"] if not setting["unique"] else \
            ["first_candidate_chi2"] + (["sequential_pit_chi2"] if setting["num_sampled"] > 1 else [])
        failed = [rows[(key, c)] for c in checks if rows[(key, c)]["status"] == "fail"]
        assert failed, (key, [rows[(key, c)]["message"] for c in checks])
        assert all(r["p_holm"] <= cs.FAMILY_ALPHA and r["threshold"] <= cs.FAMILY_ALPHA for r in failed)


def test_a_unique_sampler_that_does_not_count_repeated_tries_is_rejected():
    settings = [s for s in FAKE_GRID if s["unique"] and s["num_sampled"] >= 2]
    rows = _family(settings, lambda s: _fake(s, cs.log_uniform_p(s["range_max"]), seed=3, count_repeats=False))
    for setting in settings:
        key = (setting["range_max"], setting["num_sampled"], True)
        assert rows[(key, "num_tries")]["status"] == "fail", rows[(key, "num_tries")]["message"]
        assert rows[(key, "sequential_pit_chi2")]["status"] == "pass"  # the draws themselves are right


def test_expected_counts_from_another_rule_are_rejected():
    settings = FAKE_GRID[:4]

    def make(setting):
        R = setting["range_max"]
        return _fake(setting, cs.log_uniform_p(R), seed=4, rule_p=cs.log_uniform_p(R + 1)[1:])  # P(k+1)

    rows = _family(settings, make)
    for setting in settings:
        key = (setting["range_max"], setting["num_sampled"], setting["unique"])
        assert rows[(key, "expected_count_rule")]["status"] == "fail"
        assert rows[(key, "histogram_chi2" if not setting["unique"] else "first_candidate_chi2")]["status"] == "pass"


def test_the_seed_check_fails_for_a_sampler_fed_different_seeds(tmp_path):
    adapter = get_adapter("numpy")
    adapter.load("cpu")
    setting = cs.make_setting(50, 8, True, min_candidates=800)
    first = worker_samplers.run_request(adapter, "cpu", dict(setting, seed=5, out_file=str(tmp_path / "a.npz")))
    other = worker_samplers.run_request(adapter, "cpu", dict(setting, seed=6, out_file=None))
    same = worker_samplers.run_request(adapter, "cpu", dict(setting, seed=5, out_file=None))
    assert first["status"] == other["status"] == same["status"] == "ok"
    with np.load(str(tmp_path / "a.npz")) as data:
        arrays = {k: data[k] for k in data.files}
    rows = {r["check"]: r for r in cs.analyse(setting, arrays, first, other)}
    assert rows["seed_repeat_fresh_process"]["status"] == "fail"
    rows = {r["check"]: r for r in cs.analyse(setting, arrays, first, same)}
    assert rows["seed_repeat_fresh_process"]["status"] == "pass"
    # a repeat that is not one, and a seed that changes nothing
    broken = dict(first, fingerprint_repeat=other["fingerprint"], fingerprint_other_seed=first["fingerprint"])
    rows = {r["check"]: r for r in cs.analyse(setting, arrays, broken, same)}
    assert rows["seed_repeat_in_process"]["status"] == "fail"
    assert rows["seed_changes_draws"]["status"] == "fail"


def test_unsupported_impls_answer_with_a_reason():
    for name, reason in worker_samplers.UNSUPPORTED.items():
        adapter = get_adapter(name)  # not loaded: the sampler answers before touching the framework
        reply = worker_samplers.run_request(adapter, "cpu", cs.make_setting(50, 8, True, min_candidates=80))
        assert reply["status"] == "unsupported" and reason in reply["message"]


# -- real workers --------------------------------------------------------------------------------
def test_the_reference_passes_every_check_through_the_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "conformance", "sampler", "--impl", "numpy", "--grid", "small",
                             "--out", str(tmp_path)], cwd=str(REPO), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _rows(tmp_path / "sampler-numpy-cpu.csv")
    assert {_key(r) for r in rows} == {(s["range_max"], s["num_sampled"], s["unique"]) for s in SMALL}
    assert all(int(r["candidates"]) >= 30000 for r in rows)
    _assert_conforms(rows, "numpy")
    # The documented rule's gap is large where num_tries == num_sampled is common: class 0 at
    # range 50, 8 unique samples reports about 0.98 while about 0.84 of the draws contain it.
    row = next(r for r in rows if _key(r) == (50, 8, True) and r["check"] == "expected_count_vs_empirical")
    assert float(row["statistic"]) > 10 and "class 0" in row["message"]


def _has_framework(impl):
    python = runner.python_for(impl)
    if python is None:
        return python, "%s has no interpreter set up here (conformance setup)" % impl
    probe = {"tensorflow": "import tensorflow",
             "paddle-legacy": "import paddle, sys; sys.exit(0 if paddle.__version__.startswith('1.') else 1)"}[impl]
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        return python, "cannot run %s: %s" % (python, error)
    if done.returncode != 0:
        return python, ("%s has no %s (set CONFORMANCE_PYTHON_%s or --python)"
                        % (python, impl, impl.upper().replace("-", "_")))
    return python, None


@pytest.mark.parametrize("impl", ["tensorflow", "paddle-legacy"])
def test_framework_samplers_conform(impl, tmp_path):
    python, missing = _has_framework(impl)
    if missing:
        pytest.skip(missing)
    path, _ = cs.run_impl_sampler(impl, tmp_path, SMALL, python=python)
    rows = _rows(path)
    _assert_conforms(rows, impl)
    ran = {_key(r) for r in rows if r["status"] != "unsupported"}
    if impl == "paddle-legacy":  # the layer samples unique only
        assert ran == {(s["range_max"], s["num_sampled"], True) for s in SMALL if s["unique"]}
        assert any(r["check"] == "layer_matches_op" and r["status"] == "pass" for r in rows)
        # through the loss, Paddle exposes its draw: the layout checks ran (and passed, above)
        assert {"true_labels_in_front", "accidental_hits_removed", "loss_vs_oracle"} <= {
            r["check"] for r in rows if r["via"] == "loss" and r["status"] == "pass"}
    else:
        assert ran == {(s["range_max"], s["num_sampled"], s["unique"]) for s in SMALL}
        assert {"drawn_candidates_identity", "loss_vs_oracle"} <= {
            r["check"] for r in rows if r["via"] == "loss" and r["status"] == "pass"}
        repeat = next(r for r in rows if r["check"] == "seed_repeat_in_process")
        assert "tf.random.set_seed" in repeat["message"] and "stateful stream" in repeat["message"]


def test_a_worker_that_does_not_answer_in_time_becomes_an_error_row(tmp_path):
    slow = cs.make_setting(1000, 1, True, min_candidates=200000)  # ~20 s of reference draws
    path, _ = cs.run_impl_sampler("numpy", tmp_path, [slow, cs.make_setting(50, 8, False, min_candidates=800)],
                                  timeout=1.0, fresh_process=False)
    rows = _rows(path)
    assert rows[0]["check"] == "draw" and rows[0]["status"] == "error" and rows[0]["message"].startswith("timeout")
    # the worker was restarted for the next setting, which ran
    assert any(r["check"] == "histogram_chi2" and r["status"] == "pass" for r in rows[1:])
