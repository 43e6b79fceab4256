"""The report's speed section: benchmark tables and plots from the ``bench-*.csv`` rows.

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
* ``memory_table``: the peak memory of ``sampled_softmax_loss`` against the two models that matter,
  ``B*(T+S) + (T+S)*D`` elements (what it should grow with) and ``B*K`` (what it must never reach);
* ``classes_plot``: time against the number of classes for the full and both sampled losses, one
  panel per impl (the default grid's class sweep).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from conformance import report_html as H
from conformance.bench import BUSY_SHARE, paired_ratio, paired_rounds
from impls import CONTENDER_IMPLS, ORACLE_IMPLS

CONFIG = ["device", "op", "mode", "dtype", "batch", "classes", "samples", "dim", "num_true"]
REFERENCE_TARGETS = {"cpu": (CONTENDER_IMPLS["cpu"], 0.7), "gpu": (CONTENDER_IMPLS["gpu"], 1.0)}  # impl, at most
# this x the fastest framework
GPU_COMPARED_WITH = "torch"  # the GPU target is against PyTorch CUDA only (issue 6)
OP_STYLE = {"softmax_with_cross_entropy": ("full softmax", "#29335c", "o"),
            "sampled_softmax_with_cross_entropy": ("sampled, logits-based", "#e4572e", "s"),
            "sampled_softmax_loss": ("sampled, weights-based", "#669bbc", "^")}
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def prepare(bench: pd.DataFrame) -> pd.DataFrame:
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


def _ratio_shade(value) -> str:
    """Green for the fastest, shading towards red as the ratio grows (log2: 1x green, 2x amber, >= 8x red)."""
    if value is None or not np.isfinite(value):
        return "color:#888"
    position = min(max(math.log2(value) / 3.0, 0.0), 1.0)
    return "background-color:hsl(%d,65%%,85%%)" % (120 * (1 - position))


def summary_html(table: pd.DataFrame, uuid: str) -> str:
    """The per-framework summary: geometric-mean ratios, shaded like the speed table."""
    shown = table.rename(columns=MODES, level=1).rename(columns=H.breakable, level=0)
    styler = (shown.style.map(_ratio_shade).format(H.fmt_times, na_rep=H.MISSING)
              .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
              .hide(axis="index", names=True).hide(axis="columns", names=True))
    return styler.to_html(table_uuid=uuid, table_attributes='class="report matrix speedsum"')


def _shape_text(row) -> str:
    text = "B=%d K=%s" % (row["batch"], _count(row["classes"]))
    if row["samples"]:
        text += " S=%d" % row["samples"]
    if row["dim"]:
        text += " D=%d" % row["dim"]
    if row["num_true"] > 1:
        text += " T=%d" % row["num_true"]
    return text


def _count(n) -> str:
    n = int(n)
    exponent = int(round(math.log10(n))) if n > 0 else 0
    return "10^%d" % exponent if n == 10 ** exponent and exponent >= 3 else str(n)


def speed_table(frame: pd.DataFrame, labels: list):
    """(display table, tooltips, per-cell ratio) with one row per configuration and one column per impl."""
    keys = frame[CONFIG].drop_duplicates().reset_index(drop=True)
    display = keys[["device", "op", "mode", "dtype"]].copy()
    display.insert(4, "shape", [_shape_text(row) for _, row in keys.iterrows()])
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
            cells.append("%s %s%s%s" % (H.fmt_seconds(row["median_s"]), H.fmt_times(row["ratio"]),
                                        _interval_text(row), mark))
            tips.loc[i, label] = ("median %s, IQR %s (%.0f%% of the median%s), %s timed calls; %s; peak memory %s (%s)%s"
                                  % (H.fmt_seconds(row["median_s"]), H.fmt_seconds(row["iqr_s"]),
                                     100 * row["iqr_over_median"], ", noisy" if row["noisy"] else "",
                                     row.get("n", "?"), _interval_meaning(row), H.fmt_bytes(row["peak_mem_bytes"]),
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


def speed_html(display: pd.DataFrame, tips: pd.DataFrame, ratios: pd.DataFrame) -> str:
    """The speed table: green for the fastest impl of a row, shading towards red as the ratio grows."""
    def shade(column):
        return [_ratio_shade(v) for v in ratios[column.name]] if column.name in ratios else [""] * len(column)

    styler = display.style.apply(shade, axis=0).hide(axis="index").format(escape="html")
    tips = tips.reindex(columns=display.columns).fillna("")
    styler = styler.set_tooltips(tips.map(lambda t: H._attr(t) if t else ""), as_title_attribute=True)
    return styler.to_html(table_uuid="speed", table_attributes='class="report sortable"')


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
            rows.append({"device": device, "op": row["op"], "dtype": row["dtype"], "shape": _shape_text(row),
                         "reference": reference, "reference time": H.fmt_seconds(float(own["median_s"])),
                         "fastest framework": row["impl"], "framework time": H.fmt_seconds(row["median_s"]),
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
            row["floor part"], H.fmt_seconds(row["floor seconds"]), over)
    return "missed; the floor does not rule it out (%s: %.2f× the budget)" % (row["floor part"], over)


def target_display(target: pd.DataFrame) -> pd.DataFrame:
    """The target table as the report shows it: the floor as a time with its part, and the verdict."""
    shown = target.drop(columns=["floor seconds", "floor part", "floor / budget", "floor / reference"])
    shown["floor"] = [("%s (%s)" % (H.fmt_seconds(row["floor seconds"]), row["floor part"]))
                      if np.isfinite(row["floor seconds"]) else H.MISSING for _, row in target.iterrows()]
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


MEMORY_MODEL_OP = "sampled_softmax_loss"  # the op whose memory the report models (its formula below)


def memory_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Peak memory of the weights-based sampled loss against B*(T+S)+(T+S)*D and B*K elements."""
    data = frame[(frame["op"] == MEMORY_MODEL_OP) & frame["status"].eq("ok")
                 & frame["peak_mem_bytes"].notna()].copy()
    if data.empty:
        return pd.DataFrame()
    data = data.sort_values(["classes", "batch", "label", "mode"])
    size = data["dtype"].map(ITEMSIZE).fillna(4)
    sampled = (data["batch"] * (data["num_true"] + data["samples"])
               + (data["num_true"] * data["batch"] + data["samples"]) * data["dim"]) * size
    dense = data["batch"] * data["classes"] * size
    return pd.DataFrame({
        "impl/device": data["label"], "mode": data["mode"], "dtype": data["dtype"],
        "shape": [_shape_text(row) for _, row in data.iterrows()],
        "peak memory": data["peak_mem_bytes"].map(H.fmt_bytes), "measured by": data["mem_method"],
        "B·(T+S)+(T·B+S)·D": sampled.map(H.fmt_bytes),
        "K·D (a dense weight gradient)": (data["classes"] * data["dim"] * size).where(data["mode"] == "forward_backward")
        .map(H.fmt_bytes),
        "B·K (never)": dense.map(H.fmt_bytes),
        "peak / B·K": data["peak_mem_bytes"] / dense,
    }).reset_index(drop=True)


def classes_plot(frame: pd.DataFrame, labels: list, sweep: tuple):
    """Time against the number of classes, one panel per impl, a line per op (the grid's class sweep)."""
    from matplotlib.figure import Figure

    batch, samples, dim = sweep
    from impls.ops import OPS

    # The sweep's shape of each op: only the sizes its benchmark shape has (impls/ops/) are fixed.
    shape = frame["op"].map(lambda op: OPS[op].bench_shape if op in OPS else ())
    on_sweep = ((frame["samples"] == shape.map(lambda keys: samples if "samples" in keys else 0))
                & (shape.map(lambda keys: "dim" not in keys) | (frame["dim"] == dim)))
    data = frame[(frame["mode"] == "forward_backward") & (frame["dtype"] == "float32") & frame["status"].eq("ok")
                 & (frame["batch"] == batch) & on_sweep]
    labels = [label for label in labels if (data["label"] == label).any()]
    if not labels:
        return None
    columns = min(len(labels), 3)
    rows = int(math.ceil(len(labels) / columns))
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows + 0.5))
    axes = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, label in zip(axes, labels):
        for op, (name, colour, marker) in OP_STYLE.items():
            line = data[(data["label"] == label) & (data["op"] == op)].sort_values("classes")
            if line.empty:
                continue
            median = line["median_s"].to_numpy(float)
            spread = line["iqr_s"].fillna(0).to_numpy(float) / 2
            ax.errorbar(line["classes"], median, yerr=spread, color=colour, marker=marker, markersize=4,
                        linewidth=1.3, capsize=2, label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.grid(which="major", color="#dddddd", linewidth=0.6)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel("median seconds (fwd+bwd)")
    for ax in axes[-columns:]:
        ax.set_xlabel("classes K")
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="upper center", ncol=3, frameon=False, fontsize=9)
    figure.suptitle("B=%d, S=%d, D=%d, float32; bars: IQR" % (batch, samples, dim), fontsize=9, y=0.005,
                    va="bottom")
    figure.tight_layout(rect=(0, 0.03, 1, 0.93))
    return H.png_data_uri(figure)


def memory_html(memory: pd.DataFrame) -> str:
    return H.table_html(memory, "memory", fmt={"peak / B·K": H.fmt_number})


def memory_summary(memory: pd.DataFrame) -> pd.DataFrame:
    """Per impl/device and mode, the measurement closest to the dense B·K logits (the largest peak / B·K)."""
    worst = memory.loc[memory.groupby(["impl/device", "mode"], sort=False)["peak / B·K"].idxmax()]
    return worst[["impl/device", "mode", "dtype", "shape", "peak memory", "B·K (never)", "peak / B·K",
                  "measured by"]].reset_index(drop=True)


def speed_context(frame: pd.DataFrame, labels: list, summary: pd.DataFrame, sweep: tuple) -> dict:
    """What the speed section's template shows (HTML fragments, plot, sentences); ``target`` is the
    reference-against-the-fastest-framework table, for the CSV."""
    import markupsafe

    display, tips, ratios = speed_table(frame, labels)
    target = reference_target(frame)
    noisy = frame[frame["noisy"] & frame["status"].eq("ok")]
    return {
        "speed_summary": markupsafe.Markup(summary_html(summary, "speed_summary")),
        "speed_table": markupsafe.Markup(speed_html(display, tips, ratios)), "n_configs": len(display),
        "speed_target": markupsafe.Markup(H.table_html(target_display(target), "target", fmt={"ratio": H.fmt_times}))
        if not target.empty else "",
        "speed_target_lines": target_summary(target) if not target.empty else [],
        "speed_plot": classes_plot(frame, labels, sweep),
        "speed_noisy": "%d of %d timed rows have an IQR above 10%% of their median (marked ~); %d are marked "
                       "unreliable (?): repeated runs measured ratios that disagree beyond their intervals."
                       % (len(noisy), int(frame["status"].eq("ok").sum()),
                          int((frame["unreliable"] & frame["status"].eq("ok")).sum()))
                       + (" %d rows (!) were timed while other processes took more than %d%% of the CPU: their "
                          "numbers are not the impl's alone." % (int((frame["busy"] & frame["status"].eq("ok")).sum()),
                                                                  round(100 * BUSY_SHARE))
                          if (frame["busy"] & frame["status"].eq("ok")).any() else ""),
        "no_ratio": bool(frame["status"].eq("ok").any() and frame["ratio"].isna().all()),
        "speed_malloc": markupsafe.Markup(malloc_line(frame)),
        "target": target,
    }
