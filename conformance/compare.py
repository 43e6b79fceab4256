"""Comparing an impl's outputs with the golden float64 outputs, under a stated tolerance.

Every output element must satisfy ``|actual - golden| <= rtol * (|golden| + scale)``
(:func:`allowed_error`, the rule's one definition, and :func:`judge_elements`, the element-wise
judgment the comparison and the reproducers share):

* ``rtol`` comes from the dtype and the accumulation length ``n`` of the case: a sum of ``n``
  rounded terms in any order drifts like a random walk, about ``sqrt(n)`` ulps, so
  ``rtol = eps(dtype) * max(16, 2 * sqrt(n))``.  ``n`` is the softmax width (K, or T+S for the
  sampled ops) and, for ``sampled_softmax_loss``, also the dot-product length D and the batch B
  that weight gradients sum over.
* ``scale`` is the magnitude at which the rounding happens, not the size of the result: a loss
  computed as ``logsumexp - logit`` carries an absolute error of ``eps * |logit|`` even when the
  loss is tiny, and ``exp(z - logsumexp)`` inherits the same relative error.  So the loss and
  softmax scale with the largest finite logit (``logit_scale``, at least 1), gradients with that
  times the upstream cotangent (and, for ``inputs``/``weights``, the other factor of the product).

The op-specific facts (the accumulation length, the logits entering the softmax, the factor each
gradient's scale carries) are declared with the op in ``impls/ops/``; the eps per dtype in
``impls/dtypes.py``.

A framework that is off by more than this is reported as ``fail``; the tolerance is never widened
to make a framework pass (known, explained deviations go in ``known_deviations.toml``).
Non-finite golden values (a documented NaN or ``+inf``) must be matched exactly.

Results stay structured: :func:`compare` returns one :class:`OutputError` per golden output; the
runner keeps them in the result row (``ResultRow.outputs``) and ``conformance/results.py`` writes
them, one CSV row per output, beside the results file (its docstring has the columns):

* ``problem`` ``""``: a numeric comparison; ``where`` is the element of the largest ``ratio``
  (|error| / allowed; above 1 fails), ``actual``/``expected`` the two values there (None when no
  golden value is finite); ``max_abs`` is the largest |error|, ``max_rel`` that over the largest |golden|.
* ``"missing"``: the impl returned no such output; ``actual``/``expected`` are None.
* ``"shape"``: ``actual``/``expected`` are the two shapes (tuples of ints); ``where`` is empty.
* ``"nonfinite"``: a non-finite value where the golden differs (or a finite golden value where the
  impl gave NaN/inf); ``actual``/``expected`` are the two values at ``where``.
* A problem other than ``""`` has ``max_abs``, ``max_rel`` and ``ratio`` ``inf``.

The human ``message`` of a result is written from these records for people (the CLI); nothing
parses it back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from impls import dtypes
from impls.ops import OPS

EPS = dtypes.EPS
MIN_ULPS = 16  # a few roundings per element: exp, log, one subtraction, the final cast
PROBLEMS = ("", "missing", "shape", "nonfinite")


@dataclass
class Tolerance:
    rtol: float
    reason: str


def accumulation_length(meta: dict, inputs_shapes: dict) -> int:
    return OPS[meta["op"]].accumulation_length(meta["params"], inputs_shapes)


def tolerance(meta: dict, inputs_shapes: dict) -> Tolerance:
    n = accumulation_length(meta, inputs_shapes)
    ulps = max(MIN_ULPS, 2.0 * math.sqrt(n))
    rtol = EPS[meta["dtype"]] * ulps
    return Tolerance(rtol, "%s: %.0f ulp (max(%d, 2*sqrt(n=%d))) x (|golden| + scale %g)"
                     % (meta["dtype"], ulps, MIN_ULPS, n, meta.get("logit_scale", 1.0)))


def output_scales(case) -> dict:
    """The rounding magnitude of every output (see the module docstring)."""
    z = float(case.meta.get("logit_scale", 1.0))
    u = float(np.max(np.abs(case.upstream.astype(np.float64)))) if case.upstream.size else 1.0
    return OPS[case.op].output_scales(case.inputs, z, u, case.params)


def json_number(value):
    """A float for JSON: itself when finite, else ``"inf"``, ``"-inf"`` or ``"nan"``."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass
class OutputError:
    name: str
    max_abs: float
    max_rel: float  # max |error| / max |golden|
    ratio: float  # worst |error| / allowed, > 1 fails
    where: tuple
    problem: str = ""  # one of PROBLEMS: "" for a numeric comparison
    actual: object = None  # the value at ``where`` (a shape tuple for "shape"; None when there is none)
    expected: object = None

    @property
    def failed(self) -> bool:
        return bool(self.problem) or self.ratio > 1.0

    def record(self) -> dict:
        """The fields as a JSON-safe dict (``abs``, ``rel``, ``ratio``, ``where``, ``problem``, ``actual``,
        ``expected``; a non-finite number as the string ``"inf"``, ``"-inf"`` or ``"nan"``, a shape as a
        list): what the search's signatures are made of (conformance/search.py)."""
        def value(v):
            if v is None:
                return None
            if isinstance(v, tuple):
                return [int(i) for i in v]
            return json_number(v)

        return {"abs": json_number(self.max_abs), "rel": json_number(self.max_rel),
                "ratio": json_number(self.ratio), "where": [int(i) for i in self.where],
                "problem": self.problem, "actual": value(self.actual), "expected": value(self.expected)}

    def sentence(self) -> str:
        """One line for people, e.g. ``loss: max error 1e-05 is 3x the tolerance at index (0, 1)``."""
        if self.problem == "missing":
            return "%s: missing" % self.name
        if self.problem == "shape":
            return "%s: shape %s, expected %s at %s" % (self.name, self.actual, self.expected, self.where)
        if self.problem == "nonfinite":
            return "%s: %r where %r was expected at %s" % (self.name, self.actual, self.expected, self.where)
        return "%s: max error %.3g is %.3gx the tolerance at index %s" % (self.name, self.max_abs, self.ratio,
                                                                          self.where)


def allowed_error(golden, rtol, scale):
    """The suite's tolerance rule, its one definition: the largest ``|actual - golden|`` accepted at
    each element, ``rtol * (|golden| + scale)`` (a non-finite golden element counts as 0 here: it
    must be matched exactly, see :func:`judge_elements`).  The comparison, the report and every
    reproducer call it; a standalone reproducer embeds this source (``conformance/standalone.py``)."""
    return rtol * (np.abs(np.where(np.isfinite(golden), golden, 0.0)) + scale)


def judge_elements(actual, golden, rtol, scale):
    """``(error, ratio, nonfinite)`` per element of ``actual`` (float64, the shape of ``golden``).

    ``error``: ``|actual - golden|`` where both are finite, else 0; ``ratio``: ``error`` over
    :func:`allowed_error` (above 1 is wrong); ``nonfinite``: a non-finite golden value that is not
    matched exactly (NaN by NaN, an inf by the same inf), or NaN/inf where the golden is finite."""
    finite = np.isfinite(golden)
    same_nonfinite = (np.isnan(actual) & np.isnan(golden)) | (actual == golden)
    nonfinite = (~finite & ~same_nonfinite) | (finite & ~np.isfinite(actual))
    both = finite & np.isfinite(actual)
    error = np.abs(np.subtract(actual, golden, out=np.zeros_like(actual), where=both))  # inf - inf: not taken
    return error, error / allowed_error(golden, rtol, scale), nonfinite


def compare_output(name, actual, golden, rtol, scale) -> OutputError:
    actual = np.asarray(actual)
    if actual.shape != golden.shape:
        return OutputError(name, math.inf, math.inf, math.inf, (), "shape",
                           tuple(actual.shape), tuple(golden.shape))
    actual = actual.astype(np.float64)
    error, ratio, nonfinite = judge_elements(actual, golden, rtol, scale)
    if nonfinite.any():
        index = tuple(int(i) for i in np.argwhere(nonfinite)[0])
        return OutputError(name, math.inf, math.inf, math.inf, index, "nonfinite",
                           float(actual[index]), float(golden[index]))
    finite = np.isfinite(golden)
    if not finite.any():
        return OutputError(name, 0.0, 0.0, 0.0, ())
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    peak = float(np.max(np.abs(golden[finite])))
    return OutputError(name, float(error.max()), float(error.max()) / peak if peak else float(error.max()),
                       float(ratio[worst]), tuple(int(i) for i in worst), "",
                       float(actual[worst]), float(golden[worst]))


def compare(case, outputs: dict) -> tuple:
    """Return ``(status, errors, tolerance, message)`` for one impl's outputs of one case.

    ``errors``: one :class:`OutputError` per golden output, in name order (a missing output has
    ``problem == "missing"``); ``message``: the failed ones as sentences joined by ``"; "``.
    """
    tol = tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
    scales = output_scales(case)
    errors = []
    for name in sorted(case.golden):
        if name not in outputs:
            errors.append(OutputError(name, math.inf, math.inf, math.inf, (), "missing"))
        else:
            errors.append(compare_output(name, outputs[name], case.golden[name], tol.rtol, scales.get(name, 1.0)))
    problems = [err.sentence() for err in errors if err.failed]
    return ("fail" if problems else "pass"), errors, tol, "; ".join(problems)
