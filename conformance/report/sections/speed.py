"""Speed: benchmark tables and plots from the ``bench-*.csv`` rows.

``conformance bench`` writes one row per (impl, device, op, mode, dtype, shape) with the median and
IQR of the timed calls and the peak memory of one call (``impls/bench.py`` says how each is
measured).  Here they become:

* ``framework_summary``: per impl/device, op and mode, the geometric mean over shapes of the ratio to
  the fastest impl (the first screen and the speed section show it);
* ``speed_table``: one row per configuration, one column per impl/device: median time, the ratio to
  the fastest impl of that configuration on the same device, the IQR as a share of the median
  (``noisy`` above 10%);
* ``reference_target``: the NumPy contender (``numpy-fast``) against the fastest *framework* on every
  forward+backward CPU shape, the issue's 0.7x target, and ``cupy-fast`` against PyTorch CUDA on the
  GPU (1.0x); with the contender's measured floor (``floor_s``, ``floor_part``: the largest part of
  the work any NumPy implementation must do, timed in the same run, see ``impls/numpy_floors.py``),
  which ``floor_verdict`` turns into the reason a missed target is or is not out of reach;
* ``plots.classes_plot``: time against the number of classes, one panel per impl, a line per op (the
  default grid's class sweep).

The peak memory has its own section (:mod:`.memory`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from conformance.bench import BUSY_SHARE, paired_ratio, paired_rounds
from conformance.report.fmt import MISSING, fmt_bytes, fmt_seconds, fmt_times, shape_text
from conformance.report.html import markup, speed_html, speed_summary_html, table_html
from conformance.report.plots import classes_plot
from conformance.report.section import Section
from conformance.report.sections.memory import sampled_weights_ops
from impls import CONTENDER_IMPLS, ORACLE_IMPLS


CONFIG = ["device", "op", "mode", "dtype", "batch", "classes", "samples", "dim", "num_true"]
REFERENCE_TARGETS = {"cpu": (CONTENDER_IMPLS["cpu"], 0.7), "gpu": (CONTENDER_IMPLS["gpu"], 1.0)}  # impl, at most
# this x the fastest framework
GPU_COMPARED_WITH = "torch"  # the GPU target is against PyTorch CUDA only (issue 6)
def prepare_bench(bench: pd.DataFrame) -> pd.DataFrame:
    """Typed rows with ``label`` (impl/device) and ``ratio``: the CSV's ``ratio_to_fastest``, the median
    time over the fastest impl's on the same configuration, computed once by ``conformance/bench.py``."""
    frame = bench.reset_index(drop=True)
    for column in ("batch", "classes", "samples", "dim", "num_true"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype(int)
    for column in ("median_s", "iqr_s", "iqr_over_median", "peak_mem_bytes", "ratio_to_fastest", "ratio_low",
                   "ratio_high", "ratio_rounds", "floor_s"):
        frame[column] = pd.to_numeric(frame.get(column), errors="coerce")
    frame["floor_part"] = frame.get("floor_part", pd.Series("", index=frame.index)).fillna("").astype(str)
    frame["noisy"] = frame.get("noisy").astype(str).str.lower().eq("true")
    # Rows of repeated runs whose ratios disagreed beyond their intervals (conformance bench --repeat).
    frame["unreliable"] = frame.get("reliable", pd.Series("", index=frame.index)).astype(str).str.lower().eq("false")
    # Timed while other processes took a share of the CPU (conformance.bench.CpuWatch).
    frame["other_cpu_share"] = pd.to_numeric(frame.get("other_cpu_share"), errors="coerce")
    frame["busy"] = frame["other_cpu_share"].gt(BUSY_SHARE)
    frame["label"] = frame["impl"] + "/" + frame["device"]
    frame["ratio"] = frame["ratio_to_fastest"].where(frame["status"].eq("ok"))
    # The workers' allocator settings (conformance.bench.MALLOC_SETTINGS); "" in CSVs written before the column.
    frame["malloc"] = frame.get("malloc", pd.Series("", index=frame.index)).fillna("").astype(str)
    return frame


def malloc_line(frame: pd.DataFrame) -> str:
    """What the report says about the workers' allocator settings (empty for CSVs without the column)."""
    settings = sorted(set(frame.loc[frame["status"].eq("ok"), "malloc"]) - {""})
    if not settings:
        return ""
    if settings == ["fixed"]:
        return ("Every worker ran with glibc's malloc thresholds fixed, so that a freed buffer is kept for the next "
                "call whatever the process did before (the frameworks' caching allocators do that themselves; "
                "NumPy relies on malloc) and, in paired rounds, handed its free memory back when its turn ended, "
                "so that the workers stopped between turns hold only their live data (each turn warms up before "
                "it is timed). "
                "<code>conformance bench --malloc default</code> times with glibc's own "
                "dynamic thresholds, under which NumPy pays page faults that depend on the process's history.")
    if settings == ["default"]:
        return ("Every worker ran with glibc's own dynamic malloc thresholds (<code>--malloc default</code>): NumPy "
                "pays page faults that depend on what the process allocated before.")
    return ("Rows were timed under different allocator settings (%s, the <code>malloc</code> column): compare "
            "ratios only between rows of one setting." % ", ".join(settings))


MODES = {"forward": "forward", "forward_backward": "fwd+bwd"}


def framework_summary(frame: pd.DataFrame, labels: list, ops: list) -> pd.DataFrame:
    """Rows impl/device, columns (op, mode): the geometric mean over shapes and dtypes of the ratio to
    the fastest impl of each shape (1.00× is fastest everywhere); missing where the impl timed none."""
    ok = frame[frame["ratio"] > 0]
    ops = [op for op in ops if op in set(frame["op"])] + sorted(set(frame["op"]) - set(ops))
    columns = pd.MultiIndex.from_tuples([(op, mode) for op in ops for mode in MODES if
                                         ((frame["op"] == op) & (frame["mode"] == mode)).any()], names=["op", "mode"])
    means = np.exp(np.log(ok["ratio"]).groupby([ok["label"], ok["op"], ok["mode"]]).mean())
    table = pd.DataFrame(np.nan, index=pd.Index(labels, name="impl/device"), columns=columns)
    for (label, op, mode), value in means.items():
        if label in table.index and (op, mode) in table.columns:
            table.loc[label, (op, mode)] = value
    return table


def speed_table(frame: pd.DataFrame, labels: list):
    """(display table, tooltips, per-cell ratio) with one row per configuration and one column per impl."""
    keys = frame[CONFIG].drop_duplicates().reset_index(drop=True)
    display = keys[["device", "op", "mode", "dtype"]].copy()
    display.insert(4, "shape", [shape_text(row) for _, row in keys.iterrows()])
    ratios = pd.DataFrame(index=display.index, columns=labels, dtype=float)
    tips = pd.DataFrame("", index=display.index, columns=list(display.columns) + labels)
    indexed = frame.set_index(CONFIG)
    for label in labels:
        cells = []
        rows = indexed[indexed["label"] == label]
        for i, key in enumerate(keys.itertuples(index=False)):
            try:
                row = rows.loc[tuple(key)]
            except KeyError:
                cells.append("not timed")
                continue
            if isinstance(row, pd.DataFrame):
                row = row.iloc[-1]
            if row["status"] != "ok":
                cells.append(row["status"])
                tips.loc[i, label] = str(row.get("message", ""))[:300]
                continue
            ratios.loc[i, label] = row["ratio"]
            mark = (" ~" if row["noisy"] else "") + (" ?" if row["unreliable"] else "") + (" !" if row["busy"] else "")
            cells.append("%s %s%s%s" % (fmt_seconds(row["median_s"]), fmt_times(row["ratio"]),
                                        _interval_text(row), mark))
            tips.loc[i, label] = ("median %s, IQR %s (%.0f%% of the median%s), %s timed calls; %s; peak memory %s (%s)%s"
                                  % (fmt_seconds(row["median_s"]), fmt_seconds(row["iqr_s"]),
                                     100 * row["iqr_over_median"], ", noisy" if row["noisy"] else "",
                                     row.get("n", "?"), _interval_meaning(row), fmt_bytes(row["peak_mem_bytes"]),
                                     row.get("mem_method", ""),
                                     ("; UNRELIABLE: " + str(row.get("reliability_note", ""))) if row["unreliable"] else "")
                                  + ("; BUSY MACHINE: other processes took %.0f%% of the CPU while it was timed"
                                     % (100 * row["other_cpu_share"]) if row["busy"] else ""))
        display[label] = cells
    return display, tips, ratios


def _interval_text(row) -> str:
    """`` (1.71–1.93)``: the ratio's interval, or nothing where the row has none."""
    if pd.isna(row.get("ratio_low")) or pd.isna(row.get("ratio_high")):
        return ""
    return " (%.2f–%.2f)" % (row["ratio_low"], row["ratio_high"])


def _interval_meaning(row) -> str:
    rounds = row.get("ratio_rounds")
    if pd.isna(row.get("ratio_low")):
        return "no interval for the ratio"
    if not pd.isna(rounds) and rounds > 1:
        return ("ratio interval: a 90%%+ confidence interval of its median over %d paired rounds"
                % int(rounds))
    return "ratio interval: the interquartile times of both impls (timed apart, not paired)"


def reference_target(frame: pd.DataFrame) -> pd.DataFrame:
    """Per forward+backward shape: the reference's time over the fastest framework's, and the target."""
    rows = []
    for device, (reference, limit) in REFERENCE_TARGETS.items():
        data = frame[(frame["device"] == device) & (frame["mode"] == "forward_backward") & frame["status"].eq("ok")]
        if device == "gpu":
            frameworks = data[data["impl"] == GPU_COMPARED_WITH]
        else:
            frameworks = data[~data["impl"].isin(ORACLE_IMPLS + tuple(CONTENDER_IMPLS.values()))]
        mine = data[data["impl"] == reference].set_index(CONFIG)
        mine = mine[~mine.index.duplicated(keep="last")]
        best = frameworks.loc[frameworks.groupby(CONFIG)["median_s"].idxmin()] if not frameworks.empty else frameworks
        for _, row in best.iterrows():
            key = tuple(row[c] for c in CONFIG)
            if key not in mine.index:
                continue
            own = mine.loc[key]
            ratio = _contender_ratio(data, key, reference, frameworks)
            budget = limit * float(row["median_s"])
            floor = float(own["floor_s"])  # NaN where the contender offers no floor (or an older CSV)
            rows.append({"device": device, "op": row["op"], "dtype": row["dtype"], "shape": shape_text(row),
                         "reference": reference, "reference time": fmt_seconds(float(own["median_s"])),
                         "fastest framework": row["impl"], "framework time": fmt_seconds(row["median_s"]),
                         "ratio": ratio, "target": "≤ %.1f×" % limit, "met": "yes" if ratio <= limit else "NO",
                         "floor seconds": floor, "floor part": own["floor_part"] if np.isfinite(floor) else "",
                         "floor / budget": floor / budget, "floor / reference": floor / float(own["median_s"])})
    return pd.DataFrame(rows, columns=TARGET_COLUMNS)


TARGET_COLUMNS = ["device", "op", "dtype", "shape", "reference", "reference time", "fastest framework",
                  "framework time", "ratio", "target", "met", "floor seconds", "floor part", "floor / budget",
                  "floor / reference"]


def floor_verdict(row) -> str:
    """Why a target row is missed, from its measured floor: out of reach when the floor alone (one
    part of the work any NumPy implementation must do) exceeds the budget, else not ruled out."""
    if row["met"] == "yes":
        return ""
    over = row["floor / budget"]
    if over is None or not np.isfinite(over):
        return "missed; no floor measured"
    if row["floor / reference"] > 1:  # a lower bound above what it bounds: the machine changed speed
        return "missed; the floor (%s) measured %.2f× the contender's own time: not a lower bound in this run" % (
            row["floor part"], row["floor / reference"])
    if over > 1:
        return "out of reach in NumPy: %s alone takes %s = %.2f× the budget" % (
            row["floor part"], fmt_seconds(row["floor seconds"]), over)
    return "missed; the floor does not rule it out (%s: %.2f× the budget)" % (row["floor part"], over)


def target_display(target: pd.DataFrame) -> pd.DataFrame:
    """The target table as the report shows it: the floor as a time with its part, and the verdict."""
    shown = target.drop(columns=["floor seconds", "floor part", "floor / budget", "floor / reference"])
    shown["floor"] = [("%s (%s)" % (fmt_seconds(row["floor seconds"]), row["floor part"]))
                      if np.isfinite(row["floor seconds"]) else MISSING for _, row in target.iterrows()]
    shown["why missed"] = [floor_verdict(row) for _, row in target.iterrows()]
    return shown


def out_of_reach(group: pd.DataFrame) -> pd.Series:
    """The rows of a target table whose target is missed and whose floor alone exceeds the budget
    (and not the contender's own time, which a lower bound cannot)."""
    return group["met"].ne("yes") & (group["floor / budget"] > 1) & (group["floor / reference"] <= 1)


def _contender_ratio(data, key, contender, frameworks) -> float:
    """The contender's time over the fastest framework's on one configuration: paired round by round
    where every row has the same run's rounds (``conformance.bench.paired_ratio``), else medians."""
    rows = data[[tuple(r) == key for r in data[CONFIG].itertuples(index=False)]]
    mine = rows[rows["impl"] == contender].iloc[[0]]
    others = rows[rows["impl"].isin(frameworks["impl"].unique())]
    medians = paired_rounds(pd.concat([mine, others]).to_dict("records"))
    if medians is not None:
        return paired_ratio(medians[0], medians[1:])[0]
    return float(mine["median_s"].iloc[0]) / float(others["median_s"].min())


def target_summary(target: pd.DataFrame) -> list:
    """One sentence per device: how many shapes meet the target, the median and the worst ratio, by dtype."""
    lines = []
    for device, group in target.groupby("device"):
        reference, limit = REFERENCE_TARGETS[device]
        by_dtype = "; ".join("%s: %d of %d, median %.2f×" % (dtype, int((part["ratio"] <= limit).sum()), len(part),
                                                             part["ratio"].median())
                             for dtype, part in group.groupby("dtype"))
        missed = int((group["ratio"] > limit).sum())
        floors = ("; of the %d missed, %d out of reach in NumPy (a measured floor alone exceeds the budget)"
                  % (missed, int(out_of_reach(group).sum()))) if missed and group["floor seconds"].notna().any() else ""
        lines.append("%s/%s, forward+backward: %d of %d shapes at or under %.1f× the fastest %s (median ratio "
                     "%.2f×, worst %.2f× on %s %s %s; %s)%s."
                     % (reference, device, int((group["ratio"] <= limit).sum()), len(group), limit,
                        "framework" if device == "cpu" else GPU_COMPARED_WITH, group["ratio"].median(),
                        group["ratio"].max(), *group.loc[group["ratio"].idxmax(), ["op", "dtype", "shape"]],
                        by_dtype, floors))
    return lines


def speed_context(frame: pd.DataFrame, labels: list, summary: pd.DataFrame, sweep: tuple) -> dict:
    """What the speed section's template shows (HTML fragments, plot, sentences); ``target`` is the
    reference-against-the-fastest-framework table, for the CSV."""
    display, tips, ratios = speed_table(frame, labels)
    target = reference_target(frame)
    noisy = frame[frame["noisy"] & frame["status"].eq("ok")]
    return {
        "speed_summary": markup(speed_summary_html(summary, MODES, "speed_summary")),
        "speed_table": markup(speed_html(display, tips, ratios)), "n_configs": len(display),
        "speed_target": markup(table_html(target_display(target), "target", fmt={"ratio": fmt_times}))
        if not target.empty else "",
        "speed_target_lines": target_summary(target) if not target.empty else [],
        "speed_plot": classes_plot(frame, labels, sweep), "weights_ops": sampled_weights_ops(),
        "speed_noisy": "%d of %d timed rows have an IQR above 10%% of their median (marked ~); %d are marked "
                       "unreliable (?): repeated runs measured ratios that disagree beyond their intervals."
                       % (len(noisy), int(frame["status"].eq("ok").sum()),
                          int((frame["unreliable"] & frame["status"].eq("ok")).sum()))
                       + (" %d rows (!) were timed while other processes took more than %d%% of the CPU: their "
                          "numbers are not the impl's alone." % (int((frame["busy"] & frame["status"].eq("ok")).sum()),
                                                                  round(100 * BUSY_SHARE))
                          if (frame["busy"] & frame["status"].eq("ok")).any() else ""),
        "no_ratio": bool(frame["status"].eq("ok").any() and frame["ratio"].isna().all()),
        "speed_malloc": markup(malloc_line(frame)),
        "target": target,
    }


def speed_section(d) -> Section:
    from conformance import bench as bench_grid

    if d.bench is None:
        return Section("speed", "Speed", "sections/speed.html.j2", {"bench": False})
    from conformance.report.sections.first import glance_order, impl_role

    # the frameworks first, the suite's own contender last and marked (the CSV keeps the plain labels)
    shown = d.speed_summary.reindex(glance_order(d.speed_summary.index))
    shown.index = [label + (" · suite's own" if impl_role(label.rpartition("/")[0]) else "") for label in shown.index]
    context = speed_context(d.bench, d.bench_labels, shown,
                            (bench_grid.SWEEP_BATCH, bench_grid.SWEEP_SAMPLES, bench_grid.SWEEP_DIM))
    context.update(bench=True, bench_files=d.bench_files, machine=d.bench_machine)
    return Section("speed", "Speed", "sections/speed.html.j2", context,
                   csv={"speed.csv": d.bench.drop(columns=["label"]), "speed_target.csv": context.pop("target"),
                        "speed_summary.csv": d.speed_summary.reset_index()})
