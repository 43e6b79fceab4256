"""The op ``cross_entropy``: The loss users call, under each framework's documented convention."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from impls.ops.casebuild import (Spec, broken, case_rng, ignored_positions, logits_of_kind, soft_labels,
                                 upstream_values)
from impls.ops.core import (BenchGrid, Input, OpInfo, Param, SearchSpace, bench_floats, bench_upstream, label_grad_scale,
                            logits_grad_scale)


# --------------------------------------------------------------------------------------------
# cross_entropy: the loss users call, and the frameworks' documented conventions
# --------------------------------------------------------------------------------------------
class Convention:
    """One framework's documented answer on one convention axis: ``text`` (the formula or rule, as its
    documentation or docstring states it), ``source`` (where), ``verified`` (who checked the
    installed framework against it, and how; empty until someone has)."""

    def __init__(self, text: str, source: str, verified: str = ""):
        self.text, self.source, self.verified = text, source, verified

    def as_dict(self) -> dict:
        return {"text": self.text, "source": self.source, "verified": self.verified}


_TORCH_DOC = "https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html"
_PADDLE_DOC = "https://www.paddlepaddle.org.cn/documentation/docs/en/api/paddle/nn/functional/cross_entropy_en.html"
_KERAS_DOC = "https://keras.io/api/losses/probabilistic_losses/ and https://keras.io/api/losses/ (sample_weight, reduction)"
_OPTAX_DOC = "https://optax.readthedocs.io/en/latest/api/losses.html (softmax_cross_entropy*, smooth_labels)"
# Checked by running the corpus: the impl passes every case its convention defines.
_TORCH_RUN = "torch 2.13 F.cross_entropy / F.nll_loss: every corpus case passes (impls/torch_adapter.py)"
_OPTAX_RUN = "optax 0.2.8: every corpus case optax defines passes (impls/jax_adapter.py)"

# Where the frameworks' documentation gives different formulas.  The oracle
# (impls.reference.cross_entropy, argument ``convention``) computes each one; the corpus stores a
# case's golden outputs per convention where they differ; an adapter declares the convention it
# follows (OpSupport(convention=...)) and is judged against that golden.  The keras and paddle
# entries are read from keras 3.15's and paddle 3.3.1's installed sources and docstrings; their
# ``verified`` is for the TensorFlow/Paddle adapters to fill when run against the frameworks.
CROSS_ENTROPY_CONVENTIONS = OrderedDict([
    ("mean_denominator", OrderedDict([
        ("torch", Convention("class indices: sum_n l_n / sum_n w_{y_n} 1{y_n != ignore_index} (the weights of the "
                             "non-ignored targets); probabilities: sum_n l_n / N", _TORCH_DOC, _TORCH_RUN)),
        ("paddle", Convention("weight None: sum_j loss_j / N, N the number of samples; an ignored target 'is ignored and "
                              "does not contribute to the loss' (ignore_index), so N counts the positions whose label "
                              "is not ignore_index; weight given: hard labels sum_j loss_j / sum_j weight[label_j] over "
                              "those positions, soft labels sum_j loss_j / sum_j sum_i weight_i label_ji", _PADDLE_DOC,
                              "paddle 3.3.1: agrees with weights, with ignore_index >= 0, and for soft labels; with a "
                              "negative ignore_index (the default -100) and no weight it divides by every position "
                              "(known deviation paddle-cross-entropy-mean-counts-ignored-positions; Paddle issue "
                              "#48663, open fix PR #76033)")),
        ("keras", Convention("reduction 'sum_over_batch_size' (the default; fit's class_weight becomes sample_weight = "
                             "weight[label]): sum(loss * sample_weight) / the number of elements; ignore_class masks "
                             "positions and the sum is divided by the unmasked ones (losses.loss.apply_mask), whatever "
                             "the sample weights ('mean_with_sample_weight' would divide by their sum)", _KERAS_DOC,
                             "keras 3.15.1 on TensorFlow 2.21, eager and XLA, corpus family xent")),
        ("optax", Convention("no reduction in the loss: a user takes jnp.mean(loss, where=label != ignore_index), "
                             "the mean over the non-ignored positions, after multiplying by weight[label]",
                             _OPTAX_DOC, _OPTAX_RUN)),
    ])),
    ("all_ignored_mean", OrderedDict([
        ("torch", Convention("0 / 0: not a number", _TORCH_DOC, _TORCH_RUN)),
        ("paddle", Convention("0: the documentation is silent (its formula gives 0 / 0); the code divides by "
                              "count + (count == 0), with or without weights, and with no weight and a negative "
                              "ignore_index by N", "python/paddle/nn/functional/loss.py (cross_entropy, reduction "
                              "'mean') in paddle 3.3.1", "paddle 3.3.1: 0 with and without weights")),
        ("keras", Convention("divide_no_nan: 0", _KERAS_DOC, "keras 3.15.1: 0")),
        ("optax", Convention("jnp.mean over no element: not a number", _OPTAX_DOC, _OPTAX_RUN)),
    ])),
    ("class_weight", OrderedDict([
        ("torch", Convention("l_n = -sum_c w_c y_nc log softmax(x_n)_c (class indices: -w_{y_n} log p_{y_n}); "
                             "each class's term is weighted", _TORCH_DOC, _TORCH_RUN)),
        ("paddle", Convention("hard: loss_j * weight[label_j]; soft: loss_j * sum_i weight_i label_i (the docs print "
                              "weight[label_i] * logits_i; the code multiplies label @ weight)", _PADDLE_DOC,
                              "paddle 3.3.1: agrees (label @ weight); for probability targets with axis != -1 the "
                              "product runs over the last axis (known deviation paddle-cross-entropy-axis-ignored); "
                              "the label gradient is only the weight factor's part (known deviation "
                              "paddle-cross-entropy-soft-weight-label-gradient)")),
        ("keras", Convention("no class weights in the loss: sample_weight = weight[label] per position (what "
                             "Model.fit(class_weight=...) builds); none for probability targets (undefined: fit's "
                             "class_weight would weigh a row by its argmax class)", _KERAS_DOC,
                             "keras 3.15.1: agrees")),
        ("optax", Convention("no class weights: a user multiplies the loss by weight[label]; none for probability "
                             "targets (undefined)", _OPTAX_DOC, _OPTAX_RUN)),
    ])),
    ("label_smoothing", OrderedDict([
        ("torch", Convention("targets become (1 - eps) y + eps / C; with class weights each class's term keeps its "
                             "weight: (1 - eps) w_y (-log p_y) + eps / C sum_c w_c (-log p_c); ignored positions 0",
                             _TORCH_DOC, _TORCH_RUN)),
        ("paddle", Convention("labels become one-hot rows, label_smooth'ed to (1 - eps) y + eps / C, then the soft-label "
                              "rules (weight factor sum_i weight_i label_i); ignore_index has no documented effect "
                              "(undefined with ignored positions: a label -100 makes one_hot raise)", _PADDLE_DOC,
                              "paddle 3.3.1: agrees with float32 accuracy in float64 (known deviation "
                              "paddle-cross-entropy-smoothing-float32-accurate); one-hot rows and label_smooth use the "
                              "last axis whatever axis is (known deviation paddle-cross-entropy-axis-ignored); with "
                              "reduction 'none' the loss of class indices keeps a size-1 class axis")),
        ("keras", Convention("CategoricalCrossentropy: y_true * (1 - eps) + eps / C; SparseCategoricalCrossentropy has "
                             "no smoothing (one-hot rows, no ignore_class: undefined with ignored positions)",
                             _KERAS_DOC, "keras 3.15.1: agrees for axis -1; C is read from the last axis whatever "
                             "axis is (keras-team/keras#23451, repro/keras_ce_axis.py; no corpus case); the "
                             "adapter leaves smoothing of class indices unsupported")),
        ("optax", Convention("optax.smooth_labels(one_hot, eps) = (1 - eps) y + eps / C, then softmax_cross_entropy "
                             "with where for ignored positions", _OPTAX_DOC, _OPTAX_RUN)),
    ])),
    ("probabilities_input", OrderedDict([
        ("torch", Convention("no option: F.nll_loss(log(p)) (the documented NLLLoss of log-probabilities); no "
                             "clipping, no renormalisation", "https://pytorch.org/docs/stable/generated/"
                                                             "torch.nn.NLLLoss.html", _TORCH_RUN)),
        ("paddle", Convention("use_softmax=False: loss_j = -log(P_label_j), soft -sum label * log(P)", _PADDLE_DOC,
                              "paddle 3.3.1: agrees; no clipping and no renormalisation (P = 0 gives 1e20)")),
        ("keras", Convention("from_logits=False: probabilities clipped to [epsilon, 1 - epsilon] (1e-7, in the "
                             "dtype); categorical renormalises p / sum(p) then clips, sparse clips then takes "
                             "log_softmax of log(p)", _KERAS_DOC, "keras 3.15.1 (keras/src/backend/tensorflow/nn.py): "
                             "agrees, tiny probabilities included")),
        ("optax", Convention("takes logits only (undefined)", _OPTAX_DOC)),
    ])),
])


def _xent_positions(params, inputs):
    """Positions (the logits' elements without the class axis) and the non-ignored ones."""
    logits = inputs["logits"]
    positions = logits.size // max(1, logits.shape[params["axis"] % logits.ndim])
    if params["soft_label"]:
        return positions, positions
    return positions, int(np.count_nonzero(inputs["label"] != params["ignore_index"]))


def _xent_length(params, shapes):
    shape = shapes["logits"]
    classes = shape[params["axis"] % len(shape)]
    positions = int(np.prod(shape)) // max(1, classes)
    return classes if params["reduction"] == "none" else max(classes, positions)


def _xent_logits(params, inputs):
    if params["use_softmax"]:
        return inputs["logits"]
    with np.errstate(divide="ignore"):
        return np.log(inputs["logits"])  # probabilities: the loss is made of their logs


def _xent_scales(params, inputs, z, u):
    """A position's loss and gradient carry the class weights (at most max(w) per unit); a mean
    divides the sum by at least min(w) * the non-ignored positions (weights), or the positions."""
    weight = inputs.get("weight")
    w_max, w_min = (1.0, 1.0) if weight is None or not weight.size else (
        max(float(np.max(np.abs(weight))), 1e-300), max(float(np.min(np.abs(weight[weight != 0]))) if
                                                           np.any(weight != 0) else 1.0, 1e-300))
    ratio = w_max / w_min if params["reduction"] == "mean" else w_max
    sample_weight = inputs.get("sample_weight")
    if sample_weight is not None and sample_weight.size:  # multiplied into each position's loss
        ratio *= max(float(np.max(np.abs(sample_weight))), 1e-300)
    share = 1.0
    if params["reduction"] == "mean":
        positions, valid = _xent_positions(params, inputs)
        share = 1.0 / max(1, min(positions, valid) if not params["soft_label"] else positions)
    scales = {"loss": z * ratio, "grad/logits": logits_grad_scale(inputs, z, u) * ratio * share}
    if not params["use_softmax"]:
        # d loss / d p = -label / p: the smallest probability sets the size of the gradient.
        p = inputs["logits"]
        smallest = float(np.min(p[p > 0])) if np.any(p > 0) else 1.0
        scales["grad/logits"] = u * ratio * share / smallest
    if params["soft_label"]:
        scales["grad/label"] = label_grad_scale(inputs, z, u) * ratio * share
    return scales


def _xent_synthesize(rng, shape, dtype):
    batch, classes = shape["batch"], shape["classes"]
    inputs = {"logits": bench_floats(rng, (batch, classes), 2.0, dtype),
              "label": rng.integers(0, classes, size=(batch,), dtype=np.int64),
              "upstream": bench_upstream(rng, (), dtype)}
    return CROSS_ENTROPY.default_params(), inputs, []


# --------------------------------------------------------------------------------------------
# Its corpus cases (conformance/corpus.py stores them, with goldens per documented convention)
# and the search's recipes
# --------------------------------------------------------------------------------------------
def _probabilities(logits, axis):
    """A softmax of the grid logits: probabilities a softmax layer would give (rounded to the case
    dtype when stored, so rows sum to 1 only approximately, as a framework's softmax output does)."""
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _weights(rng, classes):
    # Multiples of 1/8 in [0.25, 2]: exact in every dtype, unequal so each convention's weighting shows.
    return rng.integers(2, 17, size=classes) / 8.0


def make_case(name, shape, axis=-1, dtype="float64", soft=False, reduction="mean", weighted=False, ignore=None,
              ignore_index=-100, smoothing=0.0, use_softmax=True, kind="normal", tiny=False, sample_weighted=False,
              tags=()):
    """A cross_entropy case.  ``ignore``: None, "single" (one position), "row" (the first index of
    axis 0), "half" or "all" positions labelled ``ignore_index`` (class-index labels only);
    ``tiny``: probabilities (use_softmax=False) of 1e-9 on a few labelled classes; ``sample_weighted``:
    a weight per position (Keras's ``sample_weight``), exact zeros among them."""
    rng = case_rng("xent-" + name + dtype)
    ax = axis % len(shape)
    classes = shape[ax]
    loss_shape = tuple(n for i, n in enumerate(shape) if i != ax)
    logits = logits_of_kind(rng, shape, ax, kind)
    features, words = [], ["logits %s (%s), axis %d, reduction %s" % (list(shape), kind, axis, reduction)]
    if soft:
        label = soft_labels(rng, shape, ax)
        features.append("soft_label")
        words.append("probability targets")
    else:
        label = rng.integers(0, classes, size=loss_shape).astype(np.int64)
        if ignore:
            label = np.where(ignored_positions(loss_shape, ignore), ignore_index, label)
            features += ["ignore_index"] + (["all_ignored"] if ignore == "all" else [])
            words.append("ignore_index=%d on %s" % (ignore_index, "every position" if ignore == "all" else
                                                    "one position" if ignore == "single" else
                                                    "every other position" if ignore == "half" else "a whole row"))
        words.append("class indices")
    if not use_softmax:
        logits = _probabilities(logits, ax)
        features.append("probabilities")
        words.append("probabilities in (use_softmax=False)")
        if tiny:
            hard_label = np.moveaxis(label, ax, -1).argmax(-1) if soft else np.clip(label, 0, None)
            moved = np.moveaxis(logits, ax, -1).copy()
            rows = np.arange(0, moved.reshape(-1, classes).shape[0], 2)
            flat = moved.reshape(-1, classes)
            flat[rows, hard_label.reshape(-1)[rows]] = 1e-9  # below Keras's clip at 1e-7
            logits = np.moveaxis(flat.reshape(moved.shape), -1, ax)
            features.append("tiny_probabilities")
            words.append("1e-9 on the target class of every other row")
    inputs = {"logits": logits, "label": label}
    if weighted:
        inputs["weight"] = _weights(rng, classes)
        features.append("class_weight")
        words.append("class weights")
    if sample_weighted:
        # Multiples of 1/8 in [0, 2] (exact in every dtype), the first position's 0: a zero weight must
        # give that position's loss and gradient exactly 0, whatever its logits.
        sample_weight = rng.integers(0, 17, size=loss_shape) / 8.0
        sample_weight.reshape(-1)[:1] = 0.0
        inputs["sample_weight"] = sample_weight
        features.append("sample_weight")
        words.append("sample weights (0 on the first position)")
    if smoothing:
        features.append("label_smoothing")
        words.append("label_smoothing=%g" % smoothing)
    if reduction != "mean":
        features.append("reduction_" + reduction)
    if ax != len(shape) - 1:
        features.append("axis_not_last")
    if len(shape) >= 3:
        features.append("rank3plus")
    inputs["upstream"] = upstream_values(rng, loss_shape if reduction == "none" else ())
    params = {"axis": axis, "soft_label": soft, "reduction": reduction, "ignore_index": ignore_index,
              "label_smoothing": smoothing, "use_softmax": use_softmax}
    return Spec(name, CROSS_ENTROPY.name, dtype, params, inputs, "; ".join(words),
                ["rank%d" % len(shape), "K%d" % classes, reduction] + list(tags), features)


def cases():
    """About 40 cases: each option alone in float64, then the combinations where the documented
    conventions part ways, the low-precision dtypes, other axes and probability inputs."""
    shape = (6, 5)
    for soft in (False, True):
        label = "soft" if soft else "hard"
        for reduction in ("mean", "sum", "none"):
            yield make_case("%s-%s" % (label, reduction), shape, soft=soft, reduction=reduction, tags=["base"])
        for reduction in ("mean", "none"):
            yield make_case("%s-weight-%s" % (label, reduction), shape, soft=soft, reduction=reduction, weighted=True,
                            tags=["weight"])
        yield make_case("%s-smooth-mean" % label, shape, soft=soft, smoothing=0.1, tags=["label_smoothing"])
        yield make_case("%s-smooth-weight-sum" % label, shape, soft=soft, reduction="sum", weighted=True, smoothing=0.2,
                        tags=["label_smoothing", "weight"])
    for dtype in ("float16", "bfloat16", "float32"):
        yield make_case("hard-mean", shape, dtype=dtype, tags=["dtype"])
        yield make_case("hard-weight-ignore-smooth-mean", shape, dtype=dtype, weighted=True, ignore="half",
                        smoothing=0.1, tags=["dtype", "combined"])
    yield make_case("soft-weight-mean", shape, dtype="float32", soft=True, weighted=True, tags=["dtype", "weight"])
    # ignore_index: the mean's denominator is where the conventions differ most
    for reduction in ("mean", "none"):
        yield make_case("ignore-half-%s" % reduction, shape, ignore="half", reduction=reduction, tags=["ignore_index"])
    yield make_case("ignore-half-weight-mean", shape, ignore="half", weighted=True, tags=["ignore_index", "weight"])
    yield make_case("ignore3-row-mean", shape, ignore="row", ignore_index=3, tags=["ignore_index"])
    for reduction in ("mean", "sum"):
        yield make_case("ignore-all-%s" % reduction, shape, ignore="all", reduction=reduction, tags=["ignore_index"])
    yield make_case("ignore-all-weight-mean", shape, ignore="all", weighted=True, tags=["ignore_index", "weight"])
    for reduction in ("mean", "none"):
        yield make_case("ignore-smooth-%s" % reduction, shape, ignore="single", smoothing=0.1, reduction=reduction,
                        tags=["ignore_index", "label_smoothing"])
    yield make_case("ignore-smooth-weight-mean", shape, ignore="half", smoothing=0.2, weighted=True,
                    tags=["ignore_index", "label_smoothing", "weight"])
    # other class axes
    yield make_case("r3ax1-hard-weight-ignore-mean", (3, 4, 5), axis=1, weighted=True, ignore="single", tags=["axis"])
    yield make_case("r3ax0-hard-smooth-sum", (4, 3, 5), axis=0, smoothing=0.1, reduction="sum", tags=["axis"])
    yield make_case("r4ax1-soft-none", (2, 3, 4, 2), axis=1, soft=True, reduction="none", tags=["axis"])
    yield make_case("r3ax1-soft-weight-mean", (3, 4, 5), axis=1, soft=True, weighted=True, dtype="float32",
                    tags=["axis", "weight"])
    # probabilities in (Paddle's use_softmax=False, Keras's from_logits=False)
    for soft in (False, True):
        label = "soft" if soft else "hard"
        yield make_case("prob-%s-mean" % label, shape, soft=soft, use_softmax=False, tags=["probabilities"])
        yield make_case("prob-%s-weight-none" % label, shape, soft=soft, use_softmax=False, weighted=True,
                        reduction="none", tags=["probabilities", "weight"])
        for dtype in ("float32", "float64"):
            yield make_case("prob-tiny-%s-none" % label, shape, soft=soft, use_softmax=False, tiny=True, dtype=dtype,
                            reduction="none", tags=["probabilities"])
    yield make_case("prob-hard-smooth-mean", shape, use_softmax=False, smoothing=0.1, tags=["probabilities"])
    yield make_case("prob-hard-mean", shape, dtype="float32", use_softmax=False, tags=["probabilities", "dtype"])
    # extremes and many classes
    yield make_case("pm1e4-hard-smooth-mean", shape, kind="pm1e4", smoothing=0.1, tags=["extreme"])
    yield make_case("offset-soft-sum", shape, kind="offset", soft=True, reduction="sum", dtype="float32",
                    tags=["extreme"])
    yield make_case("K1000-hard-weight-ignore-mean", (8, 1000), weighted=True, ignore="single", dtype="float32",
                    tags=["classes"])
    # per-position sample weights (Keras's sample_weight; the other conventions document none)
    for reduction in ("mean", "sum", "none"):
        yield make_case("hard-sw-%s" % reduction, shape, sample_weighted=True, reduction=reduction,
                        tags=["sample_weight"])
    yield make_case("soft-sw-mean", shape, soft=True, sample_weighted=True, tags=["sample_weight"])
    yield make_case("soft-sw-smooth-none", shape, soft=True, sample_weighted=True, smoothing=0.1, reduction="none",
                    tags=["sample_weight", "label_smoothing"])
    yield make_case("hard-sw-weight-ignore-mean", shape, sample_weighted=True, weighted=True, ignore="half",
                    tags=["sample_weight", "weight", "ignore_index"])
    yield make_case("r3ax1-soft-sw-sum", (3, 4, 5), axis=1, soft=True, sample_weighted=True, reduction="sum",
                    tags=["sample_weight", "axis"])
    yield make_case("prob-hard-sw-none", shape, use_softmax=False, sample_weighted=True, reduction="none",
                    tags=["sample_weight", "probabilities"])
    for dtype in ("float32", "bfloat16"):
        yield make_case("hard-sw-mean", shape, dtype=dtype, sample_weighted=True, tags=["sample_weight", "dtype"])


def invalid_cases(dtype):
    """Bad input of this op in ``dtype`` (see :func:`impls.ops.casebuild.broken`)."""
    loss = make_case("hard-weight-mean", (6, 5), weighted=True, dtype=dtype)
    soft_loss = make_case("soft-mean", (6, 5), soft=True, dtype=dtype)
    yield broken(loss, "xent-label-too-large", "label", "a label equal to the number of classes",
                 {"label": np.where(np.arange(6) == 2, 5, loss.inputs["label"])})
    yield broken(loss, "xent-label-rank", "label", "class indices with a size-1 class axis ([N, 1])",
                 {"label": loss.inputs["label"][:, None]},
                 valid_in={"paddle": "paddle documents class indices of shape [N_1, ..., N_k, 1] as valid",
                           "keras": "keras squeezes a size-1 class axis of class indices (a single value "
                                    "per feature)"})
    yield broken(loss, "xent-weight-length", "weight", "class weights for one class too few",
                 {"weight": loss.inputs["weight"][:-1]})
    yield broken(loss, "xent-reduction", "reduction", "reduction='avg'", params={"reduction": "avg"})
    yield broken(loss, "xent-label-smoothing", "label_smoothing", "label_smoothing=1.5",
                 params={"label_smoothing": 1.5})
    yield broken(soft_loss, "xent-soft-label-shape", "label", "probability targets with one class too few",
                 {"label": soft_loss.inputs["label"][:, :-1]})
    sample_loss = make_case("hard-sw-mean", (6, 5), sample_weighted=True, dtype=dtype)
    yield broken(sample_loss, "xent-sample-weight-length", "sample_weight", "sample weights for one position too few",
                 {"sample_weight": sample_loss.inputs["sample_weight"][:-1]})


def search_case(name, recipe, space):
    """The case of a ``conformance search`` recipe (its batch at least 1) and the axis its batch is on."""
    r, rank = recipe, recipe["rank"]
    axis = rank - 1 if r["axis_last"] else 1
    others = [r["batch"]] + [2] * (rank - 2)
    classes = max(1, min(r["classes"], space.max_elements // int(np.prod(others))))
    shape = tuple(others[:axis] + [classes] + others[axis:])
    spec = make_case(name, shape, axis=-1 if axis == rank - 1 else axis, dtype=r["dtype"], soft=r["soft"],
                     reduction=r["reduction"], weighted=r["weighted"], ignore=None if r["soft"] else r["ignore"],
                     ignore_index=r["ignore_index"], smoothing=r["smoothing"], use_softmax=r["use_softmax"],
                     kind=r["kind"])
    return spec, 0
# The benchmark (conformance/bench/grid.py): no shapes of its own; it is timed in the default grid's
# class sweep and in the quick grid, not in the full grid.
_BENCH_GRID = BenchGrid()


CROSS_ENTROPY = OpInfo(
    "cross_entropy", "the loss users call",
    params=[
        Param("axis", -1, "the class axis"),
        Param("soft_label", False, "label is probabilities of the logits' shape (else int64 class indices)"),
        Param("reduction", "mean", "'mean', 'sum' or 'none'"),
        Param("ignore_index", -100, "class-index labels equal to it have no target: loss 0, gradient 0"),
        Param("label_smoothing", 0.0, "targets become (1 - eps) * label + eps / C"),
        Param("use_softmax", True, "False: logits holds probabilities, the loss is -sum(label * log(p))"),
    ],
    inputs=[
        Input("logits", "float", "any rank >= 1 (probabilities when use_softmax=False)", differentiable=True,
              grad_scale=logits_grad_scale),
        Input("label", "label", "int64 of the logits' shape without axis (hard), or like logits (soft)",
              differentiable=True, differentiable_if=lambda params: bool(params.get("soft_label")),
              grad_scale=label_grad_scale),
        Input("weight", "float", "optional class weights [C] (present only in weighted cases)"),
        Input("sample_weight", "float", "optional weights of the positions (the logits' shape without axis; "
              "Keras's sample_weight, present only in sample-weighted cases)"),
        Input("upstream", "float", "the loss's cotangent: the loss's shape (0-d for sum and mean)"),
    ],
    features=[
        ("soft_label", "probability targets"),
        ("reduction_none", "reduction='none': a loss per position"),
        ("reduction_sum", "reduction='sum'"),
        ("class_weight", "class weights given"),
        ("ignore_index", "some class-index labels equal ignore_index"),
        ("all_ignored", "every label equals ignore_index"),
        ("label_smoothing", "label_smoothing > 0"),
        ("axis_not_last", "the class axis is not the last one"),
        ("rank3plus", "logits of rank 3 or more"),
        ("probabilities", "use_softmax=False: the input holds probabilities"),
        ("tiny_probabilities", "probabilities below 1e-7 (Keras clips them)"),
        ("sample_weight", "per-position sample weights given (Keras's sample_weight)"),
    ],
    accumulation_length=_xent_length,
    softmax_logits=_xent_logits,
    bench_shape=("batch", "classes"),
    synthesize=_xent_synthesize,
    scales=_xent_scales,
    conventions=CROSS_ENTROPY_CONVENTIONS,
    search=SearchSpace(
        search_case, sizes=[("batch", (0, 16)), ("classes", (1, 100000))],
        choices=[("soft", (False, True)), ("reduction", ("mean", "sum", "none")), ("weighted", (False, True)),
                 ("ignore", (None, "single", "all")), ("ignore_index", (-100, 0)), ("smoothing", (0.0, 0.1)),
                 ("rank", (2, 3)), ("axis_last", (True, False)), ("use_softmax", (True, False)),
                 ("kind", ("normal", "equal", "offset", "pm1e4"))],
        special_input="logits", batch_inputs=("logits", "label", "upstream"), label_ends=True,
        name=[({"soft": (True,)}, "{kind}-soft-{reduction}{weighted}{smoothing}{use_softmax}"),
              ({"ignore": ("single", "all")}, "{kind}-hard-{reduction}{weighted}-ignore{smoothing}{use_softmax}"),
              ({}, "{kind}-hard-{reduction}{weighted}{smoothing}{use_softmax}")],
        name_values={"weighted": {True: "-weight", False: ""}, "smoothing": {0.0: "", 0.1: "-smooth"},
                     "use_softmax": {True: "", False: "-prob"}}),
    cases=cases,
    invalid_cases=invalid_cases,
    bench_grid=_BENCH_GRID,
)
