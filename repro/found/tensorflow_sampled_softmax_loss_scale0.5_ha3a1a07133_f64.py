"""Found by `conformance search`: tensorflow|sampled_softmax_loss|fail|grad/weights/0|numeric|dtype_limits+remove_accidental_hits+shard_list

grad/weights/0: max error 1.53e-308 is 5.63e+13x the tolerance at index (0, 0)
Runs tensorflow alone (its adapter imports that one framework) on the stored inputs of
cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-ha3a1a07133-f64.npz and asserts the divergence (conformance/reproduce.py); exit status 0 means it still shows.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from conformance.reproduce import reproduce  # noqa: E402  (no framework until the adapter loads)

reproduce(ROOT / 'cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-ha3a1a07133-f64.npz', 'tensorflow', 'fail', 'grad/weights/0')
