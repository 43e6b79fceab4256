"""Comparing an impl's outputs with the golden float64 outputs, under a stated tolerance.

Every output element must satisfy ``|actual - golden| <= rtol * (|golden| + scale)``:

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

A framework that is off by more than this is reported as ``fail``; the tolerance is never widened
to make a framework pass (known, explained deviations go in ``known_deviations.toml``).
Non-finite golden values (a documented NaN or ``+inf``) must be matched exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}
MIN_ULPS = 16  # a few roundings per element: exp, log, one subtraction, the final cast


@dataclass
class Tolerance:
    rtol: float
    reason: str


def accumulation_length(meta: dict, inputs_shapes: dict) -> int:
    params = meta["params"]
    if meta["op"] == "softmax_with_cross_entropy":
        shape = inputs_shapes["logits"]
        return int(shape[params["axis"] % len(shape)])
    width = params["num_true"] + params.get("num_samples", params.get("num_sampled", 0))
    if meta["op"] == "sampled_softmax_with_cross_entropy":
        return int(width)
    batch, dim = inputs_shapes["inputs"]
    return int(max(width, dim, batch))


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
    scales = {"loss": z, "softmax": z}
    for name in case.golden:
        if name in ("grad/logits", "grad/biases"):
            scales[name] = z * u
        elif name == "grad/inputs":
            w = max(float(np.max(np.abs(v))) for k, v in case.inputs.items() if k.startswith("weights"))
            scales[name] = 2.0 * z * u * w
        elif name.startswith("grad/weights"):
            x = float(np.max(np.abs(case.inputs["inputs"])))
            scales[name] = 2.0 * z * u * x * math.sqrt(case.inputs["inputs"].shape[0])
    return scales


@dataclass
class OutputError:
    name: str
    max_abs: float
    max_rel: float  # max |error| / max |golden|
    ratio: float  # worst |error| / allowed, > 1 fails
    where: tuple
    problem: str = ""  # shape or non-finite mismatch, when there is one


def compare_output(name, actual, golden, rtol, scale) -> OutputError:
    actual = np.asarray(actual)
    if actual.shape != golden.shape:
        return OutputError(name, math.inf, math.inf, math.inf, (),
                           "shape %s, expected %s" % (tuple(actual.shape), tuple(golden.shape)))
    actual = actual.astype(np.float64)
    finite = np.isfinite(golden)
    same_nonfinite = (np.isnan(actual) & np.isnan(golden)) | (actual == golden)
    bad = ~finite & ~same_nonfinite
    if bad.any() or not np.isfinite(actual[finite]).all():
        index = tuple(int(i) for i in np.argwhere(bad | (finite & ~np.isfinite(actual)))[0])
        return OutputError(name, math.inf, math.inf, math.inf, index,
                           "%r where %r was expected" % (float(actual[index]), float(golden[index])))
    if not finite.any():
        return OutputError(name, 0.0, 0.0, 0.0, ())
    error = np.where(finite, np.abs(actual - golden), 0.0)
    allowed = rtol * (np.abs(np.where(finite, golden, 0.0)) + scale)
    ratio = error / allowed
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    peak = float(np.max(np.abs(golden[finite])))
    return OutputError(name, float(error.max()), float(error.max()) / peak if peak else float(error.max()),
                       float(ratio[worst]), tuple(int(i) for i in worst))


def compare(case, outputs: dict) -> tuple:
    """Return ``(status, errors, tolerance, message)`` for one impl's outputs of one case."""
    tol = tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
    scales = output_scales(case)
    errors, problems = [], []
    for name in sorted(case.golden):
        if name not in outputs:
            problems.append("%s: missing" % name)
            continue
        err = compare_output(name, outputs[name], case.golden[name], tol.rtol, scales.get(name, 1.0))
        errors.append(err)
        if err.problem:
            problems.append("%s: %s at %s" % (name, err.problem, err.where))
        elif err.ratio > 1.0:
            problems.append("%s: max error %.3g is %.3gx the tolerance at index %s"
                            % (name, err.max_abs, err.ratio, err.where))
    return ("fail" if problems else "pass"), errors, tol, "; ".join(problems)
