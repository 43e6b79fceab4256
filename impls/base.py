"""The one shape every adapter has.

An adapter module defines a subclass of :class:`Adapter` named ``ADAPTER`` with:

* ``name``: the impl name used on the command line and in reports (``torch``, ``paddle-legacy``...);
* ``devices``: the devices it can run on (``"cpu"``, ``"gpu"``);
* ``ops``: for each op of :data:`impls.ops.OPS` it can run, an :class:`OpSupport` saying whether the
  framework computes the op natively or the adapter composes it, which dtypes (of
  :data:`impls.dtypes.NAMES`), and which case features (of the op's ``features`` in
  ``impls/ops/``) it cannot express, and which differentiable inputs the framework gives no
  gradient for (``no_gradient``), and, for an op whose frameworks document different formulas
  (``cross_entropy``), the ``convention`` it follows (judged against that convention's golden).  :func:`impls.support.why_unsupported` reads these
  declarations; it is the one place that decides whether a case runs;
* ``load(device)``: import the framework (only here, never at module import, so the core can read
  the declarations without importing a framework) and return its version string;
* ``run(case)``: compute one case and return flat outputs (see :func:`impls.caseio.flatten_gradients`)
  as NumPy arrays.  Gradients are those of ``sum(case.upstream * loss)``.

``run`` is split in four steps so that the benchmark (``impls/bench.py``) can time the computation
alone; the base class's ``run(case)`` is ``to_numpy(compute(prepare(case), backward=True))``:

* ``prepare(case) -> state``: everything that is not the computation (untimed): the inputs converted
  to framework tensors in the case dtype on the adapter's device, static parameters read, a static
  graph looked up.  Raises :class:`Unsupported` when the case is inexpressible.
* ``compute(state, backward) -> outputs``: the timed part, returning framework objects (tensors;
  a gradient the framework keeps sparse, such as an embedding lookup's, stays sparse here).
  ``backward=False``: the forward pass only, at least ``{"loss": ...}``, computed the way a user
  would run inference (no autograd graph recorded where the framework lets one avoid it);
  ``backward=True``: the loss and the gradients of ``sum(upstream * loss)``.  It may return before
  an asynchronous device has finished: callers that time it call ``synchronize()`` around it.
  The same ``state`` may be computed any number of times.
* ``to_numpy(outputs) -> dict``: flat output names -> dense NumPy arrays (what ``run`` returns).
* ``synchronize()``: wait for the device to finish queued work (a no-op on the CPU).

Optional, for a speed contender (``numpy-fast``): ``floor_parts(case, backward)`` names the work any
implementation in its language must do on the case, ``{part: [ways]}`` (``impls/numpy_floors.py``);
the benchmark times it beside the impl (``impls.bench.time_floor``).

An adapter never repairs a framework's answer: what the framework returns is what is compared.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, Tuple

from impls import dtypes as _dtypes


class Unsupported(Exception):
    """Raised by ``run`` when a case turns out to be inexpressible in the framework."""


class NotNative(Exception):
    """Raised by ``prepare`` when the adapter, not the framework, would decide a case's outcome.

    An adapter never validates, casts, clips or reshapes an input in a way that hides what the
    framework would do with it; where it must (a guard that keeps a framework from corrupting the
    worker's memory, an API translation that cannot pass a malformed input through unchanged), it
    raises this instead, and the row is recorded as ``inapplicable``: not tested natively.
    """


class OpSupport:
    """How an impl handles one op."""

    def __init__(self, mode: str, dtypes=_dtypes.NAMES, unsupported_features=(), note: str = "", no_gradient=(),
                 convention: str = ""):
        if mode not in ("native", "composed"):
            raise ValueError("mode: expected 'native' or 'composed', got %r" % (mode,))
        for name in dtypes:
            _dtypes.info(name)  # a misspelt dtype fails here, not as a silently skipped case
        self.mode = mode
        self.dtypes: FrozenSet[str] = frozenset(dtypes)
        self.unsupported_features: FrozenSet[str] = frozenset(unsupported_features)
        # Differentiable inputs (of the op's registry entry) whose gradient the framework does not give:
        # a declared limit, so a missing ``grad/<input>`` is not compared (and is tried once per run).
        self.no_gradient: FrozenSet[str] = frozenset(no_gradient)
        self.note = note
        # For an op with documented conventions (impls.ops.OpInfo.conventions, e.g. cross_entropy): the
        # one this framework documents, whose golden outputs it is judged against ("" for other ops).
        self.convention = convention

    def noted(self, more: str) -> "OpSupport":
        """The same support with ``more`` added to the note (a compiled mode of the same adapter)."""
        return OpSupport(self.mode, self.dtypes, self.unsupported_features, self.note + more, self.no_gradient,
                         self.convention)

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "dtypes": sorted(self.dtypes),
            "unsupported_features": sorted(self.unsupported_features),
            "no_gradient": sorted(self.no_gradient),
            "note": self.note,
            "convention": self.convention,
        }


class Adapter:
    name = ""
    # An impl too slow for "every impl" runs (a compiler that needs seconds per case) sets this to
    # the reason; it then runs only when named (--impl), never by default.
    opt_in = ""
    # A compiled mode of another impl's computations (torch-compile of torch, tensorflow-xla of
    # tensorflow) names that eager impl here: the report sets the two side by side, case by case.
    compiled_from = ""
    # One API run on several backends (Keras 3 on TensorFlow, JAX, PyTorch): its impls share ``api``
    # and each names its ``backend``; the report sets the eager impls of one api side by side.
    api = ""
    backend = ""
    # op -> where this framework's API for it runs instead (an impl of its own), for the reason shown on
    # the rows of the op: e.g. TensorFlow's cross_entropy is Keras's, impl keras-tensorflow.
    ops_elsewhere: Dict[str, str] = {}
    devices: Tuple[str, ...] = ("cpu",)
    ops: Dict[str, OpSupport] = {}

    def __init__(self):
        self.device = None

    def load(self, device: str) -> str:
        raise NotImplementedError

    def prepare(self, case):
        """Untimed: the case's inputs as framework tensors on the device, and whatever else
        ``compute`` needs (op, parameters); the returned state can be computed many times."""
        raise NotImplementedError

    def compute(self, state, backward: bool = True):
        """Timed: the loss (``backward=False``) or the loss and its gradients (``backward=True``)
        as framework objects, keyed like the flat outputs or ready for ``to_numpy``."""
        raise NotImplementedError

    def to_numpy(self, outputs) -> dict:
        """Framework outputs of ``compute`` -> flat output names -> NumPy arrays."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Block until the device has finished its queued work; nothing to wait for on the CPU."""

    def run(self, case) -> dict:
        return self.to_numpy(self.compute(self.prepare(case), backward=True))
