"""Found by `conformance search`: tensorflow|sampled_softmax_loss|fail|loss|nonfinite(actual nan, expected finite)|accidental_hits+remove_accidental_hits

loss: nan where 0.0 was expected at (0,)
Runs tensorflow alone (its adapter imports that one framework) on the stored inputs of
cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-hbdfdcec198-f16.npz and asserts the divergence; exit status 0 means it still shows.
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

case = Case.read(ROOT / 'cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-hbdfdcec198-f16.npz')
adapter = get_adapter('tensorflow')
adapter.load("cpu")
outputs = adapter.run(case)
status, errors, tolerance, message = compare(case, outputs)
print(message)
worst = max(errors, key=lambda e: (bool(e.problem), e.ratio))
assert status == "fail" and worst.name == 'loss', "no longer diverges: %s" % message

