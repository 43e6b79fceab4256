"""Found by `conformance search`: tensorflow|sampled_softmax_with_cross_entropy|fail|loss|nonfinite(actual nan, expected finite)|per_row_negatives+remove_accidental_hits

loss: nan where 0.0 was expected at (0, 0)
Runs tensorflow alone (its adapter imports that one framework) on the stored inputs of
cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-neg_inf-T1-hdec4865896-f32.npz and asserts the divergence (conformance/reproduce.py); exit status 0 means it still shows.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from conformance.reproduce import reproduce  # noqa: E402  (no framework until the adapter loads)

reproduce(ROOT / 'cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-neg_inf-T1-hdec4865896-f32.npz', 'tensorflow', 'fail', 'loss')
