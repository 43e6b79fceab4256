"""Environment: each worker's versions and corpus, and the host the report was made on."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
import numpy as np
import pandas as pd

from conformance.report.html import markup, table_html
from conformance.report.section import Section


def environment_table(environments: pd.DataFrame, frame: pd.DataFrame, manifest: dict, labels) -> pd.DataFrame:
    corpus_sha = (manifest or {}).get("corpus_sha256", "")
    rows = []
    envs = {}
    if not environments.empty:
        for _, env in environments.iterrows():
            envs["%s/%s" % (env.get("impl"), env.get("device"))] = env.dropna().to_dict()
    for label in labels:
        env = envs.get(label, {})
        impl, _, device = label.rpartition("/")
        row_results = frame[frame["label"] == label]
        version = env.get("version") or (str(row_results["impl_version"].dropna().iloc[0])
                                         if "impl_version" in row_results and row_results["impl_version"].notna().any() else "")
        sha = str(env.get("corpus_sha256", ""))
        row = {"impl/device": label, "impl": impl, "device": device, "version": version,
               "python": env.get("python", ""), "numpy": env.get("numpy", ""),
               # which float64 exp/log loops the worker's NumPy used (impls/numpy_dispatch.py)
               "numpy AVX-512 loops": (", ".join(env["numpy_avx512"]) or "off") if "numpy_avx512" in env else "",
               "corpus sha256": sha[:16],
               "same corpus": ("yes" if sha == corpus_sha else "NO") if sha and corpus_sha else "unknown",
               "finished": env.get("finished", "(no environment file)" if not env else "")}
        for key, value in env.items():
            if key not in row and key not in ("ops", "event", "pid", "impl", "device", "corpus_sha256") \
                    and not isinstance(value, (dict, list)):
                row[key] = value
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def merged_runs(raw_dir, environments: pd.DataFrame) -> list:
    """The runs whose files the report reads, each ``{"what", "when", "commit", "machine", "command"}``.

    From the folder's ``run.json``: an assembled folder lists its ``sources``, a run folder is one
    run.  Without one (several run folders merged into a scratch folder), the workers' environment
    files give each impl's finish time.
    """
    import json

    path = Path(raw_dir) / "run.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    if isinstance(info, dict):
        host = str(info.get("host", "") or "")
        sources = info.get("sources") or [info]
        runs = []
        for source in sources:
            started, finished = str(source.get("started", "") or ""), str(source.get("finished", "") or "")
            when = "%s – %s" % (started, finished) if started and finished else (finished or started)
            runs.append({"what": str(source.get("files", "") or "every file of the folder"),
                         "when": when, "commit": str(source.get("committed_in") or source.get("commit") or ""),
                         "machine": str(source.get("host", "") or host),
                         "command": str(source.get("command", "") or "")})
        return runs
    if environments.empty or "finished" not in environments:
        return []
    runs = []
    for finished, group in environments.fillna("").groupby("finished", sort=True):
        labels = ", ".join("%s/%s" % (i, dev) for i, dev in zip(group["impl"], group["device"]))
        runs.append({"what": labels, "when": str(finished), "commit": "", "machine": "", "command": ""})
    return runs


def bench_machine(runs: list) -> str:
    """The machine the benchmark ran on, as the run says it (a benchmark's source first)."""
    timed = [r for r in runs if "bench" in r["what"] or "bench" in r["command"]]
    for run in timed + runs:
        if run["machine"]:
            return run["machine"]
    return ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_table(raw_dir, cases_dir, manifest) -> pd.DataFrame:
    import matplotlib

    items = [
        ("report generated", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("CPU (report host)", cpu_model()),
        ("logical CPUs", str(os.cpu_count())),
        ("platform", platform.platform()),
        ("python / pandas / numpy / matplotlib", "%s / %s / %s / %s" % (platform.python_version(), pd.__version__,
                                                                         np.__version__, matplotlib.__version__)),
        ("raw results", str(raw_dir)),
        ("case corpus", "%s (%d cases, sha256 %s)" % (cases_dir, len((manifest or {}).get("cases", [])),
                                                      (manifest or {}).get("corpus_sha256", "unknown")[:16])),
    ]
    return pd.DataFrame(items, columns=["item", "value"])


def environment_section(d) -> Section:
    return Section("environment", "Environment", "sections/environment.html.j2", {
        "environment": markup(table_html(d.environment, "environment")),
        "host": markup(table_html(host_table(d.raw_dir, d.cases_dir, d.manifest), "host", sortable=False)),
        "runs": markup(table_html(pd.DataFrame(d.runs, columns=["what", "when", "commit", "machine", "command"]),
                                  "runs", sortable=False)) if d.runs else "",
    }, csv={"environment.csv": d.environment})
