"""A fair share of the machine: while one impl is timed, every other worker is stopped.

Why: an idle framework's thread pool may spin for as long as its runtime likes (OpenMP's
KMP_BLOCKTIME / GOMP_SPINCOUNT); on a 2-core machine such spinning took a time slice from every
call of the impl being timed (issue 18: PyTorch's [64, 10^3] forward read 15.98 ms with an IQR
of 0.7% in one run, 0.033 ms in the next).  A stopped process cannot spin.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

PAUSE_IDLE_WORKERS = hasattr(signal, "SIGSTOP") and hasattr(os, "killpg")
STOP_CONFIRM_SECONDS = 2.0  # how long to wait for /proc to show every thread of a worker stopped
# Where workers cannot be stopped: a framework's idle OpenMP threads may spin for up to 200 ms after
# its last call (Intel OpenMP's KMP_BLOCKTIME default), so the next impl's turn waits that long
# (measured: NumPy's [128, 1000] row 0.32 ms right after PyTorch's turn, 0.26 ms with this pause).
SETTLE_SECONDS = 0.2


def thread_states(pid) -> list:
    """The scheduler state letter of every thread of ``pid`` (``/proc/<pid>/task/*/stat``):
    ``T`` stopped, ``R`` running, ``S`` sleeping...; empty where /proc cannot tell (or it is gone)."""
    states = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return states
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, task)) as handle:
                text = handle.read()
        except OSError:
            continue  # the thread ended meanwhile
        states.append(text[text.rindex(")") + 2])  # the name in parentheses may hold spaces
    return states


def _signal_worker(worker, signum) -> bool:
    """Send ``signum`` to the worker's process group (its own session, see ``runner.Worker.start``)."""
    process = worker.process
    if process is None or process.poll() is not None:
        return False
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _confirm_stopped(worker):
    """Wait until every thread of the worker shows ``T`` (a signal is delivered asynchronously)."""
    process = worker.process
    deadline = time.monotonic() + STOP_CONFIRM_SECONDS
    while process is not None and time.monotonic() < deadline:
        states = thread_states(process.pid)
        if not states or all(state in "Tt" for state in states) or process.poll() is not None:
            return
        time.sleep(0.001)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the finally clauses that resume and stop workers


class Turns:
    """Whose turn it is: that impl's worker runs, every other worker of the run is stopped.

    ``give(session)`` stops the others (``SIGSTOP`` to each process group, confirmed through /proc
    before the turn starts) and resumes the session's own worker (``SIGCONT``).  A stopped worker
    answers nothing, so only the worker whose turn it is is ever sent a request; one killed after a
    timeout (``SIGKILL`` ends a stopped process too) restarts running.  ``resumed_on_the_way_out``
    resumes every worker however the run ends: normally, on an exception, on Ctrl-C, or on
    ``SIGTERM`` (turned into ``SystemExit`` while the run lasts).  Only a ``SIGKILL`` of this
    process would leave stopped workers behind.  Where processes cannot be stopped, a turn starts
    after ``SETTLE_SECONDS`` instead.
    """

    def __init__(self, sessions: dict):
        self.sessions = sessions  # impl -> session (session.ImplBench): its ``worker`` is stopped and resumed
        self.stopped = set()

    def give(self, session):
        if not PAUSE_IDLE_WORKERS:
            time.sleep(SETTLE_SECONDS)  # the best one can do: let the last framework's spinning end
            return
        for other in self.sessions.values():
            # One already stopped stays stopped: only the worker whose turn it is is ever sent a
            # request, resumed, or killed and restarted after a timeout.
            if other is session or other in self.stopped:
                continue
            if _signal_worker(other.worker, signal.SIGSTOP):
                self.stopped.add(other)
                _confirm_stopped(other.worker)
        if session in self.stopped:
            _signal_worker(session.worker, signal.SIGCONT)
            self.stopped.discard(session)

    def resume_all(self):
        for session in list(self.stopped):
            _signal_worker(session.worker, signal.SIGCONT)
        self.stopped.clear()

    @contextlib.contextmanager
    def resumed_on_the_way_out(self):
        previous = None
        if PAUSE_IDLE_WORKERS and threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            yield self
        finally:
            self.resume_all()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
