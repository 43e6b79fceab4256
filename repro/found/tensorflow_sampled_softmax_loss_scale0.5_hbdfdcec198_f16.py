"""Found by `conformance search`: tensorflow|sampled_softmax_loss|fail|loss|nonfinite(actual nan, expected finite)|accidental_hits+remove_accidental_hits

loss: nan where 0.0 was expected at (0,)
Runs tensorflow alone (its adapter imports that one framework) on the stored inputs of
cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-hbdfdcec198-f16.npz and asserts the divergence (conformance/reproduce.py); exit status 0 means it still shows.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from conformance.reproduce import reproduce  # noqa: E402  (no framework until the adapter loads)

reproduce(ROOT / 'cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-hbdfdcec198-f16.npz', 'tensorflow', 'fail', 'loss')
