"""The TensorFlow/Keras and Paddle cross_entropy adapters: what they refuse, and why, and the facts the
comparison alone would not pin down.  Each framework runs in its own subprocess (frameworks never share
a process); a framework that is not installed skips its tests."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import corpus
from impls import get_adapter
from impls.caseio import Case
from impls.support import why_unsupported

REPO = Path(__file__).resolve().parent.parent
CASES = corpus.DEFAULT_CASES_DIR / "cross_entropy"

# Runs one adapter on the named corpus cases; prints, per case, the exception's class and message or the
# outputs' dtypes and shapes, as JSON.
PROBE = """
import json, sys
from impls import get_adapter
from impls.caseio import Case
adapter = get_adapter(sys.argv[1])
adapter.load("cpu")
report = {}
for name in sys.argv[2:]:
    case = Case.read(name)
    try:
        out = adapter.run(case)
        report[case.id] = {k: [str(v.dtype), list(v.shape)] for k, v in out.items()}
    except Exception as error:
        report[case.id] = {"raised": type(error).__name__, "message": str(error)}
print("REPORT" + json.dumps(report))
"""


def _probe(impl, module, case_ids):
    if subprocess.run([sys.executable, "-c", "import " + module], capture_output=True).returncode != 0:
        pytest.skip("%s is not installed" % module)
    files = [str(CASES / (case_id + ".npz")) for case_id in case_ids]
    result = subprocess.run([sys.executable, "-c", PROBE, impl] + files, cwd=REPO, capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("REPORT"))
    return json.loads(line[len("REPORT"):])


# keras-torch's float64 mean comes back float32: known deviation keras-torch-float64-mean-in-float32.
@pytest.mark.parametrize("impl, mean_dtype", [("keras-tensorflow", "float64"), ("keras-tensorflow-xla", "float64"),
                                              ("keras-jax", "float64"), ("keras-torch", "float32")])
def test_keras_adapter_refuses_what_keras_cannot_express_and_computes_in_the_case_dtype(impl, mean_dtype):
    backend = get_adapter(impl).backend
    if subprocess.run([sys.executable, "-c", "import keras"], capture_output=True,
                      env=dict(os.environ, KERAS_BACKEND=backend)).returncode != 0:
        pytest.skip("keras on %s is not installed" % backend)
    report = _probe(impl, backend, ["cross_entropy-hard-smooth-mean-f64", "cross_entropy-invalid-xent-weight-length-f64",
                                    "cross_entropy-hard-mean-f64", "cross_entropy-soft-none-f64",
                                    "cross_entropy-hard-sw-none-f64"])
    smoothing = report["cross_entropy-hard-smooth-mean-f64"]
    assert smoothing["raised"] == "Unsupported" and "label_smoothing" in smoothing["message"]
    weight = report["cross_entropy-invalid-xent-weight-length-f64"]
    assert weight["raised"] == "NotNative" and "class weights" in weight["message"]
    # Keras computes in floatx (float32) unless the loss is given the dtype: a float64 case stays float64.
    # (autograd gives a leaf's gradient in the leaf's dtype, whatever the loss's)
    assert report["cross_entropy-hard-mean-f64"] == {"loss": [mean_dtype, []], "grad/logits": ["float64", [6, 5]]}
    soft = report["cross_entropy-soft-none-f64"]
    assert soft["loss"] == ["float64", [6]] and soft["grad/label"] == ["float64", [6, 5]]
    assert report["cross_entropy-hard-sw-none-f64"]["loss"] == ["float64", [6]]  # sample weights reach Keras


def test_tensorflow_points_its_cross_entropy_to_keras():
    why = why_unsupported(get_adapter("tensorflow"), "cpu", {"op": "cross_entropy", "dtype": "float64"})
    assert why == "tensorflow runs cross_entropy as impl keras-tensorflow (TensorFlow's loss users call is Keras's)"


def test_paddle_adapter_gives_the_documented_loss_shapes():
    report = _probe("paddle", "paddle", ["cross_entropy-soft-none-f64", "cross_entropy-r4ax1-soft-none-f64",
                                         "cross_entropy-hard-none-f64"])
    # Probability targets: documented [N_1, ..., N_k, 1] (size 1 on the class axis), squeezed to the
    # loss's registry shape; class indices: the label's shape as it is.
    assert report["cross_entropy-soft-none-f64"]["loss"] == ["float64", [6]]
    r4 = Case.read(CASES / "cross_entropy-r4ax1-soft-none-f64.npz")
    expected = list(r4.inputs["logits"].shape[:1] + r4.inputs["logits"].shape[2:])
    assert report["cross_entropy-r4ax1-soft-none-f64"]["loss"] == ["float64", expected]
    assert report["cross_entropy-hard-none-f64"]["loss"] == ["float64", [6]]
    # paddle.grad gives no label gradient for probability targets (declared no_gradient, not made zero).
    assert "grad/label" not in report["cross_entropy-soft-none-f64"]


@pytest.mark.parametrize("impl, judged", [("paddle", False), ("keras-tensorflow", False), ("keras-jax", False), ("keras-torch", False),
                                          ("torch", True)])
def test_size_1_class_axis_is_bad_input_only_where_documented_so(impl, judged):
    # Paddle documents class indices [N_1, ..., N_k, 1] and Keras squeezes them: only torch's convention
    # calls them bad input, so only an impl following it is judged on the case.
    case = Case.read(CASES / "cross_entropy-invalid-xent-label-rank-f64.npz")
    why = why_unsupported(get_adapter(impl), "cpu", case.meta)
    assert (why is None) == judged
    if not judged:
        assert "documents" in why or "squeezes" in why
