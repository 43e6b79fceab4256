"""The op registry: what the suite knows about each op, declared once (in the spirit of PyTorch's OpInfo).

For every op, one :class:`OpInfo` says:

* ``name`` and a short human ``label``;
* ``params``: its static options and their defaults (:class:`Param`);
* ``inputs``: its array arguments, which are differentiable, and the magnitude at which the
  rounding of each input's gradient happens (:class:`Input`, used by the tolerance rule);
* ``outputs``: its flat output names (``loss``, ``softmax``, ``grad/<input>``; see
  :func:`impls.caseio.flatten_gradients`), through :meth:`OpInfo.output_names`;
* the oracle: the forward and gradient functions of ``impls.reference``, by name, resolved lazily;
* the tolerance rule's op-specific facts (``conformance/compare.py``): the accumulation length and the
  logits that enter the softmax, whose largest magnitude is the case's ``logit_scale``;
* ``features``: the vocabulary of case features the corpus may emit for it (an adapter declares the
  ones it cannot express; see docs/ADAPTER_SPEC.md);
* how a case becomes the oracle's keyword arguments (:meth:`OpInfo.reference_kwargs`);
* the benchmark: which shape keys it reads and how to synthesise its inputs from a shape;
* the search (``conformance search``): its parameter space, :class:`SearchSpace`.

:data:`OPS` (ordered: the order of every table) maps op names to their :class:`OpInfo`.  The corpus,
the comparison, the benchmark, ``impls.caseio``, the runner and the adapters read it; per-op
knowledge lives here, not in if-chains over op names elsewhere.

Worker side: no framework, no pandas, Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import importlib
import math
from collections import OrderedDict

import numpy as np

from impls.dtypes import round_to


class Param:
    """A static option: ``name``, ``default`` (``REQUIRED`` when the case must give it), ``doc``."""

    REQUIRED = object()

    def __init__(self, name: str, default=REQUIRED, doc: str = ""):
        self.name, self.default, self.doc = name, default, doc


class Input:
    """An array argument.

    ``kind``: ``"float"`` (in the case dtype), ``"int"`` (int64) or ``"label"`` (int64 hard labels, or
    floats in the case dtype for soft labels).  ``differentiable``: its gradient is an output,
    ``grad/<name>`` (only for the params where ``differentiable_if(params)`` holds, when given: a soft
    label is differentiable, a hard one is not).  ``grad_scale(inputs, z, u)``: for a differentiable input, the magnitude at which
    its gradient is rounded, given the case's float64 inputs, its logit scale ``z`` and the largest
    upstream cotangent ``u`` (see ``conformance/compare.py``).  A sharded input (``weights``) is
    stored as ``<name>/<i>`` and its gradient as ``grad/<name>/<i>``.
    """

    def __init__(self, name: str, kind: str, doc: str = "", differentiable: bool = False, grad_scale=None,
                 differentiable_if=None):
        if differentiable and grad_scale is None:
            raise ValueError("grad_scale: a differentiable input (%s) needs one" % name)
        self.name, self.kind, self.doc = name, kind, doc
        self.differentiable, self.grad_scale = differentiable, grad_scale
        self.differentiable_if = differentiable_if  # params -> bool, for an input differentiable only in some cases


# Features every op's corpus may emit.
COMMON_FEATURES = OrderedDict([
    ("invalid_input", "bad input: the reference must raise naming the argument; frameworks are recorded"),
])


class OpInfo:
    """Everything the suite knows about one op (see the module docstring)."""

    def __init__(self, name, label, params, inputs, features, accumulation_length, softmax_logits,
                 bench_shape, synthesize, reference_kwargs=None, softmax_output=False, search=None,
                 scales=None, conventions=None):
        self.name = name
        self.label = label
        self.params = tuple(params)
        self.inputs = tuple(inputs)
        self.features = OrderedDict(list(features) + list(COMMON_FEATURES.items()))
        self._accumulation_length = accumulation_length
        self._softmax_logits = softmax_logits
        self.bench_shape = tuple(bench_shape)
        self._synthesize = synthesize
        self._reference_kwargs = reference_kwargs
        self.softmax_output = softmax_output  # a ``softmax`` output when params["return_softmax"]
        self.search = search  # its parameter space for ``conformance search`` (:class:`SearchSpace`)
        # (params, inputs, z, u) -> {output: scale}, for an op whose scales depend on its params
        self._scales = scales
        # Documented conventions where the frameworks' formulas differ: axis -> {convention: Convention}
        # (None: one convention, the oracle's).  See CROSS_ENTROPY_CONVENTIONS.
        self.conventions = conventions

    # -- declarations -------------------------------------------------------------------------
    @property
    def differentiable(self) -> tuple:
        """Names of the inputs whose gradients can be outputs (shards ``<name>/<i>`` included by prefix)."""
        return tuple(i.name for i in self.inputs if i.differentiable)

    def differentiable_in(self, params: dict) -> tuple:
        """Names of the inputs whose gradients are outputs of a case with these params."""
        return tuple(i.name for i in self.inputs
                     if i.differentiable and (i.differentiable_if is None or i.differentiable_if(params)))

    def default_params(self, **given) -> dict:
        """The params in declaration order: defaults, overridden by ``given`` (required ones must be)."""
        params = OrderedDict()
        for param in self.params:
            if param.name in given:
                params[param.name] = given.pop(param.name)
            elif param.default is Param.REQUIRED:
                raise ValueError("%s: param %r is required" % (self.name, param.name))
            else:
                params[param.name] = param.default
        if given:
            raise ValueError("%s: unknown params %s" % (self.name, sorted(given)))
        return dict(params)

    def output_names(self, params: dict, features=()) -> list:
        """The flat output names of a case with these params and features, sorted (as golden files
        list them): a gradient per shard for sharded weights, and for biases given as shards."""
        names = ["loss"] + (["softmax"] if self.softmax_output and params.get("return_softmax") else [])
        for name in self.differentiable_in(params):
            sharded = name == "weights" or (name == "biases" and "sharded_biases" in features)
            shards = params.get("num_shards", 0) if sharded else 0
            names += ["grad/%s/%d" % (name, i) for i in range(shards)] if shards else ["grad/" + name]
        return sorted(names)

    # -- the oracle ---------------------------------------------------------------------------
    def reference_forward(self):
        """``impls.reference.<name>``: the loss (and softmax when asked)."""
        return getattr(importlib.import_module("impls.reference"), self.name)

    def reference_grad(self):
        """``impls.reference.<name>_grad``: a dict of the loss and the gradients."""
        return getattr(importlib.import_module("impls.reference"), self.name + "_grad")

    def reference_kwargs(self, params: dict, inputs: dict) -> dict:
        """Keyword arguments of the reference functions (``upstream`` excluded) for a case."""
        kwargs = dict(params)
        kwargs.update((k, v) for k, v in inputs.items() if k != "upstream")
        return self._reference_kwargs(kwargs) if self._reference_kwargs else kwargs

    # -- the tolerance rule -------------------------------------------------------------------
    def accumulation_length(self, params: dict, shapes: dict) -> int:
        """The longest sum behind one output element: the softmax width and, where there is one,
        the dot-product length and the batch a weight gradient sums over."""
        return int(self._accumulation_length(params, shapes))

    def logit_scale(self, params: dict, inputs: dict) -> float:
        """Largest finite |logit| entering the softmax (at least 1), from float64 inputs."""
        z = self._softmax_logits(params, inputs)
        finite = np.abs(z[np.isfinite(z)])
        return float(max(1.0, finite.max() if finite.size else 1.0))

    def output_scales(self, inputs: dict, z: float, u: float, params: dict = None) -> dict:
        """Flat output name -> the magnitude at which its rounding happens (``compare.py``)."""
        if self._scales is not None:
            return self._scales(params, inputs, z, u)
        scales = {"loss": z, "softmax": z}
        for item in self.inputs:
            if item.differentiable:
                scale = item.grad_scale(inputs, z, u)
                scales.update(("grad/" + name, scale) for name in inputs
                              if name == item.name or name.startswith(item.name + "/"))
        return scales

    # -- the benchmark ------------------------------------------------------------------------
    def synthesize(self, rng, shape: dict, dtype: str) -> tuple:
        """``(params, inputs, features)`` of a benchmark case of ``shape`` (``bench_shape`` keys)."""
        return self._synthesize(rng, shape, dtype)


class SearchSpace:
    """The parameter space ``conformance search`` draws an op's cases from, as data.

    A drawn case is a *recipe*: one value per dimension, passed as keyword arguments to the corpus
    generator ``builder`` of ``conformance/corpus.py`` (``swce``, ``sswce``, ``ssl``), then changed by
    the search's own mutations (special values, dtype limits, probabilities, label ends, an empty
    batch), so a found case is made exactly as a stored one is.

    * ``sizes``: name -> ``(low, high)`` integers, drawn log-uniformly, ends included often;
    * ``choices``: name -> the values it takes, the *simplest first* (the shrinker's target);
    * ``special_input``: the float input that gets ``specials`` (+-inf, NaN at any density, up to
      whole rows and the whole array) and dtype ``limits``;
    * ``probabilities``: the inputs that get expected counts near 0 and 1 (sampled ops);
    * ``batch_inputs``: the inputs whose axis 0 is the batch (sliced to nothing for an empty batch);
    * ``max_elements``: the memory bound of the largest input (classes are cut to fit);
    * ``name``: how a found case is named, in the corpus's words (so the case-id selectors of
      ``known_deviations.toml`` see what they see in a stored case): ``(when, template)`` forms, the
      first whose ``when`` (recipe dimension -> the values it must have) holds; the template is
      ``str.format``-ed with the recipe's values (a value in ``name_values`` is replaced by its word),
      ``special`` (the special value's word, ``""`` without one), ``kind`` (that word, or the recipe's
      ``kind``) and ``params`` (the case's params);
    * ``name_values``: dimension -> {value: word} for the templates.
    """

    SPECIALS = (None, "-inf", "inf", "nan")
    DENSITIES = ("one", "some", "half", "row", "all")
    LIMITS = (None, "max", "tiny")
    PROBABILITIES = (None, "near0", "near1")

    WITH_SPECIAL = {"specials": SPECIALS[1:]}  # a ``when`` that holds when a special value was drawn
    NAME = (({"specials": SPECIALS[1:]}, "{special}"), ({}, "search"))  # for a space that names none

    def __init__(self, builder, sizes, choices, special_input, batch_inputs, probabilities=(), label_ends=False,
                 max_elements=200000, name=NAME, name_values=()):
        self.builder, self.sizes, self.choices = builder, OrderedDict(sizes), OrderedDict(choices)
        self.special_input, self.batch_inputs = special_input, tuple(batch_inputs)
        self.probabilities, self.label_ends, self.max_elements = tuple(probabilities), label_ends, max_elements
        self.name, self.name_values = tuple(name), dict(name_values)


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------
def _max_abs(*arrays) -> float:
    return max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)


def weight_shards(inputs: dict) -> list:
    """``weights`` or its shards ``weights/0``, ``weights/1``... in shard order."""
    if "weights" in inputs:
        return [inputs["weights"]]
    return [inputs["weights/%d" % i] for i in range(sum(1 for k in inputs if k.startswith("weights/")))]


def bias_shards(inputs: dict):
    """``biases`` as one array, or its shards ``biases/0``, ``biases/1``... laid out like the weights."""
    if "biases" in inputs:
        return inputs["biases"]
    return [inputs["biases/%d" % i] for i in range(sum(1 for k in inputs if k.startswith("biases/")))]


def _all_biases(inputs: dict):
    """The biases of every class in the weights' shard order (one array)."""
    biases = bias_shards(inputs)
    return np.concatenate(biases) if isinstance(biases, list) else biases


def _logits_grad_scale(inputs, z, u):
    return z * u  # d loss / d logit is a softmax weight minus a label: at most 1 per unit of upstream


def _label_grad_scale(inputs, z, u):
    # d loss / d label = -log_softmax = (max - logit) + log(sum exp): at most 2z + log(classes) per unit
    # of upstream; the class count is bounded by the logits' largest dimension (the scale has no axis).
    return (2 * z + math.log(max(max(inputs["logits"].shape), 1))) * u


def _sampled_width(params, shapes):
    return params["num_true"] + params.get("num_samples", params.get("num_sampled", 0))


_SAMPLED_FEATURES = [
    ("multi_true", "num_true > 1: label 1/T on each true column"),
    ("accidental_hits", "a sampled class equals one of the row's true labels"),
    ("remove_accidental_hits", "remove_accidental_hits=True: hits get no softmax weight"),
    ("duplicate_samples", "a sampled class appears more than once"),
]


# Benchmark inputs: float32 normals scaled, rounded to the case dtype; hard labels; the reference's
# log-uniform sampler (one candidate set shared by the batch, accidental hits removed).
def _bench_floats(rng, shape, scale, dtype):
    return round_to(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale), dtype)


def _bench_upstream(rng, shape, dtype):
    return round_to(rng.uniform(0.5, 1.5, shape).astype(np.float32), dtype)


def _bench_probabilities(values, dtype):
    """Expected counts in the case dtype, kept > 0 where float16 would flush them to zero."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "float16":
        values = np.maximum(values, float(np.finfo(np.float16).tiny))
    return round_to(values.astype(np.float32), dtype) if dtype != "float64" else values


def _bench_sampled(rng, shape):
    """Labels, the sampler's candidates and expected counts, and the features they give."""
    from impls import reference  # noqa: PLC0415 - the oracle's sampler, loaded when a case is made

    batch, classes, samples, num_true = (shape[k] for k in ("batch", "classes", "samples", "num_true"))
    labels = rng.integers(0, classes, size=(batch, num_true), dtype=np.int64)
    candidates, true_expected, sampled_expected = reference.log_uniform_candidate_sampler(
        labels, num_true, samples, True, classes, seed=int(rng.integers(0, 2 ** 31)))
    hits = bool(np.isin(candidates, labels).any())
    features = (["multi_true"] if num_true > 1 else []) + (["accidental_hits"] if hits else [])
    features.append("remove_accidental_hits")
    return labels, candidates, true_expected, sampled_expected, features


# --------------------------------------------------------------------------------------------
# softmax_with_cross_entropy
# --------------------------------------------------------------------------------------------
def _swce_length(params, shapes):
    shape = shapes["logits"]
    return shape[params["axis"] % len(shape)]


def _swce_synthesize(rng, shape, dtype):
    batch, classes = shape["batch"], shape["classes"]
    inputs = {"logits": _bench_floats(rng, (batch, classes), 2.0, dtype),
              "label": rng.integers(0, classes, size=(batch, 1), dtype=np.int64),
              "upstream": _bench_upstream(rng, (batch, 1), dtype)}
    return SOFTMAX_WITH_CROSS_ENTROPY.default_params(), inputs, []


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
        Input("logits", "float", "any rank >= 1", differentiable=True, grad_scale=_logits_grad_scale),
        Input("label", "label", "int64 with size 1 on axis (hard), or like logits (soft)",
              differentiable=True, differentiable_if=lambda params: bool(params.get("soft_label")),
              grad_scale=_label_grad_scale),
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
)


# --------------------------------------------------------------------------------------------
# sampled_softmax_with_cross_entropy
# --------------------------------------------------------------------------------------------
def _sswce_logits(params, inputs):
    return np.take_along_axis(inputs["logits"], inputs["customized_samples"], 1) - np.log(
        inputs["customized_probabilities"])


def _sswce_synthesize(rng, shape, dtype):
    batch, classes, samples, num_true = (shape[k] for k in ("batch", "classes", "samples", "num_true"))
    labels, candidates, true_expected, sampled_expected, features = _bench_sampled(rng, shape)
    params = SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY.default_params(num_samples=samples, num_true=num_true)
    inputs = {
        "logits": _bench_floats(rng, (batch, classes), 2.0, dtype),
        "label": labels,
        "customized_samples": np.concatenate([labels, np.broadcast_to(candidates, (batch, samples))], axis=1),
        "customized_probabilities": _bench_probabilities(np.concatenate(
            [true_expected, np.broadcast_to(sampled_expected, (batch, samples))], axis=1), dtype),
        "upstream": _bench_upstream(rng, (batch, 1), dtype),
    }
    return params, inputs, features


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
        Input("logits", "float", "[N, K]", differentiable=True, grad_scale=_logits_grad_scale),
        Input("label", "int", "[N, T]"),
        Input("customized_samples", "int", "[N, T+S], the first T columns are the labels"),
        Input("customized_probabilities", "float", "[N, T+S]"),
        Input("upstream", "float", "[N, 1]"),
    ],
    features=[("per_row_negatives", "each row has its own negatives")] + _SAMPLED_FEATURES,
    accumulation_length=_sampled_width,
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
)


# --------------------------------------------------------------------------------------------
# sampled_softmax_loss
# --------------------------------------------------------------------------------------------
def _ssl_length(params, shapes):
    batch, dim = shapes["inputs"]
    return max(_sampled_width(params, shapes), dim, batch)


def _ssl_logits(params, inputs):
    """A bound of every logit: |x| . |w| + |b| for all classes (small corpus cases only), and the
    ``-log(expected count)`` terms."""
    shards = weight_shards(inputs)
    w = np.concatenate(shards) if len(shards) > 1 else shards[0]
    bound = np.abs(inputs["inputs"]) @ np.abs(w).T + np.abs(_all_biases(inputs))  # [B, K]
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
    labels, candidates, true_expected, sampled_expected, features = _bench_sampled(rng, shape)
    params = SAMPLED_SOFTMAX_LOSS.default_params(num_sampled=samples, num_classes=classes, num_true=num_true)
    inputs = {
        "weights": _bench_floats(rng, (classes, dim), 1.0 / np.sqrt(dim), dtype),
        "biases": _bench_floats(rng, (classes,), 0.1, dtype),
        "labels": labels,
        "inputs": _bench_floats(rng, (batch, dim), 1.0, dtype),
        "sampled_candidates": np.asarray(candidates, dtype=np.int64),
        "true_expected_count": _bench_probabilities(true_expected, dtype),
        "sampled_expected_count": _bench_probabilities(sampled_expected, dtype),
        "upstream": _bench_upstream(rng, (batch,), dtype),
    }
    return params, inputs, features


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
              grad_scale=lambda inputs, z, u: 2.0 * z * u * _max_abs(inputs["inputs"])
              * math.sqrt(inputs["inputs"].shape[0])),
        Input("biases", "float", "[K], or shards biases/<i> laid out like the weights", differentiable=True,
              grad_scale=_logits_grad_scale),
        Input("labels", "int", "[B, T]"),
        # d loss / d x: softmax-weighted weight rows, true and sampled parts each up to z*u*|w|.
        Input("inputs", "float", "[B, D]", differentiable=True,
              grad_scale=lambda inputs, z, u: 2.0 * z * u * _max_abs(*weight_shards(inputs))),
        Input("sampled_candidates", "int", "[S], shared by the batch"),
        Input("true_expected_count", "float", "[B, T]"),
        Input("sampled_expected_count", "float", "[S]"),
        Input("upstream", "float", "[B]"),
    ],
    features=_SAMPLED_FEATURES + [
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
)



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
    share = 1.0
    if params["reduction"] == "mean":
        positions, valid = _xent_positions(params, inputs)
        share = 1.0 / max(1, min(positions, valid) if not params["soft_label"] else positions)
    scales = {"loss": z * ratio, "grad/logits": _logits_grad_scale(inputs, z, u) * ratio * share}
    if not params["use_softmax"]:
        # d loss / d p = -label / p: the smallest probability sets the size of the gradient.
        p = inputs["logits"]
        smallest = float(np.min(p[p > 0])) if np.any(p > 0) else 1.0
        scales["grad/logits"] = u * ratio * share / smallest
    if params["soft_label"]:
        scales["grad/label"] = _label_grad_scale(inputs, z, u) * ratio * share
    return scales


def _xent_synthesize(rng, shape, dtype):
    batch, classes = shape["batch"], shape["classes"]
    inputs = {"logits": _bench_floats(rng, (batch, classes), 2.0, dtype),
              "label": rng.integers(0, classes, size=(batch,), dtype=np.int64),
              "upstream": _bench_upstream(rng, (), dtype)}
    return CROSS_ENTROPY.default_params(), inputs, []


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
              grad_scale=_logits_grad_scale),
        Input("label", "label", "int64 of the logits' shape without axis (hard), or like logits (soft)",
              differentiable=True, differentiable_if=lambda params: bool(params.get("soft_label")),
              grad_scale=_label_grad_scale),
        Input("weight", "float", "optional class weights [C] (present only in weighted cases)"),
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
    ],
    accumulation_length=_xent_length,
    softmax_logits=_xent_logits,
    bench_shape=("batch", "classes"),
    synthesize=_xent_synthesize,
    scales=_xent_scales,
    conventions=CROSS_ENTROPY_CONVENTIONS,
    search=SearchSpace(
        "xent", sizes=[("batch", (0, 16)), ("classes", (1, 100000))],
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
)


OPS = OrderedDict((op.name, op) for op in (SOFTMAX_WITH_CROSS_ENTROPY, SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY,
                                            SAMPLED_SOFTMAX_LOSS, CROSS_ENTROPY))
NAMES = tuple(OPS)


def get(name: str) -> OpInfo:
    """The :class:`OpInfo` of an op name (raises ValueError naming the known ops)."""
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise ValueError("op: expected one of %s, got %r" % (", ".join(NAMES), name)) from None
