"""The op registry: every op the suite knows, one module each (``impls/ops/<op>.py``), in table order.

An op's module holds its :class:`~impls.ops.core.OpInfo` record and everything else that is
op-specific; the generic layer (``conformance/``) reaches ops only through :data:`OPS` and
:func:`get`, never by name.  Worker side: no framework, no pandas, Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

from collections import OrderedDict

from impls.ops.core import COMMON_FEATURES, Input, OpInfo, Param, SearchSpace, bias_shards, weight_shards
from impls.ops.cross_entropy import CROSS_ENTROPY, CROSS_ENTROPY_CONVENTIONS, Convention
from impls.ops.sampled_softmax_loss import SAMPLED_SOFTMAX_LOSS
from impls.ops.sampled_softmax_with_cross_entropy import SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY
from impls.ops.softmax_with_cross_entropy import SOFTMAX_WITH_CROSS_ENTROPY

OPS = OrderedDict((op.name, op) for op in (SOFTMAX_WITH_CROSS_ENTROPY, SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY,
                                            SAMPLED_SOFTMAX_LOSS, CROSS_ENTROPY))
NAMES = tuple(OPS)

__all__ = ["OPS", "NAMES", "get", "OpInfo", "Param", "Input", "SearchSpace", "Convention", "COMMON_FEATURES",
           "CROSS_ENTROPY_CONVENTIONS", "weight_shards", "bias_shards"]


def get(name: str) -> OpInfo:
    """The :class:`OpInfo` of an op name (raises ValueError naming the known ops)."""
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise ValueError("op: expected one of %s, got %r" % (", ".join(NAMES), name)) from None
