"""The speed benchmark: input synthesis, the adapter split, a tiny grid through real workers.

No test asserts a timing threshold: only that the measurement protocol produced sane numbers.
"""
import csv
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from conformance import bench, runner
from conformance.bench import input_store as bench_inputs
from conformance.bench import rounds as bench_rounds
from conformance.bench import run as bench_run
from conformance.bench import session as bench_session
from conformance.bench import turns as bench_turns
from impls import get_adapter, numpy_dispatch
from impls import bench as worker_bench
from impls.ops import OPS

TINY_GRID = [
    {"op": "softmax_with_cross_entropy", "batch": 8, "classes": 100, "mode": "forward"},
    {"op": "softmax_with_cross_entropy", "batch": 8, "classes": 100, "mode": "forward_backward"},
    {"op": "sampled_softmax_with_cross_entropy", "batch": 8, "classes": 1000, "samples": 16,
     "mode": "forward_backward"},
    {"op": "sampled_softmax_loss", "batch": 8, "classes": 1000, "samples": 16, "dim": 8,
     "mode": "forward_backward"},
    {"op": "sampled_softmax_loss", "batch": 8, "classes": 1000, "samples": 16, "dim": 8,
     "mode": "forward", "dtype": "float16"},
]
HAS_TORCH = importlib.util.find_spec("torch") is not None  # found, not imported
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def _spec(**kwargs):
    return worker_bench.normalize_spec(kwargs)


# -- worker side, in process (numpy only) -----------------------------------------------------
@pytest.mark.parametrize("op", worker_bench.OPS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_synthesis_is_deterministic_and_well_formed(op, dtype):
    spec = _spec(op=op, dtype=dtype, batch=6, classes=500, samples=20, dim=4, num_true=2 if op != "softmax_with_cross_entropy" else 1)
    first, second = worker_bench.synthesize(spec), worker_bench.synthesize(spec)
    assert sorted(first.inputs) == sorted(second.inputs)
    for name in first.inputs:
        assert first.inputs[name].tobytes() == second.inputs[name].tobytes(), name
    assert first.op == op and first.dtype == dtype and "upstream" in first.inputs
    for name, array in first.inputs.items():
        if array.dtype.kind == "f":
            assert array.dtype == np.float32  # bfloat16 is stored as float32
            if dtype == "bfloat16":  # every stored value is exactly a bfloat16 number
                assert not (array.view(np.uint32) & np.uint32(0xFFFF)).any(), name
    if op == "sampled_softmax_with_cross_entropy":
        samples = first.inputs["customized_samples"]
        assert samples.shape == (6, 2 + 20) and (samples[:, :2] == first.inputs["label"]).all()
        assert len(np.unique(samples[0, 2:])) == 20  # the sampler's unique candidates, shared by rows
    if op == "sampled_softmax_loss":
        assert first.inputs["weights"].shape == (500, 4) and first.inputs["sampled_candidates"].shape == (20,)


def test_stored_inputs_are_the_synthesised_ones(tmp_path):
    """The orchestrator draws a shape's inputs once and the workers load them: bit for bit the same case."""
    for spec in TINY_GRID:
        spec = _spec(**spec)
        folder = worker_bench.write_inputs(spec, tmp_path / spec["op"] / spec["dtype"])
        drawn, loaded = worker_bench.synthesize(spec), worker_bench.read_inputs(folder)
        assert loaded.meta == drawn.meta and sorted(loaded.inputs) == sorted(drawn.inputs)
        for name, array in drawn.inputs.items():
            assert loaded.inputs[name].dtype == array.dtype and loaded.inputs[name].tobytes() == array.tobytes()


@pytest.mark.parametrize("op", worker_bench.OPS)
def test_the_numpy_split_matches_run(op):
    adapter = get_adapter("numpy")
    adapter.load("cpu")
    case = worker_bench.synthesize(_spec(op=op, batch=5, classes=300, samples=10, dim=3))
    state = adapter.prepare(case)
    full = adapter.to_numpy(adapter.compute(state, backward=True))
    forward = adapter.to_numpy(adapter.compute(state, backward=False))
    direct = adapter.run(case)
    assert sorted(full) == sorted(direct) and "loss" in full and any(k.startswith("grad/") for k in full)
    assert sorted(forward) == ["loss"]
    np.testing.assert_array_equal(forward["loss"], full["loss"])
    for name in full:
        np.testing.assert_array_equal(full[name], direct[name])


def test_run_request_reports_errors_and_unsupported_without_raising():
    adapter = get_adapter("numpy")
    adapter.load("cpu")
    bad = worker_bench.run_request(adapter, "cpu", {"op": "sampled_softmax_loss", "batch": 4, "classes": 10,
                                                    "samples": 10, "dim": 2})
    assert bad["status"] == "error" and "samples" in bad["message"]
    unknown = worker_bench.run_request(adapter, "cpu", {"op": "no_such_op", "batch": 4, "classes": 10})
    assert unknown["status"] == "error"
    gone = worker_bench.run_request(adapter, "gpu", {"op": "softmax_with_cross_entropy", "batch": 4, "classes": 10})
    assert gone["status"] == "unsupported"


def test_summary_statistics():
    summary = worker_bench.summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert summary["median_s"] == 3.0 and summary["iqr_s"] == 2.0 and summary["n"] == 5
    assert summary["noisy"] is True
    assert worker_bench.summarize([1.0] * 5)["noisy"] is False


def test_ratio_to_fastest():
    shape = dict(device="cpu", op="softmax_with_cross_entropy", mode="forward", dtype="float32", batch=1,
                 classes=2, samples=0, dim=0, num_true=1)
    rows = [dict(shape, impl="a", status="ok", median_s="2.0"), dict(shape, impl="b", status="ok", median_s="1.0"),
            dict(shape, impl="c", status="unsupported", median_s=""),
            dict(shape, impl="a", status="ok", median_s="3.0", dtype="float16")]
    out = {(r["impl"], r["dtype"]): r["ratio_to_fastest"] for r in bench.add_ratio_to_fastest(rows)}
    assert out == {("a", "float32"): 2.0, ("b", "float32"): 1.0, ("c", "float32"): "", ("a", "float16"): 1.0}


def test_default_grid_spans_the_ranges():
    specs = bench.grid_specs("default")
    assert {s["mode"] for s in specs} == set(bench.MODES)
    assert {s["op"] for s in specs} == set(worker_bench.OPS)
    assert {"float32", "float16", "bfloat16"} <= {s["dtype"] for s in specs}
    assert min(s["batch"] for s in specs) == 64 and max(s["batch"] for s in specs) == 4096
    assert min(s["classes"] for s in specs) == 10 ** 3 and max(s["classes"] for s in specs) == 10 ** 6
    sampled = [s for s in specs if "samples" in OPS[s["op"]].bench_shape]
    assert min(s["samples"] for s in sampled) == 64 and max(s["samples"] for s in sampled) == 8192
    weights = [s for s in specs if s["op"] == "sampled_softmax_loss"]
    assert min(s["dim"] for s in weights) == 64 and max(s["dim"] for s in weights) == 1024
    for spec in specs:
        worker_bench.normalize_spec(spec)  # every spec is valid
    assert len(bench.grid_specs("full")) > len(specs)


def test_quick_grid_is_one_default_shape_per_op_in_both_modes():
    quick = bench.grid_specs("quick")
    assert sorted((s["op"], s["mode"]) for s in quick) == sorted((op, m) for op in OPS for m in bench.MODES)
    # the default grid's class-sweep shapes (timed there forward+backward only), fewer of them
    shapes = [{k: v for k, v in spec.items() if k != "mode"} for spec in bench.grid_specs("default")]
    assert all({k: v for k, v in spec.items() if k != "mode"} in shapes for spec in quick)


def test_the_grids_are_laid_out_from_the_ops_declarations():
    """conformance/bench/ names no op: each op's shapes are its module's ``bench_grid``, in the registry's order."""
    package = os.path.dirname(bench.__file__)
    source = "".join(open(os.path.join(package, name), encoding="utf-8").read()
                     for name in sorted(os.listdir(package)) if name.endswith(".py"))
    assert [op for op in OPS if '"%s"' % op in source or "'%s'" % op in source] == []
    default = bench.grid_specs("default")
    for op, info in OPS.items():
        for shape, dtypes, *_ in info.bench_grid.default:
            assert all(any(dict(shape, op=op, dtype=dtype).items() <= spec.items() for spec in default)
                       for dtype in dtypes), (op, shape)
    full = bench.grid_specs("full")
    assert {spec["op"] for spec in full} == {op for op, info in OPS.items() if info.bench_grid.full_arrays}


# -- through real worker processes -----------------------------------------------------------
def test_tiny_grid_through_the_workers(tmp_path):
    impls = ["numpy-fast"] + (["torch"] if HAS_TORCH else [])
    outcome = bench.run_bench(impls, "cpu", tmp_path, grid=TINY_GRID)
    merged = []
    for impl in impls:
        assert outcome[impl] == bench.bench_path(tmp_path, impl, "cpu")
        columns, rows = _rows(outcome[impl])
        assert columns == bench.COLUMNS
        assert len(rows) == len(TINY_GRID)
        for row in rows:
            assert row["status"] == "ok", row
            assert row["impl"] == impl and row["impl_version"] and row["device"] == "cpu"
            assert float(row["median_s"]) > 0 and float(row["iqr_s"]) >= 0
            assert int(row["n"]) >= 5 and row["noisy"] in ("True", "False")
            assert row["mem_method"] == ("tracemalloc" if impl == "numpy-fast" else "rss_hwm")
            assert int(row["peak_mem_bytes"]) >= 0
            assert float(row["ratio_to_fastest"]) >= 1.0
            assert row["malloc"] == "fixed"  # the default allocator settings, stated in every row
            # the worker's NumPy loops, as this process's (the same environment, pinned or not)
            assert row["numpy_avx512"] == (" ".join(numpy_dispatch.active_avx512_targets()) or "none")
        merged += rows
    by_config = {}
    for row in merged:
        by_config.setdefault(tuple(row[c] for c in bench.KEY_COLUMNS), []).append(row)
    assert len(by_config) == len(TINY_GRID)
    for rows in by_config.values():
        if len(rows) == 1:  # numpy-fast alone: one turn, its ratio to itself
            assert float(rows[0]["ratio_to_fastest"]) == 1.0 and rows[0]["ratio_rounds"] == "0"
            continue
        # Paired rounds: each ratio is the median over the rounds of the impl's round median over
        # that round's fastest, so it lies between the smallest and the largest such round ratio.
        medians = [[float(m) for m in row["round_medians_s"].split()] for row in rows]
        assert len({len(m) for m in medians}) == 1 and len(medians[0]) >= bench.PASSES * bench.ROUNDS
        for row, mine in zip(rows, medians):
            per_round = sorted(mine[r] / min(other[r] for other in medians) for r in range(len(mine)))
            assert per_round[0] <= float(row["ratio_low"]) <= float(row["ratio_to_fastest"]) <= float(row["ratio_high"]) <= per_round[-1]
            assert float(row["ratio_to_fastest"]) == pytest.approx(float(np.median(per_round)))
            assert int(row["ratio_rounds"]) == len(mine) == int(row["rounds"])


def test_resume_times_only_the_shapes_some_impl_lacks(tmp_path, monkeypatch):
    """An interrupted benchmark: the shapes every impl has a row for keep those rows; a shape one impl
    had finished and the other had not is timed again for both, in one process (its ratios paired)."""
    monkeypatch.setattr(worker_bench, "MIN_SECONDS", 0.01)
    impls, grid = ["numpy-fast", "numpy"], TINY_GRID[:3]
    bench.run_bench(impls, "cpu", tmp_path, grid=grid, rounds=2)
    before = {impl: _rows(bench.bench_path(tmp_path, impl, "cpu"))[1] for impl in impls}
    for impl, keep in (("numpy-fast", 2), ("numpy", 1)):  # numpy stopped one shape before numpy-fast
        path = bench.bench_path(tmp_path, impl, "cpu")
        path.write_text("".join(path.read_text(encoding="utf-8").splitlines(True)[:1 + keep]), encoding="utf-8")
    timed = []
    original_run = bench_session.ImplBench.run

    def run(session, spec, round_index, rounds, inputs=None):
        timed.append((bench.spec_label(spec), session.impl))
        original_run(session, spec, round_index, rounds, inputs)

    monkeypatch.setattr(bench_session.ImplBench, "run", run)
    bench.run_bench(impls, "cpu", tmp_path, grid=grid, rounds=2, resume=True)
    assert sorted(set(timed)) == sorted((bench.spec_label(spec), impl) for spec in grid[1:] for impl in impls)
    after = {impl: _rows(bench.bench_path(tmp_path, impl, "cpu"))[1] for impl in impls}
    for impl in impls:
        assert [bench.spec_label(row) for row in after[impl]] == [bench.spec_label(spec) for spec in grid]
        assert after[impl][0]["median_s"] == before[impl][0]["median_s"]  # kept as measured
        assert after[impl][0]["bench_run"] == before[impl][0]["bench_run"]
    new_runs = {row["bench_run"] for impl in impls for row in after[impl][1:]}
    assert len(new_runs) == 1 and new_runs != {before["numpy"][0]["bench_run"]}
    # every shape paired: 2 rounds in each pass (the first run journaled every pass of the shapes it
    # lost the rows of, so only their last pass is timed again, which writes the rows)
    assert all(row["ratio_rounds"] == str(2 * bench.PASSES) for impl in impls for row in after[impl])


class _JournaledSession:
    def __init__(self, *passes):  # each pass: (run, [status, ...])
        self.earlier_passes = {"s": [{"run": run, "replies": [runner.Reply(status, "", {}) for status in statuses]}
                                     for run, statuses in passes]}


def test_resume_keeps_only_passes_that_pair_and_did_not_fail():
    """A pass is kept only if every impl has it from one run with the same rounds, none failed,
    and never the last pass (it writes the rows)."""
    ok2, ok3 = ["ok", "ok"], ["ok", "ok", "ok"]
    both = [_JournaledSession(("r1", ok2), ("r1", ok2), ("r1", ok2)), _JournaledSession(("r1", ok2), ("r1", ok2))]
    assert bench_session.kept_passes("s", both, 3) == 2
    assert bench_session.kept_passes("s", both[:1], 3) == 2  # never the last pass
    assert bench_session.kept_passes("s", [_JournaledSession(("r1", ok2)), _JournaledSession()], 3) == 0  # one impl lacks it
    # pass 1 timed by two different runs (the second resumed without one impl): not paired
    assert bench_session.kept_passes("s", [_JournaledSession(("r1", ok2), ("r2", ok3)),
                                     _JournaledSession(("r1", ok2), ("r1", ok2))], 3) == 1
    assert bench_session.kept_passes("s", [_JournaledSession(("r1", ok2), ("r1", ok3)),
                                     _JournaledSession(("r1", ok2), ("r1", ok2))], 3) == 1  # rounds differ
    # a timeout is timed again; an unsupported impl (no rounds in later passes) does not count
    assert bench_session.kept_passes("s", [_JournaledSession(("r1", ["ok", "timeout"])), _JournaledSession(("r1", ok2))], 3) == 0
    assert bench_session.kept_passes("s", [_JournaledSession(("r1", ["unsupported"]), ("r1", [])),
                                    _JournaledSession(("r1", ok2), ("r1", ok2))], 3) == 2


def test_the_input_store_draws_once_releases_and_redraws_when_over_its_budget(monkeypatch):
    drawn = []
    original = worker_bench.write_inputs
    monkeypatch.setattr(worker_bench, "write_inputs", lambda spec, folder: (drawn.append(spec["op"]), original(spec, folder))[1])
    first, second = (dict(worker_bench.DEFAULTS, **spec) for spec in TINY_GRID[1:3])  # two shapes
    with bench_inputs.InputStore() as store:
        folder = store.folder(first, ["a", "b"])
        assert store.folder(dict(first, mode="forward"), ["a", "b"]) == folder  # both modes share it
        assert store.folder(first, ["a"]) is None and drawn == [first["op"]]  # one worker draws its own
        assert worker_bench.read_inputs(folder).meta == worker_bench.synthesize(worker_bench.normalize_spec(first)).meta
        monkeypatch.setattr(bench_inputs, "INPUT_STORE_BYTES", 1)  # room for one shape: the older goes
        other = store.folder(second, ["a", "b"])
        assert not os.path.exists(folder) and os.path.exists(other)
        assert store.folder(first, ["a", "b"]) and len(drawn) == 3  # drawn again
        store.release(second)
        assert not os.path.exists(other)


def test_bad_repeat_or_passes_raise_before_any_worker_starts(tmp_path):
    for option in ("repeat", "passes"):
        with pytest.raises(ValueError, match=option + ": expected >= 1, got 0"):
            bench.run_bench(["numpy-fast"], "cpu", tmp_path, grid=TINY_GRID[:1], **{option: 0})
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_quick_grid_takes_fewer_passes_than_the_others(tmp_path, monkeypatch):
    taken = []
    monkeypatch.setattr(bench_run, "_run_grid", lambda *args, passes, **kw: taken.append(passes) or {})
    monkeypatch.setattr(bench_run, "update_ratios", lambda *args: [])
    for grid, passes in (("quick", None), ("default", None), (TINY_GRID[:1], None), ("quick", 4)):
        bench.run_bench(["numpy-fast", "numpy"], "cpu", tmp_path, grid=grid, passes=passes)
    assert taken == [bench.QUICK_PASSES, bench.PASSES, bench.PASSES, 4]
    assert bench.QUICK_PASSES < bench.PASSES


def test_an_impl_that_cannot_run_gives_rows_not_a_crash(tmp_path):
    # cupy declares only the gpu: every row is unsupported and no worker is started.
    outcome = bench.run_bench(["cupy-fast"], "cpu", tmp_path, grid=TINY_GRID[:2])
    _, rows = _rows(outcome["cupy-fast"])
    assert [r["status"] for r in rows] == ["unsupported", "unsupported"]
    assert all(r["ratio_to_fastest"] == "" for r in rows)


def test_a_bad_spec_is_an_error_row_and_the_run_goes_on(tmp_path):
    grid = [{"op": "sampled_softmax_loss", "batch": 4, "classes": 10, "samples": 10, "dim": 2},
            TINY_GRID[0]]
    outcome = bench.run_bench(["numpy-fast"], "cpu", tmp_path, grid=grid)
    _, rows = _rows(outcome["numpy-fast"])
    assert [r["status"] for r in rows] == ["error", "ok"]
    assert "samples" in rows[0]["message"]


def test_impls_take_turns_shape_by_shape_in_rounds_pass_by_pass(tmp_path, monkeypatch):
    """Side by side: every impl times a shape, ROUNDS times in turn, before any impl moves on to the
    next shape; then the grid again, PASSES times, the round count going on; each row pools the
    rounds of every pass and keeps the first round's memory."""
    monkeypatch.setattr(bench_turns, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(worker_bench, "MIN_SECONDS", 0.03)
    turns, pooled = [], []
    original_run, original_finish = bench_session.ImplBench.run, bench_session.ImplBench.finish

    def run(session, spec, round_index, rounds, inputs=None):
        turns.append((spec["op"], spec["mode"], session.impl, round_index))
        original_run(session, spec, round_index, rounds, inputs)

    def finish(session, spec, run_id):
        if session.impl == "numpy-fast":
            pooled.append(sum(len(reply.data["samples"]) for reply in session.replies))
        original_finish(session, spec, run_id)

    monkeypatch.setattr(bench_session.ImplBench, "run", run)
    monkeypatch.setattr(bench_session.ImplBench, "finish", finish)
    grid = TINY_GRID[:2]
    outcome = bench.run_bench(["numpy-fast", "cupy-fast"], "cpu", tmp_path, grid=grid)  # cupy-fast: unsupported on the cpu
    # cupy-fast's unsupported first round ends its part in the shape; numpy-fast goes on for every round.
    first_pass = [("numpy-fast", 0), ("cupy-fast", 0)] + [("numpy-fast", r) for r in range(1, bench.ROUNDS)]
    assert turns == [(s["op"], s["mode"], impl, r) for p in range(bench.PASSES) for s in grid
                     for impl, r in (first_pass if p == 0 else
                                     [("numpy-fast", r) for r in range(p * bench.ROUNDS, (p + 1) * bench.ROUNDS)])]
    rows = _rows(outcome["numpy-fast"])[1]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert [int(r["n"]) for r in rows] == pooled
    assert [int(r["rounds"]) for r in rows] == [bench.PASSES * bench.ROUNDS] * 2
    assert [r["pass_rounds"] for r in rows] == [" ".join([str(bench.ROUNDS)] * bench.PASSES)] * 2
    assert all(r["mem_method"] == "tracemalloc" and int(r["peak_mem_bytes"]) > 0 for r in rows)
    assert [r["status"] for r in _rows(outcome["cupy-fast"])[1]] == ["unsupported", "unsupported"]


def test_resume_keeps_the_passes_every_impl_finished(tmp_path, monkeypatch):
    """Interrupted in the second pass: the first shape, done, keeps its rows; the second keeps its
    journaled first pass, and only its second pass is timed again, the rows pairing both passes."""
    monkeypatch.setattr(worker_bench, "MIN_SECONDS", 0.01)
    impls, grid = ["numpy-fast", "numpy"], TINY_GRID[:2]
    original_run = bench_session.ImplBench.run
    timed = []

    def interrupted(session, spec, round_index, rounds, inputs=None):
        if bench.spec_label(spec) == bench.spec_label(grid[1]) and round_index == 1:
            raise KeyboardInterrupt
        original_run(session, spec, round_index, rounds, inputs)

    monkeypatch.setattr(bench_session.ImplBench, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench.run_bench(impls, "cpu", tmp_path, grid=grid, rounds=1, passes=2)
    first = {impl: _rows(bench.bench_path(tmp_path, impl, "cpu"))[1] for impl in impls}
    assert all([bench.spec_label(r) for r in rows] == [bench.spec_label(grid[0])] for rows in first.values())
    journaled = {impl: bench.read_journal(tmp_path / "logs" / ("rounds-%s-cpu.jsonl" % impl)) for impl in impls}
    second_label = bench.spec_label(grid[1])
    assert all(len(passes[second_label]) == 1 for passes in journaled.values())  # its first pass only

    def run(session, spec, round_index, rounds, inputs=None):
        timed.append((bench.spec_label(spec), session.impl, round_index))
        original_run(session, spec, round_index, rounds, inputs)

    monkeypatch.setattr(bench_session.ImplBench, "run", run)
    bench.run_bench(impls, "cpu", tmp_path, grid=grid, rounds=1, passes=2, resume=True)
    assert sorted(timed) == sorted((second_label, impl, 1) for impl in impls)
    after = {impl: _rows(bench.bench_path(tmp_path, impl, "cpu"))[1] for impl in impls}
    for impl in impls:
        assert {k: after[impl][0][k] for k in ("median_s", "round_medians_s", "bench_run")} == \
            {k: first[impl][0][k] for k in ("median_s", "round_medians_s", "bench_run")}  # kept as measured
        second = after[impl][1]
        kept = journaled[impl][second_label][0]["replies"][0].data["median_s"]
        assert bench.round_medians(second)[0] == kept and int(second["rounds"]) == 2
        assert second["pass_rounds"] == "1 1"
        assert second["ratio_rounds"] == "2"  # paired over both passes


def test_a_later_round_warms_up_with_one_call_however_slow_the_call():
    """A slow call (here 30 ms) gets one call of re-warm-up in a later round (its pages faulted back in),
    not the first round's warm-up to a settled time, three calls at least."""
    import time

    def call():
        time.sleep(0.03)
        return 0.03

    warmup, samples = worker_bench.time_calls(call, min_seconds=0.06, max_seconds=0.06, rewarm=True,
                                              min_samples=3, capped_min_samples=1)
    assert len(warmup) == 1 and len(samples) >= 2
    warmup, _ = worker_bench.time_calls(call, min_seconds=0.06, max_seconds=0.06, rewarm=False,
                                        min_samples=3, capped_min_samples=1)
    assert len(warmup) >= worker_bench.WARMUP_MIN_CALLS


def test_one_impl_runs_one_round_with_the_whole_budget():
    alone = bench_rounds.round_timing(0, 1)
    assert "min_seconds" not in alone and alone["memory"] and not alone["rewarm"]  # the worker's own limits
    first, later = bench_rounds.round_timing(0, bench.ROUNDS), bench_rounds.round_timing(2, bench.ROUNDS)
    assert first["min_seconds"] == later["min_seconds"] == bench.ROUND_SECONDS
    assert first["memory"] and not first["rewarm"] and later["rewarm"] and not later["memory"]
    assert later["capped_min_samples"] == 1  # a call longer than a round is one sample
    assert first["release_memory"] and later["release_memory"] and not alone.get("release_memory")  # stopped after


class _FakeSession:
    """A session whose round medians come from a list: the round logic without workers."""

    def __init__(self, impl, medians):
        self.impl, self.device, self.adapter, self.medians, self.replies = impl, "cpu", None, list(medians), []
        self.turns = []

    def runs(self, round_index):
        if round_index == 0:
            self.replies = []
        return True

    def can_run(self, spec):
        return True

    def ok(self):
        return bool(self.replies)

    def round_medians(self):
        return list(self.replies)

    def run(self, spec, round_index, rounds, inputs=None):
        self.turns.append(round_index)
        self.replies.append(self.medians[round_index])


class _NoTurns:
    def give(self, session):
        pass


def _rounds_taken(medians_a, medians_b, monkeypatch):
    order = []
    sessions = [_FakeSession("a", medians_a), _FakeSession("b", medians_b)]
    for session in sessions:
        original = session.run
        session.run = (lambda spec, r, rounds, inputs=None, s=session, run=original:
                       (order.append((s.impl, r)), run(spec, r, rounds)))
    bench_rounds.time_spec(sessions, {}, _NoTurns())
    return order


def test_rounds_rotate_and_stop_when_every_ratio_has_settled(monkeypatch):
    order = _rounds_taken([1e-3] * 30, [2e-3] * 30, monkeypatch)  # a steady 2x: nothing to add
    assert len(order) == 2 * bench.ROUNDS
    # The order rotates: who went first in one round goes last in the next.
    assert order[:4] == [("a", 0), ("b", 0), ("b", 1), ("a", 1)]


def test_rounds_are_added_while_a_ratio_is_unsettled_up_to_the_maximum(monkeypatch):
    mid = bench.ROUND_SECONDS  # ROUND_MIN_SAMPLES calls take longer than ROUND_SECONDS
    order = _rounds_taken([mid] * 30, [mid * 2, mid * 3.2] * 15, monkeypatch)  # b's ratio swings between 2x and 3.2x
    assert len(order) == 2 * bench.MAX_ROUNDS


def test_short_calls_get_more_rounds_of_round_seconds(monkeypatch):
    short = bench.ROUND_SECONDS / bench.ROUND_MIN_SAMPLES / 4  # both impls' rounds are ROUND_SECONDS long
    order = _rounds_taken([short] * 30, [short * 2, short * 3.2] * 15, monkeypatch)
    assert len(order) == 2 * bench.FAST_MAX_ROUNDS > 2 * bench.MAX_ROUNDS


def test_slow_calls_get_fewer_rounds(monkeypatch):
    slow = bench.SLOW_CALL_SECONDS * 2
    order = _rounds_taken([slow] * 30, [slow * (2.0 if i % 2 else 3.0) for i in range(30)], monkeypatch)
    assert len(order) == 2 * bench.SLOW_MAX_ROUNDS < 2 * bench.MAX_ROUNDS


def test_ratios_pair_only_the_rounds_of_one_run():
    same = [{"bench_run": "a", "round_medians_s": "1 2 3"}, {"bench_run": "a", "round_medians_s": "2 2 2"}]
    assert bench.paired_rounds(same) == [[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]]
    assert bench.paired_rounds([same[0], dict(same[1], bench_run="b")]) is None  # timed in separate runs
    assert bench.paired_rounds([same[0], dict(same[1], round_medians_s="2 2")]) is None  # rounds differ
    assert bench.paired_rounds([dict(r, bench_run=float("nan")) for r in same]) is None  # a CSV read by pandas
    with pytest.raises(ValueError, match=r"\[3, 2\]"):
        bench.paired_ratio([1, 2, 3], [[1, 2]])


def test_combined_runs_keep_the_busiest_runs_share():
    def row(run, share):
        return {"impl": "numpy-fast", "device": "cpu", "op": "x", "status": "ok", "median_s": "1", "q1_s": "1",
                "q3_s": "1", "n": "3", "peak_mem_bytes": "", "round_medians_s": "1 1", "bench_run": run,
                "other_cpu_share": share, "steal_share": "0"}
    runs = [[row("a", "0.01")], [row("b", "0.4")]]
    combined = bench.combine_runs(runs, bench.reproduction(runs))["numpy-fast"][0]
    assert combined["other_cpu_share"] == 0.4 and combined["bench_run"] == "a+b"
    assert combined["round_medians_s"] == "1.0 1.0 1.0 1.0"
    assert len(bench.busy_rows([combined])) == 1


def test_median_interval_covers_the_median_with_the_stated_confidence():
    # 5 values: the smallest and largest (coverage 1 - 2/32 = 94%); 9 values: the 2nd and 8th (96%).
    assert bench.median_interval([5, 1, 4, 2, 3]) == (3.0, 1.0, 5.0)
    assert bench.median_interval(range(1, 10)) == (5.0, 2.0, 8.0)
    assert bench.median_interval([2.0]) == (2.0, 2.0, 2.0)
    # paired: round by round over the fastest of that round, then the median.
    assert bench.paired_ratio([2, 2, 2, 2, 9], [[2, 2, 2, 2, 9], [1, 1, 1, 4, 1]])[0] == 2.0


def test_an_impl_whose_worker_cannot_start_leaves_the_others_running(tmp_path):
    outcome = bench.run_bench(["numpy-fast", "torch"], "cpu", tmp_path, grid=TINY_GRID[:1],
                              python={"torch": str(tmp_path / "no-such-python")})
    assert isinstance(outcome["torch"], str) and "no-such-python" in outcome["torch"]
    assert not bench.bench_path(tmp_path, "torch", "cpu").exists()
    assert [r["status"] for r in _rows(outcome["numpy-fast"])[1]] == ["ok"]


def test_fast_calls_are_timed_for_at_least_min_seconds():
    """Sub-millisecond calls: samples continue until MIN_SECONDS of timed calls (not a fixed count)."""
    warmup, samples = worker_bench.time_calls(lambda: 1e-4)
    assert len(warmup) >= worker_bench.WARMUP_MIN_CALLS
    assert sum(samples) >= worker_bench.MIN_SECONDS - 1e-9 or len(samples) == worker_bench.MAX_SAMPLES
    assert len(samples) >= worker_bench.MIN_SECONDS / 1e-4 - 1


def test_slow_calls_stop_at_max_seconds_with_a_few_samples():
    warmup, samples = worker_bench.time_calls(lambda: 10.0)
    assert len(samples) == worker_bench.CAPPED_MIN_SAMPLES


def test_a_warm_up_that_never_settles_still_ends():
    times = iter([1.0, 2.0] * 10 ** 6)
    warmup, samples = worker_bench.time_calls(lambda: next(times))
    assert worker_bench.WARMUP_MAX_CALLS <= len(warmup) < 10 ** 6
    assert all(not worker_bench._close(a, b) for a, b in zip(warmup, warmup[1:]))


@pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed (its tox env runs this)")
def test_tensorflow_cpu_memory_is_its_allocators_peak(tmp_path):
    """TensorFlow's CPU allocator keeps freed memory, so the growth of the resident set read almost 0
    for a forward+backward right after the forward of the same shape; its allocator's peak does not."""
    batch, classes = 64, 20000
    grid = [{"op": "softmax_with_cross_entropy", "batch": batch, "classes": classes, "mode": mode}
            for mode in ("forward", "forward_backward")]
    outcome = bench.run_bench(["tensorflow"], "cpu", tmp_path, grid=grid)
    _, rows = _rows(outcome["tensorflow"])
    assert [row["status"] for row in rows] == ["ok", "ok"], rows
    methods = {row["mem_method"] for row in rows}
    if methods != {"tf.config.experimental.get_memory_info(CPU)"}:
        # Some TensorFlow builds keep no CPU allocator statistics on some CPUs (seen: TF 2.21 on an
        # AMD EPYC raises "Allocator stats not available for device 'CPU:0'"; on Intel Xeons it has
        # them).  Then the rows must say they fell back to the resident set, never pretend.
        assert len(methods) == 1 and "get_memory_info" not in methods.pop(), rows
        pytest.skip("this TensorFlow keeps no CPU allocator statistics here; the rows say so")
    forward_backward = rows[1]
    assert forward_backward["mode"] == "forward_backward"
    # The [B, K] float32 logits gradient it returns is allocated during the call.
    assert int(forward_backward["peak_mem_bytes"]) >= batch * classes * 4


def test_the_default_benchmark_runs_the_contender_not_the_oracle():
    """The oracle is correct, not fast: benchmarked only when named with --impl."""
    assert "numpy-fast" in bench.default_impls("cpu") and "numpy" not in bench.default_impls("cpu")
    assert "cupy-fast" in bench.default_impls("gpu") and "cupy" not in bench.default_impls("gpu")


# -- the workers' allocator settings -----------------------------------------------------------
_FAULTS_PER_BUFFER = """
import resource

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

for _ in range(3):  # glibc's dynamic threshold settles in the first rounds
    buffer = bytearray(40 << 20)
    del buffer
before = faults()
for _ in range(5):
    buffer = bytearray(40 << 20)  # 40 MB: above the largest threshold glibc picks by itself (32 MB)
    del buffer
print((faults() - before) / 5)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and its tunables")
@pytest.mark.parametrize("malloc", ["fixed", "default"])
def test_fixed_malloc_keeps_a_freed_buffer_for_the_next_call(malloc):
    """Under "fixed" a freed 40 MB buffer is reused without a page fault; under glibc's defaults the same
    loop maps it afresh every time (10240 faults of 4 KB), which shows the setting takes effect."""
    env = dict(os.environ, **bench.worker_environment(1, malloc))
    out = subprocess.run([sys.executable, "-c", _FAULTS_PER_BUFFER], env=env, capture_output=True, text=True,
                         check=True).stdout
    faults = float(out)
    if malloc == "fixed":
        assert faults < 50, faults
    else:
        assert faults > 1000, faults


def test_worker_environment_keeps_the_callers_tunables(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    env = bench.worker_environment(2, "fixed")
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:" + bench.MALLOC_SETTINGS["fixed"]
    assert env["CONFORMANCE_THREADS"] == "2"
    assert "GLIBC_TUNABLES" not in bench.worker_environment(2, "default")  # glibc's own (the caller's stay)
    with pytest.raises(ValueError, match="malloc: expected one of fixed, default, got 'huge'"):
        bench.worker_environment(2, "huge")
    with pytest.raises(ValueError, match="malloc"):
        bench.run_bench(["numpy-fast"], "cpu", "/nonexistent", grid=TINY_GRID[:1], malloc="huge")


def test_combined_runs_take_the_median_floor_of_the_runs():
    def row(run, floor, part):
        return {"impl": "numpy-fast", "device": "cpu", "op": "x", "status": "ok", "median_s": "2", "q1_s": "2",
                "q3_s": "2", "n": "3", "peak_mem_bytes": "", "round_medians_s": "2 2", "bench_run": run,
                "floor_s": floor, "floor_part": part}
    runs = [[row("a", "1.0", "exp")], [row("b", "1.5", "exp")], [row("c", "0.5", "scatter")]]
    combined = bench.combine_runs(runs, bench.reproduction(runs))["numpy-fast"][0]
    assert combined["floor_s"] == 1.0 and combined["floor_part"] == "exp or scatter"
    # a run whose floor was not measured (memory) does not count; no measured floor leaves the run's own
    runs = [[row("a", "", "not measured: MemoryError")], [row("b", "0.5", "exp")]]
    combined = bench.combine_runs(runs, bench.reproduction(runs))["numpy-fast"][0]
    assert combined["floor_s"] == 0.5 and combined["floor_part"] == "exp"
    runs = [[row("a", "", "not measured: x")], [row("b", "", "not measured: y")]]
    assert bench.combine_runs(runs, bench.reproduction(runs))["numpy-fast"][0]["floor_part"] == "not measured: x"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim and /proc")
def test_a_stopped_worker_keeps_only_its_live_memory(tmp_path, monkeypatch):
    """With the malloc thresholds fixed, a worker would keep every buffer its turn freed while it is
    stopped (eight workers at [128, 10^6] left 0.7 GB of 24 GB free): each paired turn ends with the
    worker handing its free heap pages back.  Measured as each worker's resident set after its turns,
    with and without the release, on a shape whose forward+backward frees [64, 10^5] arrays beside
    its live inputs."""
    spec = {"op": "softmax_with_cross_entropy", "batch": 64, "classes": 100000, "mode": "forward_backward"}
    timing, original_run = bench_rounds.round_timing, bench_session.ImplBench.run
    resident, release = {}, {"on": True}

    def round_timing(round_index, rounds):
        return dict(timing(round_index, rounds), release_memory=release["on"])

    def run(session, spec, round_index, rounds, inputs=None):
        original_run(session, spec, round_index, rounds, inputs)
        with open("/proc/%d/status" % session.worker.process.pid) as handle:
            rss = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        resident.setdefault((release["on"], session.impl), []).append(rss * 1024)

    monkeypatch.setattr(bench_session, "round_timing", round_timing)
    monkeypatch.setattr(bench_session.ImplBench, "run", run)
    for on in (False, True):
        release["on"] = on
        bench.run_bench(["numpy-fast", "numpy"], "cpu", tmp_path / str(on), grid=[spec], rounds=3, threads=1)
    array = 64 * 100000  # elements of one [64, 10^5] array
    # What each frees at least: the oracle works in float64 (softmax and gradient, 51 MB each, measured:
    # 372 MB kept); the contender's temporaries are row blocks, its freed float32 gradient 26 MB (27 MB kept).
    freed_at_least = {"numpy": 2 * array * 8, "numpy-fast": 0.8 * array * 4}
    for impl, freed in freed_at_least.items():
        kept, released = np.median(resident[False, impl]), np.median(resident[True, impl])
        assert kept - released > freed, (impl, resident)
