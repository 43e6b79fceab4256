"""Found by `conformance search`: torch|sampled_softmax_loss|error||RuntimeError|empty_batch+remove_accidental_hits

RuntimeError: cannot reshape tensor of 0 elements into shape [0, 1, -1] because the unspecified dimension size -1 can be any value and is ambiguous
Runs torch alone (its adapter imports that one framework) on the stored inputs of
cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-ha29474dc61-f32.npz and asserts the divergence (conformance/reproduce.py); exit status 0 means it still shows.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from conformance.reproduce import reproduce  # noqa: E402  (no framework until the adapter loads)

reproduce(ROOT / 'cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-ha29474dc61-f32.npz', 'torch', 'error', '')
