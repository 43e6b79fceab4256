"""Found by `conformance search`: torch|softmax_with_cross_entropy|fail|grad/logits|nonfinite(actual nan, expected finite)|ignore_index+neg_inf_logits

grad/logits: nan where 0.0 was expected at (0, 0)
Runs torch alone (its adapter imports that one framework) on the stored inputs of
cases/found/softmax_with_cross_entropy/softmax_with_cross_entropy-ignore-neg_inf-hard-h4d884f4175-f64.npz and asserts the divergence (conformance/reproduce.py); exit status 0 means it still shows.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from conformance.reproduce import reproduce  # noqa: E402  (no framework until the adapter loads)

reproduce(ROOT / 'cases/found/softmax_with_cross_entropy/softmax_with_cross_entropy-ignore-neg_inf-hard-h4d884f4175-f64.npz', 'torch', 'fail', 'grad/logits')
