"""The op ``sampled_softmax_loss``: TensorFlow's weights-based sampled softmax: samples shared by the batch, sharded weights."""
from __future__ import annotations

import math

import numpy as np

from impls.ops.core import BenchGrid
from impls.ops.core import (Input, OpInfo, Param, SearchSpace, SAMPLED_FEATURES, all_biases, bench_floats,
                            bench_probabilities, bench_sampled, bench_upstream, logits_grad_scale, max_abs, sampled_width,
                            weight_shards)


# --------------------------------------------------------------------------------------------
# sampled_softmax_loss
# --------------------------------------------------------------------------------------------
def _ssl_length(params, shapes):
    batch, dim = shapes["inputs"]
    return max(sampled_width(params, shapes), dim, batch)


def _ssl_logits(params, inputs):
    """A bound of every logit: |x| . |w| + |b| for all classes (small corpus cases only), and the
    ``-log(expected count)`` terms."""
    shards = weight_shards(inputs)
    w = np.concatenate(shards) if len(shards) > 1 else shards[0]
    bound = np.abs(inputs["inputs"]) @ np.abs(w).T + np.abs(all_biases(inputs))  # [B, K]
    return np.concatenate([bound.ravel(), np.log(inputs["true_expected_count"]).ravel(),
                           np.log(inputs["sampled_expected_count"])])


def _ssl_kwargs(kwargs):
    """Weights (and biases) as one array or the list of ``num_shards`` shards; the sampled values as
    TensorFlow's ``sampled_values`` triple."""
    count = kwargs.pop("num_shards", 0)
    if count:
        kwargs["weights"] = [kwargs.pop("weights/%d" % i) for i in range(count)]
    if "biases/0" in kwargs:  # valid: shards laid out like the weights (feature sharded_biases)
        kwargs["biases"] = [kwargs.pop("biases/%d" % i) for i in range(count)]
    kwargs["sampled_values"] = (kwargs.pop("sampled_candidates"), kwargs.pop("true_expected_count"),
                                kwargs.pop("sampled_expected_count"))
    return kwargs


def _ssl_synthesize(rng, shape, dtype):
    batch, classes, samples, dim, num_true = (shape[k] for k in ("batch", "classes", "samples", "dim", "num_true"))
    labels, candidates, true_expected, sampled_expected, features = bench_sampled(rng, shape)
    params = SAMPLED_SOFTMAX_LOSS.default_params(num_sampled=samples, num_classes=classes, num_true=num_true)
    inputs = {
        "weights": bench_floats(rng, (classes, dim), 1.0 / np.sqrt(dim), dtype),
        "biases": bench_floats(rng, (classes,), 0.1, dtype),
        "labels": labels,
        "inputs": bench_floats(rng, (batch, dim), 1.0, dtype),
        "sampled_candidates": np.asarray(candidates, dtype=np.int64),
        "true_expected_count": bench_probabilities(true_expected, dtype),
        "sampled_expected_count": bench_probabilities(sampled_expected, dtype),
        "upstream": bench_upstream(rng, (batch,), dtype),
    }
    return params, inputs, features


# The benchmark (conformance/bench/grid.py): the weights-based op costs (samples + batch) * dim, never
# batch * classes; at 10^6 classes its peak memory stays far below a [batch, classes] array (4 GB here).
_BENCH_GRID = BenchGrid(
    default=[({"batch": 64, "classes": 10000, "samples": 64, "dim": 64}, ("float32",)),
             ({"batch": 512, "classes": 10000, "samples": 512, "dim": 1024}, ("float32",)),
             ({"batch": 512, "classes": 100000, "samples": 1024, "dim": 256}, ("float32", "float16", "bfloat16")),
             ({"batch": 4096, "classes": 100000, "samples": 8192, "dim": 128}, ("float32",)),
             ({"batch": 1024, "classes": 1000000, "samples": 1024, "dim": 64}, ("float32",))],
    full_arrays=lambda shape: [shape["classes"] * shape["dim"]])  # the weights


SAMPLED_SOFTMAX_LOSS = OpInfo(
    "sampled_softmax_loss", "sampled, weights-based",
    params=[
        Param("num_sampled", doc="S, candidates shared by the batch"),
        Param("num_classes", doc="K"),
        Param("num_true", 1, "T, true labels per example"),
        Param("remove_accidental_hits", True, "candidates equal to an example's label get no softmax weight"),
        Param("partition_strategy", "mod", "how shards hold the classes, as tf.nn.embedding_lookup: 'mod' or 'div'"),
        Param("num_shards", 0, "0: weights is one array; P >= 1: a list of P shards weights/<i>"),
    ],
    inputs=[
        # d loss / d w_c sums the batch: B terms of up to z*u*|x| drift like a random walk, sqrt(B).
        Input("weights", "float", "[K, D], or shards weights/<i>", differentiable=True,
              grad_scale=lambda inputs, z, u: 2.0 * z * u * max_abs(inputs["inputs"])
              * math.sqrt(inputs["inputs"].shape[0])),
        Input("biases", "float", "[K], or shards biases/<i> laid out like the weights", differentiable=True,
              grad_scale=logits_grad_scale),
        Input("labels", "int", "[B, T]"),
        # d loss / d x: softmax-weighted weight rows, true and sampled parts each up to z*u*|w|.
        Input("inputs", "float", "[B, D]", differentiable=True,
              grad_scale=lambda inputs, z, u: 2.0 * z * u * max_abs(*weight_shards(inputs))),
        Input("sampled_candidates", "int", "[S], shared by the batch"),
        Input("true_expected_count", "float", "[B, T]"),
        Input("sampled_expected_count", "float", "[S]"),
        Input("upstream", "float", "[B]"),
    ],
    features=SAMPLED_FEATURES + [
        ("shard_list", "weights given as a list of shards (num_shards >= 1)"),
        ("sharded", "more than one shard"),
        ("partition_mod", "'mod' sharding with more than one shard"),
        ("partition_div", "'div' sharding with more than one shard"),
        ("uneven_shards", "shards of different row counts"),
        ("sharded_biases", "biases given as shards laid out like the weights (as tf.nn.embedding_lookup takes them)"),
        ("broadcast_true_expected_count", "true_expected_count of shape [B, 1] for num_true > 1"),
    ],
    accumulation_length=_ssl_length,
    softmax_logits=_ssl_logits,
    bench_shape=("batch", "classes", "samples", "dim", "num_true"),
    synthesize=_ssl_synthesize,
    reference_kwargs=_ssl_kwargs,
    search=SearchSpace(
        "ssl", sizes=[("batch", (0, 16)), ("num_classes", (2, 100000)), ("dim", (1, 16)), ("num_true", (1, 3)),
                      ("num_sampled", (1, 64)), ("shards", (0, 4))],
        choices=[("strategy", ("mod", "div")), ("hits", ("none", "some", "all")), ("remove", (True, False)),
                 ("duplicates", (False, True)), ("scale", (0.5, 4.0, 40.0)), ("sharded_biases", (False, True)),
                 ("broadcast_true_count", (False, True))],
        special_input="inputs", probabilities=("true_expected_count", "sampled_expected_count"),
        batch_inputs=("labels", "inputs", "true_expected_count", "upstream"),
        name=[(dict(SearchSpace.WITH_SPECIAL, duplicates=(True,)), "dup-{remove}-{special}"),
              ({"duplicates": (True,)}, "dup-{remove}-scale{scale:g}"),
              (SearchSpace.WITH_SPECIAL, "{special}"), ({}, "scale{scale:g}")],
        name_values={"remove": {True: "removed", False: "kept"}}),
    bench_grid=_BENCH_GRID,
)
