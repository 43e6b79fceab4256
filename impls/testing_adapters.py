"""Misbehaving adapters that prove the runner's isolation (tests only; they judge no framework).

Reachable only with ``CONFORMANCE_TEST_ADAPTERS=1`` in the environment (see :func:`impls.get_adapter`).
Each one computes exactly what the NumPy reference computes, except on the *chosen* cases: those
whose id contains one of the comma-separated substrings in ``$CONFORMANCE_TEST_TRIGGER`` (default
``base-soft``).  The special trigger ``@load`` makes it misbehave in ``load`` instead, before the
worker says it is ready.  On a chosen case:

* ``test-segfault``: reads address 0 (a real SIGSEGV);
* ``test-abort``: ``os.abort()`` (SIGABRT, as a failed C++ assertion or ``std::terminate`` does);
* ``test-exit``: ``os._exit(7)`` (a library calling ``exit()``);
* ``test-hang``: sleeps forever;
* ``test-oom``: caps its own address space (``RLIMIT_AS``, at most 512 MiB above what the process
  already maps, so the machine is never endangered), touches memory until the allocation fails, then
  dies by SIGKILL as the kernel's OOM killer would kill it;
* ``test-memerror``: the same exhaustion, but the ``MemoryError`` is raised to the worker (a
  framework that fails cleanly): the case is an ``error`` and the worker keeps serving;
* ``test-noisy``: on every case (and in ``load``) writes garbage, fake protocol lines and bytes that
  are not UTF-8 to stdout and stderr through every route a framework uses (``print``, the C stdio
  ``printf``, ``write(1)``, ``write(2)``), a flood of it on the chosen cases; its results are the
  reference's, so every case must pass;
* ``test-unavailable``: ``load`` raises ``ImportError`` like a framework that is not installed;
* ``test-wrong-soft``: the reference, except that its soft-label loss is 1% too large (every case
  with ``soft_label``, no trigger): a deterministic wrong answer for ``conformance search`` to find;
* ``test-loss-sampler``, ``test-loss-uniform``, ``test-loss-labels-behind``, ``test-loss-hits-kept``: a
  sampled loss drawing its own candidates (``conformance sampler``'s ``via=loss`` settings), laid out
  as Paddle 1.8's (``Samples``, ``Probabilities``, ``SampledLogits``, loss ``[N, 1]``) and computed by
  the oracle: right, then drawing uniformly instead of log-uniformly, with the label after the
  candidates instead of in front, and with accidental hits left in the softmax;
* ``test-standalone-soft``: soft-label ``softmax_with_cross_entropy`` alone, written in NumPy with
  nothing of the suite but the adapter base, so that ``conformance repro --standalone`` can render it
  (the others reach the oracle's module): a loss 1% too large, its gradients right;
* ``test-spinner``: the reference, plus one busy thread per core that spins whenever the adapter is
  not computing, as an idle OpenMP pool spin-waits (``KMP_BLOCKTIME``, ``GOMP_SPINCOUNT``), here
  without end (a worst case): the benchmark's fair-share test times another impl beside it.

Before misbehaving each adapter writes one line to stderr naming itself, its pid and the case, so
the tests can check that the crash message carries the worker's last output.  Crashes never leave a
core file.  Must run on Python 3.8.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

import numpy as np

from impls.base import Adapter, OpSupport, Unsupported
from impls.reference_adapter import NumpyReference

TRIGGER_VARIABLE = "CONFORMANCE_TEST_TRIGGER"
DEFAULT_TRIGGER = "base-soft"
AT_LOAD = "@load"
OOM_HEADROOM = 512 << 20  # bytes the memory hogs may map above what the process already maps
OOM_CHUNK = 64 << 20


def _triggers():
    text = os.environ.get(TRIGGER_VARIABLE, DEFAULT_TRIGGER)
    return [t.strip() for t in text.split(",") if t.strip()]


def _say(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _no_core_file():
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass


def _mapped_bytes():
    """The process's current virtual size (``VmSize``), or 0 where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _exhaust_memory():
    """Touch memory in chunks under a capped address space until an allocation fails.

    Returns the number of bytes held when it failed; the cap is restored and the memory freed.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _mapped_bytes() + OOM_HEADROOM
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    hoard = []
    try:
        while True:
            hoard.append(np.ones(OOM_CHUNK, dtype=np.uint8))  # ones: the pages are really touched
            if len(hoard) * OOM_CHUNK > 2 * OOM_HEADROOM:  # the cap did not bite: never go further
                raise MemoryError("test adapter: RLIMIT_AS had no effect; stopped at %d MiB"
                                  % (len(hoard) * OOM_CHUNK >> 20))
    except MemoryError:
        held = len(hoard) * OOM_CHUNK
        del hoard[:]
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        return held


class _Misbehaving(NumpyReference):
    """The reference, except that ``misbehave`` runs on the chosen cases (or in ``load``)."""

    name = ""

    def load(self, device):
        version = super().load(device)
        _say("%s: loaded in pid %d" % (self.name, os.getpid()))
        if AT_LOAD in _triggers():
            self.misbehave("load")
        return version

    def run(self, case):
        if any(t in case.id for t in _triggers() if t != AT_LOAD):
            self.misbehave(case.id)
        return super().run(case)

    def misbehave(self, where):
        raise NotImplementedError


class Segfault(_Misbehaving):
    name = "test-segfault"

    def misbehave(self, where):
        _say("%s: pid %d about to segfault on %s" % (self.name, os.getpid(), where))
        _no_core_file()
        ctypes.string_at(0)
        os.kill(os.getpid(), signal.SIGSEGV)  # not reached where address 0 is unmapped


class Abort(_Misbehaving):
    name = "test-abort"

    def misbehave(self, where):
        _say("%s: pid %d about to abort on %s" % (self.name, os.getpid(), where))
        _no_core_file()
        os.abort()


class Exit(_Misbehaving):
    name = "test-exit"

    def misbehave(self, where):
        _say("%s: pid %d about to exit with status 7 on %s" % (self.name, os.getpid(), where))
        os._exit(7)


class Hang(_Misbehaving):
    name = "test-hang"

    def misbehave(self, where):
        _say("%s: pid %d hanging on %s" % (self.name, os.getpid(), where))
        while True:
            time.sleep(3600)


class OutOfMemory(_Misbehaving):
    name = "test-oom"

    def misbehave(self, where):
        _say("%s: pid %d exhausting memory on %s" % (self.name, os.getpid(), where))
        held = _exhaust_memory()
        _say("%s: out of memory after %d MiB; killed like the OOM killer does" % (self.name, held >> 20))
        os.kill(os.getpid(), signal.SIGKILL)


class MemoryErrorRaised(_Misbehaving):
    name = "test-memerror"

    def misbehave(self, where):
        _say("%s: pid %d exhausting memory on %s" % (self.name, os.getpid(), where))
        held = _exhaust_memory()
        raise MemoryError("test-memerror: could not allocate beyond %d MiB" % (held >> 20))


def _c_printf(text):
    try:
        libc = ctypes.CDLL(None)
        libc.printf(text)
        libc.fflush(None)
    except (OSError, AttributeError):
        pass


class Noisy(_Misbehaving):
    name = "test-noisy"

    GARBAGE = (
        "plain garbage on stdout",
        '{"status": "ok", "outputs": [], "seconds": 0, "case_file": "forged"}',
        '{"event": "ready"}',
        "null",
        "42",
        "[1, 2",
        "",
    )

    def load(self, device):
        self.noise("load", flood=False)
        return super().load(device)

    def run(self, case):
        chosen = any(t in case.id for t in _triggers() if t != AT_LOAD)
        self.noise(case.id, flood=chosen)
        result = super().run(case)
        self.noise(case.id, flood=False)
        return result

    def noise(self, where, flood):
        for line in self.GARBAGE:
            print(line)
            sys.stdout.flush()
            if sys.__stdout__ is not None:
                sys.__stdout__.write(line + "\n")
                sys.__stdout__.flush()
            os.write(1, (line + "\n").encode())
        os.write(1, b"\xff\xfe not utf-8 \xc3\x28 on fd 1 during %s\n" % where.encode())
        os.write(2, b"\xff\xfe not utf-8 \xc3\x28 on fd 2 during %s\n" % where.encode())
        os.write(1, b"no newline at the end ")
        _c_printf(b"C printf garbage without a newline ")
        _c_printf(b'{"status": "error", "message": "forged by printf"}\n')
        if flood:  # several times what a pipe holds, on both streams, half of it not UTF-8
            block = (b"\xe9\xe8 flood " * 40 + b"\n") * 64
            for _ in range(8):
                os.write(1, block)
                os.write(2, block)
        _say("test-noisy: pid %d noise done for %s" % (os.getpid(), where))

    def misbehave(self, where):  # pragma: no cover - noise is done in run
        pass


class NotInstalled(NumpyReference):
    name = "test-unavailable"

    def load(self, device):
        raise ImportError("No module named 'nonesuch_framework' (test-unavailable never loads)")


class Spinner(NumpyReference):
    """The reference with a spinning thread per core whenever it is idle (see the module doc)."""

    name = "test-spinner"
    SPIN_ELEMENTS = 1 << 18  # one ufunc call of ~0.3 ms with the GIL released: each thread holds a core

    def load(self, device):
        from impls.threads import machine_cores  # noqa: PLC0415

        version = super().load(device)
        self._computing = threading.Event()
        for index in range(machine_cores()):
            threading.Thread(target=self._spin, name="spinner-%d" % index, daemon=True).start()
        _say("%s: pid %d spins %d threads while idle" % (self.name, os.getpid(), machine_cores()))
        return version

    def _spin(self):
        values, out = np.ones(self.SPIN_ELEMENTS), np.empty(self.SPIN_ELEMENTS)
        while True:
            if self._computing.is_set():  # its own calls get the cores, as an OpenMP team would
                time.sleep(0.001)
            else:
                np.sqrt(values, out=out)

    def compute(self, state, backward=True):
        self._computing.set()
        try:
            return super().compute(state, backward)
        finally:
            self._computing.clear()


class WrongSoftLabel(NumpyReference):
    """The reference with a soft-label loss 1% too large (its gradients stay right)."""

    name = "test-wrong-soft"

    def compute(self, state, backward=True):
        outputs = super().compute(state, backward)
        if state[2].get("soft_label"):
            outputs = dict(outputs, loss=outputs["loss"] * 1.01)
        return outputs


def _soft_cross_entropy(logits, label, upstream, axis):
    """Loss and the gradients of ``sum(upstream * loss)`` of softmax cross-entropy with soft labels
    along ``axis``, in float64 (the loss keeps the axis, as Paddle's does)."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    loss = -(label * log_softmax).sum(axis=axis, keepdims=True)
    grad_logits = upstream * (np.exp(log_softmax) * label.sum(axis=axis, keepdims=True) - label)
    return loss, np.exp(log_softmax), grad_logits, -upstream * log_softmax


class StandaloneWrongSoft(Adapter):
    """Soft-label softmax_with_cross_entropy in plain NumPy with a loss 1% too large: a wrong answer
    whose reproducer can be standalone (it reaches NumPy and the adapter base only)."""

    name = "test-standalone-soft"
    ops = {"softmax_with_cross_entropy": OpSupport("native", ("float32", "float64"), note="NumPy, soft labels only")}

    def load(self, device):
        self.device = device
        return np.__version__

    def prepare(self, case):
        if not case.params["soft_label"]:
            raise Unsupported("test-standalone-soft: soft labels only")
        logits, label = (case.inputs[name].astype(np.float64) for name in ("logits", "label"))
        return logits, label, case.upstream.astype(np.float64), case.params, case.dtype

    def compute(self, state, backward=True):
        logits, label, upstream, params, dtype = state
        loss, softmax, grad_logits, grad_label = _soft_cross_entropy(logits, label, upstream, params["axis"])
        outputs = {"loss": loss * 1.01, "grad/logits": grad_logits, "grad/label": grad_label}
        if params["return_softmax"]:
            outputs["softmax"] = softmax
        return {name: value.astype(dtype) for name, value in outputs.items() if backward or "/" not in name}

    def to_numpy(self, outputs):
        return dict(outputs)


class _OracleLossSampler:
    """Draws through a sampled loss, Paddle 1.8's layout, computed by the oracle; ``flaw`` breaks one thing."""

    reset = "none needed: a pure function of its seed"
    loss_op = "sampled_softmax_with_cross_entropy"
    HIT_SHIFT = 1e20  # what Paddle 1.8 subtracts from a hit's sampled logit

    def __init__(self, adapter):
        self.flaw = adapter.flaw

    def draw(self, spec, seed, n, reset=True):
        raise NotImplementedError("test-loss-*: draws through the loss only")

    def checks(self, spec, seed):
        return []

    def draw_through_loss(self, spec, seed, n, reset=True):
        from impls import reference, samplers  # noqa: PLC0415

        logits = samplers.loss_problem(self.loss_op, spec)["logits"]
        label = np.asarray(spec["true_classes"], dtype=np.int64).reshape(-1, 1)
        rows, classes, count = len(label), spec["range_max"], spec["num_sampled"]
        drawn = {key: [] for key in ("candidates", "sampled_expected", "true_expected")}
        out = {key: [] for key in ("samples", "probabilities", "sampled_logits", "loss")}
        for d in range(n):
            seed_d = samplers.draw_seed(seed, d)
            candidates, true_expected, sampled_expected = reference.log_uniform_candidate_sampler(
                label, 1, count, True, classes, seed=seed_d)
            if self.flaw == "uniform":
                candidates = np.random.RandomState(seed_d).choice(classes, count, replace=False).astype(np.int64)
            samples = np.concatenate([label, np.broadcast_to(candidates, (rows, count))], axis=1)
            probabilities = np.concatenate([true_expected, np.broadcast_to(sampled_expected, (rows, count))],
                                           axis=1).astype(np.float32)
            loss = reference.sampled_softmax_with_cross_entropy(
                logits.astype(np.float64), label, count, 1, self.flaw != "hits_kept", use_customized_samples=True,
                customized_samples=samples, customized_probabilities=probabilities.astype(np.float64))
            z = np.take_along_axis(logits, samples, axis=1) - np.log(probabilities)
            if self.flaw != "hits_kept":
                z[:, 1:][samples[:, 1:] == label] -= self.HIT_SHIFT
            for key, value in zip(drawn, (candidates, probabilities[0, 1:], probabilities[:, 0])):
                drawn[key].append(value)
            if self.flaw == "labels_behind":  # what it exposes: the label after the candidates
                samples, probabilities, z = (np.roll(a, -1, axis=1) for a in (samples, probabilities, z))
            for key, value in zip(out, (samples, probabilities, z, loss.astype(np.float32))):
                out[key].append(value)
        extra = {key: np.stack(values) for key, values in out.items()}
        extra.update(input_logits=logits, input_label=label)
        return tuple(np.stack(values) for values in drawn.values()) + (extra,)


class LossSampler(NumpyReference):
    name = "test-loss-sampler"
    flaw = ""
    native_sampler = _OracleLossSampler


class LossSamplerUniform(LossSampler):
    name = "test-loss-uniform"
    flaw = "uniform"


class LossSamplerLabelsBehind(LossSampler):
    name = "test-loss-labels-behind"
    flaw = "labels_behind"


class LossSamplerHitsKept(LossSampler):
    name = "test-loss-hits-kept"
    flaw = "hits_kept"


ADAPTERS = {cls.name: cls for cls in (Segfault, Abort, Exit, Hang, OutOfMemory, MemoryErrorRaised, Noisy,
                                      NotInstalled, Spinner, WrongSoftLabel, StandaloneWrongSoft, LossSampler,
                                      LossSamplerUniform, LossSamplerLabelsBehind, LossSamplerHitsKept)}
ADAPTER = Segfault
