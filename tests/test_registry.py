"""The op registry, the dtype vocabulary and the support decision agree with the corpus, the docs,
the adapters and NumPy."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from conformance import compare, corpus
from impls import ADAPTER_MODULES, dtypes, get_adapter, ops
from impls.base import Adapter, OpSupport
from impls.caseio import Case
from impls.support import why_unsupported

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def manifest():
    return corpus.load_manifest(corpus.DEFAULT_CASES_DIR)


# -- features: the corpus, the registry and docs/ADAPTER_SPEC.md name the same ------------------
def _doc_features():
    text = (REPO / "docs" / "ADAPTER_SPEC.md").read_text(encoding="utf-8")
    section = text.split("## Feature names", 1)[1].split("\n## ", 1)[0]
    found, op = {}, None
    for line in section.splitlines():
        heading = re.match(r"### (\w+)$", line)
        if heading:
            op = heading.group(1)
            found[op] = set()
        item = re.match(r"- `(\w+)`", line)
        if item and op:
            found[op].add(item.group(1))
    return found


def test_corpus_features_are_the_registry_vocabulary(manifest):
    emitted = {op: set() for op in ops.OPS}
    for entry in manifest["cases"]:
        emitted[entry["op"]].update(entry["features"])
    assert emitted == {name: set(op.features) for name, op in ops.OPS.items()}


def test_adapter_spec_lists_every_feature_of_the_registry():
    assert _doc_features() == {name: set(op.features) for name, op in ops.OPS.items()}


@pytest.mark.parametrize("impl", list(ADAPTER_MODULES))
def test_adapters_declare_registry_ops_and_features(impl):
    adapter = get_adapter(impl)
    assert set(adapter.ops) <= set(ops.OPS)
    for op, support in adapter.ops.items():
        assert support.unsupported_features <= set(ops.OPS[op].features), (impl, op)
        assert support.dtypes <= set(dtypes.NAMES)


# -- outputs, oracle and tolerance facts ---------------------------------------------------------
def test_golden_outputs_are_the_registry_output_names(manifest):
    for entry in manifest["cases"]:
        if entry.get("invalid"):
            continue
        case = Case.read(corpus.DEFAULT_CASES_DIR / entry["file"])
        assert sorted(case.golden) == ops.OPS[case.op].output_names(case.params, case.features), case.id


def test_oracle_functions_resolve_by_name():
    from impls import reference

    for name, op in ops.OPS.items():
        assert op.reference_forward() is getattr(reference, name)
        assert op.reference_grad() is getattr(reference, name + "_grad")


def test_sharded_case_gives_the_oracle_a_shard_list(manifest):
    entry = next(e for e in manifest["cases"] if e["id"] == "sampled_softmax_loss-T2-hits-mod3-f64")
    case = Case.read(corpus.DEFAULT_CASES_DIR / entry["file"])
    kwargs = case.reference_kwargs()
    assert [w.shape[0] for w in kwargs["weights"]] == [4, 4, 3]  # 11 classes, mod 3
    assert [a.shape for a in kwargs["sampled_values"]] == [(7,), (5, 2), (7,)]
    assert "num_shards" not in kwargs and "upstream" not in kwargs
    assert not any(k.startswith("weights/") for k in kwargs)


def test_accumulation_length_and_scales_follow_the_stated_rule(manifest):
    entry = next(e for e in manifest["cases"] if e["id"] == "sampled_softmax_loss-base-f64")
    case = Case.read(corpus.DEFAULT_CASES_DIR / entry["file"])
    shapes = {k: v.shape for k, v in case.inputs.items()}
    # B=5, D=6, T+S = 1+7 = 8: the longest sum is the softmax width.
    assert compare.accumulation_length(case.meta, shapes) == 8
    scales = compare.output_scales(case)
    z, u = case.meta["logit_scale"], float(np.max(np.abs(case.upstream)))
    x, w = float(np.max(np.abs(case.inputs["inputs"]))), float(np.max(np.abs(case.inputs["weights"])))
    assert scales["loss"] == z and scales["grad/biases"] == z * u
    assert scales["grad/inputs"] == 2 * z * u * w
    assert scales["grad/weights"] == pytest.approx(2 * z * u * x * math.sqrt(5))


def test_default_params_are_in_declaration_order_and_required_ones_are_asked_for():
    params = ops.OPS["sampled_softmax_loss"].default_params(num_sampled=3, num_classes=9)
    assert list(params) == ["num_sampled", "num_classes", "num_true", "remove_accidental_hits",
                            "partition_strategy", "num_shards"]
    with pytest.raises(ValueError, match="num_classes"):
        ops.OPS["sampled_softmax_loss"].default_params(num_sampled=3)
    with pytest.raises(ValueError, match="unknown"):
        ops.OPS["softmax_with_cross_entropy"].default_params(nope=1)
    with pytest.raises(ValueError, match="op: expected one of"):
        ops.get("softmax")


# -- dtypes --------------------------------------------------------------------------------------
def test_dtype_facts_match_numpy_and_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    assert dtypes.NAMES == ("float16", "bfloat16", "float32", "float64")
    for name in dtypes.NAMES:
        finfo = ml_dtypes.finfo(ml_dtypes.bfloat16) if name == "bfloat16" else np.finfo(name)
        assert dtypes.EPS[name] == float(finfo.eps), name
        assert dtypes.ITEMSIZE[name] == dtypes.numpy_dtype(name).itemsize, name
    assert dtypes.storage_dtype("bfloat16") == np.float32
    with pytest.raises(ValueError, match="dtype: expected one of"):
        dtypes.info("float8")


def test_round_to_bfloat16_is_to_nearest_even_and_stored_exactly():
    pytest.importorskip("ml_dtypes")
    # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1); 1 + 3*2^-8 to 1 + 2^-6.
    values = np.array([1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -8 + 2.0 ** -20, -3.0])
    rounded = dtypes.round_to(values, "bfloat16")
    assert rounded.dtype == np.float32
    assert rounded.tolist() == [1.0, 1.0 + 2.0 ** -6, 1.0 + 2.0 ** -7, -3.0]


# -- the support decision ------------------------------------------------------------------------
class _Partial(Adapter):
    name = "partial"
    devices = ("cpu",)
    ops = {"softmax_with_cross_entropy": OpSupport("native", ("float32",), unsupported_features=("soft_label",))}


@pytest.mark.parametrize("device, meta, reason", [
    ("gpu", {"op": "softmax_with_cross_entropy", "dtype": "float32"}, "partial does not run on gpu"),
    ("cpu", {"op": "sampled_softmax_loss", "dtype": "float32"}, "partial has no sampled_softmax_loss"),
    ("cpu", {"op": "softmax_with_cross_entropy", "dtype": "float64"},
     "partial softmax_with_cross_entropy does not take float64"),
    ("cpu", {"op": "softmax_with_cross_entropy", "dtype": "float32", "features": ["rank1", "soft_label"]},
     "partial softmax_with_cross_entropy cannot express soft_label"),
    ("cpu", {"op": "softmax_with_cross_entropy", "dtype": "float32", "features": ["rank1"]}, None),
])
def test_why_unsupported(device, meta, reason):
    assert why_unsupported(_Partial(), device, meta) == reason


def test_why_unsupported_takes_an_impl_name():
    assert why_unsupported("numpy", "cpu", {"op": "sampled_softmax_loss", "dtype": "bfloat16"}) is None
    assert why_unsupported("paddle-legacy", "cpu", {"op": "sampled_softmax_loss", "dtype": "float32"}) \
        == "paddle-legacy has no sampled_softmax_loss"


def test_op_support_rejects_an_unknown_dtype():
    with pytest.raises(ValueError, match="dtype"):
        OpSupport("native", ("float32", "fp16"))


# -- structured comparison records ---------------------------------------------------------------
def _case():
    meta = {"id": "t", "op": "softmax_with_cross_entropy", "dtype": "float64", "logit_scale": 1.0,
            "params": {"axis": -1}}
    golden = {"loss": np.array([[1.0], [np.inf], [2.0]]), "grad/logits": np.zeros((3, 4)),
              "softmax": np.full((3, 4), 0.25)}
    inputs = {"logits": np.zeros((3, 4)), "label": np.zeros((3, 1), dtype=np.int64),
              "upstream": np.ones((3, 1))}
    return Case(meta, inputs, golden)


def test_compare_records_follow_the_errors_contract():
    case = _case()
    outputs = {"loss": np.array([[1.0], [np.nan], [2.0]]), "grad/logits": np.zeros(12)}  # no softmax
    status, errors, tol, message = compare.compare(case, outputs)
    records = json.loads(json.dumps({e.name: e.record() for e in errors}, allow_nan=False))
    assert status == "fail"
    assert records["softmax"] == {"abs": "inf", "rel": "inf", "ratio": "inf", "where": [], "problem": "missing",
                                  "actual": None, "expected": None}
    assert records["grad/logits"]["problem"] == "shape"
    assert records["grad/logits"]["actual"] == [12] and records["grad/logits"]["expected"] == [3, 4]
    assert records["loss"] == {"abs": "inf", "rel": "inf", "ratio": "inf", "where": [1, 0], "problem": "nonfinite",
                               "actual": "nan", "expected": "inf"}
    assert message == ("grad/logits: shape (12,), expected (3, 4) at (); loss: nan where inf was expected at (1, 0); "
                       "softmax: missing")


def test_compare_numeric_record_names_the_worst_element():
    case = _case()
    case.golden = {"loss": np.array([[1.0], [4.0], [2.0]])}
    error = 3 * tol_abs(case, 1.0)  # three times what element (0, 0) allows
    outputs = {"loss": np.array([[1.0 + error], [4.0], [2.0]])}
    status, errors, tol, message = compare.compare(case, outputs)
    record = errors[0].record()
    assert status == "fail" and record["problem"] == "" and record["where"] == [0, 0]
    assert record["ratio"] == pytest.approx(3.0)
    assert record["actual"] == 1.0 + error and record["expected"] == 1.0
    assert record["abs"] == pytest.approx(error) and record["rel"] == pytest.approx(error / 4.0)
    assert message.startswith("loss: max error")


def tol_abs(case, golden):
    tol = compare.tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
    return tol.rtol * (abs(golden) + compare.output_scales(case)["loss"])


@pytest.mark.parametrize("impl", list(ADAPTER_MODULES))
def test_adapters_name_the_convention_of_an_op_that_has_conventions(impl):
    """An op documented differently by each framework (cross_entropy) is judged against the golden of
    the convention the adapter declares: without one it would be judged against another framework's."""
    from impls.reference import CONVENTIONS

    for op, support in get_adapter(impl).ops.items():
        if ops.OPS[op].conventions:
            assert support.convention in CONVENTIONS, (impl, op, support.convention)
        else:
            assert support.convention == "", (impl, op)


def test_convention_table_names_every_convention_on_every_axis():
    from impls.reference import CONVENTIONS

    for axis, rules in ops.CROSS_ENTROPY_CONVENTIONS.items():
        assert list(rules) == list(CONVENTIONS), axis
        assert all(rule.text and rule.source for rule in rules.values()), axis
