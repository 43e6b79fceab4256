"""Memory: the peak memory of the ops that draw sampled rows of a weights matrix, against what they
should grow with and what they must never reach.

Such an op (a ``samples`` and a ``dim`` among its benchmark sizes, ``OpInfo.bench_shape``) needs
``B*(T+S) + (T*B+S)*D`` elements (the sampled logits, the gathered weight rows) and must never
materialise the ``B*K`` dense logits.
"""
from __future__ import annotations

import pandas as pd

from conformance.report.fmt import fmt_bytes, fmt_number, shape_text
from conformance.report.html import markup, table_html
from conformance.report.section import Section


ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def sampled_weights_ops() -> list:
    """The registry's ops that sample rows of a [K, D] weights matrix (the memory model's ops)."""
    from impls.ops import OPS

    return [name for name, op in OPS.items() if {"samples", "dim"} <= set(op.bench_shape)]


def memory_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Peak memory of the weights-based sampled ops against B*(T+S)+(T·B+S)*D and B*K elements."""
    data = frame[frame["op"].isin(sampled_weights_ops()) & frame["status"].eq("ok")
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
        "shape": [shape_text(row) for _, row in data.iterrows()],
        "peak memory": data["peak_mem_bytes"].map(fmt_bytes), "measured by": data["mem_method"],
        "B·(T+S)+(T·B+S)·D": sampled.map(fmt_bytes),
        "K·D (a dense weight gradient)": (data["classes"] * data["dim"] * size).where(data["mode"] == "forward_backward")
        .map(fmt_bytes),
        "B·K (never)": dense.map(fmt_bytes),
        "peak / B·K": data["peak_mem_bytes"] / dense,
    }).reset_index(drop=True)


def memory_summary(memory: pd.DataFrame) -> pd.DataFrame:
    """Per impl/device and mode, the measurement closest to the dense B·K logits (the largest peak / B·K)."""
    worst = memory.loc[memory.groupby(["impl/device", "mode"], sort=False)["peak / B·K"].idxmax()]
    return worst[["impl/device", "mode", "dtype", "shape", "peak memory", "B·K (never)", "peak / B·K",
                  "measured by"]].reset_index(drop=True)


def memory_section(d) -> Section:
    memory = memory_table(d.bench) if d.bench is not None else pd.DataFrame()
    return Section("memory", "Memory", "sections/memory.html.j2", {
        "memory": markup(table_html(memory, "memory", fmt={"peak / B·K": fmt_number})) if not memory.empty else "",
        "worst": markup(table_html(memory_summary(memory), "memory_worst", extra_class="compact"))
        if not memory.empty else "", "n_rows": len(memory), "ops": sampled_weights_ops(),
    }, csv={"speed_memory.csv": memory if not memory.empty else None})
