"""The report's plots, drawn with matplotlib and inlined in the page as PNG data URIs."""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import pandas as pd

from conformance.outcomes import STATUS_COLOURS
from conformance.report.fmt import DTYPE_COLOURS

PLOT_FLOOR = 1e-6
# (colour, marker) of each op's line in the class-sweep plot, by its place in the registry.
OP_LINE_STYLES = (("#29335c", "o"), ("#e4572e", "s"), ("#669bbc", "^"), ("#3a9a35", "D"), ("#8a4fc4", "v"))


def png_data_uri(figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plain_axes(ax):
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)


def ratio_plot(frame: pd.DataFrame, labels: list, ops: list):
    """Strip plot of tol_ratio per impl/device (one panel per op), log x, coloured by dtype."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    data = frame.dropna(subset=["tol_ratio"])
    if data.empty:
        return None
    finite = data["tol_ratio"][np.isfinite(data["tol_ratio"]) & (data["tol_ratio"] > 0)]
    # below PLOT_FLOOR an error is rounding noise far under the tolerance: drawn at the left edge
    low = max(10.0 ** (math.floor(math.log10(finite.min())) - 1), PLOT_FLOOR) if not finite.empty else 1e-4
    high = 10.0 ** (max(1, math.ceil(math.log10(finite.max()))) + 1) if not finite.empty else 100.0
    rng = np.random.default_rng(0)
    height = 1.6 + 0.42 * len(labels)
    figure = Figure(figsize=(4.6 * len(ops), height))
    axes = figure.subplots(1, len(ops), sharey=True, squeeze=False)[0]
    for ax, op in zip(axes, ops):
        for y, label in enumerate(labels):
            rows = data[(data["label"] == label) & (data["op"] == op)]
            for dtype, group in rows.groupby("dtype"):
                values = group["tol_ratio"].to_numpy(dtype=float)
                jitter = y + rng.uniform(-0.28, 0.28, size=len(values))
                colour = DTYPE_COLOURS.get(dtype, "#555555")
                regular = np.isfinite(values) & (values > low)
                ax.scatter(values[regular], jitter[regular], s=12, color=colour, alpha=0.75, linewidths=0)
                zero = values <= low
                ax.scatter(np.full(zero.sum(), low), jitter[zero], s=18, color=colour, marker="x", linewidths=1)
                infinite = ~np.isfinite(values)
                ax.scatter(np.full(infinite.sum(), high), jitter[infinite], s=30, color=colour, marker=">")
        ax.axvline(1.0, color="#c0392b", linestyle="--", linewidth=1)
        ax.axvspan(1.0, high * 1.5, color="#c0392b", alpha=0.05)
        ax.set_xscale("log")
        ax.set_xlim(low / 1.8, high * 1.8)
        ax.set_title(op, fontsize=10)
        ax.set_xlabel("worst |error| / tolerance")
        ax.grid(axis="x", which="major", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        _plain_axes(ax)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].set_ylim(len(labels) - 0.5, -0.5)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=d) for d, c in DTYPE_COLOURS.items()
               if d in set(data["dtype"])]
    handles += [Line2D([], [], marker="x", linestyle="", color="#555555", label="0 or < %g" % low),
                Line2D([], [], marker=">", linestyle="", color="#555555", label="non-finite / shape"),
                Line2D([], [], linestyle="--", color="#c0392b", label="tolerance")]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
                  bbox_to_anchor=(0.5, -0.02 - 0.25 / height))
    figure.tight_layout()
    return png_data_uri(figure)


def status_plot(frame: pd.DataFrame, labels: list, statuses):
    """Stacked bars: the cases of each status per impl/device, in the status colours."""
    from matplotlib.figure import Figure

    counts = pd.crosstab(frame["label"], frame["status"]).reindex(index=labels, fill_value=0)
    figure = Figure(figsize=(11, 0.9 + 0.38 * len(labels)))
    ax = figure.subplots()
    left = np.zeros(len(labels))
    for status in statuses:
        if status not in counts:
            continue
        values = counts[status].to_numpy()
        ax.barh(range(len(labels)), values, left=left, color=STATUS_COLOURS[status], label=status, height=0.7)
        for y, (x0, v) in enumerate(zip(left, values)):
            if v and v >= max(3, counts.sum(axis=1).max() * 0.03):
                ax.text(x0 + v / 2, y, str(v), ha="center", va="center", fontsize=8, color="white")
        left += values
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("cases")
    _plain_axes(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    figure.tight_layout()
    return png_data_uri(figure)


def line_ops(ops) -> list:
    """The ops the class-sweep plot draws a line for: one per benchmark shape (``OpInfo.bench_shape``),
    the first of the registry that has it.  Ops with the same sizes do the same work per class, so
    their lines lie on one another (the full-softmax ops: one reads as the other's)."""
    seen, shown = set(), []
    for name, op in ops.items():
        if op.bench_shape not in seen:
            seen.add(op.bench_shape)
            shown.append(name)
    return shown


def classes_plot(frame: pd.DataFrame, labels: list, sweep: tuple):
    """Time against the number of classes, one panel per impl, a line per benchmark shape of the
    registry's ops (:func:`line_ops`, labelled ``OpInfo.label``) on the grid's class sweep."""
    from matplotlib.figure import Figure

    from impls.ops import OPS

    batch, samples, dim = sweep
    # The sweep's shape of each op: only the sizes its benchmark shape has (impls/ops/) are fixed.
    shape = frame["op"].map(lambda op: OPS[op].bench_shape if op in OPS else ())
    on_sweep = ((frame["samples"] == shape.map(lambda keys: samples if "samples" in keys else 0))
                & (shape.map(lambda keys: "dim" not in keys) | (frame["dim"] == dim)))
    data = frame[(frame["mode"] == "forward_backward") & (frame["dtype"] == "float32") & frame["status"].eq("ok")
                 & (frame["batch"] == batch) & on_sweep]
    labels = [label for label in labels if (data["label"] == label).any()]
    if not labels:
        return None
    styles = [(name, OPS[name].label, colour, marker)
              for name, (colour, marker) in zip(line_ops(OPS), OP_LINE_STYLES)]
    columns = min(len(labels), 3)
    rows = int(math.ceil(len(labels) / columns))
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows + 0.5))
    axes = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, label in zip(axes, labels):
        for op, name, colour, marker in styles:
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
        _plain_axes(ax)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel("median seconds (fwd+bwd)")
    for ax in axes[-columns:]:
        ax.set_xlabel("classes K")
    drawn = {}  # label -> handle, from every panel (an impl may lack an op)
    for ax in axes[:len(labels)]:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            drawn.setdefault(name, handle)
    names = [name for _, name, _, _ in styles if name in drawn]
    figure.legend([drawn[name] for name in names], names, loc="upper center", ncol=max(1, min(len(names), 4)),
                  frameon=False, fontsize=9)
    figure.suptitle("B=%d, S=%d, D=%d, float32; bars: IQR" % (batch, samples, dim), fontsize=9, y=0.005,
                    va="bottom")
    figure.tight_layout(rect=(0, 0.03, 1, 0.93))
    return png_data_uri(figure)
