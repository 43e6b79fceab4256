"""The op ``softmax_with_cross_entropy``: Paddle's full-softmax API: hard/soft labels, ``ignore_index``, any ``axis``, ``return_softmax``."""
from __future__ import annotations

import numpy as np

from impls.ops.casebuild import (ALL_DTYPES, Spec, broken, case_rng, ignored_positions, logits_of_kind, soft_labels,
                                 upstream_values)
from impls.ops.core import (BenchGrid, Input, OpInfo, Param, SearchSpace, bench_floats, bench_upstream, label_grad_scale,
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


# --------------------------------------------------------------------------------------------
# Its corpus cases (conformance/corpus.py stores them) and the search's recipes
# --------------------------------------------------------------------------------------------
# Per-row total weights of unnormalised soft labels (exact binary fractions; 0 means no label mass).
LABEL_SUMS = (0.5, 2.0, 1.0, 0.25, 3.0, 0.0)


def make_case(name, shape, axis=-1, dtype="float64", soft=False, ignore=None, ignore_index=-100,
              return_softmax=False, stable=True, kind="normal", unnormalized=False, label_rank_minus_1=False, tags=()):
    """A case of logits of ``shape`` (``kind``: see :func:`~impls.ops.casebuild.logits_of_kind`) with hard
    or ``soft`` labels; ``ignore`` positions (see :func:`~impls.ops.casebuild.ignored_positions`) labelled
    ``ignore_index``; the inputs drawn from the name's own seed."""
    rng = case_rng("swce-" + name + dtype)
    ax = axis % len(shape)
    loss_shape = tuple(1 if i == ax else n for i, n in enumerate(shape))
    logits = logits_of_kind(rng, shape, ax, kind)
    features, description = [], ["logits %s (%s), axis %d" % (list(shape), kind, axis)]
    if soft:
        label = soft_labels(rng, shape, ax)
        if kind == "neg_inf":  # no label mass on a -inf class (that loss would be +inf)
            label = np.where(np.isinf(logits), 0.0, label)
            label = label / label.sum(axis=ax, keepdims=True)
            label = np.round(label * 64) / 64
            label = _fix_sum(label, ax)
        features.append("soft_label")
        description.append("soft labels")
        if unnormalized:  # valid input: the loss is -sum(label * log_softmax), whatever the total
            rows = np.moveaxis(label, ax, -1)
            sums = np.resize(np.asarray(LABEL_SUMS), rows.shape[:-1])[..., None]
            label = np.moveaxis(rows * sums, -1, ax)
            features.append("unnormalized_soft_label")
            description.append("rows summing to %s" % ", ".join("%g" % v for v in LABEL_SUMS))
    else:
        finite = np.isfinite(logits)
        label = np.zeros(loss_shape, dtype=np.int64)
        for index in np.ndindex(*loss_shape):
            row = [slice(None) if i == ax else j for i, j in enumerate(index)]
            choices = np.flatnonzero(finite[tuple(row)])
            label[index] = rng.choice(choices)
        if ignore:
            label = np.where(ignored_positions(loss_shape, ignore), ignore_index, label)
            features.append("ignore_index")
            description.append("ignore_index=%d on %s" % (ignore_index, "every position" if ignore == "all"
                                                         else "one position" if ignore == "single" else "a whole row"))
        description.append("hard labels")
        if label_rank_minus_1:  # valid: Paddle's rule reads it with a size-1 axis inserted at `axis`
            label = label.squeeze(ax)
            features.append("label_rank_minus_1")
            description.append("label of rank %d (no size-1 class axis)" % label.ndim)
    if ax != len(shape) - 1:
        features.append("axis_not_last")
    if len(shape) == 1:
        features.append("rank1")
    if len(shape) >= 3:
        features.append("rank3plus")
    if kind == "neg_inf":
        features.append("neg_inf_logits")
    if kind in ("nan", "posinf"):
        features.append("%s_logits" % kind)
        description.append("a %s logit in the first row (documented: that row's outputs are NaN)"
                           % ("NaN" if kind == "nan" else "+inf"))
    if return_softmax:
        features.append("return_softmax")
        description.append("return_softmax")
    if not stable:
        description.append("numeric_stable_mode=False")
    params = {"soft_label": soft, "ignore_index": ignore_index, "numeric_stable_mode": stable,
              "return_softmax": return_softmax, "axis": axis}
    inputs = {"logits": logits, "label": label, "upstream": upstream_values(rng, loss_shape)}
    return Spec(name, SOFTMAX_WITH_CROSS_ENTROPY.name, dtype, params, inputs, "; ".join(description),
                ["rank%d" % len(shape), "K%d" % shape[ax], kind] + list(tags), features)


def _fix_sum(label, axis):
    """Put any rounding remainder on each row's largest entry so rows sum to exactly 1."""
    remainder = 1.0 - label.sum(axis=axis, keepdims=True)
    top = np.argmax(label, axis=axis)
    np.put_along_axis(label, np.expand_dims(top, axis), np.take_along_axis(
        label, np.expand_dims(top, axis), axis=axis) + remainder, axis=axis)
    return label


def cases():
    """The op's valid corpus cases, in corpus order."""
    for dtype in ALL_DTYPES:
        for soft in (False, True):
            yield make_case("base-%s" % ("soft" if soft else "hard"), (8, 10), dtype=dtype, soft=soft, tags=["base"])
    shapes = {1: (10,), 2: (4, 7), 3: (3, 4, 5), 4: (2, 3, 4, 5)}
    for rank, shape in shapes.items():
        for axis in list(range(rank)) + [-1]:
            if axis == -1 and rank == 1:
                continue
            for soft in (False, True):
                for dtype in ("float32", "float64"):
                    label = "soft" if soft else "hard"
                    yield make_case("r%d-ax%s-%s" % (rank, axis, label), shape, axis, dtype, soft=soft, tags=["axis"])
    for ignore_index in (-100, -1, 3):
        for where in ("single", "row", "all"):
            yield make_case("ignore%d-%s" % (ignore_index, where), (6, 9), dtype="float64", ignore=where,
                            ignore_index=ignore_index, tags=["ignore_index"])
        yield make_case("ignore%d-single-r3ax1" % ignore_index, (3, 5, 4), axis=1, dtype="float32",
                        ignore="single", ignore_index=ignore_index, tags=["ignore_index"])
    for dtype in ("float32", "float64"):
        for soft in (False, True):
            label = "soft" if soft else "hard"
            yield make_case("softmax-%s" % label, (5, 11), dtype=dtype, soft=soft, return_softmax=True,
                            tags=["return_softmax"])
            yield make_case("softmax-r3ax0-%s" % label, (4, 3, 5), axis=0, dtype=dtype, soft=soft,
                            return_softmax=True, tags=["return_softmax"])
        yield make_case("unstable", (5, 11), dtype=dtype, stable=False, tags=["numeric_stable_mode"])
        yield make_case("unstable-ignore-softmax", (5, 11), dtype=dtype, stable=False, ignore="single",
                        return_softmax=True, tags=["numeric_stable_mode", "combined"])
        yield make_case("r3ax1-soft-softmax-unstable", (3, 6, 4), axis=1, dtype=dtype, soft=True,
                        return_softmax=True, stable=False, tags=["combined"])
    for kind in ("pm1e4", "spread", "offset", "equal", "neg_inf"):
        for soft in (False, True):
            label = "soft" if soft else "hard"
            for dtype in ("float32", "float64"):
                yield make_case("%s-%s" % (kind, label), (6, 12), dtype=dtype, soft=soft, kind=kind,
                                return_softmax=True, tags=["extreme"])
        yield make_case("%s-hard" % kind, (6, 12), dtype="float16", kind=kind, tags=["extreme"])
    # Unusual but valid input: the reference documents its answer (impls/reference/) and every
    # framework is compared with it; a framework that answers otherwise is a finding.
    for dtype in ("float32", "float64"):
        for kind in ("nan", "posinf"):
            for soft in (False, True):
                label = "soft" if soft else "hard"
                yield make_case("%s-%s" % (kind, label), (6, 12), dtype=dtype, soft=soft, kind=kind,
                                return_softmax=True, tags=["unusual"])
        yield make_case("soft-unnormalized", (6, 12), dtype=dtype, soft=True, unnormalized=True, return_softmax=True,
                        tags=["unusual"])
        yield make_case("soft-unnormalized-r3ax1", (3, 6, 4), axis=1, dtype=dtype, soft=True, unnormalized=True,
                        tags=["unusual"])
    for classes, batch in ((2, 16), (3, 8), (1000, 8), (32768, 2), (100000, 2)):
        for soft in (False, True):
            label = "soft" if soft else "hard"
            dtypes = ("float32",) if classes >= 32768 else ("float32", "float64")
            for dtype in dtypes:
                yield make_case("K%d-%s" % (classes, label), (batch, classes), dtype=dtype, soft=soft, tags=["classes"])
    yield make_case("K1000-hard-ignore", (8, 1000), dtype="bfloat16", ignore="single", tags=["classes"])
    yield make_case("label-rank-minus-1", (4, 6), dtype="float64", label_rank_minus_1=True, tags=["unusual"])


def invalid_cases(dtype):
    """Bad input of this op in ``dtype`` (see :func:`impls.ops.casebuild.broken`)."""
    base = make_case("base-hard", (8, 10), dtype=dtype)
    x, y = base.inputs["logits"], base.inputs["label"]
    soft = make_case("base-soft", (8, 10), dtype=dtype, soft=True)
    yield broken(base, "swce-label-too-large", "label", "a label equal to the number of classes",
                 {"label": np.where(np.arange(8)[:, None] == 3, 10, y)})
    yield broken(base, "swce-label-negative", "label", "a negative label that is not ignore_index",
                 {"label": np.where(np.arange(8)[:, None] == 5, -5, y)})
    yield broken(base, "swce-label-float", "label", "hard labels given as floats", {"label": y.astype(np.float64)})
    yield broken(base, "swce-label-rank", "label", "hard labels with an extra axis", {"label": y[:, :, None]})
    yield broken(base, "swce-label-batch", "label", "one label row too many", {"label": np.concatenate([y, y[:1]])})
    yield broken(base, "swce-axis", "axis", "axis 2 for rank-2 logits", params={"axis": 2})
    yield broken(soft, "swce-soft-label-shape", "label", "soft labels with one class too few",
                 {"label": soft.inputs["label"][:, :-1]})
    yield broken(base, "swce-empty-classes", "logits", "logits with no classes",
                 {"logits": x[:, :0], "label": np.zeros((8, 1), dtype=np.int64)})


def search_case(name, recipe, space):
    """The case of a ``conformance search`` recipe (:class:`~impls.ops.core.SearchSpace`; its batch is at
    least 1 here, the search empties it afterwards) and the axis its batch is on (None: rank 1)."""
    r, batch, rank = recipe, recipe["batch"], recipe["rank"]
    axis = rank - 1 if r["axis_last"] or rank == 1 else rank - 2
    others = [batch] + [2] * (rank - 2)
    classes = max(1, min(r["classes"], space.max_elements // int(np.prod(others)))) if rank > 1 else r["classes"]
    shape = tuple(others[:axis] + [classes] + others[axis:]) if rank > 1 else (classes,)
    soft = r["soft"]
    batch_axis = None if rank == 1 else (0 if axis != 0 else rank - 1)  # a non-class axis
    spec = make_case(name, shape, axis=axis if axis != rank - 1 else -1, dtype=r["dtype"], soft=soft,
                     ignore=None if soft else r["ignore"], ignore_index=r["ignore_index"],
                     return_softmax=r["return_softmax"], stable=r["stable"], kind=r["kind"],
                     unnormalized=soft and r["unnormalized"], label_rank_minus_1=not soft and r["label_rank_minus_1"])
    return spec, batch_axis
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
        search_case, sizes=[("batch", (0, 16)), ("classes", (1, 100000))],
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
    cases=cases,
    invalid_cases=invalid_cases,
    bench_grid=_BENCH_GRID,
)
