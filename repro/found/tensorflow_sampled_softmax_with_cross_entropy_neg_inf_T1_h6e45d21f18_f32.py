"""Found by `conformance search`: tensorflow|sampled_softmax_with_cross_entropy|fail|grad/logits|nonfinite(actual finite, expected nan)|accidental_hits+per_row_negatives+remove_accidental_hits

grad/logits: 0.5 where nan was expected at (0, 1); loss: inf where nan was expected at (0, 0)
Runs tensorflow alone (its adapter imports that one framework) on the stored inputs of
cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-neg_inf-T1-h6e45d21f18-f32.npz and asserts the divergence; exit status 0 means it still shows.
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

case = Case.read(ROOT / 'cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-neg_inf-T1-h6e45d21f18-f32.npz')
adapter = get_adapter('tensorflow')
adapter.load("cpu")
outputs = adapter.run(case)
status, errors, tolerance, message = compare(case, outputs)
print(message)
worst = max(errors, key=lambda e: (bool(e.problem), e.ratio))
assert status == "fail" and worst.name == 'grad/logits', "no longer diverges: %s" % message

