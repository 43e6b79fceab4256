"""What every op's corpus cases are made of: :class:`Spec` (a case before it is stored) and the
value patterns several ops' case families share.

An op's module declares its case families (``cases()``, ``invalid_cases(dtype)``) with these;
``conformance/corpus.py`` iterates the registry, stores the specs and computes their goldens.  Every
draw here comes from a generator seeded by the case's name (:func:`case_rng`), so a case is the same
whatever else the corpus declares, and float values sit on binary grids that every dtype holds
exactly.  Worker side: no framework, no pandas, Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from impls import dtypes

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


def case_rng(name: str) -> np.random.Generator:
    # crc32 of the name: stable across Python runs (unlike hash()) and independent of case order.
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def grid(rng, shape, scale=2.0, step=1 / 64):
    """Normal values rounded to a binary grid: exact in every dtype at moderate size, compressible."""
    return np.round(rng.normal(0.0, scale, size=shape) / step) * step


def upstream_values(rng, shape):
    """A loss's cotangent: nonzero multiples of 1/8 in [-2, 2], exact in every dtype, signs exercised."""
    values = rng.integers(1, 17, size=shape) / 8.0
    return values * rng.choice([-1.0, 1.0], size=shape)


# --------------------------------------------------------------------------------------------
# Logits and labels (the two full-softmax ops)
# --------------------------------------------------------------------------------------------
def logits_of_kind(rng, shape, axis, kind):
    """Logits of a named kind; ``axis`` is the class axis (for kinds that shape whole rows)."""
    logits = grid(rng, shape)
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


def ignored_positions(shape, where):
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


def soft_labels(rng, shape, axis):
    """Distributions that sum to exactly 1 in every dtype: multinomial counts out of 64."""
    moved = np.moveaxis(np.zeros(shape), axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    counts = np.stack([rng.multinomial(64, rng.dirichlet(np.ones(flat.shape[1]))) for _ in flat])
    return np.moveaxis((counts / 64.0).reshape(moved.shape), -1, axis)


# --------------------------------------------------------------------------------------------
# Sampled classes with their expected counts (the two sampled ops)
# --------------------------------------------------------------------------------------------
def distinct_labels(rng, rows, num_true, num_classes, avoid=()):
    pool = np.setdiff1d(np.arange(num_classes), np.asarray(avoid, dtype=np.int64))
    return np.stack([rng.choice(pool, size=num_true, replace=False) for _ in range(rows)]).astype(np.int64)


def draw_candidates(labels, num_sampled, num_classes, seed, unique=True):
    """The oracle's log-uniform sampler: ``(candidates [S], true expected counts, sampled expected counts)``."""
    from impls import reference  # noqa: PLC0415 - the oracle's sampler, loaded when a case is made

    return reference.log_uniform_candidate_sampler(labels, labels.shape[1], num_sampled, unique, num_classes,
                                                   seed=seed)


def expected_count(classes, num_classes, num_sampled):
    """The expected count of each class in ``num_sampled`` log-uniform draws with replacement, at most 1:
    what a case stores where its samples are not (all) the sampler's own (forced hits, duplicates)."""
    from impls import reference  # noqa: PLC0415

    return np.minimum(reference.log_uniform_probability(classes, num_classes) * num_sampled, 1.0)


def force_hits(rng, negatives, labels, hits):
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
# Invalid input: each case is a valid one with one thing broken.  The reference must raise a
# ValueError/TypeError naming ``argument`` (checked when the corpus is generated and again at run
# time); frameworks' behaviour is recorded (raises, returns NaN/inf, returns finite numbers,
# crashes, hangs).
# --------------------------------------------------------------------------------------------
def broken(spec, name, argument, reason, inputs=None, params=None, drop=(), valid_in=None):
    """A bad-input case.  ``valid_in``: {convention: why} for the conventions whose documentation accepts
    the input (an impl following one of those is not judged on the case)."""
    new_inputs = {k: v for k, v in spec.inputs.items() if k not in drop}
    new_inputs.update(inputs or {})
    return Spec("invalid-" + name, spec.op, spec.dtype, dict(spec.params, **(params or {})), new_inputs,
                "invalid input: %s (%s)" % (reason, argument), ["invalid"], ["invalid_input"],
                {"argument": argument, "reason": reason}, valid_in)
