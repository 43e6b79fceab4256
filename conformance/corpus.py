"""The stored case corpus: a deterministic generator, its manifest of SHA-256 hashes, and verification.

Every case is declared once, as a call in one of the ``*_cases`` generators below, with the inputs
drawn from a seed derived from the case id.  Float inputs are rounded to the case dtype before they
are stored, and golden outputs are computed in float64 by the reference *from the stored values*, so
the golden answer is the exact answer for exactly the inputs every framework receives.  Sampled
classes and their probabilities (expected counts) are stored too: every framework sees the same
samples.

Layout: ``cases/<op>/<case id>.npz`` (see ``impls/caseio.py``) and ``cases/MANIFEST.json`` listing
each file with its SHA-256 and its metadata.  The corpus describes cases only: which impl can run a
case is decided at run time (``impls/support.py``), so adding or changing an adapter never changes
a corpus file.  The per-op facts a case needs (the oracle, the logit scale) come from ``impls/ops/``.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from impls import dtypes, numpy_dispatch
from impls import reference as ref
from impls.caseio import Case, flatten_gradients
from impls.ops import OPS

MANIFEST = "MANIFEST.json"

FORMAT_VERSION = 1
DEFAULT_CASES_DIR = Path(__file__).resolve().parent.parent / "cases"
ALL_DTYPES = dtypes.NAMES


@dataclass
class Spec:
    """A case before it is stored: float64 inputs, options, tags and features."""

    name: str  # the id without the op prefix and dtype suffix
    op: str
    dtype: str
    params: dict
    inputs: dict  # name -> array (floats as float64, ints as int64), "upstream" included
    description: str
    tags: list = field(default_factory=list)
    features: list = field(default_factory=list)
    invalid: dict = None  # {"argument", "reason"} for the bad-input family: no golden, the reference raises
    valid_in: dict = None  # bad input only: {convention: why} for the conventions whose documentation accepts it

    @property
    def id(self) -> str:
        return "%s-%s-%s" % (self.op, self.name, dtypes.SHORT[self.dtype])


def _rng(name: str) -> np.random.Generator:
    # crc32 of the name: stable across Python runs (unlike hash()) and independent of case order.
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def _grid(rng, shape, scale=2.0, step=1 / 64):
    """Normal values rounded to a binary grid: exact in every dtype at moderate size, compressible."""
    return np.round(rng.normal(0.0, scale, size=shape) / step) * step


def _upstream(rng, shape):
    # Nonzero multiples of 1/8 in [-2, 2]: exact in every dtype, signs exercised.
    values = rng.integers(1, 17, size=shape) / 8.0
    return values * rng.choice([-1.0, 1.0], size=shape)


# --------------------------------------------------------------------------------------------
# softmax_with_cross_entropy
# --------------------------------------------------------------------------------------------
def _logits(rng, shape, axis, kind):
    """Logits of a named kind; ``axis`` is the class axis (for kinds that shape whole rows)."""
    logits = _grid(rng, shape)
    if kind == "pm1e4":  # saturated: +-1e4 mixed with ordinary values
        logits = np.where(rng.random(shape) < 0.3, rng.choice([-1e4, 1e4], size=shape), logits)
    elif kind == "spread":  # huge spread inside each row
        logits = np.round(rng.uniform(-1e4, 1e4, size=shape))
    elif kind == "offset":  # large common offset: cancellation in logsumexp - logit
        logits = logits + 1e4
    elif kind == "equal":  # a uniform softmax
        logits = np.full(shape, 3.25)
    elif kind == "neg_inf":  # masked classes, never every class of a row
        mask = rng.random(shape) < 0.3
        first = [slice(None)] * len(shape)
        first[axis] = 0
        mask[tuple(first)] = False
        logits = np.where(mask, -np.inf, logits)
    elif kind in ("nan", "posinf"):  # one poisoned entry in the first row: that row's outputs are NaN
        first = [0] * len(shape)
        first[axis] = shape[axis] // 2
        logits = logits.copy()
        logits[tuple(first)] = np.nan if kind == "nan" else np.inf
    elif kind != "normal":
        raise ValueError("kind: unknown logits kind %r" % kind)
    return logits


def _ignored(shape, where):
    """The label positions to set to ignore_index: "single" (the middle one), "row" (index 0 of axis 0),
    "half" (every other one) or "all"."""
    mask = np.zeros(shape, dtype=bool)
    if where == "single":
        mask.flat[len(mask.flat) // 2] = True
    elif where == "row":
        mask[0] = True
    elif where == "half":
        mask.flat[::2] = True
    elif where == "all":
        mask[...] = True
    else:
        raise ValueError("ignore: expected 'single', 'row', 'half' or 'all', got %r" % (where,))
    return mask


def _soft_labels(rng, shape, axis):
    """Distributions that sum to exactly 1 in every dtype: multinomial counts out of 64."""
    moved = np.moveaxis(np.zeros(shape), axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    counts = np.stack([rng.multinomial(64, rng.dirichlet(np.ones(flat.shape[1]))) for _ in flat])
    return np.moveaxis((counts / 64.0).reshape(moved.shape), -1, axis)


# Per-row total weights of unnormalised soft labels (exact binary fractions; 0 means no label mass).
LABEL_SUMS = (0.5, 2.0, 1.0, 0.25, 3.0, 0.0)


def swce(name, shape, axis=-1, dtype="float64", soft=False, ignore=None, ignore_index=-100,
         return_softmax=False, stable=True, kind="normal", unnormalized=False, label_rank_minus_1=False, tags=()):
    rng = _rng("swce-" + name + dtype)
    ax = axis % len(shape)
    loss_shape = tuple(1 if i == ax else n for i, n in enumerate(shape))
    logits = _logits(rng, shape, ax, kind)
    features, description = [], ["logits %s (%s), axis %d" % (list(shape), kind, axis)]
    if soft:
        label = _soft_labels(rng, shape, ax)
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
            label = np.where(_ignored(loss_shape, ignore), ignore_index, label)
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
    inputs = {"logits": logits, "label": label, "upstream": _upstream(rng, loss_shape)}
    return Spec(name, "softmax_with_cross_entropy", dtype, params, inputs, "; ".join(description),
                ["rank%d" % len(shape), "K%d" % shape[ax], kind] + list(tags), features)


def _fix_sum(label, axis):
    """Put any rounding remainder on each row's largest entry so rows sum to exactly 1."""
    remainder = 1.0 - label.sum(axis=axis, keepdims=True)
    top = np.argmax(label, axis=axis)
    np.put_along_axis(label, np.expand_dims(top, axis), np.take_along_axis(
        label, np.expand_dims(top, axis), axis=axis) + remainder, axis=axis)
    return label


def swce_cases():
    for dtype in ALL_DTYPES:
        for soft in (False, True):
            yield swce("base-%s" % ("soft" if soft else "hard"), (8, 10), dtype=dtype, soft=soft, tags=["base"])
    shapes = {1: (10,), 2: (4, 7), 3: (3, 4, 5), 4: (2, 3, 4, 5)}
    for rank, shape in shapes.items():
        for axis in list(range(rank)) + [-1]:
            if axis == -1 and rank == 1:
                continue
            for soft in (False, True):
                for dtype in ("float32", "float64"):
                    label = "soft" if soft else "hard"
                    yield swce("r%d-ax%s-%s" % (rank, axis, label), shape, axis, dtype, soft=soft, tags=["axis"])
    for ignore_index in (-100, -1, 3):
        for where in ("single", "row", "all"):
            yield swce("ignore%d-%s" % (ignore_index, where), (6, 9), dtype="float64", ignore=where,
                       ignore_index=ignore_index, tags=["ignore_index"])
        yield swce("ignore%d-single-r3ax1" % ignore_index, (3, 5, 4), axis=1, dtype="float32",
                   ignore="single", ignore_index=ignore_index, tags=["ignore_index"])
    for dtype in ("float32", "float64"):
        for soft in (False, True):
            label = "soft" if soft else "hard"
            yield swce("softmax-%s" % label, (5, 11), dtype=dtype, soft=soft, return_softmax=True,
                       tags=["return_softmax"])
            yield swce("softmax-r3ax0-%s" % label, (4, 3, 5), axis=0, dtype=dtype, soft=soft,
                       return_softmax=True, tags=["return_softmax"])
        yield swce("unstable", (5, 11), dtype=dtype, stable=False, tags=["numeric_stable_mode"])
        yield swce("unstable-ignore-softmax", (5, 11), dtype=dtype, stable=False, ignore="single",
                   return_softmax=True, tags=["numeric_stable_mode", "combined"])
        yield swce("r3ax1-soft-softmax-unstable", (3, 6, 4), axis=1, dtype=dtype, soft=True,
                   return_softmax=True, stable=False, tags=["combined"])
    for kind in ("pm1e4", "spread", "offset", "equal", "neg_inf"):
        for soft in (False, True):
            label = "soft" if soft else "hard"
            for dtype in ("float32", "float64"):
                yield swce("%s-%s" % (kind, label), (6, 12), dtype=dtype, soft=soft, kind=kind,
                           return_softmax=True, tags=["extreme"])
        yield swce("%s-hard" % kind, (6, 12), dtype="float16", kind=kind, tags=["extreme"])
    # Unusual but valid input: the reference documents its answer (impls/reference.py) and every
    # framework is compared with it; a framework that answers otherwise is a finding.
    for dtype in ("float32", "float64"):
        for kind in ("nan", "posinf"):
            for soft in (False, True):
                label = "soft" if soft else "hard"
                yield swce("%s-%s" % (kind, label), (6, 12), dtype=dtype, soft=soft, kind=kind,
                           return_softmax=True, tags=["unusual"])
        yield swce("soft-unnormalized", (6, 12), dtype=dtype, soft=True, unnormalized=True, return_softmax=True,
                   tags=["unusual"])
        yield swce("soft-unnormalized-r3ax1", (3, 6, 4), axis=1, dtype=dtype, soft=True, unnormalized=True,
                   tags=["unusual"])
    for classes, batch in ((2, 16), (3, 8), (1000, 8), (32768, 2), (100000, 2)):
        for soft in (False, True):
            label = "soft" if soft else "hard"
            dtypes = ("float32",) if classes >= 32768 else ("float32", "float64")
            for dtype in dtypes:
                yield swce("K%d-%s" % (classes, label), (batch, classes), dtype=dtype, soft=soft, tags=["classes"])
    yield swce("K1000-hard-ignore", (8, 1000), dtype="bfloat16", ignore="single", tags=["classes"])
    yield swce("label-rank-minus-1", (4, 6), dtype="float64", label_rank_minus_1=True, tags=["unusual"])


# --------------------------------------------------------------------------------------------
# Sampled classes with their probabilities, shared by both sampled ops
# --------------------------------------------------------------------------------------------
def _distinct_labels(rng, rows, num_true, num_classes, avoid=()):
    pool = np.setdiff1d(np.arange(num_classes), np.asarray(avoid, dtype=np.int64))
    return np.stack([rng.choice(pool, size=num_true, replace=False) for _ in range(rows)]).astype(np.int64)


def _sample(labels, num_sampled, num_classes, seed, unique=True):
    return ref.log_uniform_candidate_sampler(labels, labels.shape[1], num_sampled, unique, num_classes, seed=seed)


def _force_hits(rng, negatives, labels, hits):
    """Overwrite negative columns with the row's own labels: 'some' hits or 'all' of them."""
    negatives = negatives.copy()
    rows, num_sampled = negatives.shape
    for i in range(rows):
        if hits == "all":
            negatives[i] = rng.choice(labels[i], size=num_sampled)
        elif hits == "some" and i % 2 == 0:
            negatives[i, rng.integers(num_sampled)] = rng.choice(labels[i])
    return negatives


# --------------------------------------------------------------------------------------------
# sampled_softmax_with_cross_entropy
# --------------------------------------------------------------------------------------------
def sswce(name, batch=6, num_classes=50, num_true=1, num_samples=8, dtype="float64", negatives="per_row",
          hits="none", remove=True, duplicates=False, kind="normal", tags=()):
    rng = _rng("sswce-" + name + dtype)
    logits = _logits(rng, (batch, num_classes), 1, kind)
    labels = _distinct_labels(rng, batch, num_true, num_classes)
    seed = int(rng.integers(2**31))
    if negatives == "shared":
        candidates, true_q, sampled_q = _sample(labels, num_samples, num_classes, seed, unique=not duplicates)
        neg = np.broadcast_to(candidates, (batch, num_samples))
        neg_q = np.broadcast_to(sampled_q, (batch, num_samples))
    else:
        draws = [_sample(labels[i:i + 1], num_samples, num_classes, seed + i, unique=not duplicates)
                 for i in range(batch)]
        neg = np.stack([d[0] for d in draws])
        true_q = np.concatenate([d[1] for d in draws])
        neg_q = np.stack([d[2] for d in draws])
    if hits == "none":  # replace accidental hits by the first class the row's labels do not use
        free = np.array([np.setdiff1d(np.arange(num_classes), row)[0] for row in labels])
        neg = np.where((neg[:, :, None] == labels[:, None, :]).any(axis=2), free[:, None], neg)
    else:
        neg = _force_hits(rng, neg, labels, hits)
    if duplicates:
        neg = neg.copy()
        neg[:, -1] = neg[:, 0]
    samples = np.concatenate([labels, neg], axis=1).astype(np.int64)
    # A class's probability is its expected count, whichever column it lands in.
    probability = ref.log_uniform_probability(samples, num_classes)
    probability = np.concatenate([true_q, neg_q], axis=1) if hits == "none" and not duplicates else \
        np.minimum(probability * num_samples, 1.0)
    has_hits = bool((neg[:, :, None] == labels[:, None, :]).any())
    features = ["per_row_negatives"] if negatives == "per_row" else []
    features += ["multi_true"] if num_true > 1 else []
    features += ["accidental_hits"] if has_hits else []
    features += ["remove_accidental_hits"] if remove else []
    features += ["duplicate_samples"] if duplicates else []
    params = {"num_samples": num_samples, "num_true": num_true, "remove_accidental_hits": remove,
              "use_customized_samples": True, "seed": 0}
    inputs = {"logits": logits, "label": labels, "customized_samples": samples,
              "customized_probabilities": probability, "upstream": _upstream(rng, (batch, 1))}
    description = ("logits [%d, %d] (%s), T=%d, S=%d, %s negatives, accidental hits: %s (%s)%s"
                   % (batch, num_classes, kind, num_true, num_samples, negatives.replace("_", "-"), hits,
                      "removed" if remove else "kept", ", duplicate samples" if duplicates else ""))
    return Spec(name, "sampled_softmax_with_cross_entropy", dtype, params, inputs, description,
                ["K%d" % num_classes, "T%d" % num_true, negatives, "hits-" + hits, kind] + list(tags), features)


def sswce_cases():
    for dtype in ALL_DTYPES:
        yield sswce("base", dtype=dtype, tags=["base"])
    for num_true in (1, 2, 3, 4):
        for dtype in ("float32", "float64"):
            yield sswce("T%d" % num_true, num_true=num_true, dtype=dtype, hits="some")
    for hits in ("none", "some", "all"):
        for remove in (True, False):
            for dtype in ("float32", "float64"):
                yield sswce("T2-hits-%s-%s" % (hits, "removed" if remove else "kept"), num_true=2, hits=hits,
                            remove=remove, dtype=dtype, tags=["hits"])
    for remove in (True, False):
        yield sswce("dup-%s" % ("removed" if remove else "kept"), duplicates=True, hits="some", remove=remove,
                    tags=["duplicates"])
        yield sswce("shared-%s" % ("removed" if remove else "kept"), negatives="shared", hits="some",
                    remove=remove, tags=["shared"])
    yield sswce("shared-T3-dup", negatives="shared", num_true=3, duplicates=True, dtype="float32",
                tags=["shared", "duplicates"])
    yield sswce("K2", batch=4, num_classes=2, num_samples=1, tags=["classes"])
    yield sswce("K1000", batch=8, num_classes=1000, num_samples=64, dtype="float32", tags=["classes"])
    yield sswce("K100000", batch=4, num_classes=100000, num_samples=256, dtype="float32", tags=["classes"])
    for kind in ("pm1e4", "offset", "equal"):
        yield sswce(kind, kind=kind, hits="some", tags=["extreme"])
        yield sswce(kind, kind=kind, hits="some", dtype="float32", tags=["extreme"])


# --------------------------------------------------------------------------------------------
# sampled_softmax_loss
# --------------------------------------------------------------------------------------------
def ssl(name, batch=5, num_classes=40, dim=6, num_true=1, num_sampled=7, dtype="float64", shards=0,
        strategy="mod", hits="none", remove=True, duplicates=False, scale=0.5, sharded_biases=False,
        broadcast_true_count=False, tags=()):
    rng = _rng("ssl-" + name + dtype)
    weights = _grid(rng, (num_classes, dim), scale)
    biases = _grid(rng, (num_classes,), scale)
    inputs = _grid(rng, (batch, dim), 1.0)
    if hits == "all":  # every row's labels contain every candidate
        candidates = rng.choice(num_classes, size=num_sampled, replace=False)
        labels = np.stack([rng.permutation(np.resize(candidates, num_true)) for _ in range(batch)])
        candidates, true_q, sampled_q = candidates, None, None
    else:
        labels = _distinct_labels(rng, batch, num_true, num_classes)
        seed = int(rng.integers(2**31))
        candidates, true_q, sampled_q = _sample(labels, num_sampled, num_classes, seed, unique=not duplicates)
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
        true_q = np.minimum(ref.log_uniform_probability(labels, num_classes) * num_sampled, 1.0)
        sampled_q = np.minimum(ref.log_uniform_probability(candidates, num_classes) * num_sampled, 1.0)
    if broadcast_true_count:  # valid: [B, 1] broadcasts over the num_true columns
        true_q = true_q[:, :1]
    features = ["multi_true"] if num_true > 1 else []
    features += ["broadcast_true_expected_count"] if broadcast_true_count else []
    features += ["accidental_hits"] if np.isin(candidates, labels).any() else []
    features += ["remove_accidental_hits"] if remove else []
    features += ["duplicate_samples"] if duplicates else []
    arrays = {"biases": biases, "labels": labels, "inputs": inputs, "sampled_candidates": candidates,
              "true_expected_count": true_q, "sampled_expected_count": sampled_q,
              "upstream": _upstream(rng, (batch,))}
    if shards:
        layout = ref.shard_layout(num_classes, shards, strategy)
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
    return Spec(name, "sampled_softmax_loss", dtype, params, arrays, description, tags, features)


def ssl_cases():
    for dtype in ALL_DTYPES:
        yield ssl("base", dtype=dtype, tags=["base"])
    for num_true in (1, 2, 3, 4):
        for dtype in ("float32", "float64"):
            yield ssl("T%d" % num_true, num_true=num_true, dtype=dtype, hits="some")
    for hits in ("none", "some", "all"):
        for remove in (True, False):
            for dtype in ("float32", "float64"):
                yield ssl("T3-hits-%s-%s" % (hits, "removed" if remove else "kept"), num_true=3,
                          num_sampled=3 if hits == "all" else 7, hits=hits, remove=remove, dtype=dtype,
                          tags=["hits"])
    for remove in (True, False):
        yield ssl("dup-%s" % ("removed" if remove else "kept"), duplicates=True, hits="some", remove=remove,
                  tags=["duplicates"])
    for strategy in ("mod", "div"):
        for shards in (1, 2, 3, 4):
            for dtype in ("float32", "float64"):
                yield ssl("T2-hits-%s%d" % (strategy, shards), num_classes=11, num_true=2, shards=shards,
                          strategy=strategy, hits="some", dtype=dtype, tags=["shards"])
        yield ssl("even-%s4" % strategy, num_classes=12, shards=4, strategy=strategy, tags=["shards"])
        yield ssl("K1000-%s3" % strategy, num_classes=1000, dim=16, num_sampled=64, shards=3, strategy=strategy,
                  dtype="float32", tags=["shards", "classes"])
    yield ssl("K2", batch=4, num_classes=2, num_sampled=1, hits="some", tags=["classes"])
    yield ssl("K1000", batch=8, num_classes=1000, dim=16, num_sampled=64, dtype="float32", tags=["classes"])
    yield ssl("K100000", batch=4, num_classes=100000, dim=8, num_sampled=256, dtype="float32", tags=["classes"])
    yield ssl("large-logits", scale=40.0, hits="some", tags=["extreme"])
    yield ssl("large-logits", scale=40.0, hits="some", dtype="float32", tags=["extreme"])
    yield ssl("sharded-biases-mod3", num_classes=11, shards=3, strategy="mod", sharded_biases=True, tags=["shards"])
    yield ssl("T2-true-count-B1", num_true=2, hits="some", broadcast_true_count=True, tags=["unusual"])


# --------------------------------------------------------------------------------------------
# cross_entropy: the loss users call, with goldens per documented convention (see build_case)
# --------------------------------------------------------------------------------------------
def _probabilities(logits, axis):
    """A softmax of the grid logits: probabilities a softmax layer would give (rounded to the case
    dtype when stored, so rows sum to 1 only approximately, as a framework's softmax output does)."""
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _weights(rng, classes):
    # Multiples of 1/8 in [0.25, 2]: exact in every dtype, unequal so each convention's weighting shows.
    return rng.integers(2, 17, size=classes) / 8.0


def xent(name, shape, axis=-1, dtype="float64", soft=False, reduction="mean", weighted=False, ignore=None,
         ignore_index=-100, smoothing=0.0, use_softmax=True, kind="normal", tiny=False, tags=()):
    """A cross_entropy case.  ``ignore``: None, "single" (one position), "row" (the first index of
    axis 0), "half" or "all" positions labelled ``ignore_index`` (class-index labels only);
    ``tiny``: probabilities (use_softmax=False) of 1e-9 on a few labelled classes."""
    rng = _rng("xent-" + name + dtype)
    ax = axis % len(shape)
    classes = shape[ax]
    loss_shape = tuple(n for i, n in enumerate(shape) if i != ax)
    logits = _logits(rng, shape, ax, kind)
    features, words = [], ["logits %s (%s), axis %d, reduction %s" % (list(shape), kind, axis, reduction)]
    if soft:
        label = _soft_labels(rng, shape, ax)
        features.append("soft_label")
        words.append("probability targets")
    else:
        label = rng.integers(0, classes, size=loss_shape).astype(np.int64)
        if ignore:
            label = np.where(_ignored(loss_shape, ignore), ignore_index, label)
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
    if smoothing:
        features.append("label_smoothing")
        words.append("label_smoothing=%g" % smoothing)
    if reduction != "mean":
        features.append("reduction_" + reduction)
    if ax != len(shape) - 1:
        features.append("axis_not_last")
    if len(shape) >= 3:
        features.append("rank3plus")
    inputs["upstream"] = _upstream(rng, loss_shape if reduction == "none" else ())
    params = {"axis": axis, "soft_label": soft, "reduction": reduction, "ignore_index": ignore_index,
              "label_smoothing": smoothing, "use_softmax": use_softmax}
    return Spec(name, "cross_entropy", dtype, params, inputs, "; ".join(words),
                ["rank%d" % len(shape), "K%d" % classes, reduction] + list(tags), features)


def xent_cases():
    """About 40 cases: each option alone in float64, then the combinations where the documented
    conventions part ways, the low-precision dtypes, other axes and probability inputs."""
    shape = (6, 5)
    for soft in (False, True):
        label = "soft" if soft else "hard"
        for reduction in ("mean", "sum", "none"):
            yield xent("%s-%s" % (label, reduction), shape, soft=soft, reduction=reduction, tags=["base"])
        for reduction in ("mean", "none"):
            yield xent("%s-weight-%s" % (label, reduction), shape, soft=soft, reduction=reduction, weighted=True,
                       tags=["weight"])
        yield xent("%s-smooth-mean" % label, shape, soft=soft, smoothing=0.1, tags=["label_smoothing"])
        yield xent("%s-smooth-weight-sum" % label, shape, soft=soft, reduction="sum", weighted=True, smoothing=0.2,
                   tags=["label_smoothing", "weight"])
    for dtype in ("float16", "bfloat16", "float32"):
        yield xent("hard-mean", shape, dtype=dtype, tags=["dtype"])
        yield xent("hard-weight-ignore-smooth-mean", shape, dtype=dtype, weighted=True, ignore="half",
                   smoothing=0.1, tags=["dtype", "combined"])
    yield xent("soft-weight-mean", shape, dtype="float32", soft=True, weighted=True, tags=["dtype", "weight"])
    # ignore_index: the mean's denominator is where the conventions differ most
    for reduction in ("mean", "none"):
        yield xent("ignore-half-%s" % reduction, shape, ignore="half", reduction=reduction, tags=["ignore_index"])
    yield xent("ignore-half-weight-mean", shape, ignore="half", weighted=True, tags=["ignore_index", "weight"])
    yield xent("ignore3-row-mean", shape, ignore="row", ignore_index=3, tags=["ignore_index"])
    for reduction in ("mean", "sum"):
        yield xent("ignore-all-%s" % reduction, shape, ignore="all", reduction=reduction, tags=["ignore_index"])
    yield xent("ignore-all-weight-mean", shape, ignore="all", weighted=True, tags=["ignore_index", "weight"])
    for reduction in ("mean", "none"):
        yield xent("ignore-smooth-%s" % reduction, shape, ignore="single", smoothing=0.1, reduction=reduction,
                   tags=["ignore_index", "label_smoothing"])
    yield xent("ignore-smooth-weight-mean", shape, ignore="half", smoothing=0.2, weighted=True,
               tags=["ignore_index", "label_smoothing", "weight"])
    # other class axes
    yield xent("r3ax1-hard-weight-ignore-mean", (3, 4, 5), axis=1, weighted=True, ignore="single", tags=["axis"])
    yield xent("r3ax0-hard-smooth-sum", (4, 3, 5), axis=0, smoothing=0.1, reduction="sum", tags=["axis"])
    yield xent("r4ax1-soft-none", (2, 3, 4, 2), axis=1, soft=True, reduction="none", tags=["axis"])
    yield xent("r3ax1-soft-weight-mean", (3, 4, 5), axis=1, soft=True, weighted=True, dtype="float32",
               tags=["axis", "weight"])
    # probabilities in (Paddle's use_softmax=False, Keras's from_logits=False)
    for soft in (False, True):
        label = "soft" if soft else "hard"
        yield xent("prob-%s-mean" % label, shape, soft=soft, use_softmax=False, tags=["probabilities"])
        yield xent("prob-%s-weight-none" % label, shape, soft=soft, use_softmax=False, weighted=True,
                   reduction="none", tags=["probabilities", "weight"])
        for dtype in ("float32", "float64"):
            yield xent("prob-tiny-%s-none" % label, shape, soft=soft, use_softmax=False, tiny=True, dtype=dtype,
                       reduction="none", tags=["probabilities"])
    yield xent("prob-hard-smooth-mean", shape, use_softmax=False, smoothing=0.1, tags=["probabilities"])
    yield xent("prob-hard-mean", shape, dtype="float32", use_softmax=False, tags=["probabilities", "dtype"])
    # extremes and many classes
    yield xent("pm1e4-hard-smooth-mean", shape, kind="pm1e4", smoothing=0.1, tags=["extreme"])
    yield xent("offset-soft-sum", shape, kind="offset", soft=True, reduction="sum", dtype="float32", tags=["extreme"])
    yield xent("K1000-hard-weight-ignore-mean", (8, 1000), weighted=True, ignore="single", dtype="float32",
               tags=["classes"])


# --------------------------------------------------------------------------------------------
# Invalid input: each case is a valid one with one thing broken.  The reference must raise a
# ValueError/TypeError naming ``argument`` (checked when the corpus is generated and again at run
# time); frameworks' behaviour is recorded (raises, returns NaN/inf, returns finite numbers,
# crashes, hangs).  The family comes last in the manifest, so a framework that corrupts its own
# memory on bad input can only affect other bad-input cases of the same worker.
# --------------------------------------------------------------------------------------------
def _broken(spec, name, argument, reason, inputs=None, params=None, drop=(), valid_in=None):
    """A bad-input case.  ``valid_in``: {convention: why} for the conventions whose documentation accepts
    the input (an impl following one of those is not judged on the case)."""
    new_inputs = {k: v for k, v in spec.inputs.items() if k not in drop}
    new_inputs.update(inputs or {})
    return Spec("invalid-" + name, spec.op, spec.dtype, dict(spec.params, **(params or {})), new_inputs,
                "invalid input: %s (%s)" % (reason, argument), ["invalid"], ["invalid_input"],
                {"argument": argument, "reason": reason}, valid_in)


# Each bad input is tried in float32 and float64: an op that fails in one dtype for an unrelated reason
# (a known deviation) is still tested in the other.
INVALID_DTYPES = ("float64", "float32")


def invalid_cases():
    for dtype in INVALID_DTYPES:
        yield from _invalid_cases(dtype)


def _invalid_cases(dtype):
    base = swce("base-hard", (8, 10), dtype=dtype)
    x, y = base.inputs["logits"], base.inputs["label"]
    soft = swce("base-soft", (8, 10), dtype=dtype, soft=True)
    yield _broken(base, "swce-label-too-large", "label", "a label equal to the number of classes",
                  {"label": np.where(np.arange(8)[:, None] == 3, 10, y)})
    yield _broken(base, "swce-label-negative", "label", "a negative label that is not ignore_index",
                  {"label": np.where(np.arange(8)[:, None] == 5, -5, y)})
    yield _broken(base, "swce-label-float", "label", "hard labels given as floats", {"label": y.astype(np.float64)})
    yield _broken(base, "swce-label-rank", "label", "hard labels with an extra axis", {"label": y[:, :, None]})
    yield _broken(base, "swce-label-batch", "label", "one label row too many", {"label": np.concatenate([y, y[:1]])})
    yield _broken(base, "swce-axis", "axis", "axis 2 for rank-2 logits", params={"axis": 2})
    yield _broken(soft, "swce-soft-label-shape", "label", "soft labels with one class too few",
                  {"label": soft.inputs["label"][:, :-1]})
    yield _broken(base, "swce-empty-classes", "logits", "logits with no classes",
                  {"logits": x[:, :0], "label": np.zeros((8, 1), dtype=np.int64)})

    sampled = sswce("base", dtype=dtype)
    samples, q = sampled.inputs["customized_samples"], sampled.inputs["customized_probabilities"]
    label = sampled.inputs["label"]
    yield _broken(sampled, "sswce-num-samples", "num_samples", "num_samples equal to the number of classes",
                  params={"num_samples": 50})
    yield _broken(sampled, "sswce-num-true", "label", "num_true=2 with one label column", params={"num_true": 2})
    yield _broken(sampled, "sswce-prob-zero", "customized_probabilities", "a zero probability",
                  {"customized_probabilities": np.where(np.arange(9) == 4, 0.0, q)})
    yield _broken(sampled, "sswce-prob-negative", "customized_probabilities", "a negative probability",
                  {"customized_probabilities": np.where(np.arange(9) == 2, -0.25, q)})
    yield _broken(sampled, "sswce-prob-nan", "customized_probabilities", "a NaN probability",
                  {"customized_probabilities": np.where(np.arange(9) == 6, np.nan, q)})
    yield _broken(sampled, "sswce-samples-not-labels", "customized_samples",
                  "first sample column differs from the label",
                  {"customized_samples": np.concatenate([(label + 1) % 50, samples[:, 1:]], axis=1)})
    yield _broken(sampled, "sswce-sample-out-of-range", "customized_samples", "a sample equal to the number of classes",
                  {"customized_samples": np.where(np.arange(9) == 5, 50, samples)})
    yield _broken(sampled, "sswce-label-out-of-range", "label", "a label equal to the number of classes",
                  {"label": np.full_like(label, 50), "customized_samples": np.concatenate(
                      [np.full_like(label, 50), samples[:, 1:]], axis=1)})
    yield _broken(sampled, "sswce-samples-width", "customized_samples", "samples one column short of T+S",
                  {"customized_samples": samples[:, :-1], "customized_probabilities": q[:, :-1]})
    yield _broken(sampled, "sswce-logits-rank", "logits", "rank-3 logits", {"logits": sampled.inputs["logits"][None]})
    yield _broken(sampled, "sswce-label-float", "label", "labels given as floats", {"label": label.astype(np.float64)})
    yield _broken(sampled, "sswce-batch", "label", "one label row too few",
                  {"label": label[:-1]})

    weights = ssl("base", dtype=dtype)
    sharded = ssl("T2-hits-div3", num_classes=11, num_true=2, shards=3, strategy="div", hits="some", dtype=dtype)
    labels, cands = weights.inputs["labels"], weights.inputs["sampled_candidates"]
    yield _broken(weights, "ssl-strategy", "partition_strategy", "an unknown partition_strategy",
                  params={"partition_strategy": "round-robin"})
    yield _broken(sharded, "ssl-strategy-sharded", "partition_strategy", "an unknown partition_strategy, 3 shards",
                  params={"partition_strategy": "round-robin"})
    yield _broken(sharded, "ssl-shard-sizes", "weights", "div shards of 3, 4, 4 rows (div puts the longer first)",
                  {"weights/0": sharded.inputs["weights/0"][:3],
                   "weights/2": np.concatenate([sharded.inputs["weights/2"], sharded.inputs["weights/0"][3:]])})
    yield _broken(sharded, "ssl-num-classes", "weights", "num_classes=12 but the shards hold 11 rows",
                  params={"num_classes": 12})
    yield _broken(weights, "ssl-label-out-of-range", "labels", "a label equal to num_classes",
                  {"labels": np.where(np.arange(5)[:, None] == 1, 40, labels)})
    yield _broken(weights, "ssl-candidate-out-of-range", "sampled_candidates", "a candidate equal to num_classes",
                  {"sampled_candidates": np.where(np.arange(7) == 3, 40, cands)})
    yield _broken(weights, "ssl-candidate-negative", "sampled_candidates", "a negative candidate",
                  {"sampled_candidates": np.where(np.arange(7) == 3, -1, cands)})
    yield _broken(weights, "ssl-true-count-shape", "true_expected_count", "true_expected_count [B+1, T]",
                  {"true_expected_count": np.concatenate([weights.inputs["true_expected_count"]] * 2)[:6]})
    yield _broken(weights, "ssl-sampled-count-zero", "sampled_expected_count", "a zero sampled expected count",
                  {"sampled_expected_count": np.where(np.arange(7) == 0, 0.0,
                                                      weights.inputs["sampled_expected_count"])})
    yield _broken(weights, "ssl-num-true", "labels", "num_true=2 with one label column", params={"num_true": 2})
    yield _broken(weights, "ssl-dim", "weights", "weights of dim 5 for inputs of dim 6",
                  {"weights": weights.inputs["weights"][:, :5]})
    yield _broken(weights, "ssl-batch", "labels", "labels for one example too many",
                  {"labels": np.concatenate([labels, labels[:1]])})
    yield _broken(weights, "ssl-num-sampled", "sampled_candidates", "num_sampled=8 with 7 candidates",
                  params={"num_sampled": 8})

    loss = xent("hard-weight-mean", (6, 5), weighted=True, dtype=dtype)
    soft_loss = xent("soft-mean", (6, 5), soft=True, dtype=dtype)
    yield _broken(loss, "xent-label-too-large", "label", "a label equal to the number of classes",
                  {"label": np.where(np.arange(6) == 2, 5, loss.inputs["label"])})
    yield _broken(loss, "xent-label-rank", "label", "class indices with a size-1 class axis ([N, 1])",
                  {"label": loss.inputs["label"][:, None]},
                  valid_in={"paddle": "paddle documents class indices of shape [N_1, ..., N_k, 1] as valid",
                            "keras": "keras squeezes a size-1 class axis of class indices (a single value "
                                     "per feature)"})
    yield _broken(loss, "xent-weight-length", "weight", "class weights for one class too few",
                  {"weight": loss.inputs["weight"][:-1]})
    yield _broken(loss, "xent-reduction", "reduction", "reduction='avg'", params={"reduction": "avg"})
    yield _broken(loss, "xent-label-smoothing", "label_smoothing", "label_smoothing=1.5",
                  params={"label_smoothing": 1.5})
    yield _broken(soft_loss, "xent-soft-label-shape", "label", "probability targets with one class too few",
                  {"label": soft_loss.inputs["label"][:, :-1]})


FAMILIES = (swce_cases, sswce_cases, ssl_cases, xent_cases, invalid_cases)


def all_specs():
    specs = [spec for family in FAMILIES for spec in family()]
    ids = [spec.id for spec in specs]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise RuntimeError("corpus generator declares duplicate case ids: %s" % duplicated)
    return specs


# --------------------------------------------------------------------------------------------
# From a spec to a stored case
# --------------------------------------------------------------------------------------------
def build_case(spec: Spec) -> Case:
    stored = {k: (dtypes.round_to(v, spec.dtype) if v.dtype.kind == "f" else v.astype(np.int64))
              for k, v in spec.inputs.items()}
    meta = {"id": spec.id, "op": spec.op, "dtype": spec.dtype, "params": spec.params,
            "description": spec.description, "tags": sorted(set(spec.tags)), "features": sorted(set(spec.features))}
    case = Case(meta, stored, {})
    as64 = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in stored.items()}
    case64 = Case(meta, as64, {})
    op = OPS[spec.op]
    if spec.invalid:
        meta.update(invalid=spec.invalid, outputs=[])
        if spec.valid_in:  # read by impls.support.why_unsupported, as for undefined goldens
            meta["undefined_conventions"] = {convention: "%s, %s convention: %s" % (spec.op, convention, why)
                                             for convention, why in spec.valid_in.items()}
        try:
            op.reference_grad()(upstream=case64.upstream, **case64.reference_kwargs())
        except (ValueError, TypeError) as error:
            if spec.invalid["argument"] not in str(error):
                raise RuntimeError("%s: the reference's error does not name %r: %s"
                                   % (spec.id, spec.invalid["argument"], error)) from None
            return case
        raise RuntimeError("%s: the reference accepted invalid input (%s)" % (spec.id, spec.invalid["reason"]))
    if op.conventions:
        _convention_goldens(case, op, case64)
    else:
        result = op.reference_grad()(upstream=case64.upstream, **case64.reference_kwargs())
        case.golden = {k: np.asarray(v, dtype=np.float64) for k, v in flatten_gradients(result).items()}
    meta["outputs"] = sorted(case.golden)
    meta["logit_scale"] = op.logit_scale(spec.params, as64)
    return case


def _convention_goldens(case, op, case64):
    """The goldens of an op with documented conventions (``cross_entropy``): ``case.golden`` is the
    first convention's (``ref.CONVENTIONS[0]``, torch's, defined for every case); each other
    convention stores only the outputs whose float64 values differ from those, bit for bit
    (``Case.convention_golden``), and ``meta["conventions"]`` lists, per convention that documents
    the case, those output names; ``meta["undefined_conventions"]`` says why the others do not."""
    per_convention, undefined = {}, {}
    for convention in ref.CONVENTIONS:
        try:
            result = op.reference_grad()(upstream=case64.upstream, convention=convention,
                                         **case64.reference_kwargs())
        except ref.ConventionUndefined as error:
            undefined[convention] = str(error)
            continue
        per_convention[convention] = {k: np.asarray(v, dtype=np.float64) for k, v in flatten_gradients(result).items()}
    base_name = ref.CONVENTIONS[0]
    case.golden = base = per_convention.pop(base_name)
    case.meta["conventions"] = {base_name: []}
    for convention, golden in per_convention.items():
        differ = sorted(k for k in golden if not np.array_equal(golden[k], base[k], equal_nan=True))
        case.meta["conventions"][convention] = differ
        case.convention_golden[convention] = {k: golden[k] for k in differ}
    if undefined:
        case.meta["undefined_conventions"] = undefined


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def generate_pinned(out_dir: Path = DEFAULT_CASES_DIR, extra_env=None) -> None:
    """Generate the corpus in a fresh interpreter whose NumPy dispatch is pinned: golden bits that do
    not depend on the CPU (impls/numpy_dispatch.py)."""
    env = dict(os.environ, **numpy_dispatch.pinned_env(), **(extra_env or {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(DEFAULT_CASES_DIR.parent), env.get("PYTHONPATH")]))
    subprocess.run([sys.executable, "-c", "import sys; from conformance import corpus; corpus.generate(sys.argv[1])",
                    str(out_dir)], env=env, check=True, timeout=600)


def generate(out_dir: Path = DEFAULT_CASES_DIR, progress=None) -> dict:
    """Write every case and the manifest under ``out_dir``; return the manifest.

    Bytes that every machine reproduces need a pinned NumPy (:func:`generate_pinned` or
    ``conformance corpus``); unpinned, the golden bits may depend on the CPU."""
    out_dir = Path(out_dir)
    specs = all_specs()
    entries = []
    for spec in (progress(specs) if progress else specs):
        case = build_case(spec)
        relative = Path(spec.op) / (spec.id + ".npz")
        (out_dir / spec.op).mkdir(parents=True, exist_ok=True)
        case.write(out_dir / relative)
        entries.append({"id": spec.id, "op": spec.op, "dtype": spec.dtype, "file": relative.as_posix(),
                        "sha256": sha256_of(out_dir / relative), "description": spec.description,
                        "tags": case.meta["tags"], "features": case.meta["features"]})
        if spec.invalid:
            entries[-1]["invalid"] = spec.invalid
    manifest = {"format": FORMAT_VERSION, "generator": "conformance corpus", "cases": entries,
                "corpus_sha256": hashlib.sha256("".join(e["sha256"] for e in entries).encode()).hexdigest()}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


class CorpusError(Exception):
    """The corpus on disk does not match its manifest."""


def load_manifest(cases_dir: Path = DEFAULT_CASES_DIR) -> dict:
    path = Path(cases_dir) / MANIFEST
    if not path.is_file():
        raise CorpusError("%s: no manifest (run `conformance corpus --out %s`)" % (path, cases_dir))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CorpusError("%s: not valid JSON (%s)" % (path, error)) from None
    if manifest.get("format") != FORMAT_VERSION:
        raise CorpusError("%s: format %r, expected %d" % (path, manifest.get("format"), FORMAT_VERSION))
    return manifest


def verify(cases_dir: Path = DEFAULT_CASES_DIR) -> list:
    """Return one line per problem (missing, changed or unlisted file); empty when the corpus is intact."""
    cases_dir = Path(cases_dir)
    try:
        manifest = load_manifest(cases_dir)
    except CorpusError as error:
        return [str(error)]
    problems = []
    listed = set()
    # A sub-folder with a manifest of its own (cases/found/, written by ``conformance search``) is a
    # corpus of its own: verified the same way, its files listed there.
    for sub_manifest in sorted(cases_dir.glob("*/" + MANIFEST)):
        problems += verify(sub_manifest.parent)
        listed.update(p.resolve() for p in sub_manifest.parent.rglob("*.npz"))
    for entry in manifest["cases"]:
        path = cases_dir / entry["file"]
        listed.add(path.resolve())
        if not path.is_file():
            problems.append("%s: missing" % path)
        elif sha256_of(path) != entry["sha256"]:
            problems.append("%s: content differs from the manifest (sha256 %s, expected %s)"
                            % (path, sha256_of(path)[:12], entry["sha256"][:12]))
    for path in sorted(cases_dir.rglob("*.npz")):
        if path.resolve() not in listed:
            problems.append("%s: not in the manifest" % path)
    return problems
