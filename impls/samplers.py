"""Worker side of the sampler conformance check: many draws from an impl's native log-uniform sampler.

A request ``{"sampler": spec}`` (see ``impls/worker.py``) names one setting::

    {"range_max": R, "num_sampled": S, "unique": bool, "true_classes": [probe classes...],
     "num_true": len(true_classes), "draws": D, "seed": s, "fingerprint_draws": K,
     "out_file": "/path/out.npz" or null}

and is answered, without raising, with ``{"status": "ok"|"error"|"unsupported", ...}``.  With
``status == "ok"`` the reply holds ``draws``, ``seconds`` (the ``D`` draws only), ``dtype`` (of the
expected counts the sampler reported) and four SHA-256 fingerprints of ``K`` draws (candidates and
both expected counts, as bytes):

* ``fingerprint``: the first ``K`` draws of the ``D`` statistical draws;
* ``fingerprint_repeat``: ``K`` draws with the same seed after the impl's documented way to start a
  seeded stream again (``reset`` in the reply says which);
* ``fingerprint_again``: ``K`` more draws with the same seed *without* that reset (informative: it
  tells a stateful stream, TensorFlow, from a pure function of the seed, NumPy and Paddle 1.8);
* ``fingerprint_other_seed``: ``K`` draws with ``seed + 1``.

``out_file`` (when given) receives the raw draws as a ``.npz``: ``candidates [D, S]`` int64,
``sampled_expected [D, S]`` and ``true_expected [D, num_true]`` in the dtype the sampler reported (the
expected counts of the probe classes passed as ``true_classes``).  Histograms and inclusion counts are
computed on the core side (``conformance/sampler/``) from these arrays, so that one code path serves
every impl and the tests' synthetic samplers.  ``D * S`` stays near 10^5, about a megabyte.

Per impl (only the CPU; the native samplers are host code):

``numpy`` (the reference)
    ``impls.reference.log_uniform_candidate_sampler`` called once per draw with ``true_classes`` of
    shape ``[1, num_true]``; draw ``d`` uses the integer seed ``draw_seed(seed, d)``.  A pure function of
    its seed: ``reset`` is nothing.
``tensorflow``
    ``tf.random.log_uniform_candidate_sampler(true_classes [1, num_true], num_true, S, unique, R,
    seed=seed)`` after ``tf.random.set_seed(seed)``, called ``D`` times in a ``tf.function`` loop (one
    stateful kernel whose Philox stream advances at every call, as consecutive eager calls do; the loop
    only saves the per-call eager overhead).  TF documents that an op seed alone gives a *different*
    draw on each call and that ``tf.random.set_seed`` restarts the sequence: ``reset`` is
    ``tf.random.set_seed(seed)`` and a new ``tf.function``.
``paddle-legacy`` (Paddle 1.8, static graph)
    ``fluid.layers.sampled_softmax_with_cross_entropy(logits, label, S, seed=...)`` appends a
    ``sample_logits`` op (``uniq=True``, ``use_customized_samples=False``) whose outputs ``Samples``
    ``[N, 1+S]`` (the label, then the ``S`` candidates shared by all rows) and ``Probabilities`` (the
    same shape: the expected counts, "Q(y|x)", of the label and the candidates) are ordinary variables
    of the program: we fetch them.  One run of the op is one draw, and its CPU kernel builds a new
    ``LogUniformSampler(range, seed)`` (``std::mt19937_64`` seeded with ``seed``; ``seed == 0`` means
    ``std::random_device``) at *every* run: a fixed non-zero seed returns the same draw every time.
    So draw ``d`` runs with seed ``draw_seed(seed, d)``: a program holds ``CHUNK`` such ops (a batch
    of ``num_true`` rows, row ``i`` labelled with probe ``i``, so that column 0 of ``Probabilities``
    is the probe's expected count), their ``seed`` attributes are set before each run
    (``use_program_cache=False`` so that the executor reads them) and their outputs are concatenated
    into one fetch.  The ops are appended with exactly the attributes the layer uses (the layer
    would add a one_hot and a softmax_with_cross_entropy per draw, tripling the cost); the reply's
    ``checks`` include ``layer_matches_op``: the layer itself, with the same seed, drew the same
    samples and probabilities.  The layer hard-codes ``uniq=True`` and the CPU kernel
    (``math::SampleWithProb``) always samples unique, so ``unique=False`` is unsupported.

**Through the loss** (``"via": "loss"`` in the spec): the framework's sampled loss draws its own
candidates with its built-in sampler (no samples passed in), on a fixed problem of
:func:`loss_problem` (batch = the probe classes as labels, ``num_true = 1``, float32 inputs from
``seed``); each draw is one loss call.  The reply's arrays are those of a plain draw (the candidates
and expected counts the loss drew, ``true_expected [D, probes]``) plus ``loss`` as the framework
returns it, what the framework exposes about the draw, and the problem's inputs (``input_<name>``),
from which the core recomputes the loss with the oracle (``conformance/sampler/loss.py``):

``tensorflow``
    ``tf.nn.sampled_softmax_loss(..., sampled_values=None, seed=seed)`` after ``tf.random.set_seed``,
    in a ``tf.function`` loop.  The loss returns the loss only; in the same loop step
    ``tf.random.log_uniform_candidate_sampler`` with the same seeds (a second op of the same seeds
    follows the same Philox stream) gives the candidates, and ``loss_given_candidates`` is the loss
    recomputed by TensorFlow from them: equal bits show that they are what the loss drew.
``paddle-legacy``
    ``fluid.layers.sampled_softmax_with_cross_entropy(use_customized_samples=False, seed=...)``; its
    ``sample_logits`` op's ``Samples``, ``Probabilities`` and ``SampledLogits`` (the logits after
    accidental-hit removal) are fetched with the loss; draw ``d`` uses ``draw_seed(seed, d)``.

Frameworks without a native log-uniform sampler (torch, Paddle 2.x/3.x, the CuPy reference) answer
``unsupported`` with the reason.

Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

from impls.ops import get as op_info
from impls.ops.sampled_softmax_loss import SAMPLED_SOFTMAX_LOSS
from impls.ops.sampled_softmax_with_cross_entropy import SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY

MESSAGE_LIMIT = 2000
CHUNK = 1000  # Paddle 1.8: sample_logits ops per program run
LOSS_CHUNK = 250  # Paddle 1.8: sampled-loss layers per program run (each is 3 ops)
FINGERPRINT_DRAWS = 64

UNSUPPORTED = {
    "torch": "torch has no log-uniform candidate sampler (the suite feeds it the reference's samples)",
    "paddle": "Paddle 2.x/3.x removed sample_logits and sampled_softmax_with_cross_entropy "
              "(no Python API, no op): no native sampler",
    "cupy": "the CuPy reference draws on the host with the NumPy code path (impl numpy): no separate sampler",
    "numpy-fast": "the contender uses the oracle's sampler (impl numpy): no separate sampler",
    "cupy-fast": "the contender uses the oracle's sampler (impl numpy): no separate sampler",
}


def draw_seed(seed: int, index: int) -> int:
    """The seed of draw ``index`` for samplers that are a pure function of their seed (NumPy, Paddle 1.8).

    Distinct for every ``index < 2**31 - 1`` (a multiplication modulo the prime ``2**31 - 1``), in
    ``[1, 2**31 - 1]``: never 0, which Paddle reads as "seed from std::random_device".
    """
    prime = 2147483647
    return 1 + ((int(seed) * 1000003 + int(index)) * 48271) % prime


def fingerprint(*arrays) -> str:
    """SHA-256 of the arrays' dtypes and bytes (a draw's candidates, expected counts and, through the
    loss, the loss)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str(array.dtype.str).encode("ascii"))
        digest.update(array.tobytes())
    return digest.hexdigest()


VIA = ("sampler", "loss")  # the sampler called directly, or driving the framework's sampled loss


def loss_problem(op: str, spec: dict) -> dict:
    """The fixed problem a loss drawing its own candidates runs on (the op's
    :class:`~impls.ops.core.SamplerLoss`): batch = the probe classes as labels (``num_true = 1``),
    float32 normal inputs from ``spec["seed"]`` (the legacy RandomState, whose stream every NumPy
    version keeps)."""
    sampler_loss = op_info(op).sampler_loss
    if sampler_loss is None:
        raise ValueError("op: expected a sampled loss that draws its own candidates, got %r" % (op,))
    rng = np.random.RandomState(spec["seed"])
    labels = np.asarray(spec["true_classes"], dtype=np.int64).reshape(-1, 1)
    return sampler_loss.problem(rng, spec["range_max"], labels)


def normalize_spec(spec: dict) -> dict:
    out = dict(spec)
    for key in ("range_max", "num_sampled", "draws", "seed"):
        value = out.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("%s: expected an int, got %r" % (key, value))
    if out["range_max"] < 1 or out["num_sampled"] < 1 or out["draws"] < 1:
        raise ValueError("range_max, num_sampled and draws: expected >= 1, got %r" % (spec,))
    out["unique"] = bool(out.get("unique", True))
    if out["unique"] and out["num_sampled"] > out["range_max"]:
        raise ValueError("num_sampled: expected <= range_max=%d when unique, got %d"
                         % (out["range_max"], out["num_sampled"]))
    true_classes = [int(k) for k in out.get("true_classes") or [out["range_max"] - 1]]
    if any(k < 0 or k >= out["range_max"] for k in true_classes):
        raise ValueError("true_classes: expected values in [0, %d), got %r" % (out["range_max"], true_classes))
    out["true_classes"] = true_classes
    if int(out.get("num_true", len(true_classes))) != len(true_classes):
        raise ValueError("num_true: expected len(true_classes)=%d, got %r" % (len(true_classes), out["num_true"]))
    out["num_true"] = len(true_classes)
    out["fingerprint_draws"] = max(1, min(int(out.get("fingerprint_draws", FINGERPRINT_DRAWS)), out["draws"]))
    out["via"] = out.get("via", "sampler")
    if out["via"] not in VIA:
        raise ValueError("via: expected one of %s, got %r" % (", ".join(VIA), out["via"]))
    out.setdefault("out_file", None)
    return out


# --------------------------------------------------------------------------------------------
# One class per native sampler: draw(spec, seed, n, reset) -> (candidates, sampled, true)
# --------------------------------------------------------------------------------------------
class _NumpySampler:
    reset = "none needed: a pure function of its seed (draw d uses draw_seed(seed, d))"
    loss_op = None  # the op (impls/ops/) whose public API draws through the loss

    def __init__(self, adapter):
        from impls import reference  # noqa: PLC0415

        self.reference = reference

    def draw(self, spec, seed, n, reset=True):
        true = np.asarray([spec["true_classes"]], dtype=np.int64)
        candidates = np.empty((n, spec["num_sampled"]), dtype=np.int64)
        sampled = np.empty((n, spec["num_sampled"]), dtype=np.float64)
        true_expected = np.empty((n, spec["num_true"]), dtype=np.float64)
        for d in range(n):
            c, t, s = self.reference.log_uniform_candidate_sampler(
                true, spec["num_true"], spec["num_sampled"], spec["unique"], spec["range_max"],
                seed=draw_seed(seed, d))
            candidates[d], sampled[d], true_expected[d] = c, s, t[0]
        return candidates, sampled, true_expected

    def checks(self, spec, seed):
        return []

    def draw_through_loss(self, spec, seed, n, reset=True):
        raise _Unsupported("numpy: the oracle is what a loss's draws are recomputed with; its own sampled "
                           "path (sampled_values=None) is tested by tests/test_reference_sampler.py")


class _TensorflowSampler:
    reset = "tf.random.set_seed(seed) and a new tf.function (TF's documented way to restart a seeded op)"
    loss_op = SAMPLED_SOFTMAX_LOSS.name  # tf.nn.sampled_softmax_loss

    def __init__(self, adapter):
        import tensorflow as tf  # noqa: PLC0415 - already imported by the adapter's load

        self.tf = tf
        self._last = None  # the tf.function of the previous draw (for the no-reset call)
        self._last_loss = None  # the same for draws through the loss
        self.api = adapter.sampled_api

    def _function(self, spec, seed):
        tf = self.tf
        true = tf.constant([spec["true_classes"]], dtype=tf.int64)
        args = (spec["num_true"], spec["num_sampled"], spec["unique"], spec["range_max"])

        @tf.function
        def loop(n):
            candidates = tf.TensorArray(tf.int64, size=n)
            sampled = tf.TensorArray(tf.float32, size=n)
            true_expected = tf.TensorArray(tf.float32, size=n)
            for i in tf.range(n):
                c, t, s = tf.random.log_uniform_candidate_sampler(true, *args, seed=seed)
                candidates = candidates.write(i, c)
                sampled = sampled.write(i, s)
                true_expected = true_expected.write(i, t[0])
            return candidates.stack(), sampled.stack(), true_expected.stack()

        return loop

    def draw(self, spec, seed, n, reset=True):
        tf = self.tf
        if reset or self._last is None:
            tf.random.set_seed(seed)
            self._last = self._function(spec, seed)
        c, s, t = self._last(tf.constant(n, dtype=tf.int32))
        return c.numpy().astype(np.int64), s.numpy(), t.numpy()

    def checks(self, spec, seed):
        return []

    def _loss_function(self, spec, seed, problem):
        tf = self.tf
        weights, biases, labels, inputs = (tf.constant(problem[k]) for k in ("weights", "biases", "labels", "inputs"))
        # The impl's public API with its own defaults (num_true=1, remove_accidental_hits=True).
        loss_op = tf.compat.v1.nn.sampled_softmax_loss if self.api == "tf.compat.v1" else tf.nn.sampled_softmax_loss
        args = (weights, biases, labels, inputs, spec["num_sampled"], spec["range_max"])

        @tf.function
        def loop(n):
            arrays = [tf.TensorArray(dtype, size=n) for dtype in (tf.float32, tf.float32, tf.int64, tf.float32,
                                                                   tf.float32)]
            for i in tf.range(n):
                loss = loss_op(*args, seed=seed)  # sampled_values=None: TF's own sampler
                drawn = tf.random.log_uniform_candidate_sampler(labels, 1, spec["num_sampled"], True,
                                                                spec["range_max"], seed=seed)
                given = loss_op(*args, sampled_values=drawn)
                values = (loss, given, drawn[0], drawn[2], drawn[1][:, 0])
                arrays = [a.write(i, v) for a, v in zip(arrays, values)]
            return [a.stack() for a in arrays]

        return loop

    def draw_through_loss(self, spec, seed, n, reset=True):
        tf = self.tf
        problem = loss_problem(self.loss_op, spec)
        if reset or self._last_loss is None:
            tf.random.set_seed(seed)
            self._last_loss = self._loss_function(spec, seed, problem)
        loss, given, candidates, sampled, true_expected = (a.numpy() for a in self._last_loss(tf.constant(n)))
        extra = {"loss": loss, "loss_given_candidates": given}
        extra.update(("input_" + k, v) for k, v in problem.items())
        return candidates.astype(np.int64), sampled, true_expected, extra


class _PaddleLegacySampler:
    reset = "none needed: every run of sample_logits re-seeds its sampler with the op's seed attribute"
    loss_op = SAMPLED_SOFTMAX_WITH_CROSS_ENTROPY.name  # fluid.layers.sampled_softmax_with_cross_entropy

    def __init__(self, adapter):
        self.fluid = adapter.fluid
        self.place = adapter.place
        self.executor = adapter.executor
        self._programs = {}

    def _build(self, spec, ops, layer=False, problem=None):
        """A program of ``ops`` draws: bare ``sample_logits`` ops, or (``layer``) the layer itself, fed
        ``problem`` (zero logits when None); fetches Samples and Probabilities, and with ``problem``
        the losses and SampledLogits too."""
        fluid = self.fluid
        from paddle.fluid.layer_helper import LayerHelper  # noqa: PLC0415

        rows, width = spec["num_true"], spec["range_max"]
        program, startup = fluid.Program(), fluid.Program()
        losses = []
        with fluid.program_guard(program, startup):
            logits = fluid.layers.data(name="logits", shape=[rows, width], dtype="float32", append_batch_size=False)
            label = fluid.layers.data(name="label", shape=[rows, 1], dtype="int64", append_batch_size=False)
            for _ in range(ops):
                if layer:
                    # The layer's defaults: num_true=1, remove_accidental_hits=True, use_customized_samples=False.
                    losses.append(fluid.layers.sampled_softmax_with_cross_entropy(
                        logits, label, spec["num_sampled"], seed=1))
                    continue
                # Exactly what the layer appends first (fluid/layers/loss.py), without its loss ops.
                helper = LayerHelper("sample_logits")
                outputs = {name: helper.create_variable_for_type_inference(dtype=dtype) for name, dtype in (
                    ("Samples", "int64"), ("Probabilities", "float32"), ("SampledLabels", "int64"),
                    ("SampledLogits", "float32"), ("LogitsDim", "float32"), ("LabelsDim", "int64"))}
                helper.append_op(type="sample_logits", inputs={"Logits": logits, "Labels": label}, outputs=outputs,
                                 attrs={"use_customized_samples": False, "uniq": True,
                                        "remove_accidental_hits": True, "num_samples": spec["num_sampled"],
                                        "seed": 1})
            block = program.global_block()
            sample_ops = [op for op in block.ops if op.type == "sample_logits"]
            outputs = [[block.var(op.output(name)[0]) for op in sample_ops] for name in ("Samples", "Probabilities")]
            if problem is not None:
                outputs += [losses, [block.var(op.output("SampledLogits")[0]) for op in sample_ops]]
            fetch = [fluid.layers.concat(variables, axis=0).name for variables in outputs]
        feed = {"logits": np.zeros((rows, width), dtype=np.float32),
                "label": np.asarray(spec["true_classes"], dtype=np.int64).reshape(rows, 1)}
        feed.update(problem or {})
        return program, sample_ops, fetch, feed, fluid.Scope()

    def _fetch(self, built, seeds):
        """The fetched arrays, each ``[ops, rows, ...]``, after a run with these seeds."""
        program, sample_ops, fetch, feed, scope = built
        for op, value in zip(sample_ops, seeds):
            op._set_attr("seed", int(value))  # noqa: SLF001 - the op's own attribute, read at the next run
        values = self.executor.run(program, feed=feed, fetch_list=fetch, scope=scope, use_program_cache=False)
        rows = len(feed["label"])
        return [np.asarray(v).reshape((len(sample_ops), rows) + np.asarray(v).shape[1:]) for v in values]

    def _run(self, built, seeds):
        samples, probabilities = self._fetch(built, seeds)[:2]
        # Column 0: row i's label (probe i); columns 1..S: the candidates, the same on every row.
        return samples[:, 0, 1:].astype(np.int64), probabilities[:, 0, 1:], probabilities[:, :, 0]

    def draw_through_loss(self, spec, seed, n, reset=True):
        problem = {"logits": loss_problem(self.loss_op, spec)["logits"]}
        ops = min(n, LOSS_CHUNK)
        key = ("loss", spec["range_max"], spec["num_sampled"], tuple(spec["true_classes"]), spec["seed"], ops)
        if key not in self._programs:
            self._programs = {key: self._build(spec, ops, layer=True, problem=problem)}  # one program at a time
        parts = [self._fetch(self._programs[key], [draw_seed(seed, d) for d in range(start, start + ops)])
                 for start in range(0, n, ops)]
        samples, probabilities, loss, sampled_logits = (np.concatenate([p[i] for p in parts])[:n] for i in range(4))
        extra = {"loss": loss, "samples": samples.astype(np.int64), "probabilities": probabilities,
                 "sampled_logits": sampled_logits, "input_logits": problem["logits"],
                 "input_label": self._programs[key][3]["label"]}
        return samples[:, 0, 1:].astype(np.int64), probabilities[:, 0, 1:], probabilities[:, :, 0], extra

    def draw(self, spec, seed, n, reset=True):
        if not spec["unique"]:
            raise _Unsupported("paddle-legacy: sampled_softmax_with_cross_entropy hard-codes uniq=True and "
                               "the CPU sample_logits kernel (math::SampleWithProb) always samples unique "
                               "(its uniq attribute is read by the GPU kernel only): no unique=False sampler")
        ops = min(n, CHUNK)
        key = (spec["range_max"], spec["num_sampled"], tuple(spec["true_classes"]), ops)
        if key not in self._programs:
            self._programs = {key: self._build(spec, ops)}  # keep one program at a time
        built = self._programs[key]
        parts = [self._run(built, [draw_seed(seed, d) for d in range(start, start + ops)])
                 for start in range(0, n, ops)]
        return tuple(np.concatenate([part[i] for part in parts])[:n] for i in range(3))

    def checks(self, spec, seed):
        """The layer itself draws what the bare op draws with the same seed."""
        if not spec["unique"]:
            return []
        value = draw_seed(seed, 0)
        layer = self._build(spec, 1, layer=True)
        bare = self._build(spec, 1)
        first, second = self._run(layer, [value]), self._run(bare, [value])
        same = all(a.tobytes() == b.tobytes() for a, b in zip(first, second))
        message = ("fluid.layers.sampled_softmax_with_cross_entropy(seed=%d) drew %s the Samples/Probabilities "
                   "of the bare sample_logits op" % (value, "exactly" if same else "NOT"))
        return [{"check": "layer_matches_op", "status": "pass" if same else "fail", "message": message}]


class _Unsupported(Exception):
    pass


_SAMPLERS = {"numpy": _NumpySampler, "tensorflow": _TensorflowSampler, "paddle-legacy": _PaddleLegacySampler}
_INSTANCES = {}


def why_no_sampler(adapter, device):
    """Why the impl has no native sampler to test on ``device``, or None.  Decided from the adapter
    alone, no framework imported: the core also asks it, to start the impls that draw first."""
    name = adapter.name
    if name in UNSUPPORTED:
        return "%s: %s" % (name, UNSUPPORTED[name])
    if (getattr(adapter, "native_sampler", None) or _SAMPLERS.get(name)) is None:  # the tests' broken samplers
        return "%s: no native log-uniform sampler is wired up" % name
    if device != "cpu":
        return "%s: the sampler check runs on the CPU only (the native samplers are host code)" % name
    return None


def _sampler_for(adapter, device):
    reason = why_no_sampler(adapter, device)
    if reason:
        raise _Unsupported(reason)
    name = adapter.name
    if name not in _INSTANCES:
        _INSTANCES[name] = (getattr(adapter, "native_sampler", None) or _SAMPLERS[name])(adapter)
    return _INSTANCES[name]


def _describe(error):
    text = "%s: %s" % (type(error).__name__, error)
    marker = "Error Message Summary:"  # Paddle 1.8 puts kilobytes of stack before its message
    if marker in text:
        text = type(error).__name__ + ": " + text.split(marker, 1)[1].strip("- \n")
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "..."


def run_request(adapter, device, spec) -> dict:
    """The worker's answer to ``{"sampler": spec}``: never raises for a framework's error."""
    try:
        spec = normalize_spec(spec)
        sampler = _sampler_for(adapter, device)
        seed, count = spec["seed"], spec["fingerprint_draws"]
        if spec["via"] == "loss" and not spec["unique"]:
            raise _Unsupported("the sampled losses always draw unique candidates: no unique=False setting")

        def draw(draw_seed_, n, reset=True):  # (candidates, sampled, true_expected, extra arrays)
            if spec["via"] == "loss":
                return sampler.draw_through_loss(spec, draw_seed_, n, reset)
            return sampler.draw(spec, draw_seed_, n, reset) + ({},)

        def fingerprinted(drawn, n=None):  # the draws (and, through the loss, the losses)
            candidates_, sampled_, true_, extra_ = drawn
            arrays = [candidates_, sampled_, true_] + ([extra_["loss"]] if "loss" in extra_ else [])
            return fingerprint(*(a[:n] for a in arrays))

        start = time.perf_counter()
        drawn = draw(seed, spec["draws"])
        seconds = time.perf_counter() - start
        candidates, sampled, true_expected, extra = drawn
        first = fingerprinted(drawn, count)
        repeat = fingerprinted(draw(seed, count, reset=True))
        again = fingerprinted(draw(seed, count, reset=False))
        other = fingerprinted(draw(seed + 1, count, reset=True))
        checks = sampler.checks(spec, seed) if spec["via"] == "sampler" else []
        if spec["out_file"]:
            np.savez(spec["out_file"], candidates=candidates, sampled_expected=sampled, true_expected=true_expected,
                     **extra)
    except _Unsupported as error:
        return {"status": "unsupported", "message": str(error)}
    except Exception as error:  # the framework raised: that is the result
        return {"status": "error", "message": _describe(error)}
    return {"status": "ok", "draws": int(candidates.shape[0]), "seconds": seconds, "dtype": str(sampled.dtype),
            "fingerprint_draws": count, "fingerprint": first, "fingerprint_repeat": repeat,
            "fingerprint_again": again, "fingerprint_other_seed": other, "reset": sampler.reset, "checks": checks,
            "loss_op": sampler.loss_op if spec["via"] == "loss" else None}
