"""The HTML comparison report: tables built with pandas, rendered with Styler, plots with matplotlib.

Everything lands in one self-contained ``index.html`` (plots as base64 PNG, one small inline
script for sorting and filtering, no network access).  The functions here turn the merged result
rows (``report.load_results``), the worker environments and the case manifest into DataFrames;
``report.write_report`` writes those as CSV and calls :func:`render` for the page.

The pairwise agreement matrix (:func:`agreement`) decides, for two impls and one case, whether
their outputs lie within one tolerance of each other.  The tolerance is the case's own
(``rtol * (|golden| + scale)`` element by element, see ``compare.py``), the same for every impl.
When both impls kept their outputs (``run --keep-outputs`` writes ``outputs/<impl>-<device>/``
under the raw folder) the difference is measured exactly.  Otherwise it is bounded from the stored
per-output error ratios: with ``r_A`` and ``r_B`` the worst |error| / allowed of each impl,

    |r_A - r_B|  <=  max |A - B| / allowed  <=  r_A + r_B        (per output, then max over outputs)

so a pair *agrees* when ``r_A + r_B <= 1``, *disagrees* when ``|r_A - r_B| > 1`` (this includes one
non-finite output against a finite one), and is *undetermined* otherwise.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import platform
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

STATUS_STYLE = {  # status: (cell background, cell text, plot colour, legend text)
    "pass": ("#d7f0d4", "#1d5c1a", "#3a9a35", "within the tolerance of the float64 golden outputs"),
    "fail": ("#f9c6c0", "#8a1408", "#d6402f", "outside the tolerance, a wrong NaN/inf, a wrong shape or a missing output"),
    "error": ("#fddcaa", "#7a4300", "#f0961c", "the impl raised an exception"),
    "crash": ("#dcc4f0", "#4b1a78", "#8a4fc4", "the worker process died (signal or exit)"),
    "timeout": ("#f3e79b", "#5e5200", "#c9b21c", "no answer within the per-case time limit"),
    "xfail": ("#e9e4d8", "#5a5040", "#a89a7a", "a failure covered by a known deviation (known_deviations.toml)"),
    "xpass": ("#c9e3f7", "#134a73", "#3b8fd0", "covered by a known deviation, yet it passed: the entry may be stale"),
    "unsupported": ("#f2f2f2", "#8a8a8a", "#bbbbbb", "the impl declares it cannot express the case"),
}
SEVERITY = ("crash", "timeout", "error", "fail", "xfail", "xpass")
DIFFERENCE_STATUSES = ("fail", "error", "xfail", "crash", "timeout")
PLOT_FLOOR = 1e-6
DTYPE_COLOURS = {"float16": "#e4572e", "bfloat16": "#f3a712", "float32": "#29335c", "float64": "#669bbc"}


# --------------------------------------------------------------------------------------------
# small helpers
def label_order(labels, impl_order=()) -> list:
    """``impl/device`` labels in the adapters' order (reference first), cpu before gpu."""
    rank = {name: i for i, name in enumerate(impl_order)}

    def key(label):
        impl, _, device = label.rpartition("/")
        return (rank.get(impl, len(rank)), impl, device != "cpu", device)

    return sorted(set(labels), key=key)


def fmt_ratio(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    value = float(value)
    if math.isinf(value):
        return "∞"
    if value == 0:
        return "0"
    return "%.3g" % value


def fmt_number(value) -> str:
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        return fmt_ratio(value) if value and (abs(value) < 1e-3 or abs(value) >= 1e5) else "%.4g" % value
    return str(value)


def _attr(text) -> str:
    """Styler puts tooltips in ``title="..."`` verbatim: escape them ourselves."""
    return html.escape(str(text), quote=True)


def _words(value) -> list:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return str(value).split()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def png_data_uri(figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------------------------
# tables
def prepare(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (case, impl, device) with a ``label`` column and numeric ratios."""
    frame = results.copy()
    for column in ("message", "deviation", "tags", "features", "errors", "tolerance", "mode"):
        if column not in frame:
            frame[column] = ""
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "").astype(str)
    frame["tol_ratio"] = pd.to_numeric(frame.get("tol_ratio"), errors="coerce")
    frame["label"] = frame["impl"].astype(str) + "/" + frame["device"].astype(str)
    return frame.drop_duplicates(["case", "impl", "device"], keep="last").reset_index(drop=True)


def case_info(frame: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """The parameters of every case that has a result, in manifest order."""
    entries = {e["id"]: e for e in (manifest or {}).get("cases", [])}
    order = {case_id: i for i, case_id in enumerate(entries)}
    first = frame.drop_duplicates("case").set_index("case")
    rows = []
    for case_id in sorted(first.index, key=lambda c: (order.get(c, len(order)), c)):
        entry = entries.get(case_id)
        row = first.loc[case_id]
        rows.append({
            "case": case_id,
            "op": entry["op"] if entry else row["op"],
            "dtype": entry["dtype"] if entry else row["dtype"],
            "description": entry.get("description", "") if entry else "",
            "tags": " ".join(entry.get("tags", ())) if entry else row["tags"],
            "features": " ".join(entry.get("features", ())) if entry else row["features"],
        })
    return pd.DataFrame(rows, columns=["case", "op", "dtype", "description", "tags", "features"])


def case_table(frame: pd.DataFrame, info: pd.DataFrame, labels: list):
    """Wide table: case parameters, then (status, ratio) per impl/device; plus the status tooltips."""
    ids = info["case"]
    table = info.rename(columns={"case": "id"}).reset_index(drop=True)
    table.columns = pd.MultiIndex.from_product([["case"], table.columns])
    status = frame.pivot(index="case", columns="label", values="status")
    ratio = frame.pivot(index="case", columns="label", values="tol_ratio")
    text = (frame["status"] + ": " + frame["message"].str.slice(0, 600)
            + np.where(frame["deviation"] != "", "\nknown deviation: " + frame["deviation"], "")
            + np.where(frame["tolerance"] != "", "\ntolerance " + frame["tolerance"], ""))
    tip = frame.assign(tip=text).pivot(index="case", columns="label", values="tip")
    tips = pd.DataFrame(index=table.index)
    for label in labels:
        present = label in status.columns
        table[(label, "status")] = status[label].reindex(ids).fillna("").to_numpy() if present else ""
        table[(label, "ratio")] = ratio[label].reindex(ids).to_numpy(dtype=float) if present else np.nan
        tips[(label, "status")] = tip[label].reindex(ids).fillna("").to_numpy() if present else ""
    tips.columns = pd.MultiIndex.from_tuples(tips.columns) if len(tips.columns) else tips.columns
    return table, tips


def overview(frame: pd.DataFrame, labels: list, statuses) -> pd.DataFrame:
    counts = pd.crosstab(frame["label"], frame["status"]).reindex(index=labels, fill_value=0)
    counts = counts.reindex(columns=[s for s in statuses if s in counts.columns], fill_value=0)
    ratios = frame.groupby("label")["tol_ratio"]
    counts["cases"] = counts.sum(axis=1)
    counts["median ratio"] = ratios.median().reindex(labels)
    counts["worst ratio"] = ratios.max().reindex(labels)
    counts["bitwise repeatable"] = repeatability(frame, ["label"]).reindex(labels).fillna("")
    counts.index.name = "impl/device"
    return counts.reset_index()


def repeatability(frame: pd.DataFrame, keys: list) -> pd.Series:
    """``"n of m"`` per group: of the m cases computed twice in one worker, n gave identical bits."""
    flag = frame.get("deterministic", pd.Series("", index=frame.index)).astype(str).str.lower()
    checked = frame.assign(_same=flag.eq("true"), _checked=flag.isin(("true", "false")))
    grouped = checked[checked["_checked"]].groupby(keys)
    same, total = grouped["_same"].sum(), grouped["_checked"].sum()
    return (same.astype(int).astype(str) + " of " + total.astype(int).astype(str)).rename("bitwise repeatable")


def not_repeatable(frame: pd.DataFrame) -> pd.DataFrame:
    """The cases whose two runs in one worker gave different bits."""
    flag = frame.get("deterministic", pd.Series("", index=frame.index)).astype(str).str.lower()
    rows = frame[flag.eq("false")]
    return rows[["label", "case", "op", "dtype", "status"]].rename(columns={"label": "impl/device"}).reset_index(
        drop=True)


def summary_table(summary: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``report.summary`` flattened, with the case that holds the worst ratio."""
    table = summary.reset_index()
    finite = frame.dropna(subset=["tol_ratio"])
    if finite.empty:
        table["worst case"] = ""
    else:
        worst = finite.loc[finite.groupby(["op", "dtype", "impl", "device"])["tol_ratio"].idxmax(),
                           ["op", "dtype", "impl", "device", "case"]].rename(columns={"case": "worst case"})
        table = table.merge(worst, on=["op", "dtype", "impl", "device"], how="left")
        table["worst case"] = table["worst case"].fillna("")
    repeatable = repeatability(frame, ["op", "dtype", "impl", "device"]).reset_index()
    table = table.merge(repeatable, on=["op", "dtype", "impl", "device"], how="left")
    table["bitwise repeatable"] = table["bitwise repeatable"].fillna("")
    return table


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
               "corpus sha256": sha[:16],
               "same corpus": ("yes" if sha == corpus_sha else "NO") if sha and corpus_sha else "unknown",
               "finished": env.get("finished", "(no environment file)" if not env else "")}
        for key, value in env.items():
            if key not in row and key not in ("ops", "event", "pid", "impl", "device", "corpus_sha256") \
                    and not isinstance(value, (dict, list)):
                row[key] = value
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


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


def modes_table(environments: pd.DataFrame, frame: pd.DataFrame, labels, ops):
    """Native/composed per op (rows) and impl/device (columns), the tooltips, and a long table."""
    long_rows = []
    envs = {}
    if not environments.empty and "ops" in environments:
        for _, env in environments.iterrows():
            envs["%s/%s" % (env.get("impl"), env.get("device"))] = env.get("ops") or {}
    for label in labels:
        declared = envs.get(label)
        for op in ops:
            if declared is not None and isinstance(declared, dict) and op in declared:
                support = declared[op] or {}
                long_rows.append({"impl/device": label, "op": op, "mode": support.get("mode", "") or "",
                                  "dtypes": " ".join(support.get("dtypes", ()) or ()),
                                  "unsupported features": " ".join(support.get("unsupported_features", ()) or ()),
                                  "note": support.get("note", "") or ""})
            else:
                seen = frame[(frame["label"] == label) & (frame["op"] == op)]["mode"]
                seen = [m for m in seen.unique() if m]
                long_rows.append({"impl/device": label, "op": op, "mode": seen[0] if seen else "—",
                                  "dtypes": "", "unsupported features": "",
                                  "note": "not declared" if declared is not None else "(no environment file; mode from results)"})
    long = pd.DataFrame(long_rows, columns=["impl/device", "op", "mode", "dtypes", "unsupported features", "note"])
    if long.empty:
        return pd.DataFrame(), pd.DataFrame(), long
    matrix = long.pivot(index="op", columns="impl/device", values="mode").reindex(index=ops, columns=labels).fillna("—")
    matrix.index.name = matrix.columns.name = None
    tips = long.assign(tip=long["note"] + np.where(long["dtypes"] != "", "\ndtypes: " + long["dtypes"], "")
                       + np.where(long["unsupported features"] != "",
                                  "\nunsupported features: " + long["unsupported features"], ""))
    tips = tips.pivot(index="op", columns="impl/device", values="tip").reindex(index=ops, columns=labels).fillna("")
    tips.index.name = tips.columns.name = None
    return matrix, tips, long


# --------------------------------------------------------------------------------------------
# differences found
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_SENTENCES = [
    (re.compile(r"^(?P<name>[\w/]+): missing$"), "{impl} returns no `{name}` output"),
    (re.compile(r"^(?P<name>[\w/]+): shape (?P<got>\(.*?\)), expected (?P<want>\(.*?\))"),
     "{impl} returns `{name}` with shape {got} where the reference has shape {want}"),
    (re.compile(r"^(?P<name>[\w/]+): (?P<got>\S+) where (?P<want>\S+) was expected at (?P<where>\(.*\))$"),
     "{impl} returns {got} in `{name}` at index {where} where the reference has {want}"),
    (re.compile(r"^(?P<name>[\w/]+): max error (?P<err>\S+) is (?P<ratio>\S+)x the tolerance at index (?P<where>\(.*\))$"),
     "{impl}'s `{name}` is off by {err} at index {where}, {ratio}x the tolerance"),
]


def _short(text: str) -> str:
    """A number of a message with 6 significant digits; anything else unchanged."""
    try:
        return "%.6g" % float(text) if not text.startswith("(") else text
    except ValueError:
        return text


def signature(message: str) -> str:
    """A message with its numbers blanked, so that one cause groups its cases."""
    return _NUMBER.sub("#", message.split("\n")[0])[:160]


def describe(impl: str, status: str, message: str, what: str = "") -> str:
    """One plain sentence of what differs, from a result message."""
    message = (message or "").strip()
    first_line = message.split("\n")[0]
    if status == "fail" or (status == "xfail" and message and not message.startswith(("worker", "no answer"))):
        problems = [p.strip() for p in message.split("; ") if p.strip()]
        sentence = ""
        if problems:
            for pattern, template in _SENTENCES:
                match = pattern.match(problems[0])
                if match:
                    sentence = template.format(impl=impl, **{k: _short(v) for k, v in match.groupdict().items()})
                    break
            else:
                sentence = "%s: %s" % (impl, problems[0][:240])
            if len(problems) > 1:
                sentence += " (and %d more output%s)" % (len(problems) - 1, "s" if len(problems) > 2 else "")
        if status == "xfail":
            lead = "Known deviation: %s" % what if what else "Known deviation"
            return lead.rstrip(".") + (". Here: " + sentence + "." if sentence else ".")
        return (sentence or "%s differs from the reference" % impl) + "."
    if status == "xfail":
        return ("Known deviation: %s" % what if what else "Known deviation").rstrip(".") + \
            (". Here: " + first_line[:200] if first_line else "") + "."
    if status == "error":
        return "%s raises an error: %s" % (impl, first_line[:240] or "(no message)")
    if status == "crash":
        return "The %s worker process dies: %s" % (impl, first_line[:240].removeprefix("worker died: "))
    if status == "timeout":
        return "%s does not answer in time: %s" % (impl, first_line[:200])
    return "%s: %s" % (status, first_line[:240])


def reproducer(impl: str, device: str, case: str) -> str:
    device_flag = "" if device == "cpu" else " --device %s" % device
    return "python -m conformance run --impl %s%s --select '%s' --keep-outputs" % (impl, device_flag, case)


def differences(frame: pd.DataFrame, manifest: dict, cases_dir, registry=None, statuses=DIFFERENCE_STATUSES,
                impl_order=()) -> pd.DataFrame:
    """Every non-passing row grouped by cause: impl, op, status, known deviation and message shape."""
    rows = frame[frame["status"].isin(statuses)].copy()
    columns = ["impl", "devices", "op", "status", "cases", "dtypes", "shared features", "what differs",
               "smallest case", "description", "reproducer", "known deviation", "all cases"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    entries = {e["id"]: e for e in (manifest or {}).get("cases", [])}

    def size(case_id):
        """Uncompressed bytes of the case's inputs (the compressed file size varies with the values)."""
        entry = entries.get(case_id)
        if entry and cases_dir:
            path = Path(cases_dir) / entry.get("file", "")
            if path.is_file():
                try:
                    with zipfile.ZipFile(path) as archive:
                        return sum(i.file_size for i in archive.infolist() if i.filename.startswith("input/"))
                except (OSError, zipfile.BadZipFile):
                    return path.stat().st_size
        return 10**12 + len(case_id)

    whats = {}
    if registry is not None:
        whats = {d.key: d.what for d in registry.entries}
    rows["signature"] = rows["message"].map(signature)
    groups = []
    for (impl, op, status, deviation, _), group in rows.groupby(["impl", "op", "status", "deviation", "signature"],
                                                                sort=False):
        group = group.assign(size=group["case"].map(size)).sort_values(["size", "case"])
        smallest = group.iloc[0]
        feature_sets = [set(_words(f)) for f in group["features"]]
        shared = set.intersection(*feature_sets) if feature_sets else set()
        entry = entries.get(smallest["case"], {})
        groups.append({
            "impl": impl, "devices": " ".join(sorted(group["device"].unique(), key=lambda d: (d != "cpu", d))),
            "op": op, "status": status, "cases": len(group),
            "dtypes": " ".join(sorted(group["dtype"].unique(), key=lambda d: list(DTYPE_COLOURS).index(d)
                                      if d in DTYPE_COLOURS else 9)),
            "shared features": " ".join(sorted(shared)) or "—",
            "what differs": describe(impl, status, smallest["message"], whats.get(deviation, "")),
            "smallest case": smallest["case"], "description": entry.get("description", ""),
            "reproducer": reproducer(impl, smallest["device"], smallest["case"]),
            "known deviation": deviation,
            "all cases": " ".join(sorted(group["case"].unique())),
        })
    table = pd.DataFrame(groups, columns=columns)
    rank = {name: i for i, name in enumerate(impl_order)}
    table["_impl"] = table["impl"].map(lambda i: rank.get(i, len(rank)))
    table["_sev"] = table["status"].map(lambda s: SEVERITY.index(s) if s in SEVERITY else 99)
    table = table.sort_values(["_impl", "impl", "_sev", "op", "cases"], ascending=[True, True, True, True, False])
    return table.drop(columns=["_impl", "_sev"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# pairwise agreement
def _ratios(errors_json: str) -> dict:
    if not errors_json:
        return {}
    try:
        data = json.loads(errors_json)
    except ValueError:
        return {}
    return {name: float(v.get("ratio", math.nan)) for name, v in data.items() if isinstance(v, dict)}


def pair_bounds(errors_a: dict, errors_b: dict):
    """``(low, high)`` bounds of max |A - B| / allowed from per-output ratios, or None."""
    common = sorted(set(errors_a) & set(errors_b))
    if not common:
        return None
    low = high = 0.0
    for name in common:
        a, b = errors_a[name], errors_b[name]
        if math.isnan(a) or math.isnan(b):
            return None
        gap = abs(a - b) if not (math.isinf(a) and math.isinf(b)) else 0.0
        low, high = max(low, gap), max(high, a + b)
    return low, high


def exact_difference(case, outputs_a: dict, outputs_b: dict) -> float:
    """max over outputs and elements of |A - B| / (rtol * (|golden| + scale)); equal non-finites agree."""
    from conformance import compare

    tol = compare.tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
    scales = compare.output_scales(case)
    worst = 0.0
    for name, golden in case.golden.items():
        if name not in outputs_a or name not in outputs_b:
            if (name in outputs_a) != (name in outputs_b):
                return math.inf
            continue
        a = np.asarray(outputs_a[name])
        b = np.asarray(outputs_b[name])
        if a.shape != b.shape or a.shape != golden.shape:
            if a.shape != b.shape:
                return math.inf
            continue
        a, b = a.astype(np.float64), b.astype(np.float64)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        finite = np.isfinite(a) & np.isfinite(b)
        if (~same & ~finite).any():
            return math.inf
        allowed = tol.rtol * (np.abs(np.where(np.isfinite(golden), golden, 0.0)) + scales.get(name, 1.0))
        gap = np.where(same, 0.0, np.abs(np.where(finite, a - b, 0.0)) / allowed)
        if gap.size:
            worst = max(worst, float(gap.max()))
    return worst


def agreement(frame: pd.DataFrame, labels: list, raw_dir=None, manifest=None, cases_dir=None) -> pd.DataFrame:
    """One row per ordered pair of impl/device labels (both directions, diagonal excluded)."""
    from impls.caseio import Case, read_npz

    entries = {e["id"]: e for e in (manifest or {}).get("cases", [])}
    outputs_root = Path(raw_dir) / "outputs" if raw_dir else None
    output_cache, case_cache = {}, {}

    def outputs(label, case_id):
        key = (label, case_id)
        if key not in output_cache:
            impl, _, device = label.rpartition("/")
            path = outputs_root / ("%s-%s" % (impl, device)) / (case_id + ".npz") if outputs_root else None
            output_cache[key] = read_npz(path)[0] if path and path.is_file() else None
        return output_cache[key]

    def case(case_id):
        if case_id not in case_cache:
            entry = entries.get(case_id)
            path = Path(cases_dir) / entry["file"] if entry and cases_dir else None
            case_cache[case_id] = Case.read(path) if path and path.is_file() else None
        return case_cache[case_id]

    compared = frame[frame["errors"] != ""]
    by_label = {label: dict(zip(group["case"], group["errors"].map(_ratios)))
                for label, group in compared.groupby("label")}
    rows = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            ra, rb = by_label.get(a, {}), by_label.get(b, {})
            counts = {"agree": 0, "disagree": 0, "undetermined": 0, "exact": 0}
            worst_exact = 0.0
            disagreeing = []
            for case_id in sorted(set(ra) & set(rb)):
                verdict = None
                oa, ob = outputs(a, case_id), outputs(b, case_id)
                if oa is not None and ob is not None and case(case_id) is not None:
                    try:
                        d = exact_difference(case(case_id), oa, ob)
                    except Exception:  # a malformed output file: fall back to the bounds
                        d = None
                    if d is not None:
                        verdict = "agree" if d <= 1.0 else "disagree"
                        counts["exact"] += 1
                        worst_exact = max(worst_exact, d)
                if verdict is None:
                    bounds = pair_bounds(ra[case_id], rb[case_id])
                    if bounds is None:
                        continue
                    low, high = bounds
                    verdict = "agree" if high <= 1.0 else "disagree" if low > 1.0 else "undetermined"
                counts[verdict] += 1
                if verdict == "disagree":
                    disagreeing.append(case_id)
            n = counts["agree"] + counts["disagree"] + counts["undetermined"]
            row = {"a": a, "b": b, "compared": n, **counts,
                   "agree share": counts["agree"] / n if n else math.nan,
                   "worst exact difference": worst_exact if counts["exact"] else math.nan,
                   "disagreeing cases": " ".join(disagreeing)}
            rows.append(row)
            rows.append(dict(row, a=b, b=a))
    return pd.DataFrame(rows, columns=["a", "b", "compared", "agree", "disagree", "undetermined", "exact",
                                       "agree share", "worst exact difference", "disagreeing cases"])


def agreement_matrices(pairs: pd.DataFrame, labels: list):
    share = pd.DataFrame(np.nan, index=labels, columns=labels)
    text = pd.DataFrame("", index=labels, columns=labels)
    tips = pd.DataFrame("", index=labels, columns=labels)
    for _, row in pairs.iterrows():
        share.loc[row["a"], row["b"]] = row["agree share"]
        text.loc[row["a"], row["b"]] = "%d / %d / %d" % (row["agree"], row["disagree"], row["undetermined"])
        tip = ("%s vs %s: %d cases compared, %d agree, %d disagree, %d undetermined; %d measured exactly from kept outputs"
               % (row["a"], row["b"], row["compared"], row["agree"], row["disagree"], row["undetermined"], row["exact"]))
        if row["disagreeing cases"]:
            tip += "\ndisagree on: " + " ".join(row["disagreeing cases"].split()[:12]) + \
                (" ..." if len(row["disagreeing cases"].split()) > 12 else "")
        tips.loc[row["a"], row["b"]] = tip
    for label in labels:
        text.loc[label, label] = "—"
    for frame in (share, text, tips):
        frame.index.name = frame.columns.name = None
    return share, text, tips


# --------------------------------------------------------------------------------------------
# plots
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
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
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
    from matplotlib.figure import Figure

    counts = pd.crosstab(frame["label"], frame["status"]).reindex(index=labels, fill_value=0)
    figure = Figure(figsize=(11, 0.9 + 0.38 * len(labels)))
    ax = figure.subplots()
    left = np.zeros(len(labels))
    for status in statuses:
        if status not in counts:
            continue
        values = counts[status].to_numpy()
        ax.barh(range(len(labels)), values, left=left, color=STATUS_STYLE[status][2], label=status, height=0.7)
        for y, (x0, v) in enumerate(zip(left, values)):
            if v and v >= max(3, counts.sum(axis=1).max() * 0.03):
                ax.text(x0 + v / 2, y, str(v), ha="center", va="center", fontsize=8, color="white")
        left += values
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("cases")
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    figure.tight_layout()
    return png_data_uri(figure)


# --------------------------------------------------------------------------------------------
# rendering
def table_html(table: pd.DataFrame, uuid: str, *, classes=None, tips=None, fmt=None, sortable=True,
               index=False, extra_class="") -> str:
    """A DataFrame as an HTML table through pandas Styler (cells escaped, CSS classes, tooltips)."""
    styler = table.style
    if not index:
        styler = styler.hide(axis="index")
    styler = styler.format(fmt_number, escape="html", na_rep="")
    if fmt:  # a dict formatter resets the columns it does not name unless given a subset
        styler = styler.format(fmt, subset=list(fmt), escape="html", na_rep="")
    styler = styler.format_index(escape="html", axis=1)
    if index:
        styler = styler.format_index(escape="html", axis=0)
    if classes is not None:
        styler = styler.set_td_classes(classes)
    if tips is not None and not tips.empty:
        styler = styler.set_tooltips(tips.map(lambda t: _attr(t) if t else ""), as_title_attribute=True)
    css = " ".join(filter(None, ["report", "sortable" if sortable else "", extra_class]))
    return styler.to_html(table_uuid=uuid, table_attributes='class="%s"' % css)


def _blank_classes(table):
    return pd.DataFrame("", index=table.index, columns=table.columns)


def overview_html(table: pd.DataFrame, statuses) -> str:
    classes = _blank_classes(table)
    for status in statuses:
        if status in table:
            classes[status] = table[status].map(lambda n, s=status: "num st-%s" % s if n else "num zero")
    classes["cases"] = "num"
    classes["median ratio"] = "num"
    classes["worst ratio"] = table["worst ratio"].map(lambda r: "num bad" if r > 1 else "num")
    return table_html(table, "overview", classes=classes,
                      fmt={c: fmt_ratio for c in ("median ratio", "worst ratio")})


def summary_html(table: pd.DataFrame, statuses) -> str:
    table = table.rename(columns={"worst_tol_ratio": "worst ratio"})
    classes = _blank_classes(table)
    for status in statuses:
        if status in table:
            classes[status] = table[status].map(lambda n, s=status: "num st-%s" % s if n else "num zero")
    classes["worst ratio"] = table["worst ratio"].map(lambda r: "num bad" if r > 1 else "num")
    return table_html(table, "summary", classes=classes, fmt={"worst ratio": fmt_ratio})


def cases_html(table: pd.DataFrame, tips: pd.DataFrame, labels) -> str:
    classes = _blank_classes(table)
    for label in labels:
        states = table[(label, "status")]
        classes[(label, "status")] = states.map(lambda s: "stcell grp st-%s" % s if s else "grp")
        ratios = table[(label, "ratio")]
        classes[(label, "ratio")] = [("num rcell st-%s" % s if s else "num") + (" bad" if r > 1 else "")
                                     for s, r in zip(states, ratios)]
    classes[("case", "description")] = "desc"
    classes[("case", "id")] = "ident"
    classes[("case", "op")] = "opname"
    fmt = {(label, "ratio"): fmt_ratio for label in labels}
    return table_html(table, "cases", classes=classes, tips=tips, fmt=fmt)


def differences_html(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["all cases"])
    classes = _blank_classes(shown)
    classes["status"] = shown["status"].map(lambda s: "stcell st-%s" % s)
    classes["reproducer"] = "code"
    classes["smallest case"] = "code"
    classes["what differs"] = "prose"
    classes["cases"] = "num"
    tips = pd.DataFrame({"cases": table["all cases"]}, index=shown.index)
    return table_html(shown, "differences", classes=classes, tips=tips)


def agreement_html(share: pd.DataFrame, text: pd.DataFrame, tips: pd.DataFrame):
    def shade(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "color: #999"
        # white (all agree) to red (none agree)
        level = int(round(255 * (0.35 + 0.65 * float(value))))
        return "background-color: rgb(255, %d, %d)" % (level, level) if value < 1 else "background-color: #d7f0d4"

    share_styler = (share.style.map(shade)
                    .format(lambda v: "" if pd.isna(v) else "%.1f%%" % (100 * v), na_rep="—")
                    .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
                    .set_tooltips(tips.map(lambda t: _attr(t) if t else ""), as_title_attribute=True))
    share_html = share_styler.to_html(table_uuid="agreement", table_attributes='class="report matrix"')
    counts_html = (text.style.format(escape="html").format_index(escape="html", axis=0)
                   .format_index(escape="html", axis=1)
                   .set_tooltips(tips.map(lambda t: _attr(t) if t else ""), as_title_attribute=True)
                   .to_html(table_uuid="agreement_counts", table_attributes='class="report matrix"'))
    return share_html, counts_html


def modes_html(matrix: pd.DataFrame, tips: pd.DataFrame) -> str:
    classes = matrix.map(lambda m: "mode-%s" % m if m in ("native", "composed") else "mode-none")
    styler = (matrix.style.set_td_classes(classes).format(escape="html")
              .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
              .set_tooltips(tips.map(lambda t: _attr(t) if t else ""), as_title_attribute=True))
    return styler.to_html(table_uuid="modes", table_attributes='class="report matrix"')


def bad_input_table(frame: pd.DataFrame, labels: list) -> pd.DataFrame:
    """One row per invalid-input case, one column per impl/device: what the impl did."""
    if "behaviour" not in frame:
        return pd.DataFrame()
    bad = frame[frame["case"].str.contains("-invalid-", regex=False) & frame["behaviour"].notna()]
    if bad.empty:
        return pd.DataFrame()
    table = bad.pivot_table(index="case", columns="label", values="behaviour", aggfunc="first")
    return table.reindex(columns=[label for label in labels if label in table.columns]).fillna("").reset_index()


def generic_html(table: pd.DataFrame, uuid: str) -> str:
    return table_html(table.reset_index(drop=True), uuid)


STYLE = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #222;
       margin: 0; background: #fafafa; }
header { background: #263238; color: #eceff1; padding: 18px 28px 14px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header .meta { color: #b0bec5; font-size: 13px; }
nav { background: #37474f; padding: 6px 28px; position: sticky; top: 0; z-index: 5; }
nav a { color: #eceff1; text-decoration: none; margin-right: 16px; font-size: 13px; }
nav a:hover { text-decoration: underline; }
main { padding: 8px 28px 40px; }
section { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: 4px 20px 16px; margin: 18px 0; }
h2 { font-size: 18px; margin: 14px 0 6px; color: #263238; }
h3 { font-size: 15px; margin: 14px 0 4px; color: #37474f; }
p.intro { color: #455a64; max-width: 1100px; margin: 4px 0 10px; }
.keys { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0; }
.key { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: 6px 14px; min-width: 90px; }
.key b { display: block; font-size: 20px; }
.key span { color: #607d8b; font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 14px; margin: 8px 0; font-size: 12.5px; }
.legend span.sw { display: inline-block; padding: 1px 8px; border-radius: 3px; margin-right: 4px; font-weight: 600; }
.scroll { overflow: auto; max-width: 100%; }
.scroll.tall { max-height: 78vh; }
table.report { border-collapse: collapse; font-size: 12.5px; margin: 6px 0; }
table.report th, table.report td { border: 1px solid #e3e3e3; padding: 3px 7px; vertical-align: top; }
table.report thead th { background: #eceff1; text-align: left; position: sticky; top: 0; z-index: 1; }
table.report thead tr:nth-child(2) th { top: 24px; }
table.report tbody tr:nth-child(even) td:not([class*="st-"]):not([class*="mode-"]) { background: #fbfbfb; }
table.report tbody tr:hover td { outline: 1px solid #b0bec5; }
table.sortable thead th.sortkey { cursor: pointer; user-select: none; }
table.sortable thead th.sortkey:after { content: "⇅"; color: #b0bec5; font-size: 9px; padding-left: 2px; }
table.sortable thead th.asc:after { content: "▲"; color: #37474f; }
table.sortable thead th.desc:after { content: "▼"; color: #37474f; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.zero { color: #c5c5c5; }
td.bad { font-weight: 700; }
td.grp { border-left: 2px solid #b0bec5; }
td.desc { min-width: 200px; max-width: 320px; }
td.ident { min-width: 170px; max-width: 230px; overflow-wrap: anywhere; }
td.opname { white-space: nowrap; color: #546e7a; font-size: 11.5px; }
td.prose { max-width: 420px; }
td.code { min-width: 150px; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 11.5px; }
td.stcell { font-weight: 600; }
td[title] { cursor: help; }
table.matrix th { white-space: nowrap; }
table.report tbody th { text-align: left; background: #f5f7f8; font-weight: 600; }
table.matrix td { text-align: center; min-width: 70px; }
td.mode-native { background: #d7f0d4; color: #1d5c1a; }
td.mode-composed { background: #fff1c9; color: #6b5200; }
td.mode-none { color: #aaa; }
.target { font-weight: 600; margin: 4px 0; }
.filterbar { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin: 8px 0; font-size: 13px; }
.filterbar input[type=search] { width: 300px; padding: 4px 8px; border: 1px solid #b0bec5; border-radius: 4px; }
.filterbar .count { color: #607d8b; }
img.plot { max-width: 100%; height: auto; border: 1px solid #eee; background: #fff; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f4f6f7; padding: 8px 12px; border-radius: 4px; overflow-x: auto; }
.none { color: #78909c; font-style: italic; }
.warn { background: #fff4e5; border-left: 4px solid #f0961c; padding: 6px 12px; margin: 8px 0; }
details summary { cursor: pointer; color: #37474f; margin: 8px 0; }
"""
STYLE += "".join("td.st-%s, span.st-%s { background: %s; color: %s; }\n" % (s, s, bg, fg)
                 for s, (bg, fg, _, _) in STATUS_STYLE.items())
STYLE += "td.rcell { font-weight: 400; }\n"

SCRIPT = r"""
(function () {
  function key(cell) {
    var t = (cell ? cell.textContent : '').trim();
    if (t === '' || t === '—') return null;
    if (t === '∞') return Infinity;
    var n = Number(t.replace(/%$/, ''));
    return isNaN(n) ? t.toLowerCase() : n;
  }
  function cmp(a, b) {
    if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
    return typeof a === 'number' ? -1 : 1;
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var head = table.tHead; if (!head || !table.tBodies.length) return;
    var row = head.rows[head.rows.length - 1];
    Array.prototype.forEach.call(row.cells, function (th, i) {
      th.classList.add('sortkey'); th.title = 'click to sort';
      th.addEventListener('click', function () {
        var dir = th.classList.contains('asc') ? -1 : 1;
        Array.prototype.forEach.call(row.cells, function (o) { o.classList.remove('asc', 'desc'); });
        th.classList.add(dir === 1 ? 'asc' : 'desc');
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var ka = key(a.cells[i]), kb = key(b.cells[i]);
          if (ka === null || kb === null) return ka === kb ? 0 : ka === null ? 1 : -1;  // blanks last
          return dir * cmp(ka, kb);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll('.filterbar').forEach(function (bar) {
    var table = document.getElementById(bar.getAttribute('data-table'));
    if (!table || !table.tBodies.length) return;
    var text = bar.querySelector('input[type=search]'), status = bar.querySelector('select'),
        failing = bar.querySelector('input[type=checkbox]'), count = bar.querySelector('.count');
    function apply() {
      var words = text.value.toLowerCase().split(/\s+/).filter(Boolean), shown = 0, rows = table.tBodies[0].rows;
      Array.prototype.forEach.call(rows, function (r) {
        var txt = r.textContent.toLowerCase();
        var ok = words.every(function (w) { return txt.indexOf(w) >= 0; });
        if (ok && status && status.value) ok = r.querySelector('td.st-' + status.value) !== null;
        if (ok && failing && failing.checked)
          ok = r.querySelector('td.stcell:not(.st-pass):not(.st-unsupported)') !== null;
        r.style.display = ok ? '' : 'none'; if (ok) shown++;
      });
      if (count) count.textContent = shown + ' of ' + rows.length + ' rows shown';
    }
    [text, status, failing].forEach(function (el) {
      if (el) { el.addEventListener('input', apply); el.addEventListener('change', apply); }
    });
    apply();
  });
})();
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ style | safe }}</style>
</head>
<body>
<header>
  <h1>{{ title }}</h1>
  <div class="meta">generated {{ generated }} · corpus {{ corpus_sha }} · {{ n_cases }} cases · {{ labels | length }} impl/device runs: {{ labels | join(', ') }}</div>
</header>
<nav>
{% for id, name in toc %}<a href="#{{ id }}">{{ name }}</a>{% endfor %}
</nav>
<main>
{% macro filterbar(table, statuses=None, failing=False) -%}
<div class="filterbar" data-table="{{ table }}">
  <label>Filter <input type="search" placeholder="words, all must match (e.g. f16 soft_label)"></label>
  {% if statuses %}<label>with status <select><option value="">any</option>{% for s in statuses %}<option value="{{ s }}">{{ s }}</option>{% endfor %}</select></label>{% endif %}
  {% if failing %}<label><input type="checkbox"> only cases that did not pass everywhere</label>{% endif %}
  <span class="count"></span>
</div>
{%- endmacro %}

<section id="overview">
<h2>At a glance</h2>
<p class="intro">Every case of the corpus is run by each implementation ("impl") in its own worker process and its
outputs (loss, softmax, gradients) are compared with golden float64 outputs, element by element, under a tolerance
that depends on the dtype and the accumulation length of the case. The <em>ratio</em> is the worst
|error| / tolerance over all outputs of a case: below 1 passes, above 1 fails; ∞ means a NaN/inf where a finite
value was expected (or a wrong shape). Hover over a coloured cell for the message.</p>
<div class="keys">
{% for value, name in keys %}<div class="key"><b>{{ value }}</b><span>{{ name }}</span></div>{% endfor %}
</div>
{% for warning in warnings %}<div class="warn">{{ warning }}</div>{% endfor %}
<div class="legend">
{% for status, text in legend %}<div><span class="sw st-{{ status }}">{{ status }}</span>{{ text }}</div>{% endfor %}
</div>
<div class="scroll">{{ overview | safe }}</div>
{% if status_plot %}<img class="plot" alt="status counts per impl and device" src="{{ status_plot }}">{% endif %}
</section>

<section id="differences">
<h2>Differences found</h2>
<p class="intro">Every case that did not pass (fail, error, crash, timeout, and known deviations as xfail), grouped
by cause: same impl, op and status, same known-deviation entry and the same message once its numbers are blanked
out. Each group names its dtypes and devices, the features all its cases share, its smallest case (fewest input
bytes), one sentence of what differs there, and a command that reruns just that case and keeps the outputs for a
closer look (under <code>reports/raw/outputs/</code>). Hover over the case count for every case of the group.</p>
{% if differences %}{{ filterbar('T_differences') }}<div class="scroll">{{ differences | safe }}</div>
{% else %}<p class="none">No differences: every case that ran passed.</p>{% endif %}
{% if xpass %}<h3>Known deviations that passed (xpass)</h3>
<p class="intro">These cases are covered by an entry of <code>known_deviations.toml</code> but passed; the entry
may be stale or too broad.</p><div class="scroll">{{ xpass | safe }}</div>{% endif %}
</section>

<section id="agreement">
<h2>Pairwise agreement</h2>
<p class="intro">For every two impl/device runs A and B (not only against the reference), over the cases both
ran to a comparison (statuses pass, fail, xfail or xpass with outputs; unsupported, error, crash and timeout rows
are left out), the share of cases on which <strong>A and B agree within one tolerance of each other</strong>: the
largest |A − B| over all outputs and elements is at most the case's own tolerance
<code>rtol·(|golden| + scale)</code>. Equal NaN/inf values count as agreeing.
{{ agreement_method }}
The first table gives the share of agreeing cases (green: all), the second the counts
<em>agree / disagree / undetermined</em>; hover for the cases on which a pair disagrees.</p>
{% if agreement %}
<div style="display:flex; flex-wrap:wrap; gap:24px; align-items:flex-start">
<div><h3>Share of cases agreeing</h3><div class="scroll">{{ agreement | safe }}</div></div>
<div><h3>agree / disagree / undetermined</h3><div class="scroll">{{ agreement_counts | safe }}</div></div>
</div>
{% else %}<p class="none">Fewer than two impl/device runs: nothing to compare.</p>{% endif %}
</section>

<section id="distribution">
<h2>Error-to-tolerance distribution</h2>
<p class="intro">Each dot is one case: its worst |error| / tolerance (log scale), per impl/device and op, coloured by
dtype. Right of the dashed line fails. Exact results (ratio 0) are drawn as × at the left edge; NaN/inf or
wrong-shape outputs as ▶ at the right edge. Cases that produced no outputs (unsupported, error, crash,
timeout) are not drawn.</p>
{% if ratio_plot %}<img class="plot" alt="distribution of error-to-tolerance ratios" src="{{ ratio_plot }}">
{% else %}<p class="none">No compared outputs to plot.</p>{% endif %}
</section>

<section id="summary">
<h2>Summary per op × dtype × impl × device</h2>
<p class="intro">Case counts by status for each op, dtype and impl/device run, the worst ratio (worst error as a
multiple of its tolerance) and the case holding it, and how many cases were bitwise repeatable (each case runs
twice in the same worker and the two outputs are compared bit for bit). Click a column header to sort; type to
filter.</p>
{{ filterbar('T_summary') }}
<div class="scroll tall">{{ summary | safe }}</div>
{% if not_repeatable %}<h3>Not bitwise repeatable</h3>
<p class="intro">Cases whose two runs in one worker gave different bits (a framework using non-deterministic
reductions or threading): a finding about the framework, not a tolerance question.</p>
<div class="scroll">{{ not_repeatable | safe }}</div>
{% else %}<p class="intro">Every case that ran twice gave identical bits both times.</p>{% endif %}
</section>

<section id="cases">
<h2>All cases</h2>
<p class="intro">One row per case with its parameters (op, dtype, description, tags, features) and, for each
impl/device, its status and ratio. Hover over a status for the message, the known deviation and the tolerance.
Click a column header to sort (e.g. a ratio column, largest first on the second click); the filter matches
words anywhere in the row.</p>
{{ filterbar('T_cases', statuses=present_statuses, failing=True) }}
<div class="scroll tall">{{ cases | safe }}</div>
</section>

<section id="modes">
<h2>Native vs composed</h2>
<p class="intro"><em>native</em>: the impl has the op as one framework call; <em>composed</em>: the adapter builds it from
smaller framework ops (gather, log_softmax...), so it tests those ops, not a fused kernel. As declared by each
worker in its environment file; hover for the adapter's note, dtypes and unsupported features.</p>
{% if modes %}<div class="scroll">{{ modes | safe }}</div>
<details><summary>Adapter notes per impl and op</summary><div class="scroll">{{ modes_long | safe }}</div></details>
{% else %}<p class="none">No environment files.</p>{% endif %}
</section>

<section id="environment">
<h2>Environment</h2>
<p class="intro">What ran: one row per impl/device worker (from <code>environment-*.json</code>), with the corpus hash
the run used and whether it is the corpus the report reads. The report host is where this page was generated;
results from other machines (a GPU runner) carry only what their worker recorded.</p>
<div class="scroll">{{ environment | safe }}</div>
<h3>Report host</h3>
<div class="scroll">{{ host | safe }}</div>
</section>

<section id="badinput">
<h2>Bad input</h2>
{% if badinput %}<p class="intro">What each impl does with invalid input (the <code>invalid-*</code> cases):
<em>raises</em> is right; <em>returns NaN/inf</em> at least signals trouble; <em>returns finite numbers</em> is a
silent wrong answer and counts as a failure. The reference must raise and name the argument. Composed adapters
show what the framework primitives they use do.</p>
{{ filterbar('T_badinput') }}<div class="scroll tall">{{ badinput | safe }}</div>
{% else %}<p class="none">No bad-input results.</p>{% endif %}
</section>

<section id="speed">
<h2>Speed</h2>
{% if bench %}<p class="intro">Each impl timed in its own worker on inputs already resident on the device, the impls taking
turns shape by shape:
warm-up until two calls agree within 20%, then at least 5 timed calls (device synchronised on both edges),
median and IQR reported; cells show the median and the ratio to the fastest impl of the row on the same device
(×1.00 is the fastest), <em>~</em> marks an IQR above 10% of the median; hover a cell for the IQR, the number of
calls and the peak memory. Rows from {{ bench_files | join(', ') }}.</p>
{% for line in speed_target_lines %}<p class="target">Target: {{ line }}</p>{% endfor %}
<p class="intro">{{ speed_noisy }}</p>
{{ filterbar('T_speed') }}<div class="scroll tall">{{ speed_table | safe }}</div>
{% if speed_plot %}<h3>Time against the number of classes</h3>
<p class="intro">The full softmax and the logits-based sampled op read and write <code>[B, K]</code> arrays, so
their time grows with K; the weights-based <code>sampled_softmax_loss</code> touches only the sampled rows of the
weights (its dense weight gradient aside, where an impl materialises one).</p>
<img alt="time against classes" src="{{ speed_plot }}">{% endif %}
{% if speed_target %}<h3>The reference against the fastest framework (forward+backward)</h3>
{{ filterbar('T_target') }}<div class="scroll">{{ speed_target | safe }}</div>{% endif %}
{% if speed_memory %}<h3>Peak memory of sampled_softmax_loss</h3>
<p class="intro">Peak memory of one call above what the prepared inputs already hold, against the memory a
sampled loss needs, B·(T+S) + (T·B+S)·D elements, and the B·K elements of a dense logits array that it must
never materialise. Forward+backward also returns the weight gradient, which the API makes a dense [K, D]
array (K·D elements); the NumPy reference allocates it in pages that the kernel zeroes when first written, so
its time pays only for the sampled rows, while tracemalloc still counts the whole array. On the CPU,
frameworks are measured by the growth of the process's peak resident set, a lower bound when their allocator
reuses memory kept from earlier calls.</p>
{{ filterbar('T_memory') }}<div class="scroll">{{ speed_memory | safe }}</div>{% endif %}
{% else %}<p class="none">No <code>bench-*.csv</code> in the raw folder yet (<code>conformance bench</code>).</p>{% endif %}
</section>

<section id="sampler">
<h2>Sampler</h2>
{% if sampler %}<p class="intro">Sampler rows from {{ sampler_files | join(', ') }}.</p>
{{ filterbar('T_sampler') }}<div class="scroll tall">{{ sampler | safe }}</div>
{% else %}<p class="none">No <code>sampler-*.csv</code> in the raw folder yet.</p>{% endif %}
</section>

<p class="none">Tables of this page as CSV, next to it: {{ csv_files | join(', ') }}.</p>
</main>
<script>{{ script | safe }}</script>
</body>
</html>
"""


def render(context: dict) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(style=STYLE, script=SCRIPT, **context)
