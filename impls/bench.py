"""Worker side of the speed benchmark: time one impl on one (op, shape, dtype, mode).

A benchmark request names an op, a shape (``batch``, ``classes``, ``samples``, ``dim``,
``num_true``), a dtype and a mode (``forward`` or ``forward_backward``).  The inputs are synthesised
by the op's ``synthesize`` in ``impls/ops/``, deterministically (a NumPy ``Generator`` seeded from
the shape), into an in-memory :class:`impls.caseio.Case`; sampled ops get the candidates and expected counts of the reference's
log-uniform sampler (one candidate set shared by the batch, ``remove_accidental_hits=True``), the
full softmax gets hard labels.  Then, on the adapter:

1. ``prepare(case)`` once (untimed; the prepared state is kept for the shape's later rounds);
2. one ``compute`` while measuring memory (untimed; see below);
3. warm-up: at least ``WARMUP_MIN_CALLS`` calls and ``WARMUP_MIN_SECONDS``, and until two
   consecutive calls differ by less than ``WARMUP_TOLERANCE`` (at most ``WARMUP_MAX_CALLS`` calls /
   ``WARMUP_MAX_SECONDS``);
4. timed calls, each between two ``synchronize()``, until at least ``MIN_SAMPLES`` samples and
   ``MIN_SECONDS`` in total, capped at ``MAX_SAMPLES`` samples or ``MAX_SECONDS`` in total (but
   never fewer than ``CAPPED_MIN_SAMPLES`` samples).  The outputs of a call are released after its
   clock stops, with Python's garbage collector paused while timing.

Reported: the median, the interquartile range, their ratio, the sample count and ``noisy`` when
the IQR exceeds ``NOISY_IQR_OVER_MEDIAN`` of the median.

Memory (``peak_mem_bytes``, ``mem_method``) is measured on the first ``compute`` after ``prepare``
as the peak *above* what was in use just before it (the prepared inputs are not counted):

* ``torch.cuda.max_memory_allocated`` / ``tf.get_memory_info.peak`` / ``paddle.max_memory_allocated``
  / ``cupy.MemoryHook``: device memory on the GPU (exact, whatever the caching allocator keeps);
* ``tf.config.experimental.get_memory_info(CPU)``: TensorFlow on the CPU, where its allocator
  reports the same statistics (TensorFlow 2.x; older versions fall back to ``rss_hwm``);
* ``tracemalloc``: the NumPy reference on the CPU (NumPy reports its buffers to tracemalloc;
  BLAS scratch space is not included);
* ``rss_hwm``: frameworks on the CPU, the growth of the process's peak resident set
  (``VmHWM`` reset through ``/proc/self/clear_refs`` after ``malloc_trim``), or ``ru_maxrss``
  (``resource.getrusage``: only a growth of the lifetime peak shows) where that reset is refused.
  A lower bound when a framework's allocator keeps freed memory from earlier requests (Paddle).

Request and reply go through ``impls.worker``'s JSON-line protocol (``{"bench": {...}}``).
Worker side: must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import ctypes
import functools
import gc
import importlib
import json
import os
import resource
import sys
import time
import tracemalloc
import zlib

import numpy as np

from impls import dtypes
from impls.base import Unsupported
from impls.caseio import Case
from impls.ops import OPS
from impls.support import why_unsupported

MODES = ("forward", "forward_backward")
SEED = 20240229

WARMUP_MIN_CALLS = 3
WARMUP_MIN_SECONDS = 0.05  # sub-millisecond calls: caches, thread pools and clocks warm up too
WARMUP_MAX_CALLS = 20  # once WARMUP_MIN_SECONDS have passed
WARMUP_MAX_SECONDS = 2.0
WARMUP_TOLERANCE = 0.20
MIN_SAMPLES = 5
# 0.3 s of samples even for sub-millisecond calls: a shared VM's speed changes within
# milliseconds, and 50 calls of 0.1 ms (the earlier cap) could fall in one slow spell.
MIN_SECONDS = 0.3
MAX_SAMPLES = 5000
MAX_SECONDS = 3.0
CAPPED_MIN_SAMPLES = 3
# A later round's warm-up (``rewarm``): the process was stopped while other impls ran, so its caches
# hold their data; one call and at least this long refills them (the first warm-up already settled).
REWARM_SECONDS = 0.02
NOISY_IQR_OVER_MEDIAN = 0.10
MESSAGE_LIMIT = 2000

SHAPE_KEYS = ("batch", "classes", "samples", "dim", "num_true")
DEFAULTS = {"mode": "forward_backward", "dtype": "float32", "samples": 0, "dim": 0, "num_true": 1}


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def normalize_spec(spec: dict) -> dict:
    """The request with defaults filled in and types checked (raises ValueError)."""
    out = dict(spec)
    if out.get("op") not in OPS:
        raise ValueError("op: expected one of %s, got %r" % (", ".join(OPS), out.get("op")))
    if out.get("mode", "forward_backward") not in MODES:
        raise ValueError("mode: expected one of %s, got %r" % (", ".join(MODES), out.get("mode")))
    for key, value in DEFAULTS.items():
        out.setdefault(key, value)
    dtypes.info(out["dtype"])  # validates the name
    for key in SHAPE_KEYS:
        out[key] = int(out.get(key, 0))
    if out["batch"] < 1 or out["classes"] < 2:
        raise ValueError("batch >= 1 and classes >= 2 expected, got %d, %d" % (out["batch"], out["classes"]))
    uses = OPS[out["op"]].bench_shape
    if "samples" in uses and not 1 <= out["samples"] < out["classes"]:
        raise ValueError("samples: expected 1 <= samples < classes=%d, got %d" % (out["classes"], out["samples"]))
    if "num_true" in uses and out["num_true"] < 1:
        raise ValueError("num_true: expected >= 1, got %d" % out["num_true"])
    if "dim" in uses and out["dim"] < 1:
        raise ValueError("dim: expected >= 1 for %s, got %d" % (out["op"], out["dim"]))
    return out


def spec_meta(spec: dict) -> dict:
    """What a spec says about its case before it is synthesised: enough for the support question
    (features that depend on the drawn samples, like accidental hits, are known only after)."""
    return {"op": spec["op"], "dtype": spec["dtype"], "features": []}


def synthesize(spec: dict, seed: int = SEED) -> Case:
    """The benchmark case of a (normalised) spec; the same spec always gives the same arrays.

    The inputs come from the op's ``synthesize`` in ``impls/ops/``, drawn from a NumPy
    ``Generator`` seeded from the shape.
    """
    op, dtype = spec["op"], spec["dtype"]
    key = "%s/%d/%d/%d/%d/%d" % ((op,) + tuple(spec[k] for k in SHAPE_KEYS))
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    params, inputs, features = OPS[op].synthesize(rng, spec, dtype)
    meta = {"id": "bench-%s-%s" % (key.replace("/", "-"), dtype), "op": op, "dtype": dtype,
            "params": params, "features": features, "tags": ["bench"]}
    # C order, as a model's tensors are (np.concatenate of a column and a broadcast row gives F order).
    inputs = {name: np.require(value, requirements="C") for name, value in inputs.items()}
    return Case(meta, inputs, golden={})


def write_inputs(spec: dict, folder) -> str:
    """Synthesise the spec's case once and store it in ``folder`` (plain ``.npy`` files and the meta):
    the orchestrator does this so that the workers of a run load the inputs instead of each drawing
    them again (a 10^6-class shape: 3-7 s of random draws per worker, 0.2 s to load)."""
    case = synthesize(normalize_spec(spec))
    os.makedirs(str(folder), exist_ok=True)
    for name, array in case.inputs.items():
        np.save(os.path.join(str(folder), name.replace("/", "__") + ".npy"), array, allow_pickle=False)
    with open(os.path.join(str(folder), "meta.json"), "w") as handle:
        json.dump(case.meta, handle)
    return str(folder)


def read_inputs(folder) -> Case:
    """The case :func:`write_inputs` stored (bit-identical to :func:`synthesize`'s)."""
    with open(os.path.join(str(folder), "meta.json")) as handle:
        meta = json.load(handle)
    inputs = {name[:-len(".npy")].replace("__", "/"): np.load(os.path.join(str(folder), name), allow_pickle=False)
              for name in sorted(os.listdir(str(folder))) if name.endswith(".npy")}
    return Case(meta, inputs, golden={})


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------
def _malloc_trim():
    """Give freed heap pages back to the OS (glibc's ``malloc_trim(0)``): the process then holds its
    live memory only (the RSS baseline of a measurement, a stopped worker's footprint); a no-op
    where the C library is not glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_kib(field):
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # Linux >= 4.0: reset VmHWM to the current RSS
        return True
    except OSError:
        return False


def _cpu_rss(call):
    gc.collect()
    _malloc_trim()
    if _reset_hwm() and _rss_kib("VmHWM") is not None:
        before = _rss_kib("VmRSS")
        call()
        return max(0, _rss_kib("VmHWM") - before) * 1024, "rss_hwm"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    call()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return max(0, after - before) * scale, "ru_maxrss_delta"


def _tracemalloc(call):
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return max(0, peak - before), "tracemalloc"


def _gpu_memory(adapter, call):
    name = adapter.name
    if name == "torch":
        torch = adapter.torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        call()
        torch.cuda.synchronize()
        return max(0, torch.cuda.max_memory_allocated() - before), "torch.cuda.max_memory_allocated"
    if name == "cupy":
        cupy = adapter.xp

        class PeakHook(cupy.cuda.MemoryHook):
            name = "bench_peak"

            def __init__(self):
                self.current = self.peak = 0

            def malloc_postprocess(self, **kwargs):
                self.current += kwargs["mem_size"]
                self.peak = max(self.peak, self.current)

            def free_postprocess(self, **kwargs):
                self.current -= kwargs["mem_size"]

        hook = PeakHook()
        adapter.synchronize()
        with hook:
            call()
            adapter.synchronize()
        return hook.peak, "cupy.MemoryHook(memory pool)"
    if name == "tensorflow":
        return _tf_memory(adapter, call, "GPU:0")
    if name == "paddle":
        cuda = adapter.paddle.device.cuda
        adapter.synchronize()
        if hasattr(cuda, "reset_max_memory_allocated"):
            cuda.reset_max_memory_allocated()
            before = cuda.memory_allocated()
            call()
            adapter.synchronize()
            return max(0, cuda.max_memory_allocated() - before), "paddle.device.cuda.max_memory_allocated"
    call()
    return None, "none"


def _tf_memory(adapter, call, device_name):
    """TensorFlow's own allocator statistics for ``device_name``: exact whatever its pool keeps."""
    tf = importlib.import_module("tensorflow")  # already imported by the adapter
    tf.config.experimental.reset_memory_stats(device_name)
    before = tf.config.experimental.get_memory_info(device_name)["current"]
    call()
    adapter.synchronize()
    peak = tf.config.experimental.get_memory_info(device_name)["peak"]
    return max(0, peak - before), "tf.config.experimental.get_memory_info(%s)" % device_name.split(":")[0]


@functools.lru_cache(maxsize=None)
def _tf_cpu_memory_info_works():
    """Whether this TensorFlow reports allocator statistics for the CPU (asked once per worker)."""
    try:
        tf = importlib.import_module("tensorflow")
        tf.config.experimental.reset_memory_stats("CPU:0")
        return "peak" in tf.config.experimental.get_memory_info("CPU:0")
    except Exception:  # noqa: BLE001 - older TensorFlow: GPU only (ValueError), or no such function
        return False


def measure_memory(adapter, device, call):
    """``(peak bytes above the current use, method)`` of one ``call()`` (see the module doc)."""
    if device == "gpu":
        return _gpu_memory(adapter, call)
    if adapter.name in ("numpy", "numpy-fast"):
        return _tracemalloc(call)
    if adapter.name == "tensorflow" and _tf_cpu_memory_info_works():
        # Its CPU allocator keeps freed memory in a pool (measured: after a forward that grew the
        # resident set by 106 MB, the forward+backward of the same [256, 10^5] softmax grew it by
        # 0.5 MB), so the resident set reads low; the allocator's own peak does not.
        return _tf_memory(adapter, call, "CPU:0")
    return _cpu_rss(call)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------
def _timed_call(adapter, state, backward):
    adapter.synchronize()
    start = time.perf_counter()
    outputs = adapter.compute(state, backward)
    adapter.synchronize()
    elapsed = time.perf_counter() - start
    del outputs  # freed after the clock stops
    return elapsed


def _close(first, second):
    return abs(first - second) <= WARMUP_TOLERANCE * max(first, second)


def time_calls(call, min_seconds=MIN_SECONDS, max_seconds=MAX_SECONDS, rewarm=False, min_samples=MIN_SAMPLES,
               capped_min_samples=CAPPED_MIN_SAMPLES):
    """``(warm-up times, timed samples)`` of a zero-argument ``call`` returning seconds.

    ``rewarm``: a later round of a shape already warmed up once (see ``measure``): the warm-up only
    refills caches, for ``REWARM_SECONDS`` and at least one call.
    """
    warmup = []
    started = time.perf_counter()
    while True:
        warmup.append(call())
        warm_seconds = time.perf_counter() - started
        if rewarm and warm_seconds >= REWARM_SECONDS:
            break
        if (len(warmup) >= WARMUP_MIN_CALLS and warm_seconds >= WARMUP_MIN_SECONDS
                and _close(warmup[-2], warmup[-1])):
            break
        if (len(warmup) >= WARMUP_MAX_CALLS and warm_seconds >= WARMUP_MIN_SECONDS) or warm_seconds >= WARMUP_MAX_SECONDS:
            break
    samples = []
    total = 0.0
    enabled = gc.isenabled()
    if not rewarm:
        # A full collection takes 0.1-0.3 s in a worker holding a framework's heap (measured:
        # TensorFlow's turn of 60 ms of samples took 0.6 s with two per turn); a later round's calls
        # made little garbage, and the collector stays off while the samples are timed anyway.
        gc.collect()
    gc.disable()
    try:
        while True:
            samples.append(call())
            total += samples[-1]
            if len(samples) >= min_samples and total >= min_seconds:
                break
            if len(samples) >= MAX_SAMPLES or (total >= max_seconds and len(samples) >= capped_min_samples):
                break
    finally:
        if enabled:
            gc.enable()
    return warmup, samples


def summarize(samples) -> dict:
    values = np.asarray(samples, dtype=np.float64)
    median = float(np.median(values))
    q1, q3 = (float(q) for q in np.percentile(values, [25, 75]))
    iqr = q3 - q1
    ratio = iqr / median if median > 0 else float("inf")
    return {"median_s": median, "q1_s": q1, "q3_s": q3, "iqr_s": iqr, "iqr_over_median": ratio, "n": int(values.size),
            "noisy": bool(ratio > NOISY_IQR_OVER_MEDIAN), "min_s": float(values.min()),
            "total_s": float(values.sum())}


# --------------------------------------------------------------------------------------------
# One request
# --------------------------------------------------------------------------------------------
_CACHE = {}  # the last synthesised case: forward and forward_backward requests of a shape share it
# The last prepared state, kept for the later rounds of the same spec (``conformance.bench`` times a
# spec in several short rounds): preparing again would only repeat untimed work (a compiled mode's
# compilation, a static program's construction) in every round.
_PREPARED = {}


def _case_for(spec, inputs=None):
    """The spec's case: loaded from ``inputs`` (a :func:`write_inputs` folder) when given, else synthesised."""
    key = tuple(spec[k] for k in ("op", "dtype") + SHAPE_KEYS)
    if key not in _CACHE:
        _PREPARED.clear()  # the prepared inputs go before the next case is synthesised
        _CACHE.clear()
        gc.collect()
        _CACHE[key] = read_inputs(inputs) if inputs else synthesize(spec)
    return _CACHE[key]


def _prepared_for(adapter, spec, case):
    """``(state, fresh)``: the adapter's prepared state of the spec, ``fresh`` when just prepared."""
    key = tuple(sorted(spec.items()))
    if key not in _PREPARED:
        if _PREPARED:  # the other mode's state of the same case
            _PREPARED.clear()
            gc.collect()
        _PREPARED[key] = adapter.prepare(case)
        return _PREPARED[key], True
    return _PREPARED[key], False


def forget_prepared():
    """Drop the kept case and state after a failed round: a broken state is never reused."""
    _PREPARED.clear()
    _CACHE.clear()
    gc.collect()


def _describe(error):
    text = "%s: %s" % (type(error).__name__, error)
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "..."


def measure(adapter, device, spec, timing=None) -> dict:
    """Benchmark one spec on a loaded adapter; raises what the framework raises.

    ``timing`` (optional) makes this one round of several (``conformance.bench`` interleaves the
    impls round by round): ``min_seconds``, ``max_seconds``, ``min_samples`` and
    ``capped_min_samples`` replace the module's limits, ``rewarm`` shortens the warm-up of a shape
    warmed up in an earlier round (after an untimed first call where it had to be prepared again),
    ``memory=False`` skips the memory measurement, and ``inputs`` names a :func:`write_inputs`
    folder holding the spec's case.  The reply carries the raw ``samples`` for pooling.
    """
    timing = dict(timing or {})
    spec = normalize_spec(spec)
    backward = spec["mode"] == "forward_backward"
    # Cheap checks first, without synthesising anything; then with the case's own features.
    reason = why_unsupported(adapter, device, spec_meta(spec))
    if reason:
        return {"status": "unsupported", "message": reason}
    case = _case_for(spec, timing.get("inputs"))
    reason = why_unsupported(adapter, device, case.meta)
    if reason:
        return {"status": "unsupported", "message": reason}
    state, fresh = _prepared_for(adapter, spec, case)
    peak, method, first = None, "", {}

    def first_call():  # the first compute after prepare: a compiled mode compiles here
        adapter.synchronize()
        started = time.perf_counter()
        outputs = adapter.compute(state, backward)
        adapter.synchronize()
        first["seconds"] = time.perf_counter() - started
        return outputs

    try:
        if timing.get("memory", True):
            peak, method = measure_memory(adapter, device, first_call)
        elif fresh:  # prepared again for a later round (a later pass: the worker timed other shapes
            first_call()  # since), untimed: a compiled mode compiles here; then the round's re-warm-up
        warmup, samples = time_calls(lambda: _timed_call(adapter, state, backward),
                                     timing.get("min_seconds", MIN_SECONDS), timing.get("max_seconds", MAX_SECONDS),
                                     bool(timing.get("rewarm", False)),
                                     timing.get("min_samples", MIN_SAMPLES),
                                     timing.get("capped_min_samples", CAPPED_MIN_SAMPLES))
    except BaseException:
        forget_prepared()
        raise
    # first_call_s: only in the round that measures memory (the shape's first compute after prepare),
    # the memory bookkeeping included; a later round's first call is warm.
    reply = {"status": "ok", "message": "", "peak_mem_bytes": peak, "mem_method": method,
             "first_call_s": first.get("seconds"), "warmup_calls": len(warmup), "samples": samples}
    reply.update(summarize(samples))
    reply.update(time_floor(adapter, case, backward, timing))
    return reply


def _timed_way(way):
    start = time.perf_counter()
    result = way()
    elapsed = time.perf_counter() - start
    del result  # freed after the clock stops, as an impl's outputs are
    return elapsed


FLOOR_RACE_CALLS = 3  # calls of each way of a floor part (the first warms it up) to pick the fastest


def _fastest_way(ways):
    """The way with the shortest of ``FLOOR_RACE_CALLS`` calls; only that one is timed in full (every
    way in full would take seconds a shape on the largest ones)."""
    if len(ways) == 1:
        return ways[0]
    return min(ways, key=lambda way: min(_timed_way(way) for _ in range(FLOOR_RACE_CALLS)))


def time_floor(adapter, case, backward, timing) -> dict:
    """``floor_s`` and ``floor_part`` when the adapter offers floor parts (``floor_parts(case,
    backward)``: the work any implementation in its language must do, see ``impls/numpy_floors.py``).

    A part's fastest way (``_fastest_way``) is timed by ``time_calls`` (warm-up and samples as the
    impl's own, for the round's time limits); the floor
    is the largest part's median (each part alone is a lower bound; their sum is not).  Only in a
    shape's first round: later rounds' replies keep the first's floor (``conformance.bench`` pools
    the rounds' samples and keeps the rest of the first reply).
    """
    floor_parts = getattr(adapter, "floor_parts", None)
    if floor_parts is None or not timing.get("memory", True):  # a shape's first round (or its only one)
        return {}
    limits = (timing.get("min_seconds", MIN_SECONDS), timing.get("max_seconds", MAX_SECONDS))  # the round's share
    try:
        medians = {}
        for name, ways in floor_parts(case, backward).items():
            samples = time_calls(functools.partial(_timed_way, _fastest_way(ways)), *limits)[1]
            medians[name] = summarize(samples)["median_s"]
    except Exception as error:  # noqa: BLE001 - a floor that cannot be measured (memory) never costs the impl's row
        return {"floor_s": None, "floor_part": "not measured: " + _describe(error)}
    finally:
        gc.collect()  # the parts' buffers go before the next spec is synthesised
    if not medians:
        return {}
    part = max(medians, key=medians.get)
    return {"floor_s": medians[part], "floor_part": part}


def run_request(adapter, device, spec, timing=None) -> dict:
    """The worker's answer to ``{"bench": spec, "timing": {...}}``: never raises for a framework's error."""
    try:
        reply = measure(adapter, device, spec, timing)
    except Unsupported as error:
        reply = {"status": "unsupported", "message": str(error)}
    except Exception as error:  # the framework raised (or ran out of memory): that is the result
        reply = {"status": "error", "message": _describe(error)}
        gc.collect()
    if (timing or {}).get("memory", True):  # a shape's first round: its garbage goes now, not in a later round's timing
        gc.collect()
    if (timing or {}).get("release_memory"):
        # A paired round's turn ends here and the worker is stopped until its next turn.  With the
        # malloc thresholds fixed (conformance.bench.MALLOC_SETTINGS) it would keep every buffer its
        # calls freed while stopped: at [128, 10^6] eight such workers left 0.7 GB of 24 GB free.
        # Its next turn warms up before it is timed, which faults the pages back in untimed.
        _malloc_trim()
    reply["bench"] = spec
    return reply
