"""Found by `conformance search`: torch|sampled_softmax_loss|error||RuntimeError|empty_batch+remove_accidental_hits

RuntimeError: cannot reshape tensor of 0 elements into shape [0, 1, -1] because the unspecified dimension size -1 can be any value and is ambiguous
Runs torch alone (its adapter imports that one framework) on the stored inputs of
cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-ha29474dc61-f32.npz and asserts the divergence; exit status 0 means it still shows.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from conformance.compare import compare  # noqa: E402  (no framework)
from impls import get_adapter  # noqa: E402  (no framework until load)
from impls.caseio import Case  # noqa: E402

case = Case.read(ROOT / 'cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-ha29474dc61-f32.npz')
adapter = get_adapter('torch')
adapter.load("cpu")
try:
    adapter.run(case)
except Exception as error:  # the divergence: the oracle answers this valid input
    print("raises: %s: %s" % (type(error).__name__, error))
else:
    raise AssertionError("no longer raises")

