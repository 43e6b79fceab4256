"""The fast NumPy/CuPy contender (impls ``numpy-fast``/``cupy-fast``): the reference's API, tuned for speed.

This is not the oracle: the golden outputs come from the textbook ``impls/reference/``, and this
module is checked against them with the same tolerances as every framework.  It is the suite's
answer to "how fast can NumPy arrays be": row blocks on a thread pool, a small ufunc buffer for
row-wise broadcasts, shift-free float32 exponentials, BLAS row sums and a bit-exact float32 -> float16
conversion (each measured and described where defined; tests/test_numpy_fast.py checks that none
of them changes a bit of any result except the shift-free exponentials, held to the suite's
tolerance).  Where numba is installed, float32 rows go through compiled row kernels instead
(``impls/numpy_fast/kernels.py``: a row's whole softmax cross-entropy in one pass while it is in cache,
rows on OpenMP threads; tests/test_numpy_kernels.py holds them to the NumPy path); the NumPy calls
below serve every other dtype and every row a kernel leaves to them.  Unlike the oracle, ``sampled_softmax_loss_grad`` returns its weight and bias gradients
as :class:`impls.caseio.SparseRows` (the sampled rows only), as the frameworks return an embedding
lookup's gradient, so its cost does not grow with ``num_classes``; the adapter densifies them for
comparison.  Valid input the oracle accepts but this
module does not (sharded ``biases``, a rank R-1 hard label, a ``[B, 1]`` ``true_expected_count``)
raises here, and the adapter declares those features unsupported.

One code path serves NumPy arrays on the CPU and CuPy arrays on the GPU: the array module is taken
from the arrays passed in and results come back as the same array type, in the input's dtype.  No
deep-learning framework is imported.  Arithmetic runs in float64 for float64 inputs and in float32
for float32/float16/bfloat16 inputs (never accumulating below float32).  In float32 the softmax
exponentials are taken without subtracting the row maximum wherever that is as accurate (see
``_SHIFT_FREE_EXP``), and the loss's final ``log(sum) - logit`` is then taken in float64.

Argument names and defaults are those of the frameworks' documentation (Paddle for the first two
losses, TensorFlow r1.4 for ``sampled_softmax_loss``).  Each loss ``f`` has an analytic ``f_grad``
taking the same arguments plus ``upstream`` and returning ``{"loss": ..., <argument>: gradient}``
for the gradient of ``sum(upstream * loss)``.

Documented behaviour for unusual but valid input (no error is raised, the answer is the limit):

* ``-inf`` logits take no probability mass; a hard label on a ``-inf`` logit gives ``+inf`` loss.
* A row whose logits along ``axis`` are all ``-inf`` has no softmax: its loss, softmax and
  gradient are NaN.  NaN logits make their row NaN; a ``+inf`` logit makes its row NaN.
* Soft labels need not sum to 1: the loss is ``-sum(label * log_softmax)`` and the gradient is the
  exact derivative ``softmax * sum(label) - label`` (not ``softmax - label``).

Invalid input raises ``ValueError`` or ``TypeError`` naming the argument and what was expected.

Layout, one module per op over a shared core:

* ``core``: array-module plumbing and argument checks, the float16 conversion, the row blocks and
  their thread pool, the switches (kernels, shift-free exponentials; set them on ``core``), row sums;
* ``full_softmax``: ``softmax_with_cross_entropy``;
* ``sampled_core``: the softmax cross-entropy over [true | sampled columns] both sampled ops share;
* ``logits_sampled``: ``sampled_softmax_with_cross_entropy``;
* ``weights_sampled``: ``sampled_softmax_loss``.

This package exports the API below and the few helpers that the tests and the floors
(``impls/numpy_floors.py``) call; the switches are not re-exported, so that setting one here
fails instead of changing nothing.

Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

from impls.numpy_fast.core import FLOAT_NAMES  # noqa: F401 - the dtype names the API takes
from impls.numpy_fast.full_softmax import softmax_with_cross_entropy, softmax_with_cross_entropy_grad
from impls.numpy_fast.logits_sampled import sampled_softmax_with_cross_entropy, sampled_softmax_with_cross_entropy_grad
from impls.numpy_fast.weights_sampled import sampled_softmax_loss, sampled_softmax_loss_grad
# The oracle's sampler and shard layout are part of the contender's API.
from impls.reference import log_uniform_candidate_sampler, log_uniform_probability, shard_layout

# Helpers that the tests and the floors (impls/numpy_floors.py) call by these names.
from impls.numpy_fast.core import (_float32_ones, _float32_to_float16, _for_blocks, _row_blocks,  # noqa: F401
                                   _row_sums, _scatter_add)
from impls.numpy_fast.full_softmax import _exp_and_sum  # noqa: F401
from impls.numpy_fast.logits_sampled import _sswce_blocks  # noqa: F401
from impls.numpy_fast.weights_sampled import _embedding_gradients  # noqa: F401
from impls.reference import _array_module  # noqa: F401

__all__ = [
    "softmax_with_cross_entropy",
    "softmax_with_cross_entropy_grad",
    "sampled_softmax_with_cross_entropy",
    "sampled_softmax_with_cross_entropy_grad",
    "sampled_softmax_loss",
    "sampled_softmax_loss_grad",
    "log_uniform_candidate_sampler",
    "log_uniform_probability",
    "shard_layout",
]
