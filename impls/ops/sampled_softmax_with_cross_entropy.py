"""The op ``sampled_softmax_with_cross_entropy``: Paddle's logits-based sampled softmax, with custom samples per row."""
from __future__ import annotations

import numpy as np

from impls.ops.casebuild import (ALL_DTYPES, Spec, broken, case_rng, distinct_labels, draw_candidates, expected_count,
                                 force_hits, logits_of_kind, upstream_values)
from impls.ops.core import (BenchGrid, Input, OpInfo, Param, SamplerLoss, SearchSpace, SAMPLED_FEATURES, bench_floats,
                            bench_probabilities, bench_sampled, bench_upstream, logits_grad_scale, sampled_width)


# --------------------------------------------------------------------------------------------
# Its inputs: the one place custom samples and their probabilities are put together
# --------------------------------------------------------------------------------------------
def custom_samples(labels, negatives, expected=None, num_classes=None):
    """``(customized_samples, customized_probabilities)``, both [N, T+S]: each row's T labels, then its
    S negatives (``negatives`` [S], shared by the batch, or [N, S]), and each column's expected count.

    ``expected``: ``(the labels' [N, T], the negatives' [S] or [N, S])`` as the sampler reported them;
    ``None``: each class's own expected count in S draws (:func:`~impls.ops.casebuild.expected_count`
    over ``num_classes``), whichever column it lands in (negatives that are not all the sampler's
    draws: forced hits, duplicates).
    """
    negatives = np.broadcast_to(negatives, (len(labels), np.shape(negatives)[-1]))
    samples = np.concatenate([labels, negatives], axis=1).astype(np.int64)
    if expected is None:
        return samples, expected_count(samples, num_classes, negatives.shape[1])
    true_expected, negatives_expected = expected
    return samples, np.concatenate([true_expected, np.broadcast_to(negatives_expected, negatives.shape)], axis=1)


def _sswce_logits(params, inputs):
    return np.take_along_axis(inputs["logits"], inputs["customized_samples"], 1) - np.log(
        inputs["customized_probabilities"])


def _sswce_synthesize(rng, shape, dtype):
    batch, classes, samples, num_true = (shape[k] for k in ("batch", "classes", "samples", "num_true"))
    labels, candidates, true_expected, sampled_expected, features = bench_sampled(rng, shape)
    params = SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY.default_params(num_samples=samples, num_true=num_true)
    customized_samples, probabilities = custom_samples(labels, candidates, (true_expected, sampled_expected))
    inputs = {
        "logits": bench_floats(rng, (batch, classes), 2.0, dtype),
        "label": labels,
        "customized_samples": customized_samples,
        "customized_probabilities": bench_probabilities(probabilities, dtype),
        "upstream": bench_upstream(rng, (batch, 1), dtype),
    }
    return params, inputs, features


# --------------------------------------------------------------------------------------------
# Its corpus cases (conformance/corpus.py stores them) and the search's recipes
# --------------------------------------------------------------------------------------------
def make_case(name, batch=6, num_classes=50, num_true=1, num_samples=8, dtype="float64", negatives="per_row",
              hits="none", remove=True, duplicates=False, kind="normal", tags=()):
    """A case of ``batch`` rows of ``num_classes`` logits, ``num_true`` labels and ``num_samples``
    negatives per row (each row's own, or ``"shared"``), with accidental ``hits`` ("none", "some",
    "all") and ``duplicates``; the inputs drawn from the name's own seed."""
    rng = case_rng("sswce-" + name + dtype)
    logits = logits_of_kind(rng, (batch, num_classes), 1, kind)
    labels = distinct_labels(rng, batch, num_true, num_classes)
    seed = int(rng.integers(2**31))
    if negatives == "shared":
        candidates, true_q, sampled_q = draw_candidates(labels, num_samples, num_classes, seed, unique=not duplicates)
        neg = np.broadcast_to(candidates, (batch, num_samples))
        neg_q = np.broadcast_to(sampled_q, (batch, num_samples))
    else:
        draws = [draw_candidates(labels[i:i + 1], num_samples, num_classes, seed + i, unique=not duplicates)
                 for i in range(batch)]
        neg = np.stack([d[0] for d in draws])
        true_q = np.concatenate([d[1] for d in draws])
        neg_q = np.stack([d[2] for d in draws])
    if hits == "none":  # replace accidental hits by the first class the row's labels do not use
        free = np.array([np.setdiff1d(np.arange(num_classes), row)[0] for row in labels])
        neg = np.where((neg[:, :, None] == labels[:, None, :]).any(axis=2), free[:, None], neg)
    else:
        neg = force_hits(rng, neg, labels, hits)
    if duplicates:
        neg = neg.copy()
        neg[:, -1] = neg[:, 0]
    # The sampler's expected counts where the negatives are its draws; else each class's own.
    sampler_counts = hits == "none" and not duplicates
    samples, probability = custom_samples(labels, neg, (true_q, neg_q) if sampler_counts else None, num_classes)
    has_hits = bool((neg[:, :, None] == labels[:, None, :]).any())
    features = ["per_row_negatives"] if negatives == "per_row" else []
    features += ["multi_true"] if num_true > 1 else []
    features += ["accidental_hits"] if has_hits else []
    features += ["remove_accidental_hits"] if remove else []
    features += ["duplicate_samples"] if duplicates else []
    params = {"num_samples": num_samples, "num_true": num_true, "remove_accidental_hits": remove,
              "use_customized_samples": True, "seed": 0}
    inputs = {"logits": logits, "label": labels, "customized_samples": samples,
              "customized_probabilities": probability, "upstream": upstream_values(rng, (batch, 1))}
    description = ("logits [%d, %d] (%s), T=%d, S=%d, %s negatives, accidental hits: %s (%s)%s"
                   % (batch, num_classes, kind, num_true, num_samples, negatives.replace("_", "-"), hits,
                      "removed" if remove else "kept", ", duplicate samples" if duplicates else ""))
    return Spec(name, SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY.name, dtype, params, inputs, description,
                ["K%d" % num_classes, "T%d" % num_true, negatives, "hits-" + hits, kind] + list(tags), features)


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
                yield make_case("T2-hits-%s-%s" % (hits, "removed" if remove else "kept"), num_true=2, hits=hits,
                                remove=remove, dtype=dtype, tags=["hits"])
    for remove in (True, False):
        yield make_case("dup-%s" % ("removed" if remove else "kept"), duplicates=True, hits="some", remove=remove,
                        tags=["duplicates"])
        yield make_case("shared-%s" % ("removed" if remove else "kept"), negatives="shared", hits="some",
                        remove=remove, tags=["shared"])
    yield make_case("shared-T3-dup", negatives="shared", num_true=3, duplicates=True, dtype="float32",
                    tags=["shared", "duplicates"])
    yield make_case("K2", batch=4, num_classes=2, num_samples=1, tags=["classes"])
    yield make_case("K1000", batch=8, num_classes=1000, num_samples=64, dtype="float32", tags=["classes"])
    yield make_case("K100000", batch=4, num_classes=100000, num_samples=256, dtype="float32", tags=["classes"])
    for kind in ("pm1e4", "offset", "equal"):
        yield make_case(kind, kind=kind, hits="some", tags=["extreme"])
        yield make_case(kind, kind=kind, hits="some", dtype="float32", tags=["extreme"])


def invalid_cases(dtype):
    """Bad input of this op in ``dtype`` (see :func:`impls.ops.casebuild.broken`)."""
    sampled = make_case("base", dtype=dtype)
    samples, q = sampled.inputs["customized_samples"], sampled.inputs["customized_probabilities"]
    label = sampled.inputs["label"]
    yield broken(sampled, "sswce-num-samples", "num_samples", "num_samples equal to the number of classes",
                 params={"num_samples": 50})
    yield broken(sampled, "sswce-num-true", "label", "num_true=2 with one label column", params={"num_true": 2})
    yield broken(sampled, "sswce-prob-zero", "customized_probabilities", "a zero probability",
                 {"customized_probabilities": np.where(np.arange(9) == 4, 0.0, q)})
    yield broken(sampled, "sswce-prob-negative", "customized_probabilities", "a negative probability",
                 {"customized_probabilities": np.where(np.arange(9) == 2, -0.25, q)})
    yield broken(sampled, "sswce-prob-nan", "customized_probabilities", "a NaN probability",
                 {"customized_probabilities": np.where(np.arange(9) == 6, np.nan, q)})
    yield broken(sampled, "sswce-samples-not-labels", "customized_samples",
                 "first sample column differs from the label",
                 {"customized_samples": np.concatenate([(label + 1) % 50, samples[:, 1:]], axis=1)})
    yield broken(sampled, "sswce-sample-out-of-range", "customized_samples", "a sample equal to the number of classes",
                 {"customized_samples": np.where(np.arange(9) == 5, 50, samples)})
    yield broken(sampled, "sswce-label-out-of-range", "label", "a label equal to the number of classes",
                 {"label": np.full_like(label, 50), "customized_samples": np.concatenate(
                     [np.full_like(label, 50), samples[:, 1:]], axis=1)})
    yield broken(sampled, "sswce-samples-width", "customized_samples", "samples one column short of T+S",
                 {"customized_samples": samples[:, :-1], "customized_probabilities": q[:, :-1]})
    yield broken(sampled, "sswce-logits-rank", "logits", "rank-3 logits", {"logits": sampled.inputs["logits"][None]})
    yield broken(sampled, "sswce-label-float", "label", "labels given as floats", {"label": label.astype(np.float64)})
    yield broken(sampled, "sswce-batch", "label", "one label row too few",
                 {"label": label[:-1]})


def search_case(name, recipe, space):
    """The case of a ``conformance search`` recipe (its batch at least 1) and the axis its batch is on."""
    r, batch = recipe, recipe["batch"]
    classes = max(2, min(r["num_classes"], space.max_elements // batch))
    num_true = min(r["num_true"], classes - 1)
    spec = make_case(name, batch=batch, num_classes=classes, num_true=num_true,
                     num_samples=min(r["num_samples"], classes - num_true), dtype=r["dtype"], negatives=r["negatives"],
                     hits=r["hits"], remove=r["remove"], duplicates=r["duplicates"], kind=r["kind"])
    return spec, 0


# --------------------------------------------------------------------------------------------
# Through the loss (``conformance sampler``): Paddle 1.8's layer drawing its own samples
# --------------------------------------------------------------------------------------------
def _sampler_problem(rng, classes, labels):
    return {"logits": (2.0 * rng.normal(size=(len(labels), classes))).astype(np.float32), "label": labels}


def _sampler_oracle_case(arrays, d, f64, remove_accidental_hits):
    """Draw ``d``: the layer's ``Samples`` and ``Probabilities`` (labels in front) as the custom samples."""
    from impls import reference  # noqa: PLC0415 - the oracle, loaded when a draw is checked

    S = arrays["candidates"].shape[1]
    params = {"num_true": 1, "num_samples": S}
    inputs = dict(f64, customized_samples=arrays["samples"][d],
                  customized_probabilities=arrays["probabilities"][d].astype(np.float64))
    loss = reference.sampled_softmax_with_cross_entropy(
        inputs["logits"], inputs["label"], S, 1, remove_accidental_hits, use_customized_samples=True,
        customized_samples=inputs["customized_samples"],
        customized_probabilities=inputs["customized_probabilities"])
    return loss, params, inputs
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
        search_case, sizes=[("batch", (0, 16)), ("num_classes", (2, 100000)), ("num_true", (1, 3)),
                            ("num_samples", (1, 64))],
        choices=[("negatives", ("per_row", "shared")), ("hits", ("none", "some", "all")),
                 ("remove", (True, False)), ("duplicates", (False, True)),
                 ("kind", ("normal", "equal", "offset", "pm1e4"))],
        special_input="logits", probabilities=("customized_probabilities",),
        batch_inputs=("logits", "label", "customized_samples", "customized_probabilities", "upstream"),
        name=[({}, "{kind}-T{params[num_true]}")]),
    cases=cases,
    invalid_cases=invalid_cases,
    # The loss of one call is [N, 1] (a column per row), so D calls give [D, N, 1].
    sampler_loss=SamplerLoss(_sampler_problem, _sampler_oracle_case, loss_shape=lambda draws, rows: (draws, rows, 1)),
    bench_grid=_BENCH_GRID,
)
