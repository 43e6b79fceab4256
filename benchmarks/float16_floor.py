"""Why the NumPy reference cannot reach 0.7x the fastest framework on the float16 full softmax.

Issue #4 asks the reference, forward+backward, to take at most 0.7x the time of the fastest
framework on every default benchmark shape.  On the float16 full softmax ([64, 10^4]) NumPy has to
convert the logits from float16 and the gradient back to float16, and NumPy 2.x on x86 does both in
software (its casts are built for the X86_V2 baseline, without the F16C instructions PyTorch uses).
This script measures, side by side in one run:

1. the fastest framework and the reference on that shape, through the real benchmark (one worker
   process per impl, interleaved, as ``conformance bench``), and the reference on the same shape in
   float32, where it converts nothing;
2. in this process, the two conversions alone, each on the reference's own row blocks and threads:
   NumPy's ``astype`` from float16, and the reference's bit-exact float32 -> float16 conversion of a
   softmax gradient (``impls.reference._float32_to_float16``, faster than ``astype``).

The target is out of reach for this reference when its float32 computation of the shape, and
each conversion, alone take longer than 0.7x the fastest framework's whole float16
forward+backward: the float16 path has to do all three.

    python benchmarks/float16_floor.py [--impl torch --impl tensorflow ...] [--python paddle-legacy=PATH]
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
from impls import reference  # noqa: E402 - NumPy only: no framework is imported in this process

SPEC = {"op": "softmax_with_cross_entropy", "batch": 64, "classes": 10000, "dtype": "float16",
        "mode": "forward_backward"}
TARGET = 0.7


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
    blocks = reference._row_blocks(np, rows, columns)
    return lambda: reference._for_blocks(blocks, function)


def conversion_floor():
    """Seconds (median, IQR/median) of each conversion the float16 forward+backward cannot avoid."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((SPEC["batch"], SPEC["classes"]), dtype=np.float32) * np.float32(2.0)
    exp = np.exp(logits)
    gradient = exp / exp.sum(axis=1, keepdims=True)  # a softmax: most of it is float16-subnormal
    logits16 = logits.astype(np.float16)
    rows, columns = logits.shape
    return {
        "float16 -> float32 of the logits (astype)": _median_seconds(_on_reference_blocks(
            rows, columns, lambda a, b: logits16[a:b].astype(np.float32))),
        "float32 -> float16 of the gradient (bit-exact)": _median_seconds(_on_reference_blocks(
            rows, columns, lambda a, b: reference._float32_to_float16(gradient[a:b]))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", action="append", help="frameworks to compare (default: torch tensorflow paddle)")
    parser.add_argument("--python", action="append", default=[], metavar="IMPL=PATH")
    args = parser.parse_args(argv)
    frameworks = args.impl or ["torch", "tensorflow", "paddle"]
    python = dict(item.split("=", 1) for item in args.python)
    with tempfile.TemporaryDirectory() as out:
        grid = [dict(SPEC), dict(SPEC, dtype="float32")]
        outcome = bench.run_bench(["numpy"] + frameworks, "cpu", out, grid=grid, python=python)
        rows = [row for path in outcome.values() if isinstance(path, Path) for row in bench.read_rows(path)]
    ok = [row for row in rows if row["status"] == "ok"]
    times = {row["impl"]: float(row["median_s"]) for row in ok if row["dtype"] == SPEC["dtype"]}
    float32 = {row["impl"]: float(row["median_s"]) for row in ok if row["dtype"] == "float32"}
    measured = sorted(impl for impl in times if impl != "numpy")
    if not measured:
        sys.exit("no framework ran: %s" % {impl: reason for impl, reason in outcome.items() if not isinstance(reason, Path)})
    fastest = min(measured, key=times.get)
    budget = TARGET * times[fastest]
    print("float16 softmax_with_cross_entropy [64, 10^4], forward+backward, median of the interleaved benchmark:")
    for impl in sorted(times, key=times.get):
        print("  %-14s %8.3f ms   (float32: %s)" % (impl, times[impl] * 1e3,
                                                   "%.3f ms" % (float32[impl] * 1e3) if impl in float32 else "-"))
    print("  budget: %.1fx %s = %.3f ms (the reference is at %.2fx)"
          % (TARGET, fastest, budget * 1e3, times.get("numpy", float("nan")) / times[fastest]))
    over = []
    if "numpy" in float32:
        print("  the reference in float32 on the same shape (no conversion): %.3f ms, %.1fx the budget"
              % (float32["numpy"] * 1e3, float32["numpy"] / budget))
        over.append(float32["numpy"] > budget)
    print("NumPy conversions alone, on the reference's row blocks and threads (median, IQR/median):")
    for name, (seconds, spread) in conversion_floor().items():
        print("  %-48s %8.3f ms  (%.0f%%)  %.1fx the budget" % (name, seconds * 1e3, spread * 100, seconds / budget))
        over.append(seconds > budget)
    print("verdict: %s" % ("the float32 computation and each conversion alone exceed the budget" if all(over)
                           else "one of them fits the budget: this floor does not rule the target out"))


if __name__ == "__main__":
    main()
