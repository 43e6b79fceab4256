"""One impl's part in a benchmark run: its worker, its CSV and its rounds journal."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from conformance import runner
from conformance.bench.grid import spec_label
from conformance.bench.machine import CpuWatch, worker_environment
from conformance.bench.rounds import round_timing
from conformance.bench.rows import (COLUMNS, bench_path, journal_line, journal_path, read_journal, read_rows,
                                    result_row)
from impls import bench as worker_bench
from impls import get_adapter
from impls.support import why_unsupported


class ImplBench:
    """One impl's worker and CSV during a benchmark run; rows written and flushed one by one.

    A shape's rounds, gathered pass by pass (see ``rounds.PASSES``), are kept in ``rounds_of`` until
    its row is written, and each pass's replies are appended to a journal
    (``logs/rounds-<impl>-<device>.jsonl``) from which ``--resume`` takes the passes an interrupted
    run had finished."""

    def __init__(self, impl, device, out_dir, specs, python, timeout, threads=None, malloc="fixed", resume=False):
        self.impl, self.device, self.timeout, self.malloc = impl, device, timeout, malloc
        self.adapter = get_adapter(impl)
        self.path = bench_path(out_dir, impl, device)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.worker = runner.Worker(impl, device, python, log_dir=Path(out_dir) / "logs",
                                    env=worker_environment(threads, malloc))
        if any(self.can_run(s) for s in specs):
            self.worker.start()  # fail fast, before any row, when the framework is not installed
        # rows of an interrupted run in this folder (``resume``), by spec_label; see keep()
        self.earlier = {spec_label(row): row for row in read_rows(self.path)} if resume and self.path.exists() else {}
        self.journal_path = journal_path(out_dir, impl, device)
        self.earlier_passes = read_journal(self.journal_path) if resume else {}
        self.rounds_of = {}  # spec_label -> the replies of its rounds so far, every pass
        self.passes_of = {}  # spec_label -> how many of those rounds each pass took
        self.replies, self.pass_rounds = [], []  # the shape being timed: its lists in rounds_of, passes_of
        self.handle = self.journal = None

    def why_not(self, spec):
        """Why the impl cannot run the spec, from its declarations alone (no worker needed), or None;
        the worker asks the same question again once it has synthesised the case."""
        return why_unsupported(self.adapter, self.device, worker_bench.spec_meta(spec))

    def can_run(self, spec) -> bool:
        return self.why_not(spec) is None

    def keep(self, labels, passes_done=None):
        """Start the CSV with the earlier rows of these specs (those every impl of the run has a row
        for), replacing the file in one step: a run interrupted before this loses none of them.
        ``passes_done``: spec_label -> the passes of it that every impl finished in the interrupted
        run; their replies are taken up, and the journal is started again with them alone."""
        partial = self.path.with_name(self.path.name + ".partial")
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.earlier[label] for label in labels)
        os.replace(partial, self.path)
        self.handle = open(self.path, "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.handle, fieldnames=COLUMNS, extrasaction="ignore")
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.journal_path.with_name(self.journal_path.name + ".partial")
        with open(partial, "w", encoding="utf-8") as journal:
            for label, count in (passes_done or {}).items():
                self.rounds_of[label], self.passes_of[label] = [], []
                for pass_index in range(count):
                    entry = self.earlier_passes[label][pass_index]
                    self.rounds_of[label] += entry["replies"]
                    self.passes_of[label].append(len(entry["replies"]))
                    journal.write(journal_line(label, pass_index, entry["run"], entry["replies"]))
        os.replace(partial, self.journal_path)
        self.journal = open(self.journal_path, "a", encoding="utf-8")
        self.earlier_passes = {}  # taken up: the rest is timed again

    def begin(self, spec):
        """Make ``spec`` the shape being timed, with the rounds it has had so far."""
        self.replies = self.rounds_of.setdefault(spec_label(spec), [])
        self.pass_rounds = self.passes_of.setdefault(spec_label(spec), [])

    def runs(self, round_index):
        """Whether this impl takes part in the round: not after an unsupported or failed round."""
        if round_index == 0:
            del self.replies[:], self.pass_rounds[:]
            return True
        return self.ok()

    def ok(self) -> bool:
        return bool(self.replies) and all(reply.status == "ok" for reply in self.replies)

    def round_medians(self) -> list:
        return [reply.data["median_s"] for reply in self.replies]

    def run(self, spec, round_index, rounds, inputs=None):
        """One round; ``rounds`` is 1 for an impl timed alone (the whole budget in one turn);
        ``inputs``: the folder where the spec's inputs are stored (``impls.bench.write_inputs``)."""
        reason = self.why_not(spec) if round_index == 0 else None
        if reason:
            reply = runner.Reply("unsupported", reason, {})
        else:
            timing = round_timing(round_index, rounds)
            if inputs:
                timing["inputs"] = str(inputs)
            watch = CpuWatch(self.worker)
            reply = self.worker.send({"bench": spec, "timing": timing}, self.timeout)
            if reply.data is not None:  # a timeout or crash carries no data
                reply.data["cpu_watch"] = watch.stop()
            if reply.status != "ok" and rounds > 1:
                reply.message = "round %d: %s" % (round_index + 1, reply.message)
        self.replies.append(reply)

    def record_pass(self, spec, pass_index, first_round, run_id):
        """Journal the spec's replies from round ``first_round`` on: its pass ``pass_index`` in run ``run_id``."""
        self.journal.write(journal_line(spec_label(spec), pass_index, run_id, self.replies[first_round:]))
        self.journal.flush()
        self.pass_rounds.append(max(0, len(self.replies) - first_round))  # 0: out since an earlier round

    def finish(self, spec, run_id):
        """Write the spec's row: its rounds' samples pooled and their medians, or the first round that failed."""
        failed = [reply for reply in self.replies if reply.status != "ok"]
        reply = failed[0] if failed else _pooled(self.replies)
        row = result_row(self.impl, self.device, self.worker.info, spec, reply)
        row["malloc"] = self.malloc
        if not failed:
            row.update(rounds=len(self.replies), bench_run=run_id,
                       round_medians_s=" ".join(repr(float(m)) for m in self.round_medians()),
                       pass_rounds=" ".join(str(count) for count in self.pass_rounds if count))
            row.update(CpuWatch.shares([reply.data.get("cpu_watch") for reply in self.replies]))
        self.writer.writerow(row)
        self.handle.flush()
        self.rounds_of.pop(spec_label(spec), None)
        self.passes_of.pop(spec_label(spec), None)

    def close(self):
        self.worker.stop()
        for handle in (self.handle, self.journal):
            if handle:
                handle.close()


def _pooled(replies) -> runner.Reply:
    """One reply from the ok rounds of a spec: median and IQR of all their samples together."""
    samples = [value for reply in replies for value in reply.data["samples"]]
    data = dict(replies[0].data)  # the memory of the first round
    data.update(worker_bench.summarize(samples))
    return runner.Reply("ok", "", data)


def kept_passes(label, sessions, passes) -> int:
    """How many of a spec's first passes (fewer than ``passes``: its rows are written in the last)
    ``--resume`` keeps from the journals: those every impl of this run has, paired (timed by one
    run, the same number of rounds for every impl that took part), with no round that failed (a
    timeout or crash is timed again, not kept)."""
    kept = 0
    while kept < passes - 1:
        entries = [session.earlier_passes.get(label, []) for session in sessions]
        entries = [found[kept] for found in entries if kept < len(found)]
        if len(entries) < len(sessions) or len({entry["run"] for entry in entries}) != 1:
            break
        replies = [entry["replies"] for entry in entries]
        if any(reply.status not in ("ok", "unsupported") for taken in replies for reply in taken):
            break
        if len({len(taken) for taken in replies if taken and taken[0].status == "ok"}) > 1:  # unsupported: 1
            break
        kept += 1
    return kept
