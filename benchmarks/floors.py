"""Where the NumPy reference cannot reach 0.7x the fastest framework: measured floors.

Issue #4 asks the reference, forward+backward, to take at most 0.7x the time of the fastest
framework on every default benchmark shape.  On two shapes a part of the work that the reference
cannot avoid already takes longer than that budget, on its own; this script measures both, side by
side in one run:

* ``float16``: the float16 full softmax ([64, 10^4]).  NumPy has to convert the logits from float16
  and the gradient back to float16, and NumPy 2.x on x86 does both in software (its casts are built
  for the X86_V2 baseline, without the F16C instructions PyTorch uses).  The parts: the reference's
  float32 computation of the same shape (no conversion at all), NumPy's ``astype`` from float16,
  and the reference's bit-exact float32 -> float16 conversion of a softmax gradient
  (``impls.contender._float32_to_float16``, faster than ``astype``); the conversions run on the
  reference's own row blocks and threads.
* ``matmul``: ``sampled_softmax_loss`` at D = 1024 (B = 512, K = 10^4, S = 512).  Its forward and
  backward need three [512 x 512 x 1024] matrix products, the sampled logits ``x @ W_s.T``, the
  input gradient ``dz @ W_s`` and the sampled weight gradient ``dz.T @ x``; NumPy hands them to its
  BLAS (OpenBLAS), which already runs them on both cores.  And the op returns a dense [K, D] =
  [10^4, 1024] weight gradient (41 MB) that is zero but for its B + S written rows: the frameworks
  zero it too.  The part: the three products on inputs of the op's shapes, then that gradient
  (zeroed by ``np.zeros`` or by the reference's pages zeroed on first write, whichever is faster).

A floor rules the target out when every one of its parts alone takes longer than 0.7x the fastest
framework's whole forward+backward, measured in the same run.  The frameworks and the reference
are timed by the real benchmark (one worker process per impl, interleaved, as ``conformance
bench``); the parts are timed in this process, warmed up and sampled as the workers do.

    python benchmarks/floors.py [--floor float16 --floor matmul] [--impl torch --impl tensorflow ...]
                                [--python paddle-legacy=PATH]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance import bench  # noqa: E402
from impls import bench as worker_bench  # noqa: E402
from impls import numpy_fast as contender  # noqa: E402 - NumPy only: no framework is imported in this process

TARGET = 0.7
CONTENDER = "numpy-fast"  # the impl held to the target (impls/numpy_fast.py)
FLOAT16_SPEC = {"op": bench.SWCE, "batch": 64, "classes": 10000, "dtype": "float16", "mode": "forward_backward"}
MATMUL_SPEC = {"op": bench.SSL, "batch": 512, "classes": 10000, "samples": 512, "dim": 1024, "num_true": 1,
               "dtype": "float32", "mode": "forward_backward"}


def _median_seconds(call):
    """(median, IQR/median) of ``call()``, warmed up and sampled as the benchmark workers do."""
    def timed():
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    _, samples = worker_bench.time_calls(timed, min_seconds=1.0)
    summary = worker_bench.summarize(samples)
    return summary["median_s"], summary["iqr_over_median"]


def _on_reference_blocks(rows, columns, function):
    """``function(start, stop)`` over the row blocks (and threads) the reference itself would use."""
    blocks = contender._row_blocks(np, rows, columns)
    return lambda: contender._for_blocks(blocks, function)


def float16_parts(spec, bench_times):
    """The float16 floor's parts: name -> (median seconds, IQR/median or None)."""
    parts = {}
    float32 = bench_times.get((CONTENDER, "float32"))
    if float32 is not None:
        parts["the reference in float32 on the same shape (benchmark)"] = (float32, None)
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((spec["batch"], spec["classes"]), dtype=np.float32) * np.float32(2.0)
    exp = np.exp(logits)
    gradient = exp / exp.sum(axis=1, keepdims=True)  # a softmax: most of it is float16-subnormal
    logits16 = logits.astype(np.float16)
    rows, columns = logits.shape
    parts["float16 -> float32 of the logits (astype)"] = _median_seconds(_on_reference_blocks(
        rows, columns, lambda a, b: logits16[a:b].astype(np.float32)))
    parts["float32 -> float16 of the gradient (bit-exact)"] = _median_seconds(_on_reference_blocks(
        rows, columns, lambda a, b: contender._float32_to_float16(gradient[a:b])))
    return parts


def matmul_parts(spec, bench_times):
    """The matmul floor's part: the op's three matrix products, then its dense weight gradient."""
    rng = np.random.default_rng(0)
    batch, classes, samples, dim = spec["batch"], spec["classes"], spec["samples"], spec["dim"]
    x = rng.standard_normal((batch, dim), dtype=np.float32)
    w_sampled = rng.standard_normal((samples, dim), dtype=np.float32) * np.float32(0.05)
    dz = rng.standard_normal((batch, samples), dtype=np.float32) * np.float32(1.0 / samples)  # softmax-sized
    # The rows the gradient has: one per true label and per sampled class (distinct, as the
    # benchmark's unique samples are), written into a zeroed [K, D] array the faster of two ways.
    written = np.sort(rng.choice(classes, size=min(classes, batch + samples), replace=False))
    values = rng.standard_normal((written.size, dim), dtype=np.float32)

    def products():
        x @ w_sampled.T  # the sampled logits [B, S]
        dz @ w_sampled  # the input gradient [B, D]
        dz.T @ x  # the sampled rows of the weight gradient [S, D]

    def dense_gradient(zeros):
        gradient = zeros((classes, dim), np.float32, rows_written=written.size)
        gradient[written] = values

    zeroed_by = {"np.zeros": lambda shape, dtype, rows_written: np.zeros(shape, dtype),
                 "pages zeroed on first write": contender._sparse_zeros}
    seconds = {name: _median_seconds(lambda zeros=zeros: dense_gradient(zeros)) for name, zeros in zeroed_by.items()}
    fastest = min(seconds, key=lambda name: seconds[name][0])
    alone = _median_seconds(products)
    both = _median_seconds(lambda: (products(), dense_gradient(zeroed_by[fastest])))
    print("    (the products alone: %.3f ms; the dense [K, D] gradient alone: %.3f ms by %s)"
          % (alone[0] * 1e3, seconds[fastest][0] * 1e3, fastest))
    return {"3 products (NumPy's BLAS, %s threads) + the dense [K, D] gradient" % _blas_threads(): both}


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info  # optional: only to say how many threads BLAS used

        return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")
    except Exception:  # not installed, or no BLAS reported: not measured, so not guessed
        return "?"


FLOORS = {
    "float16": ("float16 softmax_with_cross_entropy [64, 10^4]", FLOAT16_SPEC, [dict(FLOAT16_SPEC, dtype="float32")],
                float16_parts),
    "matmul": ("float32 sampled_softmax_loss B=512 K=10^4 S=512 D=1024", MATMUL_SPEC, [], matmul_parts),
}


def report_floor(title, spec, times, parts_of):
    """Print one floor: its budget, its parts and whether every part alone exceeds the budget."""
    measured = sorted(impl for (impl, dtype) in times if impl != CONTENDER and dtype == spec["dtype"])
    if not measured:
        print("%s: no framework ran, no budget" % title)
        return
    fastest = min(measured, key=lambda impl: times[impl, spec["dtype"]])
    budget = TARGET * times[fastest, spec["dtype"]]
    print("%s, forward+backward, median of the interleaved benchmark:" % title)
    for impl, dtype in sorted(times, key=times.get):
        print("  %-14s %-8s %8.3f ms" % (impl, dtype, times[impl, dtype] * 1e3))
    reference_time = times.get((CONTENDER, spec["dtype"]))
    print("  budget: %.1fx %s = %.3f ms (the reference is at %s)" % (
        TARGET, fastest, budget * 1e3, "%.2fx" % (reference_time / times[fastest, spec["dtype"]])
        if reference_time else "-"))
    over = []
    print("  parts the reference cannot avoid, alone (median, IQR/median):")
    for name, (seconds, spread) in parts_of(spec, times).items():
        print("    %-58s %8.3f ms  %-6s %.1fx the budget" % (
            name, seconds * 1e3, "(%.0f%%)" % (spread * 100) if spread is not None else "", seconds / budget))
        over.append(seconds > budget)
    print("  verdict: %s\n" % ("every part alone exceeds the budget: the target is out of reach" if all(over)
                               else "a part fits the budget: this floor does not rule the target out"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--floor", action="append", choices=sorted(FLOORS), help="default: every floor")
    parser.add_argument("--impl", action="append", help="frameworks to compare (default: torch tensorflow paddle)")
    parser.add_argument("--python", action="append", default=[], metavar="IMPL=PATH")
    args = parser.parse_args(argv)
    floors = [FLOORS[name] for name in (args.floor or sorted(FLOORS))]
    frameworks = args.impl or ["torch", "tensorflow", "paddle"]
    python = dict(item.split("=", 1) for item in args.python)
    grid = [dict(spec) for _, main_spec, extra, _ in floors for spec in [main_spec] + extra]
    with tempfile.TemporaryDirectory() as out:
        outcome = bench.run_bench([CONTENDER] + frameworks, "cpu", out, grid=grid, python=python)
        rows = [row for path in outcome.values() if isinstance(path, Path) for row in bench.read_rows(path)]
    not_started = {impl: reason for impl, reason in outcome.items() if not isinstance(reason, Path)}
    if not_started:
        print("not started: %s\n" % not_started)
    for title, spec, _, parts_of in floors:
        same_shape = [row for row in rows if row["status"] == "ok" and row["op"] == spec["op"]
                      and all(str(row[key]) == str(spec.get(key, row[key])) for key in ("batch", "classes", "samples", "dim"))]
        times = {(row["impl"], row["dtype"]): float(row["median_s"]) for row in same_shape}
        report_floor(title, spec, times, parts_of)


if __name__ == "__main__":
    main()
