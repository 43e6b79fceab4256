"""The NumPy contender's floors (impls/numpy_floors.py) and their hook in the benchmark worker.

Only that the parts exist for every op and mode the contender is benchmarked on, run on small
shapes and give positive times: whether a floor is below the contender's time is a measurement,
for the benchmark (timing inequalities do not belong in tests on a shared machine).
"""
from __future__ import annotations

import pytest

from helpers_reference import ROOT  # noqa: F401 - puts the repo on sys.path
from conformance.bench import grid_specs
from impls import bench
from impls.numpy_fast import core as fast_core  # the contender's switches, read there at call time
from impls import numpy_floors
from impls.numpy_fast_adapter import NumpyFast
from impls.reference_adapter import NumpyReference

# Small shapes: the parts' code paths, not their speed.
SMALL = {"batch": 8, "classes": 300, "samples": 12, "dim": 16}
FAST_OPS = tuple(NumpyFast.ops)


def _small(spec):
    return bench.normalize_spec(dict(spec, **{key: value for key, value in SMALL.items() if spec.get(key)}))


def _grid(dtype):
    """The default grid's (op, mode) pairs of the contender's ops in ``dtype``, one spec each."""
    specs = {}
    for spec in grid_specs("default"):
        if spec["dtype"] == dtype and spec["op"] in FAST_OPS:
            specs.setdefault((spec["op"], spec["mode"]), spec)
    return specs


GRID_FLOAT32 = _grid("float32")


def test_the_default_grid_has_every_fast_op_and_mode_in_float32():
    assert set(GRID_FLOAT32) == {(op, mode) for op in FAST_OPS for mode in bench.MODES}


GRID_ALL = sorted((op, mode, dtype) for dtype in ("float32", "float16", "bfloat16") for op, mode in _grid(dtype))


@pytest.fixture
def numpy_calls_only(monkeypatch):
    """The contender without its compiled kernels, whose cases get no floor."""
    monkeypatch.setattr(fast_core, "_KERNELS", False)


@pytest.mark.parametrize("op, mode, dtype", GRID_ALL)
def test_floor_parts_run_on_small_shapes(op, mode, dtype, numpy_calls_only):
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    case = bench.synthesize(_small(_grid(dtype)[op, mode]))
    parts = numpy_floors.floor_parts(case, mode == "forward_backward")
    assert parts, "no floor for %s %s" % (op, mode)
    for name, ways in parts.items():
        assert name and ways
        for way in ways:
            way()  # runs (a way may return an array for the caller to free)


@pytest.mark.parametrize("op, mode", sorted(GRID_FLOAT32))
def test_cases_the_kernels_serve_get_no_floor(op, mode, monkeypatch):
    case = bench.synthesize(_small(GRID_FLOAT32[op, mode]))
    monkeypatch.setattr(fast_core, "_KERNELS", True)
    fused = op in ("softmax_with_cross_entropy", "sampled_softmax_with_cross_entropy")
    assert bool(numpy_floors.floor_parts(case, mode == "forward_backward")) is not fused
    assert numpy_floors.served_by_kernels(case) is fused
    monkeypatch.setattr(fast_core, "_KERNELS", False)
    assert numpy_floors.floor_parts(case, mode == "forward_backward")
    assert not numpy_floors.served_by_kernels(case)


@pytest.mark.parametrize("op, mode", sorted(GRID_FLOAT32))
def test_measure_reports_the_largest_part(op, mode, numpy_calls_only):
    adapter = NumpyFast()
    adapter.load("cpu")
    spec = _small(GRID_FLOAT32[op, mode])
    timing = {"memory": True, "min_seconds": 0.001, "max_seconds": 0.01}  # a shape's first round
    reply = bench.measure(adapter, "cpu", spec, timing)
    assert reply["floor_s"] > 0
    assert reply["floor_part"] in numpy_floors.floor_parts(bench.synthesize(spec), mode == "forward_backward")


def test_the_dtype_forced_conversions_are_parts(numpy_calls_only):
    parts = numpy_floors.floor_parts(bench.synthesize(_small(_grid("float16")[
        "softmax_with_cross_entropy", "forward_backward"])), True)
    assert list(parts) == ["exp + row sums + gradient multiply", "float16 -> float32 of the logits",
                           "float32 -> float16 of the gradient"]
    forward = numpy_floors.floor_parts(bench.synthesize(_small(_grid("float16")[
        "softmax_with_cross_entropy", "forward"])), False)
    assert list(forward) == ["exp + row sums", "float16 -> float32 of the logits"]  # no gradient to convert


def test_bfloat16_conversions():
    pytest.importorskip("ml_dtypes")
    spec = _small(_grid("bfloat16")["softmax_with_cross_entropy", "forward_backward"])
    parts = numpy_floors.floor_parts(bench.synthesize(spec), True)
    assert "float32 -> bfloat16 of the gradient" in parts
    for ways in parts.values():
        for way in ways:
            way()


def test_no_floor_without_parts_or_in_a_later_round():
    case = bench.synthesize(_small(GRID_FLOAT32["softmax_with_cross_entropy", "forward_backward"]))
    assert bench.time_floor(NumpyReference(), case, True, {}) == {}  # the oracle offers no floor
    assert bench.time_floor(NumpyFast(), case, True, {"rewarm": True, "memory": False}) == {}  # kept from the first round
    assert bench.time_floor(NumpyFast(), case, True, {"rewarm": False, "memory": False}) == {}  # a slow call's later round


def test_a_floor_that_fails_keeps_the_row(monkeypatch):
    def fails(case, backward):
        raise MemoryError("Unable to allocate 512 MiB")

    adapter = NumpyFast()
    adapter.load("cpu")
    monkeypatch.setattr(adapter, "floor_parts", fails)
    spec = _small(GRID_FLOAT32["softmax_with_cross_entropy", "forward_backward"])
    reply = bench.measure(adapter, "cpu", spec, {"memory": True, "min_seconds": 0.001, "max_seconds": 0.01})
    assert reply["status"] == "ok" and reply["median_s"] > 0
    assert reply["floor_s"] is None
    assert reply["floor_part"] == "not measured: MemoryError: Unable to allocate 512 MiB"


@pytest.mark.parametrize("batch, classes, count", [
    (16, 4000, 4),  # whole blocks and cache chunks of 8 rows, each with NumPy's sum and a dot product per row
    (4, 40000, 2),  # a row is larger than a cache chunk: whole blocks only
    (64, 1000, 2),  # short rows: whole blocks and chunks of 32 rows, the contender's row sums only
])
def test_row_sums_and_schedules(batch, classes, count, numpy_calls_only):
    spec = bench.normalize_spec(dict(GRID_FLOAT32["softmax_with_cross_entropy", "forward_backward"], batch=batch,
                                     classes=classes))
    ways = numpy_floors.floor_parts(bench.synthesize(spec), True)["exp + row sums + gradient multiply"]
    assert len(ways) == count
    for way in ways:
        way()
