"""Found by `conformance search`: torch|sampled_softmax_loss|fail|loss|nonfinite(actual inf, expected finite)|dtype_limits+multi_true+remove_accidental_hits

loss: inf where 2.5686292559171792e+38 was expected at (0,)
Runs torch alone (its adapter imports that one framework) on the stored inputs of
cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-hb20ba8345d-bf16.npz and asserts the divergence (conformance/reproduce.py); exit status 0 means it still shows.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from conformance.reproduce import reproduce  # noqa: E402  (no framework until the adapter loads)

reproduce(ROOT / 'cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-hb20ba8345d-bf16.npz', 'torch', 'fail', 'loss')
