"""Impls side by side: a pool of threads, each driving one impl's worker process at a time.

Frameworks still never share a process: a thread only talks to its impl's worker (``runner.Worker``),
and each result file is the impl's own, so the threads write nothing in common.  Two things are shared
and handled here: the machine's cores (:func:`worker_environment`) and Ctrl-C (:class:`Stop`).
"""
from __future__ import annotations

import queue
import threading

from impls import threads


def worker_environment(jobs: int) -> dict:
    """The environment of a worker when ``jobs`` workers run at once.

    Every framework sizes its thread pools to the whole machine by default, so two workers on 2 cores
    would each spin 2 threads and take turns in time slices.  A fair share, ``cores // jobs`` threads each
    (at least 1), set through the variables the benchmark uses (``impls/threads.py``), keeps the total at
    the machine's cores.  One job: nothing is changed (the frameworks' own defaults, as before).
    """
    if jobs <= 1:
        return {}
    return threads.environment(max(1, threads.machine_cores() // jobs))


class Stop:
    """Shared by the threads of a run: set on Ctrl-C, and then every worker it watches is killed
    (a worker answering a long case would otherwise keep its thread, and the run, alive)."""

    def __init__(self):
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._workers = []

    def watch(self, worker):
        with self._lock:
            self._workers.append(worker)
        if self.is_set():
            worker.stop()
        return worker

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            try:
                worker.stop()
            except Exception:  # noqa: BLE001 - its thread may be stopping it at the same moment
                pass


def run_each(items, function, jobs: int, stop: Stop = None) -> dict:
    """``function(item, slot)`` for every item, ``jobs`` at a time on threads; ``{item: its result}``
    in the order of ``items``.  ``slot`` is the item's index (a progress bar's line).

    Ctrl-C (a ``KeyboardInterrupt`` in the calling thread) sets ``stop``, which kills the watched
    workers, waits a moment for the threads to notice and raises again.  An exception a thread raised
    is raised here once every item is done, so one impl's failure never cuts the others short.
    """
    items = list(items)
    stop = stop or Stop()
    if jobs <= 1 or len(items) <= 1:
        return {item: function(item, slot) for slot, item in enumerate(items)}
    pending = queue.Queue()
    for slot, item in enumerate(items):
        pending.put((slot, item))
    outcomes = {}

    def drive():
        while not stop.is_set():
            try:
                slot, item = pending.get_nowait()
            except queue.Empty:
                return
            try:
                outcomes[item] = (True, function(item, slot))
            except BaseException as error:  # noqa: BLE001 - raised in the calling thread, below
                outcomes[item] = (False, error)

    # Daemon threads: after Ctrl-C a thread stuck in a framework call cannot keep the process alive.
    pool = [threading.Thread(target=drive, name="impl-%d" % n, daemon=True) for n in range(min(jobs, len(items)))]
    for thread in pool:
        thread.start()
    try:
        while any(thread.is_alive() for thread in pool):
            for thread in pool:
                thread.join(timeout=0.2)  # a bounded wait: the calling thread stays interruptible
    except KeyboardInterrupt:
        stop.set()
        for thread in pool:
            thread.join(timeout=5)
        raise
    for item in items:
        done, value = outcomes[item]
        if not done:
            raise value
    return {item: outcomes[item][1] for item in items}
