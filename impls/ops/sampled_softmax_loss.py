"""The op ``sampled_softmax_loss``: TensorFlow's weights-based sampled softmax: samples shared by the batch, sharded weights."""
from __future__ import annotations

import math

import numpy as np

from impls.ops.casebuild import (ALL_DTYPES, Spec, broken, case_rng, distinct_labels, draw_candidates, expected_count,
                                 grid, upstream_values)
from impls.ops.core import (BenchGrid, Input, OpInfo, Param, SamplerLoss, SearchSpace, SAMPLED_FEATURES, all_biases, bench_floats,
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


# --------------------------------------------------------------------------------------------
# Its corpus cases (conformance/corpus.py stores them) and the search's recipes
# --------------------------------------------------------------------------------------------
def make_case(name, batch=5, num_classes=40, dim=6, num_true=1, num_sampled=7, dtype="float64", shards=0,
              strategy="mod", hits="none", remove=True, duplicates=False, scale=0.5, sharded_biases=False,
              broadcast_true_count=False, tags=()):
    """A case of ``batch`` examples of dimension ``dim``, ``num_classes`` weight rows (one matrix, or
    ``shards`` shards by ``strategy``), ``num_true`` labels and ``num_sampled`` candidates shared by the
    batch, with accidental ``hits`` ("none", "some", "all") and ``duplicates``; the inputs drawn from
    the name's own seed."""
    from impls import reference  # noqa: PLC0415 - the oracle's shard layout, loaded when a case is made

    rng = case_rng("ssl-" + name + dtype)
    weights = grid(rng, (num_classes, dim), scale)
    biases = grid(rng, (num_classes,), scale)
    inputs = grid(rng, (batch, dim), 1.0)
    if hits == "all":  # every row's labels contain every candidate
        candidates = rng.choice(num_classes, size=num_sampled, replace=False)
        labels = np.stack([rng.permutation(np.resize(candidates, num_true)) for _ in range(batch)])
        candidates, true_q, sampled_q = candidates, None, None
    else:
        labels = distinct_labels(rng, batch, num_true, num_classes)
        seed = int(rng.integers(2**31))
        candidates, true_q, sampled_q = draw_candidates(labels, num_sampled, num_classes, seed, unique=not duplicates)
        hit = np.isin(candidates, labels)
        if hits == "none" and hit.any():
            free = np.setdiff1d(np.arange(num_classes), np.concatenate([labels.ravel(), candidates]))
            if free.size < hit.sum():
                raise ValueError("hits: no free classes to avoid accidental hits in case %s" % name)
            candidates = candidates.copy()
            candidates[hit] = free[: int(hit.sum())]
        elif hits == "some" and not hit.any():
            candidates = candidates.copy()
            candidates[0] = labels[0, 0]
    if duplicates:
        candidates = candidates.copy()
        candidates[-1] = candidates[0]
    labels = labels.astype(np.int64)
    candidates = candidates.astype(np.int64)
    if true_q is None or hits != "none" or duplicates:
        true_q = expected_count(labels, num_classes, num_sampled)
        sampled_q = expected_count(candidates, num_classes, num_sampled)
    if broadcast_true_count:  # valid: [B, 1] broadcasts over the num_true columns
        true_q = true_q[:, :1]
    features = ["multi_true"] if num_true > 1 else []
    features += ["broadcast_true_expected_count"] if broadcast_true_count else []
    features += ["accidental_hits"] if np.isin(candidates, labels).any() else []
    features += ["remove_accidental_hits"] if remove else []
    features += ["duplicate_samples"] if duplicates else []
    arrays = {"biases": biases, "labels": labels, "inputs": inputs, "sampled_candidates": candidates,
              "true_expected_count": true_q, "sampled_expected_count": sampled_q,
              "upstream": upstream_values(rng, (batch,))}
    if shards:
        layout = reference.shard_layout(num_classes, shards, strategy)
        shard_rows = [np.arange(num_classes)[p::shards] for p in range(shards)] if strategy == "mod" else \
            np.split(np.arange(num_classes), np.cumsum(layout)[:-1])
        for p, rows in enumerate(shard_rows):
            arrays["weights/%d" % p] = weights[rows]
            if sharded_biases:  # valid: tf.nn.embedding_lookup reads biases shards like the weights
                arrays["biases/%d" % p] = biases[rows]
        if sharded_biases:
            del arrays["biases"]
            features.append("sharded_biases")
        features += ["shard_list"] + (["sharded", "partition_" + strategy] if shards > 1 else [])
        features += ["uneven_shards"] if len(set(layout)) > 1 else []
    else:
        arrays["weights"] = weights
    params = {"num_sampled": num_sampled, "num_classes": num_classes, "num_true": num_true,
              "remove_accidental_hits": remove, "partition_strategy": strategy, "num_shards": shards}
    layout_text = "%d %s shards" % (shards, strategy) if shards else "one weight matrix"
    description = ("B=%d, K=%d, D=%d, T=%d, S=%d shared, %s, accidental hits: %s (%s)%s"
                   % (batch, num_classes, dim, num_true, num_sampled, layout_text, hits,
                      "removed" if remove else "kept", ", duplicate candidates" if duplicates else ""))
    tags = ["K%d" % num_classes, "T%d" % num_true, "hits-" + hits] + (["%s%d" % (strategy, shards)] if shards
                                                                      else []) + list(tags)
    return Spec(name, SAMPLED_SOFTMAX_LOSS.name, dtype, params, arrays, description, tags, features)


def cases():
    """The op's valid corpus cases, in corpus order."""
    for dtype in ALL_DTYPES:
        yield make_case("base", dtype=dtype, tags=["base"])
    for num_true in (1, 2, 3, 4):
        for dtype in ("float32", "float64"):
            yield make_case("T%d" % num_true, num_true=num_true, dtype=dtype, hits="some")
    for hits in ("none", "some", "all"):
        for remove in (True, False):
            for dtype in ("float32", "float64"):
                yield make_case("T3-hits-%s-%s" % (hits, "removed" if remove else "kept"), num_true=3,
                                num_sampled=3 if hits == "all" else 7, hits=hits, remove=remove, dtype=dtype,
                                tags=["hits"])
    for remove in (True, False):
        yield make_case("dup-%s" % ("removed" if remove else "kept"), duplicates=True, hits="some", remove=remove,
                        tags=["duplicates"])
    for strategy in ("mod", "div"):
        for shards in (1, 2, 3, 4):
            for dtype in ("float32", "float64"):
                yield make_case("T2-hits-%s%d" % (strategy, shards), num_classes=11, num_true=2, shards=shards,
                                strategy=strategy, hits="some", dtype=dtype, tags=["shards"])
        yield make_case("even-%s4" % strategy, num_classes=12, shards=4, strategy=strategy, tags=["shards"])
        yield make_case("K1000-%s3" % strategy, num_classes=1000, dim=16, num_sampled=64, shards=3, strategy=strategy,
                        dtype="float32", tags=["shards", "classes"])
    yield make_case("K2", batch=4, num_classes=2, num_sampled=1, hits="some", tags=["classes"])
    yield make_case("K1000", batch=8, num_classes=1000, dim=16, num_sampled=64, dtype="float32", tags=["classes"])
    yield make_case("K100000", batch=4, num_classes=100000, dim=8, num_sampled=256, dtype="float32", tags=["classes"])
    yield make_case("large-logits", scale=40.0, hits="some", tags=["extreme"])
    yield make_case("large-logits", scale=40.0, hits="some", dtype="float32", tags=["extreme"])
    yield make_case("sharded-biases-mod3", num_classes=11, shards=3, strategy="mod", sharded_biases=True,
                    tags=["shards"])
    yield make_case("T2-true-count-B1", num_true=2, hits="some", broadcast_true_count=True, tags=["unusual"])


def invalid_cases(dtype):
    """Bad input of this op in ``dtype`` (see :func:`impls.ops.casebuild.broken`)."""
    weights = make_case("base", dtype=dtype)
    sharded = make_case("T2-hits-div3", num_classes=11, num_true=2, shards=3, strategy="div", hits="some", dtype=dtype)
    labels, cands = weights.inputs["labels"], weights.inputs["sampled_candidates"]
    yield broken(weights, "ssl-strategy", "partition_strategy", "an unknown partition_strategy",
                 params={"partition_strategy": "round-robin"})
    yield broken(sharded, "ssl-strategy-sharded", "partition_strategy", "an unknown partition_strategy, 3 shards",
                 params={"partition_strategy": "round-robin"})
    yield broken(sharded, "ssl-shard-sizes", "weights", "div shards of 3, 4, 4 rows (div puts the longer first)",
                 {"weights/0": sharded.inputs["weights/0"][:3],
                  "weights/2": np.concatenate([sharded.inputs["weights/2"], sharded.inputs["weights/0"][3:]])})
    yield broken(sharded, "ssl-num-classes", "weights", "num_classes=12 but the shards hold 11 rows",
                 params={"num_classes": 12})
    yield broken(weights, "ssl-label-out-of-range", "labels", "a label equal to num_classes",
                 {"labels": np.where(np.arange(5)[:, None] == 1, 40, labels)})
    yield broken(weights, "ssl-candidate-out-of-range", "sampled_candidates", "a candidate equal to num_classes",
                 {"sampled_candidates": np.where(np.arange(7) == 3, 40, cands)})
    yield broken(weights, "ssl-candidate-negative", "sampled_candidates", "a negative candidate",
                 {"sampled_candidates": np.where(np.arange(7) == 3, -1, cands)})
    yield broken(weights, "ssl-true-count-shape", "true_expected_count", "true_expected_count [B+1, T]",
                 {"true_expected_count": np.concatenate([weights.inputs["true_expected_count"]] * 2)[:6]})
    yield broken(weights, "ssl-sampled-count-zero", "sampled_expected_count", "a zero sampled expected count",
                 {"sampled_expected_count": np.where(np.arange(7) == 0, 0.0,
                                                     weights.inputs["sampled_expected_count"])})
    yield broken(weights, "ssl-num-true", "labels", "num_true=2 with one label column", params={"num_true": 2})
    yield broken(weights, "ssl-dim", "weights", "weights of dim 5 for inputs of dim 6",
                 {"weights": weights.inputs["weights"][:, :5]})
    yield broken(weights, "ssl-batch", "labels", "labels for one example too many",
                 {"labels": np.concatenate([labels, labels[:1]])})
    yield broken(weights, "ssl-num-sampled", "sampled_candidates", "num_sampled=8 with 7 candidates",
                 params={"num_sampled": 8})


def search_case(name, recipe, space):
    """The case of a ``conformance search`` recipe (its batch at least 1) and the axis its batch is on."""
    r = recipe
    classes = max(2, min(r["num_classes"], space.max_elements // r["dim"]))
    num_true = min(r["num_true"], classes - 1)
    shards = min(r["shards"], classes)
    spec = make_case(name, batch=r["batch"], num_classes=classes, dim=r["dim"], num_true=num_true,
                     num_sampled=min(r["num_sampled"], classes - num_true), dtype=r["dtype"], shards=shards,
                     strategy=r["strategy"], hits=r["hits"], remove=r["remove"], duplicates=r["duplicates"],
                     scale=r["scale"], sharded_biases=bool(shards) and r["sharded_biases"],
                     broadcast_true_count=num_true > 1 and r["broadcast_true_count"])
    return spec, 0


# --------------------------------------------------------------------------------------------
# Through the loss (``conformance sampler``): tf.nn.sampled_softmax_loss drawing its own candidates
# --------------------------------------------------------------------------------------------
SAMPLER_DIM = 8  # the fixed problem's input dimension


def _sampler_problem(rng, classes, labels):
    return {"weights": rng.normal(size=(classes, SAMPLER_DIM)).astype(np.float32),
            "biases": rng.normal(size=classes).astype(np.float32), "labels": labels,
            "inputs": rng.normal(size=(len(labels), SAMPLER_DIM)).astype(np.float32)}


def _sampler_oracle_case(arrays, d, f64, remove_accidental_hits):
    """Draw ``d``: the candidates and expected counts the loss drew, as ``sampled_values``."""
    from impls import reference  # noqa: PLC0415 - the oracle, loaded when a draw is checked

    S = arrays["candidates"].shape[1]
    params = {"num_true": 1, "num_sampled": S, "num_classes": len(f64["biases"])}
    inputs = dict(f64, sampled_candidates=arrays["candidates"][d],
                  true_expected_count=arrays["true_expected"][d].astype(np.float64)[:, None],
                  sampled_expected_count=arrays["sampled_expected"][d].astype(np.float64))
    loss = reference.sampled_softmax_loss(
        inputs["weights"], inputs["biases"], inputs["labels"], inputs["inputs"], S, params["num_classes"], 1,
        sampled_values=(inputs["sampled_candidates"], inputs["true_expected_count"],
                        inputs["sampled_expected_count"]), remove_accidental_hits=remove_accidental_hits)
    return loss, params, inputs
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
        search_case, sizes=[("batch", (0, 16)), ("num_classes", (2, 100000)), ("dim", (1, 16)), ("num_true", (1, 3)),
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
    cases=cases,
    invalid_cases=invalid_cases,
    sampler_loss=SamplerLoss(_sampler_problem, _sampler_oracle_case, loss_shape=lambda draws, rows: (draws, rows)),
    bench_grid=_BENCH_GRID,
)
