"""Found by `conformance search`: torch|sampled_softmax_with_cross_entropy|fail|loss|nonfinite(actual inf, expected finite)|dtype_limits+multi_true+per_row_negatives+remove_accidental_hits

loss: inf where 3.4028234663852886e+38 was expected at (0, 0)
Runs torch alone (its adapter imports that one framework) on the stored inputs of
cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-normal-T2-h3ce2254d5b-f32.npz and asserts the divergence (conformance/reproduce.py); exit status 0 means it still shows.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from conformance.reproduce import reproduce  # noqa: E402  (no framework until the adapter loads)

reproduce(ROOT / 'cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-normal-T2-h3ce2254d5b-f32.npz', 'torch', 'fail', 'loss')
