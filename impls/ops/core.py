"""The shared core of the op registry: :class:`OpInfo` (in the spirit of PyTorch's OpInfo) and its parts.

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
* the corpus: its case families (:meth:`OpInfo.cases`, :meth:`OpInfo.invalid_cases`, made with
  ``impls/ops/casebuild.py``; ``conformance/corpus.py`` stores them);
* the benchmark: which shape keys it reads, how to synthesise its inputs from a shape, and its
  shapes in the benchmark's grids (:class:`BenchGrid`);
* the search (``conformance search``): its parameter space and recipe builder, :class:`SearchSpace`;
* for a sampled op checked through its own sampler (``conformance sampler``): :class:`SamplerLoss`.

Each op's record lives in its own module of this package (``impls/ops/<op>.py``); the package's
``__init__`` is the registry.  Worker side: no framework, no pandas, Python 3.8 with numpy 1.23.
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
                 scales=None, conventions=None, cases=None, invalid_cases=None, sampler_loss=None,
                 bench_grid=None):
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
        # The stored corpus's families (conformance/corpus.py writes them, in registry order):
        # ``cases()`` yields the op's valid cases, ``invalid_cases(dtype)`` its bad-input cases in one
        # dtype (:class:`impls.ops.casebuild.Spec` each).
        self._cases, self._invalid_cases = cases, invalid_cases
        # A sampled op whose public API can draw its own candidates: the sampler check's facts (:class:`SamplerLoss`).
        self.sampler_loss = sampler_loss
        self.bench_grid = bench_grid or BenchGrid()  # its shapes in the benchmark's grids

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

    # -- the corpus ---------------------------------------------------------------------------
    def cases(self):
        """The op's valid corpus cases (:class:`impls.ops.casebuild.Spec`), in corpus order."""
        return self._cases() if self._cases else iter(())

    def invalid_cases(self, dtype: str):
        """The op's bad-input cases in ``dtype``: each a valid case with one thing broken."""
        return self._invalid_cases(dtype) if self._invalid_cases else iter(())

    # -- the benchmark ------------------------------------------------------------------------
    def synthesize(self, rng, shape: dict, dtype: str) -> tuple:
        """``(params, inputs, features)`` of a benchmark case of ``shape`` (``bench_shape`` keys)."""
        return self._synthesize(rng, shape, dtype)


class BenchGrid:
    """An op's shapes in the benchmark's grids (``conformance/bench/grid.py`` lays the grids out from
    every op's, in the registry's order).

    * ``default``: its shapes in the default grid, in order, each ``(shape, dtypes)`` or
      ``(shape, dtypes, modes)`` (both modes unless named); ``shape`` gives the op's ``bench_shape``
      keys, and those it leaves out take ``impls.bench.DEFAULTS``;
    * ``full_arrays``: ``shape -> the element counts of its largest arrays``: the full grid takes
      the op at every shape of its ranges whose arrays fit the grid's cap; None: the op is not in it.

    Every op is in the default grid's class sweep and in the quick grid, at the grid's own shapes.
    """

    def __init__(self, default=(), full_arrays=None):
        self.default, self.full_arrays = tuple(default), full_arrays


class SearchSpace:
    """The parameter space ``conformance search`` draws an op's cases from, as data.

    A drawn case is a *recipe*: one value per dimension.  ``builder(name, recipe, space)`` (the op
    module's ``search_case``) makes it a case with the op's own corpus case builder and returns
    ``(spec, batch_axis)``: the :class:`~impls.ops.casebuild.Spec` (for a recipe whose batch is at
    least 1) and the axis of the batch in ``batch_inputs`` (None: the case has none).  The search's own
    mutations (special values, dtype limits, probabilities, label ends, an empty batch) change it
    afterwards, so a found case is made exactly as a stored one is.

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


class SamplerLoss:
    """How ``conformance sampler --via loss`` checks a sampled op whose public API draws its own
    candidates with the framework's sampler (``impls/samplers.py`` draws, ``conformance/sampler/``
    judges):

    * ``problem(rng, classes, labels)``: the fixed inputs every draw of a setting shares, float32 from
      ``rng`` (a ``numpy.random.RandomState``), for ``labels`` [N, 1] (the probe classes) of
      ``classes`` classes, by the op's input names;
    * ``oracle_case(arrays, d, f64, remove_accidental_hits)``: ``(the oracle's float64 loss, params,
      inputs)`` of draw ``d`` of the worker's reply ``arrays``, ``f64`` being the problem in float64;
    * ``loss_shape(draws, rows)``: the documented shape of the losses of ``draws`` calls on ``rows`` labels.
    """

    def __init__(self, problem, oracle_case, loss_shape):
        self.problem, self.oracle_case, self.loss_shape = problem, oracle_case, loss_shape


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------
def max_abs(*arrays) -> float:
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


def all_biases(inputs: dict):
    """The biases of every class in the weights' shard order (one array)."""
    biases = bias_shards(inputs)
    return np.concatenate(biases) if isinstance(biases, list) else biases


def logits_grad_scale(inputs, z, u):
    return z * u  # d loss / d logit is a softmax weight minus a label: at most 1 per unit of upstream


def label_grad_scale(inputs, z, u):
    # d loss / d label = -log_softmax = (max - logit) + log(sum exp): at most 2z + log(classes) per unit
    # of upstream; the class count is bounded by the logits' largest dimension (the scale has no axis).
    return (2 * z + math.log(max(max(inputs["logits"].shape), 1))) * u


def sampled_width(params, shapes):
    return params["num_true"] + params.get("num_samples", params.get("num_sampled", 0))


SAMPLED_FEATURES = [
    ("multi_true", "num_true > 1: label 1/T on each true column"),
    ("accidental_hits", "a sampled class equals one of the row's true labels"),
    ("remove_accidental_hits", "remove_accidental_hits=True: hits get no softmax weight"),
    ("duplicate_samples", "a sampled class appears more than once"),
]


# Benchmark inputs: float32 normals scaled, rounded to the case dtype; hard labels; the reference's
# log-uniform sampler (one candidate set shared by the batch, accidental hits removed).
def bench_floats(rng, shape, scale, dtype):
    return round_to(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale), dtype)


def bench_upstream(rng, shape, dtype):
    return round_to(rng.uniform(0.5, 1.5, shape).astype(np.float32), dtype)


def bench_probabilities(values, dtype):
    """Expected counts in the case dtype, kept > 0 where float16 would flush them to zero."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "float16":
        values = np.maximum(values, float(np.finfo(np.float16).tiny))
    return round_to(values.astype(np.float32), dtype) if dtype != "float64" else values


def bench_sampled(rng, shape):
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
