"""The op ``softmax_with_cross_entropy``: Paddle's full-softmax API: hard/soft labels, ``ignore_index``, any ``axis``, ``return_softmax``."""
from __future__ import annotations

import numpy as np

from impls.ops.core import BenchGrid
from impls.ops.core import (Input, OpInfo, Param, SearchSpace, bench_floats, bench_upstream, label_grad_scale,
                            logits_grad_scale)


# --------------------------------------------------------------------------------------------
# softmax_with_cross_entropy
# --------------------------------------------------------------------------------------------
def _swce_length(params, shapes):
    shape = shapes["logits"]
    return shape[params["axis"] % len(shape)]


def _swce_synthesize(rng, shape, dtype):
    batch, classes = shape["batch"], shape["classes"]
    inputs = {"logits": bench_floats(rng, (batch, classes), 2.0, dtype),
              "label": rng.integers(0, classes, size=(batch, 1), dtype=np.int64),
              "upstream": bench_upstream(rng, (batch, 1), dtype)}
    return SOFTMAX_WITH_CROSS_ENTROPY.default_params(), inputs, []


# The benchmark (conformance/bench/grid.py): the full softmax is the baseline sampled softmax replaces;
# small, large batch and many classes in float32, the 16-bit dtypes at one shape.
_BENCH_GRID = BenchGrid(
    default=[({"batch": 64, "classes": 1000}, ("float32",)),
             ({"batch": 4096, "classes": 1000}, ("float32",)),
             ({"batch": 256, "classes": 100000}, ("float32",)),
             ({"batch": 64, "classes": 10000}, ("float16", "bfloat16"))],
    full_arrays=lambda shape: [shape["batch"] * shape["classes"]])  # the logits


SOFTMAX_WITH_CROSS_ENTROPY = OpInfo(
    "softmax_with_cross_entropy", "full softmax",
    params=[
        Param("soft_label", False, "label is a distribution over the classes (same shape as logits)"),
        Param("ignore_index", -100, "hard labels equal to it get loss 0 and gradient 0"),
        Param("numeric_stable_mode", True, "Paddle's flag; the math is the same"),
        Param("return_softmax", False, "also return the softmax"),
        Param("axis", -1, "the class axis"),
    ],
    inputs=[
        Input("logits", "float", "any rank >= 1", differentiable=True, grad_scale=logits_grad_scale),
        Input("label", "label", "int64 with size 1 on axis (hard), or like logits (soft)",
              differentiable=True, differentiable_if=lambda params: bool(params.get("soft_label")),
              grad_scale=label_grad_scale),
        Input("upstream", "float", "the loss's cotangent, loss shape"),
    ],
    features=[
        ("soft_label", "soft labels"),
        ("unnormalized_soft_label", "soft label rows that do not sum to 1"),
        ("ignore_index", "some hard labels equal ignore_index"),
        ("axis_not_last", "the class axis is not the last one"),
        ("return_softmax", "return_softmax=True"),
        ("rank1", "rank-1 logits"),
        ("rank3plus", "logits of rank 3 or more"),
        ("neg_inf_logits", "-inf logits (masked classes)"),
        ("nan_logits", "a NaN logit (documented: its row's outputs are NaN)"),
        ("posinf_logits", "a +inf logit (documented: its row's outputs are NaN)"),
        ("label_rank_minus_1", "hard labels without the class axis ([N] for [N, C] logits; Paddle's rule inserts it)"),
    ],
    accumulation_length=_swce_length,
    softmax_logits=lambda params, inputs: inputs["logits"],
    bench_shape=("batch", "classes"),
    synthesize=_swce_synthesize,
    softmax_output=True,
    search=SearchSpace(
        "swce", sizes=[("batch", (0, 16)), ("classes", (1, 100000))],
        choices=[("rank", (2, 1, 3, 4)), ("axis_last", (True, False)), ("soft", (False, True)),
                 ("unnormalized", (False, True)), ("ignore", (None, "single", "row", "all")),
                 ("ignore_index", (-100, -1, 0)), ("return_softmax", (False, True)), ("stable", (True, False)),
                 ("label_rank_minus_1", (False, True)),
                 ("kind", ("normal", "equal", "offset", "pm1e4", "spread"))],
        special_input="logits", batch_inputs=("logits", "label", "upstream"), label_ends=True,
        name=[({"soft": (True,), "unnormalized": (True,), "specials": (None,)}, "soft-unnormalized{stable}"),
              ({"soft": (False,), "ignore": ("single", "row", "all")}, "ignore-{kind}-{soft}{stable}"),
              ({}, "{kind}-{soft}{stable}")],
        name_values={"soft": {True: "soft", False: "hard"}, "stable": {True: "", False: "-unstable"}}),
    bench_grid=_BENCH_GRID,
)
