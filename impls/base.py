"""The one shape every adapter has.

An adapter module defines a subclass of :class:`Adapter` named ``ADAPTER`` with:

* ``name``: the impl name used on the command line and in reports (``torch``, ``paddle-legacy``...);
* ``devices``: the devices it can run on (``"cpu"``, ``"gpu"``);
* ``ops``: for each op it can run, an :class:`OpSupport` saying whether the framework computes the op
  natively or the adapter composes it, which dtypes, and which case features it cannot express;
* ``load(device)``: import the framework (only here, never at module import, so the core can read
  the declarations without importing a framework) and return its version string;
* ``run(case)``: compute one case and return flat outputs (see :func:`impls.caseio.flatten_gradients`)
  as NumPy arrays.  Gradients are those of ``sum(case.upstream * loss)``.

An adapter never repairs a framework's answer: what the framework returns is what is compared.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, Optional, Tuple

OPS = ("softmax_with_cross_entropy", "sampled_softmax_with_cross_entropy", "sampled_softmax_loss")
ALL_DTYPES = ("float16", "bfloat16", "float32", "float64")


class Unsupported(Exception):
    """Raised by ``run`` when a case turns out to be inexpressible in the framework."""


class OpSupport:
    """How an impl handles one op."""

    def __init__(self, mode: str, dtypes=ALL_DTYPES, unsupported_features=(), note: str = ""):
        if mode not in ("native", "composed"):
            raise ValueError("mode: expected 'native' or 'composed', got %r" % (mode,))
        self.mode = mode
        self.dtypes: FrozenSet[str] = frozenset(dtypes)
        self.unsupported_features: FrozenSet[str] = frozenset(unsupported_features)
        self.note = note

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "dtypes": sorted(self.dtypes),
            "unsupported_features": sorted(self.unsupported_features),
            "note": self.note,
        }


class Adapter:
    name = ""
    devices: Tuple[str, ...] = ("cpu",)
    ops: Dict[str, OpSupport] = {}

    def __init__(self):
        self.device = None

    def why_unsupported(self, meta: dict, device: str) -> Optional[str]:
        """``None`` when this impl can express the case on ``device``, else the reason why not."""
        if device not in self.devices:
            return "%s does not run on %s" % (self.name, device)
        support = self.ops.get(meta["op"])
        if support is None:
            return "%s has no %s" % (self.name, meta["op"])
        if meta["dtype"] not in support.dtypes:
            return "%s %s does not take %s" % (self.name, meta["op"], meta["dtype"])
        missing = sorted(support.unsupported_features.intersection(meta.get("features", ())))
        if missing:
            return "%s %s cannot express %s" % (self.name, meta["op"], ", ".join(missing))
        return None

    def load(self, device: str) -> str:
        raise NotImplementedError

    def run(self, case) -> dict:
        raise NotImplementedError
