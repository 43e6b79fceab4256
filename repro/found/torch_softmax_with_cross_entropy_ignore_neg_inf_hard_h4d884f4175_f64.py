"""Found by `conformance search`: torch|softmax_with_cross_entropy|fail|grad/logits|nonfinite(actual nan, expected finite)|ignore_index+neg_inf_logits

grad/logits: nan where 0.0 was expected at (0, 0)
Runs torch alone (its adapter imports that one framework) on the stored inputs of
cases/found/softmax_with_cross_entropy/softmax_with_cross_entropy-ignore-neg_inf-hard-h4d884f4175-f64.npz and asserts the divergence; exit status 0 means it still shows.
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

case = Case.read(ROOT / 'cases/found/softmax_with_cross_entropy/softmax_with_cross_entropy-ignore-neg_inf-hard-h4d884f4175-f64.npz')
adapter = get_adapter('torch')
adapter.load("cpu")
outputs = adapter.run(case)
status, errors, tolerance, message = compare(case, outputs)
print(message)
worst = max(errors, key=lambda e: (bool(e.problem), e.ratio))
assert status == "fail" and worst.name == 'grad/logits', "no longer diverges: %s" % message

