"""The benchmark's grids: which shapes, dtypes and modes a run times, built from the ops' declarations.

Every op declares its own shapes (``bench_grid``, an :class:`impls.ops.core.BenchGrid`, in its module
of ``impls/ops/``); this module knows no op and lays the grids out from the registry, in its order:

* ``default``: each op's declared default shapes, then the class sweep behind the report's "time
  against number of classes" plot (:data:`SWEEP_CLASSES` at one batch, samples and dim, every op side
  by side, forward+backward in float32);
* ``quick``: one shape per op, the sweep's at 10^4 classes, float32, both modes: the benchmark path of
  a CI job, whose environments run one after the other and so cannot compare impls fairly anyway;
* ``full``: the product of the ranges below for every op with an element cap (``full_arrays``), in
  the three float dtypes (long; meant for a GPU or a big machine).

A spec is a dict for ``impls.bench`` (``op``, the shape keys, ``dtype``, ``mode``); a shape key the op
does not read keeps its default (``impls.bench.DEFAULTS``).
"""
from __future__ import annotations

import fnmatch
import itertools

from impls import bench as worker_bench
from impls.ops import OPS

MODES = worker_bench.MODES
FLOAT_DTYPES = ("float32", "float16", "bfloat16")

# The class sweep: one batch, samples and dim (for the ops that read them), classes 10^3..10^6.
SWEEP_BATCH, SWEEP_SAMPLES, SWEEP_DIM = 128, 512, 128
SWEEP_CLASSES = (10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6)
QUICK_CLASSES = 10 ** 4

# The full grid's ranges; samples at most a quarter of the classes.  An op's shape with an array
# of more than FULL_MAX_ELEMENTS elements (2^28 float32 = 1 GiB) is left out.
FULL_BATCHES = (64, 512, 4096)
FULL_CLASSES = (10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6)
FULL_SAMPLES = (64, 512, 8192)
FULL_DIMS = (64, 256, 1024)
FULL_MAX_ELEMENTS = 2 ** 28


def _shape(info, **values) -> dict:
    """The spec of ``info``'s op at a shape: the given keys the op reads, the defaults for the rest."""
    shape = {"op": info.name}
    for key in worker_bench.SHAPE_KEYS:
        shape[key] = values[key] if key in info.bench_shape and key in values else worker_bench.DEFAULTS.get(key)
    return shape


def _sweep_shape(info, classes) -> dict:
    return _shape(info, batch=SWEEP_BATCH, classes=classes, samples=SWEEP_SAMPLES, dim=SWEEP_DIM)


# Each grid as ``(shape, dtypes[, modes])`` entries: every shape runs in both modes unless it names them.
def _default_shapes() -> list:
    declared = [(_shape(info, **shape),) + tuple(rest)
                for info in OPS.values() for shape, *rest in info.bench_grid.default]
    sweep = [(_sweep_shape(info, classes), ("float32",), ("forward_backward",))
             for classes in SWEEP_CLASSES for info in OPS.values()]
    return declared + sweep


def _quick_shapes() -> list:
    return [(_sweep_shape(info, QUICK_CLASSES), ("float32",)) for info in OPS.values()]


def _full_shapes() -> list:
    shapes = []
    for batch, classes in itertools.product(FULL_BATCHES, FULL_CLASSES):
        for info in OPS.values():
            arrays = info.bench_grid.full_arrays
            if arrays is None:
                continue
            samples = [s for s in FULL_SAMPLES if s * 4 <= classes] if "samples" in info.bench_shape else [0]
            dims = FULL_DIMS if "dim" in info.bench_shape else [0]
            for count, dim in itertools.product(samples, dims):
                shape = _shape(info, batch=batch, classes=classes, samples=count, dim=dim)
                if max(arrays(shape)) <= FULL_MAX_ELEMENTS:
                    shapes.append(shape)
    return [(shape, FLOAT_DTYPES) for shape in shapes]


_GRID_SHAPES = {"default": _default_shapes, "full": _full_shapes, "quick": _quick_shapes}
GRIDS = tuple(_GRID_SHAPES)


def grid_specs(name="default") -> list:
    """Benchmark specs (dicts for ``impls.bench``) of a named grid, shapes in order, both modes."""
    if name not in _GRID_SHAPES:
        raise ValueError("grid: expected one of %s, got %r" % (", ".join(GRIDS), name))
    specs, seen = [], set()
    for shape, dtypes, *modes in _GRID_SHAPES[name]():
        for dtype in dtypes:
            for mode in (modes[0] if modes else MODES):
                spec = dict(shape, dtype=dtype, mode=mode)
                key = tuple(sorted(spec.items()))
                if key not in seen:  # the sweep may meet a shape the grid already has
                    seen.add(key)
                    specs.append(spec)
    return specs


def spec_label(spec) -> str:
    """A spec's name for ``conformance bench --shapes``, e.g.
    ``softmax_with_cross_entropy/forward/float32/batch=64/classes=1000/samples=0/dim=0/num_true=1``."""
    spec = dict(worker_bench.DEFAULTS, **spec)
    return "/".join([spec["op"], spec["mode"], spec["dtype"]]
                    + ["%s=%s" % (key, spec[key]) for key in worker_bench.SHAPE_KEYS])


def select_specs(specs, patterns) -> list:
    """The specs whose :func:`spec_label` matches one of the fnmatch ``patterns`` (all when none)."""
    if not patterns:
        return list(specs)
    return [spec for spec in specs if any(fnmatch.fnmatchcase(spec_label(spec), p) for p in patterns)]
