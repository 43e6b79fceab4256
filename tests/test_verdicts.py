"""Honest verdicts: bad input is judged only where a framework has a contract, a known deviation that
makes a bad-input case fail masks it, and the limits adapters declare are tried against the framework."""
from pathlib import Path

import pandas as pd

from conformance import corpus, deviations, outcomes, results, runner
from conformance.report.sections import modes
from impls import get_adapter
from impls.base import OpSupport
from impls.support import why_not_applicable, why_unsupported

CASES = corpus.DEFAULT_CASES_DIR
MANIFEST = corpus.load_manifest(CASES)
ENTRIES = {e["id"]: e for e in MANIFEST["cases"]}
BAD_SAMPLED = ENTRIES["sampled_softmax_with_cross_entropy-invalid-sswce-prob-zero-f64"]


def test_bad_input_to_a_composed_op_is_not_applicable():
    assert "composes" in why_not_applicable("torch", BAD_SAMPLED)
    assert why_not_applicable("paddle-legacy", BAD_SAMPLED) is None  # its own op
    valid = ENTRIES["sampled_softmax_with_cross_entropy-base-f64"]
    assert why_not_applicable("torch", valid) is None


class _NoWorker:
    device, info = "cpu", {"version": "x"}

    def request(self, *args, **kwargs):
        raise AssertionError("a bad-input case of a composed op must not be run")


def test_composed_bad_input_is_not_run_and_not_a_fail(tmp_path):
    row = runner.execute_case(_NoWorker(), get_adapter("torch"), BAD_SAMPLED, CASES, tmp_path, deviations.load())
    assert row["status"] == "inapplicable" and row["behaviour"] == "not applicable (composed op)"
    assert outcomes.row_kind(row["status"], True) == "inapplicable"


def test_known_deviation_masks_a_bad_input_case_by_its_error_but_never_matches_it():
    registry = deviations.load()
    dtype_error = "InvalidArgumentError: Tensor holds the wrong type, it holds float, but desires to be double."
    assert registry.match("paddle-legacy", "cpu", BAD_SAMPLED) is None
    assert registry.masking("paddle-legacy", "cpu", BAD_SAMPLED, dtype_error).key == "paddle-legacy-sampled-op-float64"
    # an error about the bad input itself is not masked, nor is another impl's, nor a float32 case
    assert registry.masking("paddle-legacy", "cpu", BAD_SAMPLED, "ValueError: The fed Variable 'label'") is None
    assert registry.masking("paddle", "cpu", BAD_SAMPLED, dtype_error) is None
    f32 = ENTRIES[BAD_SAMPLED["id"].replace("-f64", "-f32")]
    assert registry.masking("paddle-legacy", "cpu", f32, dtype_error) is None


class _RaisingWorker:
    device, info = "cpu", {"version": "x"}

    def __init__(self, message):
        self.message = message

    def request(self, *args, **kwargs):
        return runner.Reply("error", self.message)


def test_a_masked_bad_input_row_is_not_a_raises(tmp_path):
    row = runner.execute_case(_RaisingWorker("EnforceNotMet: it holds float, but desires to be double."),
                              get_adapter("paddle-legacy"), BAD_SAMPLED, CASES, tmp_path, deviations.load())
    assert (row["status"], row["behaviour"], row["deviation"]) == (
        "xfail", "masked by a known deviation", "paddle-legacy-sampled-op-float64")
    row = runner.execute_case(_RaisingWorker("ValueError: logits should be 2D"), get_adapter("paddle-legacy"),
                              BAD_SAMPLED, CASES, tmp_path, deviations.load())
    assert (row["status"], row["behaviour"]) == ("pass", "raises")


def test_every_bad_input_exists_in_float32_and_float64():
    names = {}
    for entry in MANIFEST["cases"]:
        if entry.get("invalid"):
            names.setdefault(entry["dtype"], set()).add(entry["id"].rsplit("-", 1)[0])
    assert set(names) == {"float32", "float64"} and names["float32"] == names["float64"]


def test_declared_limits_pick_one_small_case_each():
    limits = {(op, limit): entry for op, limit, entry in runner.declared_limits(get_adapter("paddle"), MANIFEST)}
    assert limits[("softmax_with_cross_entropy", "dtype float16")]["id"] == "softmax_with_cross_entropy-base-hard-f16"
    feature = limits[("softmax_with_cross_entropy", "feature label_rank_minus_1")]
    assert "label_rank_minus_1" in feature["features"] and feature["dtype"] in ("float32", "float64")
    assert not any(e and e.get("invalid") for e in limits.values())
    assert ("sampled_softmax_loss", "dtype bfloat16") in limits
    assert all(op != "sampled_softmax_loss" for op, _, _ in runner.declared_limits(get_adapter("paddle-legacy"),
                                                                                 MANIFEST))  # no op: nothing declared


class _NumpyDeclaringNoHalf:
    """The oracle's worker with a (wrong) declaration: no float16 or bfloat16 for the hard-label op."""
    name = "numpy"
    devices = ("cpu",)
    ops = {"softmax_with_cross_entropy": OpSupport("native", ("float32", "float64"))}


def test_a_declaration_the_framework_contradicts_fails(tmp_path):
    worker = runner.Worker("numpy", "cpu")
    try:
        rows = runner.check_declared_limits(worker, _NumpyDeclaringNoHalf(), MANIFEST, CASES, tmp_path)
    finally:
        worker.stop()
    by_limit = {row["limit"]: row for row in rows}
    assert set(by_limit) == {"dtype float16", "dtype bfloat16"}
    for row in by_limit.values():
        assert (row["outcome"], row["status"]) == ("agrees with the oracle", "fail"), row
    table = modes.declared_limits_table(pd.DataFrame(rows), ["numpy/cpu"])
    assert set(table["finding"]) == {"declaration contradicted"}


def test_a_declared_missing_gradient_is_tried_on_a_case_that_has_it():
    limits = {(op, limit): entry for op, limit, entry in runner.declared_limits(get_adapter("paddle"), MANIFEST)}
    entry = limits[("softmax_with_cross_entropy", "gradient label")]
    assert "soft_label" in entry["features"]


def test_soft_label_gradient_is_a_golden_output_of_soft_cases_only():
    from impls.caseio import Case

    soft = Case.read(CASES / ENTRIES["softmax_with_cross_entropy-base-soft-f64"]["file"])
    hard = Case.read(CASES / ENTRIES["softmax_with_cross_entropy-base-hard-f64"]["file"])
    assert "grad/label" in soft.golden and "grad/label" not in hard.golden


def test_a_case_whose_convention_documents_no_formula_is_unsupported_without_running():
    """Only the case file's metadata says which conventions document no formula for it (the manifest
    entry does not): the runner asks of it, so the worker is never sent the case."""
    entry = ENTRIES["cross_entropy-soft-weight-mean-f64"]
    assert runner.why_unsupported("jax", "cpu", entry) is None  # the manifest entry alone cannot tell
    row = runner.execute_case(_NoWorker(), get_adapter("jax"), entry, CASES, Path("."), deviations.load())
    assert row.status == "unsupported" and "documents no formula" in row.message and row.behaviour == ""


def test_support_is_asked_once_per_case(tmp_path, monkeypatch):
    asked = []

    def counting(adapter, device, meta):
        asked.append(meta["id"])
        return why_unsupported(adapter, device, meta)

    monkeypatch.setattr(runner, "why_unsupported", counting)
    ids = [e["id"] for e in MANIFEST["cases"]]
    first = ids.index("softmax_with_cross_entropy-label-rank-minus-1-f64")  # numpy-fast cannot express it
    chosen = ids[first:first + 3]
    path, _ = runner.run_impl("numpy-fast", "cpu", CASES, tmp_path, select=lambda e: e["id"] in chosen)
    assert sorted(asked) == sorted(chosen)  # once each: the worker runs what it is sent
    rows = results.read(path)
    assert [(r.case, r.status) for r in rows] == list(zip(chosen, ["unsupported", "pass", "pass"]))
    assert all(r.impl_version for r in rows)  # the row written before the worker started has its version too
