"""Worker entry point: one process runs one impl on one device, case after case.

``python -m impls.worker --impl torch --device cpu`` (cwd or PYTHONPATH = the repository root).

Protocol, one JSON object per line: the worker first writes ``{"event": "ready", ...}`` (or
``{"event": "unavailable", "message": ...}`` when the framework cannot be loaded, then exits), then
answers each request read from stdin,
``{"case_file": ..., "out_file": ..., "repeat": 2}``, with
``{"status": "ok"|"error"|"unsupported"|"inapplicable", ...}`` after writing the outputs to
``out_file`` (a ``.npz``).  The worker runs the case it is sent: whether the impl can express it is
decided by the runner, once (``impls.support.why_unsupported`` in ``runner.execute_case``), and a
case the adapter declares it cannot express is sent on purpose (the runner's check of the declared
limits); ``unsupported`` is the adapter's own answer (``impls.base.Unsupported``).  ``repeat`` runs
the case that many times and reports whether the outputs were bitwise identical (``deterministic``),
the fastest run's time (``seconds``) and the first run's (``first_seconds``).  A benchmark request,
``{"bench": {"op": ..., "mode": ..., "dtype": ..., "batch": ..., ...}, "timing": {...}}`` (``timing`` optional), is answered with ``{"status": ..., "median_s": ..., "samples": [...], ...}``
(see ``impls/bench.py``); a sampler request,
``{"sampler": {"range_max": ..., "num_sampled": ..., ...}}``, draws from the framework's native
log-uniform sampler (see ``impls/samplers.py``).

Frameworks print to stdout, so the protocol gets a private duplicate of the original stdout and
file descriptor 1 is pointed at stderr before any framework is imported.

Must run on Python 3.8 with numpy 1.23.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback

import numpy as np

from impls import numpy_dispatch

MESSAGE_LIMIT = 2000  # characters of an exception message kept in a result


def _protocol_stream():
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything a framework prints now lands on stderr
    sys.stdout = sys.stderr
    return channel


def _send(channel, message):
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _bitwise_equal(first, second):
    if sorted(first) != sorted(second):
        return False
    return all(np.asarray(first[k]).tobytes() == np.asarray(second[k]).tobytes() for k in first)


def _portable(array):
    """bfloat16 has no portable .npy dtype; float32 holds every bfloat16 value exactly."""
    array = np.asarray(array)
    return array.astype(np.float32) if array.dtype.name == "bfloat16" else array


def _describe(error):
    text = "%s: %s" % (type(error).__name__, error)
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "..."


def run_case(adapter, request):
    """Run one request; return the reply dict (never raises for a framework's error)."""
    from impls.base import NotNative, Unsupported
    from impls.caseio import Case, write_npz

    case = Case.read(request["case_file"])
    outputs, seconds, deterministic = None, [], True
    try:
        for _ in range(max(1, int(request.get("repeat", 1)))):
            start = time.perf_counter()
            result = {k: _portable(v) for k, v in adapter.run(case).items()}
            seconds.append(time.perf_counter() - start)
            deterministic = deterministic and (outputs is None or _bitwise_equal(outputs, result))
            outputs = result
    except Unsupported as error:
        return {"status": "unsupported", "message": str(error)}
    except NotNative as error:
        return {"status": "inapplicable", "message": "not tested natively: %s" % error}
    except Exception as error:  # the framework raised: that is the result
        return {"status": "error", "message": _describe(error),
                "traceback": "".join(traceback.format_exc(limit=-4))[-MESSAGE_LIMIT:]}
    write_npz(request["out_file"], outputs)
    # ``first_seconds``: the first run includes what a framework does once (a compiled mode's tracing
    # and compilation); ``seconds``, the fastest run, excludes it when the case is run more than once.
    # Both are wall-clock: in a ``conformance run --jobs N`` (N > 1, the default on a multi-core
    # machine; run.json's ``corpus_jobs``) other impls' workers ran at the same time, so they are inflated.
    return {"status": "ok", "outputs": sorted(outputs), "seconds": min(seconds), "first_seconds": seconds[0],
            "deterministic": deterministic if len(seconds) > 1 else None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", required=True)
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    args = parser.parse_args(argv)
    channel = _protocol_stream()
    from impls import get_adapter

    try:
        adapter = get_adapter(args.impl)
        version = adapter.load(args.device)
    except Exception as error:  # not installed, no GPU, broken install: the impl is unavailable
        _send(channel, {"event": "unavailable", "message": _describe(error)})
        return 3
    from impls import threads  # noqa: PLC0415

    _send(channel, {"event": "ready", "impl": args.impl, "device": args.device, "version": version,
                    "python": platform.python_version(), "numpy": np.__version__, "pid": os.getpid(),
                    "numpy_avx512": numpy_dispatch.active_avx512_targets(),  # its float64 exp/log bits
                    "threads": threads.configure(threads.requested()),  # before any op: TensorFlow needs it
                    "ops": {op: support.as_dict() for op, support in adapter.ops.items()}})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            if "bench" in request:
                from impls.bench import run_request  # noqa: PLC0415

                reply = run_request(adapter, args.device, request["bench"], request.get("timing"))
            elif "sampler" in request:
                from impls.samplers import run_request as run_sampler  # noqa: PLC0415

                reply = run_sampler(adapter, args.device, request["sampler"])
            else:
                reply = run_case(adapter, request)
        except Exception as error:  # an unreadable case file or output path: report, keep serving
            reply = {"status": "error", "message": "worker: " + _describe(error)}
        reply["case_file"] = request.get("case_file")
        _send(channel, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
