"""``conformance search``: a seeded differential search for divergences no stored case shows.

Each op declares its parameter space once, in ``impls/ops/`` (:class:`impls.ops.SearchSpace`).  A
drawn case is a *recipe* (one value per dimension of that space, plus the search's mutations: special
values at a density, values at the dtype's limits, expected counts near 0 and 1, labels at the ends of
the range, an empty batch); :func:`build` turns it into a corpus :class:`~impls.ops.casebuild.Spec`
with the op's own case builder (``SearchSpace.builder``, in the op's module) and
:func:`conformance.corpus.build_case` computes the oracle's float64 goldens, so a found case is made
exactly like a stored one.  The oracle rejecting a recipe (it raises on
invalid input) rejects the draw, and so does a golden output beyond the dtype's largest number (its
correctly rounded value is inf, which the tolerance rule would call wrong).

Every case runs in the isolated workers of every requested impl (``runner.Worker``: a crash or a hang
costs one restart) and is judged by ``runner.execute_case``: the suite's tolerance rule, and the known
deviations of ``known_deviations.toml`` (a match is ``xfail``: known, not a find; the registry's
case-id selectors see a corpus-style id, see :func:`case_name`).  A divergence (fail, error, crash,
timeout; NaN/inf where the oracle is finite is a ``fail`` whose problem is ``nonfinite``) has a
*core signature*: impl, op, status and, from the structured ``errors``, the worst output and its kind of
problem (the exception type for an error).  It is shrunk greedily over its recipe (sizes toward their
lower ends, options and patterns toward the simplest, mutations dropped), re-running only the diverging
impl, keeping each step that keeps the core signature; its *signature* is the core plus the features (and the search's :data:`MARKS`) of
the shrunk case.  Draws are a pure function of ``(seed, index)`` (``numpy.random.default_rng``) and
``--shard i/n`` takes the indices ``i, i+n, ...``, so shards never repeat each other's draws and a second
run with the same seed and the same number of draws (``--cases N``; a ``--budget`` run prints how
many it tried) finds the same groups.

Why not Hypothesis.  Drawing: the search needs draw ``index`` of ``seed`` alone (shards, resume); the
public API draws only inside a test run (``@given``/``find``), whose engine tries the simplest example
first (``hypothesis/internal/conjecture/engine.py``: ``ChoiceTemplate("simplest")``), so "the n-th
draw" is not something it offers; drawing through a seeded ``ConjectureData`` is internal API.
Shrinking: Hypothesis shrinks only a failure its own generation found (an explicit ``@example`` is
not shrunk), calls the predicate as often as its shrinker wants, where every call re-runs a framework
worker (seconds for TensorFlow), and yields a byte-level minimum rather than a case in the corpus's
vocabulary.  So the recipe shrinker: each step is a meaningful simplification (a smaller class count,
one special value instead of a whole row), the steps are few and bounded (:data:`SHRINK_STEPS`).

Disagreement between two impls is not a rule of its own: every impl is compared with the oracle, a
non-finite golden value must be matched exactly, and two impls that each pass are within twice the
allowed error of each other (the triangle inequality), which is all two correct roundings promise; two
impls that differ otherwise differ from the oracle, and each such divergence is its impl's group.

A new group is stored as a corpus case under ``cases/found/<op>/<id>.npz``, listed in
``cases/found/MANIFEST.json`` (the corpus's manifest format, checked by ``conformance verify``); the
file name carries a hash of the inputs and params, so shards and runs merge by content
(:func:`merge_found`, ``conformance merge-found``).  The reproducer ``repro/found/<impl>_<id>.py``
runs the one impl through its adapter on the stored case and asserts the divergence; it is generated
(:mod:`conformance.reproducers`, as ``conformance repro`` writes it, which also writes the standalone
script that needs NumPy and the framework only), so it holds no copy of the suite's code.
The run folder gets ``found-<shard>.csv`` (the results columns plus ``signature``) and the resumable
state ``search-<shard>.json``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from conformance import corpus, deviations, reproducers, runner
from conformance import results as result_files
from conformance.found import merge_found, merge_manifest  # noqa: F401  (merge_found: the CLI's)
from conformance.outcomes import FAILING
from impls import dtypes, get_adapter
from impls.caseio import Case
from impls.ops import OPS, SearchSpace, get
from impls.support import why_unsupported

REPO_ROOT = runner.REPO_ROOT
FOUND_DIR = corpus.DEFAULT_CASES_DIR / "found"
REPRO_DIR = REPO_ROOT / "repro" / "found"
SHRINK_STEPS = 60  # worker re-runs per find at most: a TensorFlow step costs seconds
CASE_TIMEOUT = 60.0
MUTATIONS = (("specials", SearchSpace.SPECIALS), ("density", SearchSpace.DENSITIES),
             ("limits", SearchSpace.LIMITS), ("probabilities", SearchSpace.PROBABILITIES),
             ("label_ends", (None, "first", "last")))
SPECIAL_VALUES = {"-inf": -np.inf, "inf": np.inf, "nan": np.nan}
SPECIAL_FEATURES = {"-inf": "neg_inf_logits", "inf": "posinf_logits", "nan": "nan_logits"}
SPECIAL_WORDS = {"-inf": "neg_inf", "inf": "posinf", "nan": "nan"}
# What the search's mutations did, as case tags (the corpus's features are the registry's vocabulary,
# which the stored corpus emits exactly; these are the search's own words), part of a signature.
MARKS = ("dtype_limits", "extreme_probabilities", "labels_at_ends", "empty_batch")


class Rejected(Exception):
    """A recipe the op's case builder or the oracle does not accept (invalid input): no case."""


# --------------------------------------------------------------------------------------------
# drawing a recipe
# --------------------------------------------------------------------------------------------
def _size(rng, low, high):
    """Log-uniform in [low, high] (exp of a uniform over [0, log(high + 1)], shifted so that low = 0
    can be drawn), with each end drawn often (empty batches, one class, 10^5 classes)."""
    u = rng.random()
    if u < 0.1:
        return low
    if u < 0.15:
        return high
    return int(min(high, max(low, round(math.exp(rng.uniform(0.0, math.log(high + 1)))) - 1 + (low > 0))))


def draw(rng, op_names) -> dict:
    """One recipe: op, dtype, one value per dimension of the op's space, and the mutations."""
    op = op_names[int(rng.integers(len(op_names)))]
    space = OPS[op].search
    recipe = {"op": op, "dtype": dtypes.NAMES[int(rng.integers(len(dtypes.NAMES)))],
              "seed": int(rng.integers(2 ** 31))}
    for name, (low, high) in space.sizes.items():
        recipe[name] = _size(rng, low, high)
    for name, values in space.choices.items():
        recipe[name] = values[int(rng.integers(len(values)))] if rng.random() < 0.5 else values[0]
    for name, values in MUTATIONS:
        recipe[name] = values[int(rng.integers(len(values)))] if rng.random() < 0.3 else values[0]
    return recipe


# --------------------------------------------------------------------------------------------
# from a recipe to a case
# --------------------------------------------------------------------------------------------
def _finfo(dtype):
    if dtype == "bfloat16":
        import ml_dtypes  # noqa: PLC0415 - bfloat16 only

        return ml_dtypes.finfo(ml_dtypes.bfloat16)
    return np.finfo(dtypes.numpy_dtype(dtype))


def _positions(rng, shape, density, batch_axis):
    """A boolean mask of ``shape``: one element, ~10%, ~50%, the first row (index 0 on the batch
    axis: whole rows of classes), or everything."""
    mask = np.zeros(shape, dtype=bool)
    if mask.size == 0:
        return mask
    if density == "one":
        mask.flat[mask.size // 2] = True
    elif density in ("some", "half"):
        mask = rng.random(shape) < (0.1 if density == "some" else 0.5)
    elif density == "row" and batch_axis is not None and len(shape) > 1:
        index = [slice(None)] * len(shape)
        index[batch_axis] = 0
        mask[tuple(index)] = True
    else:
        mask[...] = True
    return mask


def _mutate(spec, recipe, space, batch_axis):
    """The search's mutations, applied to the spec's float64 inputs; the features follow."""
    rng = np.random.default_rng(recipe["seed"])
    inputs, target = spec.inputs, space.special_input
    x = inputs[target]
    limit = None
    if recipe["limits"]:
        info = _finfo(recipe["dtype"])
        mask = _positions(rng, x.shape, recipe["density"], batch_axis)
        limit = float(info.max) if recipe["limits"] == "max" else float(info.tiny)
        x = np.where(mask, np.where(x < 0, -limit, limit), x)
    if recipe["specials"]:
        x = np.where(_positions(rng, x.shape, recipe["density"], batch_axis), SPECIAL_VALUES[recipe["specials"]], x)
        if SPECIAL_FEATURES[recipe["specials"]] in OPS[spec.op].features:
            spec.features.append(SPECIAL_FEATURES[recipe["specials"]])
    if limit is not None and np.any(np.abs(x) == limit):  # not all overwritten by the specials
        spec.tags.append("dtype_limits")
    inputs[target] = x
    for name in space.probabilities if recipe["probabilities"] else ():
        near = float(_finfo(recipe["dtype"]).tiny) if recipe["probabilities"] == "near0" else 1.0
        q = inputs[name].copy()
        q.flat[::2] = near
        inputs[name] = q
        spec.tags.append("extreme_probabilities")
    if space.label_ends and not spec.params.get("soft_label"):
        label, ignore_index = inputs["label"], spec.params["ignore_index"]
        if recipe["label_ends"]:
            classes = inputs["logits"].shape[spec.params["axis"]]
            ends = label.copy()
            ends.flat[::2] = 0 if recipe["label_ends"] == "first" else classes - 1
            ends = np.where(label == ignore_index, ignore_index, ends)
            spec.tags += ["labels_at_ends"] if np.any(ends != label) else []
            inputs["label"] = label = ends
        if np.any(label == ignore_index) and "ignore_index" not in spec.features:  # e.g. ignore_index=0
            spec.features.append("ignore_index")
    if recipe["batch"] == 0:
        if batch_axis is None:
            raise Rejected("rank-1 logits have no batch to empty")
        for name in space.batch_inputs:
            if name in inputs and inputs[name].ndim:  # a 0-d upstream (a reduced loss) has no batch
                axis = batch_axis if inputs[name].ndim > batch_axis else 0
                inputs[name] = np.take(inputs[name], [], axis=axis)
        spec.tags.append("empty_batch")


def case_name(spec, recipe) -> str:
    """A corpus-style name from the op's ``SearchSpace.name`` forms (their words are the corpus's, so
    the registry's case-id selectors such as ``softmax_with_cross_entropy-neg_inf-soft-*`` see what they
    would see in a stored case)."""
    space = OPS[spec.op].search
    special = SPECIAL_WORDS.get(recipe["specials"], "")
    values = {key: space.name_values.get(key, {}).get(value, value) for key, value in recipe.items()}
    values.update(special=special, kind=special or recipe.get("kind", ""), params=spec.params)
    template = next(text for when, text in space.name
                    if all(recipe.get(key) in allowed for key, allowed in when.items()))
    return template.format(**values)


def build(recipe):
    """``(case, spec)`` of a recipe: the op's case builder, the mutations, the oracle's goldens, and
    an id whose hash part is that of the stored inputs and params (same content, same file)."""
    space = OPS[recipe["op"]].search
    try:
        with np.errstate(all="ignore"):  # overflow to inf is a pattern the search draws on purpose
            # The op's builder makes a batch of at least 1; an empty batch is cut by _mutate.
            spec, batch_axis = space.builder("search%d" % recipe["seed"], dict(recipe, batch=max(1, recipe["batch"])),
                                             space)
            _mutate(spec, recipe, space, batch_axis)
            case = corpus.build_case(spec)
        top = max((float(np.max(np.abs(v[np.isfinite(v)]), initial=0.0)) for v in case.golden.values()), default=0.0)
        if top > float(_finfo(recipe["dtype"]).max):  # rounding it to the dtype is inf: no framework can be right
            raise Rejected("a golden output of magnitude %g is outside %s" % (top, recipe["dtype"]))
    except Rejected:
        raise
    except (ValueError, TypeError, RuntimeError, IndexError, FloatingPointError) as error:
        raise Rejected("%s: %s" % (type(error).__name__, error)) from None
    digest = hashlib.sha256(json.dumps([spec.op, spec.dtype, spec.params], sort_keys=True).encode())
    for name in sorted(case.inputs):
        array = np.ascontiguousarray(case.inputs[name])
        digest.update(("%s%s%s" % (name, array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    spec.name = "%s-h%s" % (case_name(spec, recipe), digest.hexdigest()[:10])
    case.meta.update(id=spec.id, description="found by search: " + spec.description,
                     tags=sorted(set(case.meta["tags"]) | {"found"}))
    return case, spec


def entry_of(case, file) -> dict:
    """A manifest entry of a case (the corpus's fields)."""
    return {"id": case.id, "op": case.op, "dtype": case.dtype, "file": file, "description": case.meta["description"],
            "tags": case.meta["tags"], "features": case.meta["features"]}


# --------------------------------------------------------------------------------------------
# signatures
# --------------------------------------------------------------------------------------------
def core_signature(row) -> str:
    """impl | op | status | worst output | kind of problem (an error: its exception type)."""
    output, problem = "", ""
    if row["status"] == "fail" and row.outputs:
        records = {error.name: error.record() for error in row.outputs}

        def badness(item):
            record = item[1]
            ratio = record.get("ratio")
            return (bool(record.get("problem")), ratio if isinstance(ratio, (int, float)) else math.inf)

        output, record = max(records.items(), key=badness)
        problem = record.get("problem") or "numeric"
        if problem == "nonfinite":
            problem = "nonfinite(actual %s, expected %s)" % (_kind_of(record.get("actual")),
                                                             _kind_of(record.get("expected")))
    elif row["status"] == "error":
        head = (row.get("message") or "").split(":", 1)[0].strip()
        problem = head if head.replace(".", "").replace("_", "").isalnum() and len(head) < 60 else "error"
    return "|".join([row["impl"], row["op"], row["status"], output, problem])


def _kind_of(value):
    if isinstance(value, str):
        return value  # "nan", "inf", "-inf"
    return "finite" if value is not None else "none"


def traits(case) -> list:
    """What a signature says of a case besides the core: its features and the search's marks."""
    return sorted(set(case.meta["features"]) | (set(case.meta["tags"]) & set(MARKS)))


def signature(row, case) -> str:
    return core_signature(row) + "|" + "+".join(traits(case))


# --------------------------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------------------------
def parse_shard(text: str):
    index, sep, count = str(text).partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError:
        raise ValueError("shard: expected i/n with 0 <= i < n, got %r" % text) from None
    if not sep or count < 1 or not 0 <= index < count:
        raise ValueError("shard: expected i/n with 0 <= i < n, got %r" % text)
    return index, count


def parse_budget(text: str) -> float:
    """Seconds of ``90``, ``90s``, ``10m``, ``1h``."""
    text = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise ValueError("budget: expected seconds or a number with s, m or h (10m), got %r" % text) from None


class Search:
    """One shard of a seeded search over some ops, with one live worker per impl."""

    def __init__(self, impls, out_dir, *, ops=None, seed=0, shard=(0, 1), device="cpu", found_dir=FOUND_DIR,
                 repro_dir=REPRO_DIR, python=None, timeout=CASE_TIMEOUT, notify=print):
        self.impls, self.device, self.seed, self.shard = list(impls), device, int(seed), tuple(shard)
        self.ops = [op for op in (ops or OPS) if get(op).search is not None]
        self.out_dir, self.found_dir, self.repro_dir = Path(out_dir), Path(found_dir), Path(repro_dir)
        self.timeout, self.notify = timeout, notify
        self.tag = "%dof%d" % (self.shard[0], self.shard[1])
        self.state_path = self.out_dir / ("search-%s.json" % self.tag)
        self.found_path = self.out_dir / ("found-%s.csv" % self.tag)
        self.registry = deviations.load()
        try:  # earlier finds: a divergence they explain is not stored again
            manifest = corpus.load_manifest(self.found_dir)
        except corpus.CorpusError:
            manifest = {"cases": []}
        self.earlier = {key: e for e in manifest["cases"] for key in e.get("signatures", ())}
        self.unavailable = set()
        self.adapters = {impl: get_adapter(impl) for impl in self.impls}
        self.workers = {impl: runner.Worker(impl, device, runner.python_for(impl, python or {}),
                                            log_dir=self.out_dir / "logs") for impl in self.impls}
        self.state = {"seed": self.seed, "shard": list(self.shard), "ops": self.ops, "impls": self.impls,
                      "next": 0, "cases": 0, "rejected": 0, "known": 0, "repeats": 0, "seconds": 0.0,
                      "runs": {impl: 0 for impl in self.impls}, "impl_seconds": {impl: 0.0 for impl in self.impls},
                      "tried": [], "groups": {}}

    # -- state ---------------------------------------------------------------------------------
    def resume(self):
        """Continue from the run folder's state of this seed and shard (the same impls and ops)."""
        if not self.state_path.exists():
            return False
        state = json.loads(self.state_path.read_text(encoding="utf-8"))
        if (state["seed"], state["shard"], state["ops"], state["impls"]) != (self.seed, list(self.shard), self.ops,
                                                                           self.impls):
            raise ValueError("%s: a search of seed %s, shard %s, ops %s, impls %s; resume it with those"
                             % (self.state_path, state["seed"], state["shard"], state["ops"], state["impls"]))
        self.state = state
        return True

    def _save(self):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        scratch = self.state_path.with_suffix(".tmp")
        scratch.write_text(json.dumps(self.state, indent=1, sort_keys=True), encoding="utf-8")
        scratch.replace(self.state_path)  # atomic: a killed search leaves the last whole state

    # -- running cases -------------------------------------------------------------------------
    def _run(self, impl, case, scratch):
        """The result row of one case on one impl (``None`` when the impl cannot express it)."""
        entry = entry_of(case, case.id + ".npz")
        adapter = self.adapters[impl]
        if impl in self.unavailable or why_unsupported(adapter, self.device, entry):
            return None
        cases, outputs = Path(scratch) / "cases", Path(scratch) / "outputs"
        for folder in (cases, outputs):
            folder.mkdir(exist_ok=True)
        if not (cases / entry["file"]).exists():
            case.write(cases / entry["file"])
        worker = self.workers[impl]
        try:  # (errstate: the comparison meets inf and huge values on purpose here)
            if worker.process is None or worker.process.poll() is not None:  # (re)start: not a case's time
                started = time.perf_counter()
                worker.start()
                starts = self.state.setdefault("start_seconds", {})
                starts[impl] = starts.get(impl, 0.0) + time.perf_counter() - started
            started = time.perf_counter()
            with np.errstate(all="ignore"):
                row = runner.execute_case(worker, adapter, entry, cases, outputs, self.registry,
                                          repeat=1, timeout=self.timeout)
        except runner.WorkerUnavailable as error:  # not installed here: the others search on
            self.unavailable.add(impl)
            self.notify("skipped %s: %s" % (impl, error))
            return None
        self.state["impl_seconds"][impl] += time.perf_counter() - started
        self.state["runs"][impl] += 1
        return row

    def _shrink(self, recipe, case, core, impl, scratch, row):
        """Greedy: each dimension toward its simplest value while the core signature holds."""
        space = OPS[recipe["op"]].search
        fields = [(name, None) for name in space.sizes] + list(MUTATIONS) + list(space.choices.items())
        steps, changed = 0, True
        while changed and steps < SHRINK_STEPS:
            changed = False
            for name, values in fields:
                for candidate in _simpler(recipe[name], values, space.sizes.get(name)):
                    if steps >= SHRINK_STEPS:
                        break
                    trial = dict(recipe, **{name: candidate})
                    try:
                        trial_case, _ = build(trial)
                    except Rejected:
                        continue
                    if trial_case.id == case.id:  # a dimension this case does not use: same inputs
                        recipe, case = trial, trial_case
                        continue
                    steps += 1
                    trial_row = self._run(impl, trial_case, scratch)
                    if trial_row and core_signature(trial_row) == core:
                        recipe, case, row, changed = trial, trial_case, trial_row, True
                        break
        return recipe, case, row

    def _explained(self, core, features):
        """The signature of a find of this run or an earlier one (the found manifest) with this core
        whose traits the case has: it explains the divergence without a second shrink."""
        for key in list(self.state["groups"]) + list(self.earlier):
            head, _, traits_text = key.rpartition("|")
            if head == core and set(filter(None, traits_text.split("+"))) <= features:
                return key
        return None

    def step(self, index, scratch):
        """Draw case ``index`` and run it everywhere; a new divergence is shrunk and stored."""
        recipe = draw(np.random.default_rng([self.seed, index]), self.ops)
        try:
            case, _ = build(recipe)
        except Rejected:
            self.state["rejected"] += 1
            return
        self.state["cases"] += 1
        for impl in self.impls:
            row = self._run(impl, case, scratch)
            if row is None or row["status"] not in FAILING:
                self.state["known"] += bool(row and row["status"] == "xfail")
                continue
            core = core_signature(row)
            features = set(traits(case))
            key = self._explained(core, features)
            tried = core + "|" + "+".join(sorted(features))
            if key is None and tried in self.state["tried"]:  # shrunk before, to a case it does not cover
                self.state["repeats"] += 1
                continue
            small = None
            if key is None:
                self.state["tried"].append(tried)
                small_recipe, small, small_row = self._shrink(recipe, case, core, impl, scratch, row)
                key = signature(small_row, small)
            if key in self.state["groups"]:
                self.state["repeats"] += 1
                self.state["groups"][key]["hits"] += 1
            elif key in self.earlier:  # found by an earlier run: its stored case, re-run for this run's row
                stored = Case.read(self.found_dir / self.earlier[key]["file"])
                self.state["groups"][key] = {"case": stored.id, "impl": impl, "features": traits(stored),
                                             "index": index, "hits": 1, "earlier": True}
                self._row(self._run(impl, stored, scratch), key)
            else:
                self.state["groups"][key] = {"case": small.id, "impl": impl, "features": traits(small),
                                             "recipe": small_recipe, "index": index, "hits": 1}
                self._store(small, small_row, key, index)

    def _store(self, case, row, key, index):
        """The case in ``found_dir`` (manifest merged by content), its reproducer, its CSV row."""
        file = "%s/%s.npz" % (case.op, case.id)
        path = self.found_dir / file
        path.parent.mkdir(parents=True, exist_ok=True)
        case.write(path)
        entry = dict(entry_of(case, file), sha256=corpus.sha256_of(path), signatures=[key],
                     found_by={"seed": self.seed, "index": index})
        merge_manifest(self.found_dir, [entry])
        reproducers.write_found(self.repro_dir, row["impl"], case.id, self.found_dir, key)
        self._row(row, key)

    def _row(self, row, key):
        """A row of the run folder's ``found-<shard>.csv``: the results columns and the signature."""
        new = not self.found_path.exists()
        with open(self.found_path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=result_files.COLUMNS + ["signature"], extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(dict(row, signature=key))
        result_files.append_outputs(result_files.found_outputs_path(self.found_path), row)

    def run(self, budget=None, max_cases=None, progress=None):
        """Draw until ``budget`` seconds or ``max_cases`` draws (this shard's); returns the state."""
        started, before = time.monotonic(), self.state["seconds"]
        scratch = Path(tempfile.mkdtemp(prefix="conformance-search-"))
        bar = progress(total=max_cases, initial=min(self.state["next"], max_cases or self.state["next"])) \
            if progress else None
        try:
            while (max_cases is None or self.state["next"] < max_cases) and (
                    budget is None or time.monotonic() - started < budget):
                index = self.shard[0] + self.state["next"] * self.shard[1]
                self.step(index, scratch)
                shutil.rmtree(scratch / "cases", ignore_errors=True)
                self.state["next"] += 1
                self.state["seconds"] = before + time.monotonic() - started
                self._save()
                if bar is not None:
                    bar.set_postfix(finds=len(self.state["groups"]), known=self.state["known"], refresh=False)
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            for worker in self.workers.values():
                worker.stop()
            shutil.rmtree(scratch, ignore_errors=True)
            self._save()
        return self.state


def _simpler(value, values, size_range):
    """Candidates simpler than ``value``: a size's low end, a quarter, half, three quarters of the way
        (one less only near the end: a walk by ones would spend the shrink budget); an earlier choice."""
    if size_range is not None:
        low, gap = size_range[0], value - size_range[0]
        steps = [low, low + gap // 4, low + gap // 2, low + 3 * gap // 4] + ([value - 1] if gap <= 8 else [])
        return [c for c in dict.fromkeys(steps) if low <= c < value]
    position = list(values).index(value) if value in values else 0
    return list(values[:position])


def throughput(state) -> dict:
    """Cases per second per impl: runs over the wall time of its requests, comparison included,
    worker starts excluded (``start_seconds``)."""
    return {impl: state["runs"][impl] / seconds for impl, seconds in state["impl_seconds"].items() if seconds}
