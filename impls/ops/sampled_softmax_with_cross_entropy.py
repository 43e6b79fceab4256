"""The op ``sampled_softmax_with_cross_entropy``: Paddle's logits-based sampled softmax, with custom samples per row."""
from __future__ import annotations

import numpy as np

from impls.ops.core import BenchGrid
from impls.ops.core import (Input, OpInfo, Param, SearchSpace, SAMPLED_FEATURES, bench_floats,
                            bench_probabilities, bench_sampled, bench_upstream, logits_grad_scale, sampled_width)


# --------------------------------------------------------------------------------------------
# sampled_softmax_with_cross_entropy
# --------------------------------------------------------------------------------------------
def _sswce_logits(params, inputs):
    return np.take_along_axis(inputs["logits"], inputs["customized_samples"], 1) - np.log(
        inputs["customized_probabilities"])


def _sswce_synthesize(rng, shape, dtype):
    batch, classes, samples, num_true = (shape[k] for k in ("batch", "classes", "samples", "num_true"))
    labels, candidates, true_expected, sampled_expected, features = bench_sampled(rng, shape)
    params = SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY.default_params(num_samples=samples, num_true=num_true)
    inputs = {
        "logits": bench_floats(rng, (batch, classes), 2.0, dtype),
        "label": labels,
        "customized_samples": np.concatenate([labels, np.broadcast_to(candidates, (batch, samples))], axis=1),
        "customized_probabilities": bench_probabilities(np.concatenate(
            [true_expected, np.broadcast_to(sampled_expected, (batch, samples))], axis=1), dtype),
        "upstream": bench_upstream(rng, (batch, 1), dtype),
    }
    return params, inputs, features


# The benchmark (conformance/bench/grid.py): the logits-based op still reads [N, K] logits and writes
# a dense [N, K] gradient.
_BENCH_GRID = BenchGrid(
    default=[({"batch": 64, "classes": 10000, "samples": 64}, ("float32", "float16", "bfloat16")),
             ({"batch": 512, "classes": 100000, "samples": 1024}, ("float32",)),
             ({"batch": 4096, "classes": 10000, "samples": 512}, ("float32",))],
    full_arrays=lambda shape: [shape["batch"] * shape["classes"]])  # the logits


SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY = OpInfo(
    "sampled_softmax_with_cross_entropy", "sampled, logits-based",
    params=[
        Param("num_samples", doc="S, sampled columns per row"),
        Param("num_true", 1, "T, true labels per row"),
        Param("remove_accidental_hits", True, "negatives equal to a row's label get no softmax weight"),
        Param("use_customized_samples", True, "always True in the corpus: every framework sees the same samples"),
        Param("seed", 0, "the sampler's seed (unused with customized samples)"),
    ],
    inputs=[
        Input("logits", "float", "[N, K]", differentiable=True, grad_scale=logits_grad_scale),
        Input("label", "int", "[N, T]"),
        Input("customized_samples", "int", "[N, T+S], the first T columns are the labels"),
        Input("customized_probabilities", "float", "[N, T+S]"),
        Input("upstream", "float", "[N, 1]"),
    ],
    features=[("per_row_negatives", "each row has its own negatives")] + SAMPLED_FEATURES,
    accumulation_length=sampled_width,
    softmax_logits=_sswce_logits,
    bench_shape=("batch", "classes", "samples", "num_true"),
    synthesize=_sswce_synthesize,
    search=SearchSpace(
        "sswce", sizes=[("batch", (0, 16)), ("num_classes", (2, 100000)), ("num_true", (1, 3)),
                        ("num_samples", (1, 64))],
        choices=[("negatives", ("per_row", "shared")), ("hits", ("none", "some", "all")),
                 ("remove", (True, False)), ("duplicates", (False, True)),
                 ("kind", ("normal", "equal", "offset", "pm1e4"))],
        special_input="logits", probabilities=("customized_probabilities",),
        batch_inputs=("logits", "label", "customized_samples", "customized_probabilities", "upstream"),
        name=[({}, "{kind}-T{params[num_true]}")]),
    bench_grid=_BENCH_GRID,
)
