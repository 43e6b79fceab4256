"""Compiled: each compiled mode (torch.compile, XLA, tf.function...) against its own eager impl, case by
case, and what compiling costs (first run against later runs)."""
from __future__ import annotations

import math
import pandas as pd

from conformance.outcomes import COMPARED, NOT_RUN
from conformance.report.fmt import first_line
from conformance.report.html import prose_classes, table_markup
from conformance.report.pairs import AGREE, DISAGREE, UNDETERMINED, PairJudge
from conformance.report.section import Section


def compiled_agreement(frame: pd.DataFrame, compiled_modes: dict, raw_dir=None, manifest=None, cases_dir=None):
    """Each compiled mode against its own eager impl, case by case (``compiled_modes``: compiled impl
    -> eager impl, from the adapters' ``compiled_from``, or any ``(second, first)`` pairs of impls).

    A case *agrees* when both runs reached the same verdict (status; for bad input also the same
    behaviour) and, where both outputs were compared with the golden ones, the outputs are within one
    tolerance of each other (:class:`PairJudge`).  Returns ``(per op counts, differing cases)``.
    """
    judge = PairJudge(frame, raw_dir, manifest, cases_dir)
    rows = frame.set_index(["label", "case"])
    counts, differing = [], []
    pairs = compiled_modes.items() if hasattr(compiled_modes, "items") else compiled_modes
    for compiled, eager in pairs:
        for device in sorted(set(frame.loc[frame["impl"] == compiled, "device"])):
            a, b = "%s/%s" % (eager, device), "%s/%s" % (compiled, device)
            both = sorted(set(frame.loc[frame["label"] == a, "case"]) & set(frame.loc[frame["label"] == b, "case"]))
            tally = {}
            for case_id in both:
                ra, rb = rows.loc[(a, case_id)], rows.loc[(b, case_id)]
                # a compiled mode inherits its eager impl's declarations: a case neither ran says
                # nothing about the compiler
                if ra["status"] in NOT_RUN and rb["status"] in NOT_RUN:
                    continue
                key = (ra["op"],)
                t = tally.setdefault(key, {"cases": 0, AGREE: 0, "verdict differs": 0, "outputs differ": 0,
                                           UNDETERMINED: 0})
                t["cases"] += 1
                same_verdict = ra["status"] == rb["status"] and ra["behaviour"] == rb["behaviour"]
                verdict, exact = judge.verdict(a, b, case_id)
                if not same_verdict:
                    outcome = "verdict differs"
                elif verdict in (DISAGREE, UNDETERMINED):
                    outcome = "outputs differ" if verdict == DISAGREE else UNDETERMINED
                else:
                    outcome = AGREE
                t[outcome] += 1
                if outcome != AGREE:
                    differing.append({
                        "eager": a, "compiled": b, "op": ra["op"], "case": case_id, "outcome": outcome,
                        "eager status": ra["status"], "compiled status": rb["status"],
                        "eager ratio": ra["tol_ratio"], "compiled ratio": rb["tol_ratio"],
                        "difference / tolerance": exact if exact is not None else math.nan,
                        "eager message": first_line(ra["message"]), "compiled message": first_line(rb["message"])})
            for (op,), t in tally.items():
                counts.append({"eager": a, "compiled": b, "op": op, **t,
                               "agree share": t[AGREE] / t["cases"] if t["cases"] else math.nan})
    count_columns = ["eager", "compiled", "op", "cases", AGREE, "verdict differs", "outputs differ", UNDETERMINED,
                     "agree share"]
    differ_columns = ["eager", "compiled", "op", "case", "outcome", "eager status", "compiled status", "eager ratio",
                      "compiled ratio", "difference / tolerance", "eager message", "compiled message"]
    return pd.DataFrame(counts, columns=count_columns), pd.DataFrame(differing, columns=differ_columns)


def compile_times(frame: pd.DataFrame, compiled_modes: dict) -> pd.DataFrame:
    """Per compiled mode, device and op, the median first and later run of a case, eager and compiled,
    over the cases both ran to a result (``first_seconds``: the worker's first run of the case, a
    compiled mode's tracing and compilation included; ``seconds``: the fastest run, which with the
    default two runs is the second, compiled already).  Results without ``first_seconds`` (written
    before it was recorded) give no row."""
    if "first_seconds" not in frame:
        return pd.DataFrame()
    ran = frame[frame["status"].isin(COMPARED) & ~frame["invalid"]].copy()
    for column in ("seconds", "first_seconds"):
        ran[column] = pd.to_numeric(ran[column], errors="coerce")
    ran = ran.dropna(subset=["seconds", "first_seconds"])
    rows = []
    for compiled, eager in compiled_modes.items():
        for device in sorted(set(ran.loc[ran["impl"] == compiled, "device"])):
            a = ran[(ran["impl"] == eager) & (ran["device"] == device)].set_index("case")
            b = ran[(ran["impl"] == compiled) & (ran["device"] == device)].set_index("case")
            both = a.index.intersection(b.index)
            for op in sorted(set(b.loc[both, "op"])):
                cases = [c for c in both if b.loc[c, "op"] == op]
                eager_rows, compiled_rows = a.loc[cases], b.loc[cases]
                rows.append({"eager": "%s/%s" % (eager, device), "compiled": "%s/%s" % (compiled, device), "op": op,
                             "cases": len(cases),
                             "eager first run s": eager_rows["first_seconds"].median(),
                             "eager later run s": eager_rows["seconds"].median(),
                             "compiled first run s": compiled_rows["first_seconds"].median(),
                             "compiled later run s": compiled_rows["seconds"].median(),
                             "compilation s": (compiled_rows["first_seconds"] - compiled_rows["seconds"]).median()})
    return pd.DataFrame(rows)


def compiled_section(d) -> Section:
    from impls import compiled_modes

    modes = compiled_modes()
    counts, differing = compiled_agreement(d.frame, modes, raw_dir=d.raw_dir, manifest=d.manifest,
                                           cases_dir=d.cases_dir)
    times = compile_times(d.frame, modes)
    return Section("compiled", "Compiled", "sections/compiled.html.j2", {
        "modes": sorted(modes.items()),
        "times": table_markup(times, "compile_times", extra_class="compact"),
        "counts": table_markup(counts, "compiled_counts", extra_class="compact"),
        "differing": table_markup(differing, "compiled_differing",
                                  classes=prose_classes(differing, ["eager message", "compiled message"])),
        "n_differing": len(differing),
    }, csv={"compiled_agreement.csv": counts if not counts.empty else None,
            "compile_times.csv": times if not times.empty else None,
            "compiled_differing.csv": differing if not differing.empty else None})
