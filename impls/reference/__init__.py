"""The oracle: every golden output of the corpus is computed here, as a textbook.

One short file per op over one shared core (``core.py``: the argument checks and the one computation,
softmax cross-entropy of rows, that every loss is made of; read its docstring first):

* ``softmax_with_cross_entropy.py``, ``sampled_softmax_with_cross_entropy.py``,
  ``sampled_softmax_loss.py``, ``cross_entropy.py``: each loss ``f`` and its analytic ``f_grad``;
* ``sampler.py``: the log-uniform candidate sampler both sampled losses document.

The op registry finds an op's functions here by name (``impls.ops.OpInfo.reference_forward``).
Plain float64 array math, generic over NumPy and CuPy; Python 3.8 with numpy 1.23 too.
"""
from __future__ import annotations

from impls.reference.core import (FLOAT_NAMES, _array_module, _check_count, _check_float, _check_int,  # noqa: F401
                                  _check_positive, _check_range, _check_shape)
from impls.reference.cross_entropy import CONVENTIONS, ConventionUndefined, cross_entropy, cross_entropy_grad
from impls.reference.sampled_softmax_loss import sampled_softmax_loss, sampled_softmax_loss_grad, shard_layout
from impls.reference.sampled_softmax_with_cross_entropy import (sampled_softmax_with_cross_entropy,
                                                                 sampled_softmax_with_cross_entropy_grad)
from impls.reference.sampler import log_uniform_candidate_sampler, log_uniform_probability
from impls.reference.softmax_with_cross_entropy import (softmax_with_cross_entropy,
                                                         softmax_with_cross_entropy_grad)

__all__ = ["softmax_with_cross_entropy", "softmax_with_cross_entropy_grad", "sampled_softmax_with_cross_entropy",
           "sampled_softmax_with_cross_entropy_grad", "sampled_softmax_loss", "sampled_softmax_loss_grad",
           "log_uniform_candidate_sampler", "log_uniform_probability", "shard_layout", "cross_entropy",
           "cross_entropy_grad", "CONVENTIONS", "ConventionUndefined"]
