"""Sampler conformance: each native log-uniform sampler against P(k), its own expected counts and its seed.

Every impl with a native sampler (the NumPy reference, TensorFlow, Paddle 1.8's ``sample_logits``; see
``impls/samplers.py`` for how each is driven) runs in its own :class:`conformance.runner.Worker` process
over a grid of settings: ``range_max`` in {50, 1000, 10000} x ``num_sampled`` in {1, 8, 64} x
``unique`` in {False, True} (``unique`` with ``num_sampled > range_max`` left out), each with
``draws = ceil(10^5 / num_sampled)`` draws, so at least 10^5 sampled candidates per setting, and the
probe classes :func:`probe_classes` passed as ``true_classes``.  The sampler documented by both
frameworks (``../shared/FACTS.md``) is

    P(k) = (log(k + 2) - log(k + 1)) / log(range_max + 1),   k in [0, range_max);

with ``unique`` it draws with replacement until ``num_sampled`` distinct classes are seen, counting
every draw (``num_tries``), and reports the expected count of a class as
``-expm1(num_tries * log1p(-P(k)))``, or ``P(k) * num_sampled`` when ``num_tries == num_sampled``
(always so without ``unique``).

The package, one concept a module:

* :mod:`~conformance.sampler.grid`: the settings (``grid``, ``make_setting``, ``probe_classes``);
* :mod:`~conformance.sampler.stats`: P(k), the expected-count rule, chi-square, PIT, Holm (NumPy only);
* :mod:`~conformance.sampler.checks`: the rows of one setting's draws (``analyse``) and what they check;
* :mod:`~conformance.sampler.loss`: the rows of draws made through a framework's sampled loss;
* :mod:`~conformance.sampler.table`: the CSV's columns, one check's row, writing the file;
* :mod:`~conformance.sampler.run`: the workers, one impl or several side by side.

The core never imports a framework; this package needs NumPy only.
"""
from conformance.sampler.checks import (APPROXIMATE, PIT_BINS, PIT_SEED, RULE_ULPS, analyse,
                                        mark_documented_approximation)
from conformance.sampler.grid import (GRIDS, LOSS_MIN_CANDIDATES, LOSS_SETTINGS, MIN_CANDIDATES, SEED, grid,
                                      make_setting, probe_classes)
from conformance.sampler.loss import PADDLE_HIT_SHIFT
from conformance.sampler.run import DEFAULT_TIMEOUT, drawing_first, draws, impl_task, run_impl_sampler, run_sampler
from conformance.sampler.stats import (FAMILY_ALPHA, MIN_EXPECTED, apply_holm, chi2_sf, chi2_test, expected_count_rule,
                                       gammaincc, log_uniform_p, merge_bins, normal_two_sided, sequential_pit)
from conformance.sampler.table import COLUMNS, sampler_path, write_rows
from impls.samplers import FINGERPRINT_DRAWS  # the worker's default, which the core sends explicitly

__all__ = [
    "APPROXIMATE", "PIT_BINS", "PIT_SEED", "RULE_ULPS", "analyse", "mark_documented_approximation",
    "GRIDS", "LOSS_MIN_CANDIDATES", "LOSS_SETTINGS", "MIN_CANDIDATES", "SEED", "grid", "make_setting",
    "probe_classes",
    "PADDLE_HIT_SHIFT",
    "DEFAULT_TIMEOUT", "drawing_first", "draws", "impl_task", "run_impl_sampler", "run_sampler",
    "FAMILY_ALPHA", "MIN_EXPECTED", "apply_holm", "chi2_sf", "chi2_test", "expected_count_rule", "gammaincc",
    "log_uniform_p", "merge_bins", "normal_two_sided", "sequential_pit",
    "COLUMNS", "sampler_path", "write_rows",
    "FINGERPRINT_DRAWS",
]
