"""Found by `conformance search`: tensorflow|sampled_softmax_with_cross_entropy|fail|grad/logits|nonfinite(actual finite, expected nan)|accidental_hits+per_row_negatives+remove_accidental_hits

grad/logits: 0.5 where nan was expected at (0, 1); loss: inf where nan was expected at (0, 0)
Runs tensorflow alone (its adapter imports that one framework) on the stored inputs of
cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-neg_inf-T1-h6e45d21f18-f32.npz and asserts the divergence (conformance/reproduce.py); exit status 0 means it still shows.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from conformance.reproduce import reproduce  # noqa: E402  (no framework until the adapter loads)

reproduce(ROOT / 'cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-neg_inf-T1-h6e45d21f18-f32.npz', 'tensorflow', 'fail', 'grad/logits')
