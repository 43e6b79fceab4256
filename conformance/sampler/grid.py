"""The settings a sampler run draws: ``range_max`` x ``num_sampled`` x ``unique``, the probe classes,
the draws per setting and their seeds, and the settings drawn through the framework's sampled loss."""
from __future__ import annotations

import math

MIN_CANDIDATES = 100_000  # sampled candidates per setting (default grid)
SEED = 1234


def probe_classes(range_max: int) -> list:
    """Classes whose expected counts are read every draw (passed as ``true_classes``): the most
    probable, some in the middle, and the two least probable (the last one is used to read back
    ``num_tries``)."""
    picks = [0, 1, 2, 5, range_max // 10, range_max // 2, range_max - 2, range_max - 1]
    return sorted({k for k in picks if 0 <= k < range_max})


def make_setting(range_max, num_sampled, unique, min_candidates=MIN_CANDIDATES, seed=SEED, via="sampler") -> dict:
    """One setting; ``via="loss"``: drawn by the framework's sampled loss (the probes are its labels)."""
    true_classes = probe_classes(range_max)
    return {"range_max": int(range_max), "num_sampled": int(num_sampled), "unique": bool(unique),
            "true_classes": true_classes, "num_true": len(true_classes),
            "draws": int(math.ceil(min_candidates / float(num_sampled))), "seed": int(seed), "via": via}


# Settings drawn through the loss (unique: both losses sample unique), (range_max, num_sampled), and
# their candidates per setting: each draw is a whole loss call, so fewer than the sampler's.
LOSS_SETTINGS = {"default": ((50, 8), (1000, 64), (10000, 64)), "small": ((1000, 8),)}
LOSS_MIN_CANDIDATES = 30_000


def grid(name="default") -> list:
    """Settings of a named grid: ``default`` (>= 10^5 candidates each) or ``small`` (the tests')."""
    if name == "default":
        ranges, samples, minimum = (50, 1000, 10000), (1, 8, 64), MIN_CANDIDATES
    elif name == "small":
        ranges, samples, minimum = (50, 1000), (1, 8), 30_000
    else:
        raise ValueError("grid: expected one of %s, got %r" % (", ".join(GRIDS), name))
    settings = []
    for range_max in ranges:
        for num_sampled in samples:
            for unique in (False, True):
                if unique and num_sampled > range_max:
                    continue
                settings.append(make_setting(range_max, num_sampled, unique, minimum, SEED + len(settings)))
    for range_max, num_sampled in LOSS_SETTINGS[name]:
        settings.append(make_setting(range_max, num_sampled, True, min(minimum, LOSS_MIN_CANDIDATES),
                                     SEED + len(settings), via="loss"))
    return settings


GRIDS = ("default", "small")
