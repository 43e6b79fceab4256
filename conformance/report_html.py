"""Tables, sentences, plots and formatting of the HTML comparison report (no markup lives here).

The functions here turn the merged result rows (``report.load_results``), the worker environments
and the case manifest into DataFrames and sentences; ``report.py`` arranges them into sections and
:func:`render` fills the package's jinja2 templates (``conformance/templates/``) with them.

Per-output error details are data: the results CSV's ``errors`` column holds, per output,
``{"abs", "rel", "ratio", "where", "problem", "actual", "expected"}`` (``problem`` is ``""``,
``"missing"``, ``"shape"`` or ``"nonfinite"``; non-finite numbers are the strings ``"inf"``,
``"-inf"``, ``"nan"``).  :func:`parse_errors` reads it, :func:`what_differs` builds the sentence of a
difference from it; rows written before ``where``/``problem`` existed get a generic sentence from
their status and worst output.  A framework's own message (error, crash, timeout) is shown, never parsed.

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
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from conformance.outcomes import (BEHAVIOUR_CLASS, DIFFERENCE_STATUSES, KINDS, NOT_RUN, SEVERITY, STATUS_COLOURS,
                                  STATUS_LABELS, row_kind)

PLOT_FLOOR = 1e-6
DTYPE_COLOURS = {"float16": "#e4572e", "bfloat16": "#f3a712", "float32": "#29335c", "float64": "#669bbc"}
DTYPE_ORDER = list(DTYPE_COLOURS)
MISSING = "—"


# --------------------------------------------------------------------------------------------
# formatting numbers for people: 3 significant digits, SI units, "—" for missing
def _missing(value) -> bool:
    if value is None or (isinstance(value, str) and value.strip() in ("", "nan", "NaN")):
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def fmt_number(value) -> str:
    """3 significant digits; ``0`` for zero, ``∞`` for infinity, ``—`` for missing; text unchanged."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return MISSING
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value == 0:
            return "0"
        if value == int(value) and abs(value) < 1e6:
            return "%d" % value
        text = "%.3g" % value
        if "e" in text:  # 1.61e+13 -> 1.61×10¹³ reads as a number, not code
            mantissa, exponent = text.split("e")
            text = "%s×10%s" % (mantissa, str(int(exponent)).translate(_SUPERSCRIPT))
        return text
    if value is None or (isinstance(value, str) and not value.strip()):
        return MISSING  # a blank cell reads as "not computed"; say "none" instead
    return str(value)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt_ratio(value) -> str:
    return fmt_number(float(value)) if not _missing(value) else MISSING


def fmt_times(value) -> str:
    """A speed ratio: ``1.00×``."""
    return MISSING if _missing(value) else "%.2f×" % float(value)


def _si(value, units) -> str:
    if _missing(value):
        return MISSING
    value = float(value)
    if value == 0:
        return "0 %s" % units[-1][0]
    for unit, scale in units:
        if abs(value) >= 0.9995 * scale:  # 0.9999 ms is "1.00 ms", not "1e+03 µs"
            return "%.3g %s" % (value / scale, unit)
    unit, scale = units[-1]
    return "%.3g %s" % (value / scale, unit)


def fmt_seconds(value) -> str:
    return _si(value, (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)))


def fmt_bytes(value) -> str:
    if not _missing(value) and 0 <= float(value) < 1000:
        return "%d B" % float(value)
    return _si(value, (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0)))


def fmt_share(value) -> str:
    return MISSING if _missing(value) else "%.1f%%" % (100 * float(value))


# --------------------------------------------------------------------------------------------
# small helpers
def label_order(labels, impl_order=()) -> list:
    """``impl/device`` labels in the adapters' order (reference first), cpu before gpu."""
    rank = {name: i for i, name in enumerate(impl_order)}

    def key(label):
        impl, _, device = label.rpartition("/")
        return (rank.get(impl, len(rank)), impl, device != "cpu", device)

    return sorted(set(labels), key=key)


def breakable(name: str) -> str:
    """An identifier that may wrap after its underscores in a narrow header (zero-width spaces)."""
    return str(name).replace("_", "_\u200b")


def dtype_sorted(dtypes) -> list:
    return sorted(set(dtypes), key=lambda d: (DTYPE_ORDER.index(d) if d in DTYPE_ORDER else 9, d))


def _attr(text) -> str:
    """Styler puts tooltips in ``title="..."`` verbatim: escape them ourselves."""
    return html.escape(str(text), quote=True)


def _words(value) -> list:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return str(value).split()


def first_line(message) -> str:
    """The first line of a framework's message, shown as it is (never parsed)."""
    return str(message or "").strip().split("\n")[0]


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
# structured per-output errors
def _float(value) -> float:
    """A number of the ``errors`` JSON: floats, or the strings "inf", "-inf", "nan"."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def parse_errors(text) -> dict:
    """The ``errors`` column of a result row as ``{output: {abs, rel, ratio, where, problem, ...}}``.

    Numbers become floats (non-finite ones included); ``where``, ``problem``, ``actual`` and
    ``expected`` are kept only when the row has them (rows written before they existed do not).
    """
    if not text or not isinstance(text, str):
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    parsed = {}
    for name, info in (data.items() if isinstance(data, dict) else ()):
        if not isinstance(info, dict):
            continue
        entry = dict(info)
        for key in ("abs", "rel", "ratio"):
            entry[key] = _float(info.get(key))
        parsed[name] = entry
    return parsed


def _is_failing(info: dict) -> bool:
    return bool(info.get("problem")) or not info["ratio"] <= 1.0


def failing_outputs(errors: dict) -> list:
    """``(name, info)`` of the outputs that fail, the worst first (a problem, then the largest ratio)."""
    bad = [(name, info) for name, info in errors.items() if _is_failing(info)]
    return sorted(bad, key=lambda item: (not item[1].get("problem"), -_sortable(item[1]["ratio"]), item[0]))


def _sortable(value: float) -> float:
    return math.inf if math.isnan(value) else value


def worst_output(errors: dict):
    """``(name, info)`` of the failing output a sentence is about, or of the largest ratio; None when empty."""
    bad = failing_outputs(errors)
    if bad:
        return bad[0]
    if not errors:
        return None
    return max(errors.items(), key=lambda item: (_sortable(item[1]["ratio"]), item[0]))


def _value_text(value) -> str:
    if isinstance(value, str):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(value.strip().lower(), value)
    if isinstance(value, (list, tuple)):
        return _index_text(value)
    return fmt_number(_float(value)) if value is not None else MISSING


def _index_text(where) -> str:
    return "(%s)" % ", ".join(str(int(i)) for i in where)


def output_sentence(impl: str, name: str, info: dict) -> str:
    """One clause of what differs in one output, from its structured error entry."""
    problem = info.get("problem")
    where = info.get("where")
    at = " at index %s" % _index_text(where) if where else ""
    if problem == "missing":
        return "%s returns no `%s` output" % (impl, name)
    if problem == "shape":
        return "%s returns `%s` with shape %s where the reference has shape %s" % (
            impl, name, _value_text(info.get("actual")), _value_text(info.get("expected")))
    if problem == "nonfinite":
        return "%s returns %s in `%s`%s where the reference has %s" % (
            impl, _value_text(info.get("actual")), name, at, _value_text(info.get("expected")))
    if problem is None and not math.isfinite(info["ratio"]):  # an older row: only abs/rel/ratio
        return "%s's `%s` has a NaN/inf, a wrong shape or is missing where the reference has a finite value" % (
            impl, name)
    return "%s's `%s` is off by %s%s, %s times the tolerance" % (impl, name, fmt_number(info["abs"]), at,
                                                                fmt_number(info["ratio"]))


def what_differs(row, known_what: str = "", invalid: dict = None, lead: bool = True) -> str:
    """One plain sentence of what differs in a result row, from its structured fields.

    ``row`` has ``impl``, ``status``, ``parsed`` (its ``errors``, :func:`parse_errors`), ``message``,
    ``behaviour`` and ``worst_output``; ``invalid`` is the manifest's ``invalid`` entry of a bad-input
    case; a known deviation's sentence starts with what the registry says of it unless ``lead`` is false.
    """
    impl, status = row["impl"], row["status"]
    message = first_line(row.get("message"))
    if invalid:
        sentence = bad_input_sentence(impl, status, row.get("behaviour", ""), invalid, row.get("message", ""))
    elif status in ("fail", "xfail") and row["parsed"]:
        bad = failing_outputs(row["parsed"])
        if bad:
            sentence = output_sentence(impl, *bad[0])
            if len(bad) > 1:
                sentence += " (and %d more output%s)" % (len(bad) - 1, "s" if len(bad) > 2 else "")
        else:
            sentence = "%s differs from the reference" % impl
    elif status == "xfail" and message:  # a known deviation that raised, crashed or hung
        sentence = "%s: %s" % (impl, message[:240])
    elif status in ("fail", "xfail"):
        sentence = "%s differs from the reference%s" % (
            impl, " in `%s`" % row["worst_output"] if row.get("worst_output") else "")
    elif status == "error":
        sentence = "%s raises an error: %s" % (impl, message[:240] or "(no message)")
    elif status == "crash":
        sentence = "The %s worker process dies: %s" % (impl, message[:240])
    elif status == "timeout":
        sentence = "%s does not answer in time: %s" % (impl, message[:200])
    else:
        sentence = "%s: %s" % (status, message[:240])
    sentence = sentence.rstrip(".") + "."
    if status == "xfail" and lead:
        head = ("Known deviation: %s" % known_what).rstrip(".") if known_what else "Known deviation"
        return "%s. Here: %s" % (head, sentence)
    return sentence


def bad_input_sentence(impl, status, behaviour, invalid: dict, message="") -> str:
    """What an impl does with an invalid-input case, from the row's ``behaviour`` and the manifest."""
    reason, argument = invalid.get("reason", "invalid input"), invalid.get("argument", "?")
    if behaviour == "raises":
        if status == "fail":  # only the reference is held to naming the argument
            return "%s raises on %s without naming `%s`" % (impl, reason, argument)
        return "%s raises on %s" % (impl, reason)
    if behaviour in ("returns finite numbers", "returns NaN/inf"):
        return "%s accepts %s and %s" % (impl, reason, behaviour)
    if status == "unsupported":
        return "%s cannot express this case: %s" % (impl, first_line(message)[:200])
    return "%s %s on %s: %s" % (impl, behaviour or status, reason, first_line(message)[:200])


# --------------------------------------------------------------------------------------------
# tables
def prepare(results: pd.DataFrame, manifest: dict = None) -> pd.DataFrame:
    """One row per (case, impl, device) with ``label``, numeric ratios, the parsed ``errors``
    (column ``parsed``), ``invalid`` (a bad-input case: its manifest entry has ``invalid``, or
    without a manifest the row's tags say so) and ``kind`` (see :data:`KINDS`)."""
    frame = results.copy()
    for column in ("message", "deviation", "tags", "features", "errors", "tolerance", "mode", "behaviour",
                   "worst_output"):
        if column not in frame:
            frame[column] = ""
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "").astype(str)
    frame["tol_ratio"] = pd.to_numeric(frame.get("tol_ratio"), errors="coerce")
    frame["label"] = frame["impl"].astype(str) + "/" + frame["device"].astype(str)
    frame = frame.drop_duplicates(["case", "impl", "device"], keep="last").reset_index(drop=True)
    frame["parsed"] = frame["errors"].map(parse_errors)
    entries = {e["id"]: e for e in (manifest or {}).get("cases", [])}
    if entries:
        frame["invalid"] = frame["case"].map(lambda c: bool(entries.get(c, {}).get("invalid")))
    else:
        frame["invalid"] = frame["tags"].map(lambda t: "invalid" in t.split())
    frame["kind"] = [row_kind(s, i) for s, i in zip(frame["status"], frame["invalid"])]
    return frame


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
# the first screen: does each impl agree with the golden outputs, per op and dtype
VERDICT_ORDER = ("numeric", "broken", "known")  # the worst present names the cell
VERDICT_WORDS = {"numeric": "fail", "broken": "error", "known": "known"}


def verdict_matrix(frame: pd.DataFrame, labels: list, ops: list):
    """(cell text, CSS classes, tooltips): rows (op, dtype), one column per impl/device.

    Only valid-input cases count: bad input and capability limits have their own sections.  A
    cell reads ``✓ 64`` when every case that ran agrees, else the count of each kind of problem.
    """
    valid = frame[~frame["invalid"]]
    keys = [(op, dtype) for op in ops for dtype in dtype_sorted(valid.loc[valid["op"] == op, "dtype"])]
    if not keys:
        empty = pd.DataFrame()
        return empty, empty, empty
    index = pd.MultiIndex.from_tuples(keys, names=["op", "dtype"])
    text = pd.DataFrame("", index=index, columns=labels)
    classes = pd.DataFrame("", index=index, columns=labels)
    tips = pd.DataFrame("", index=index, columns=labels)
    for (op, dtype, label), group in valid.groupby(["op", "dtype", "label"]):
        if label not in text.columns:
            continue
        kinds = group["kind"].value_counts()
        ran = int(len(group) - kinds.get("unsupported", 0))
        present = [k for k in VERDICT_ORDER if kinds.get(k, 0)]
        if ran == 0:
            cell, css = "unsupported", "k-unsupported"
        elif present:
            cell = " · ".join("%d %s" % (kinds[k], VERDICT_WORDS[k]) for k in present) + " of %d" % ran
            css = "k-" + present[0]
        else:
            cell, css = "✓ %d" % ran, "k-pass"
        tip = ", ".join("%d %s" % (n, k) for k, n in kinds.items())
        problems = group[group["kind"].isin(VERDICT_ORDER)]["case"].tolist()
        if problems:
            tip += "\n" + " ".join(problems[:10]) + (" ..." if len(problems) > 10 else "")
        text.loc[(op, dtype), label] = cell
        classes.loc[(op, dtype), label] = css
        tips.loc[(op, dtype), label] = tip
    classes = classes.where(text != "", "k-unsupported")
    text = text.where(text != "", "not run")
    shown = pd.MultiIndex.from_tuples([(breakable(op), dtype) for op, dtype in keys])
    for table in (text, classes, tips):
        table.index = shown
    return text, classes, tips


# --------------------------------------------------------------------------------------------
# bad input, capability limits, sampler verdicts
def _bad_input_cell(row) -> tuple:
    """(text, CSS class) of one impl on one invalid-input case; never blank."""
    if row is None:
        return "not run", "bi-none"
    behaviour, status = row["behaviour"], row["status"]
    if status == "unsupported":
        return "unsupported: %s" % (first_line(row["message"])[:120] or "no reason given"), "bi-none"
    if behaviour == "raises" and status == "fail":  # the reference must name the argument
        return "raises without naming the argument", "bi-wrong"
    if behaviour:
        return behaviour, BEHAVIOUR_CLASS.get(behaviour, "bi-broken")
    return status, "bi-broken"


def bad_input_table(frame: pd.DataFrame, labels: list, entries: dict = None):
    """(table, CSS classes): one row per invalid-input case (argument, reason), one column per impl."""
    bad = frame[frame["invalid"]]
    if bad.empty:
        return pd.DataFrame(), pd.DataFrame()
    entries = entries or {}
    by_key = {(r["case"], r["label"]): r for r in bad.to_dict("records")}
    shown = [label for label in labels if label in set(bad["label"])]
    rows, css = [], []
    for case in dict.fromkeys(bad["case"]):
        invalid = entries.get(case, {}).get("invalid") or {}
        row = {"case": case, "argument": invalid.get("argument", MISSING), "reason": invalid.get("reason", MISSING)}
        row_css = {"case": "ident", "argument": "code", "reason": "desc"}
        for label in shown:
            row[label], row_css[label] = _bad_input_cell(by_key.get((case, label)))
        rows.append(row)
        css.append(row_css)
    table = pd.DataFrame(rows)
    return table, pd.DataFrame(css, columns=table.columns).fillna("")


def bad_input_tally(frame: pd.DataFrame, labels: list) -> pd.DataFrame:
    """Per impl/device: on how many invalid-input cases it raises, returns NaN/inf or finite numbers."""
    bad = frame[frame["invalid"]]
    if bad.empty:
        return pd.DataFrame()
    what = pd.Series([_bad_input_cell(row)[0].split(":")[0] for row in bad.to_dict("records")], index=bad.index,
                     name="behaviour")
    table = pd.crosstab(bad["label"], what)
    order = ["raises", "raises without naming the argument", "returns NaN/inf", "returns finite numbers",
             "masked by a known deviation", "not tested natively", "not applicable (composed op)", "unsupported"]
    columns = [c for c in order if c in table.columns] + [c for c in table.columns if c not in order]
    table = table.reindex(index=[l for l in labels if l in table.index], columns=columns, fill_value=0)
    table.index.name = "impl/device"
    table.columns.name = None
    return table.reset_index()


def capability_limits(frame: pd.DataFrame, labels: list) -> pd.DataFrame:
    """Unsupported rows per impl/device, op and the adapter's reason (shown as written)."""
    rows = frame[frame["status"] == "unsupported"]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(reason=rows["message"].map(lambda m: first_line(m)[:200] or MISSING))
    table = (rows.groupby(["label", "op", "reason"])
             .agg(cases=("case", "count"), dtypes=("dtype", lambda d: " ".join(dtype_sorted(d)))).reset_index())
    rank = {label: i for i, label in enumerate(labels)}
    table = table.assign(_rank=table["label"].map(rank), _n=-table["cases"]).sort_values(["_rank", "_n", "op"])
    table = table.rename(columns={"label": "impl/device"})
    return table[["impl/device", "op", "cases", "dtypes", "reason"]].reset_index(drop=True)


def declared_limits_table(capabilities: pd.DataFrame, labels: list) -> pd.DataFrame:
    """What each framework did with each dtype and feature its adapter declares unsupported (the runner
    tries them once per run): a real limit is a finding, shown with the framework's own message; a
    declaration the framework contradicts (it ran and agreed with the oracle) is a ``fail``."""
    frame = capabilities.copy()
    frame["impl/device"] = frame["impl"].astype(str) + "/" + frame["device"].astype(str)
    frame["message"] = frame["message"].fillna("").astype(str).map(lambda m: first_line(m)[:300])
    frame["finding"] = frame["outcome"].map({
        "agrees with the oracle": "declaration contradicted", "raises": "framework limit",
        "wrong answer": "framework limit (wrong answer)", "crash": "framework limit (crash)",
        "timeout": "framework limit (hang)", "adapter cannot express it": "adapter limitation",
        "no case to try": "unchecked"}).fillna("framework limit")
    rank = {label: i for i, label in enumerate(labels)}
    frame = frame.assign(_rank=frame["impl/device"].map(lambda l: rank.get(l, len(rank)))).sort_values(
        ["_rank", "op", "limit"], kind="stable")
    columns = ["impl/device", "op", "limit", "finding", "status", "outcome", "message", "case"]
    return frame[[c for c in columns if c in frame]].reset_index(drop=True)


SAMPLER_SETTING = ["range_max", "num_sampled", "unique", "num_true"]


def sampler_verdicts(sampler: pd.DataFrame, impl_order=()) -> list:
    """One verdict per impl/device of the sampler checks: fail (its failing tests listed), pass or unsupported."""
    if "status" not in sampler or "impl" not in sampler:
        return []
    frame = sampler.copy()
    device = frame["device"] if "device" in frame else pd.Series("cpu", index=frame.index)
    frame["label"] = frame["impl"].astype(str) + "/" + device.astype(str)
    frame["message"] = frame.get("message", pd.Series("", index=frame.index)).fillna("").astype(str)
    verdicts = []
    for label in label_order(frame["label"], impl_order):
        rows = frame[frame["label"] == label]
        ran = rows[rows["status"] != "unsupported"]
        failing = ran[~ran["status"].isin(("pass", "approximate"))]
        approximate = ran[ran["status"] == "approximate"]  # the documented unique=True rule (sampler.py)
        unsupported = rows[rows["status"] == "unsupported"]
        columns = [c for c in ["check", *SAMPLER_SETTING, "p_value", "p_holm", "status", "message"] if c in rows]
        shown = failing[columns].assign(message=failing["message"].map(lambda m: first_line(m)[:300]))
        verdicts.append({
            "label": label, "ran": len(ran), "passed": int((ran["status"] == "pass").sum()),
            "failed": len(failing), "unsupported": len(unsupported), "approximate": len(approximate),
            "verdict": "fail" if len(failing) else "pass" if len(ran) else "unsupported",
            "checks_failing": " ".join(sorted(set(failing.get("check", ())))),
            "reason": first_line(unsupported["message"].iloc[0]) if len(unsupported) else "",
            "failing": shown.reset_index(drop=True),
        })
    rank = {"fail": 0, "pass": 1, "unsupported": 2}
    return sorted(verdicts, key=lambda v: rank[v["verdict"]])


# --------------------------------------------------------------------------------------------
# differences found
DIFFERENCE_COLUMNS = ["source", "kind", "impl", "devices", "op", "mode", "status", "cases", "dtypes", "shared features", "what differs",
                      "finding", "worst output", "problem", "smallest case", "description", "reproducer", "known deviation",
                      "framework reproducer", "all cases"]
# Who a difference is about: the framework's own op, or the adapter's composition of framework primitives.
SOURCES = {"framework": "the framework's own op (declared native): a finding about the framework",
           "adapter": "an op the adapter composes from framework primitives: a limitation of this adapter, "
                      "not a finding about the framework"}
KIND_RANK = {"numeric": 0, "broken": 1, "known": 2, "bad input": 3}


def ops_with_conventions() -> list:
    from impls.ops import OPS  # noqa: PLC0415

    return [name for name, op in OPS.items() if op.conventions]


def convention_of(impl: str, op: str) -> str:
    """The convention an impl's adapter declares for ``op`` ("" for an impl this checkout does not know)."""
    from impls import support  # noqa: PLC0415

    try:
        return support.convention_of(impl, op)
    except (ValueError, KeyError, ImportError):
        return ""


def convention_table() -> pd.DataFrame:
    """The registry's documented conventions (``OpInfo.conventions``): one row per op, axis and
    framework convention, with its text and source."""
    from impls.ops import OPS  # noqa: PLC0415

    rows = [{"op": name, "where they differ": axis.replace("_", " "), "convention": convention,
             "documented rule": rule.text, "source": rule.source, "verified": rule.verified or "not yet"}
            for name, op in OPS.items() if op.conventions
            for axis, rules in op.conventions.items() for convention, rule in rules.items()]
    return pd.DataFrame(rows, columns=["op", "where they differ", "convention", "documented rule", "source",
                                       "verified"])


def convention_differences(manifest: dict, cases_dir) -> pd.DataFrame:
    """Per case and output where documented conventions give different numbers (from the goldens,
    not from running frameworks): the base convention's largest |value| and, per convention, the
    largest |difference| from it ("no formula" where the convention documents none for the case), and
    whether that is beyond the case's comparison tolerance (a real convention difference) or
    rounding only (the same formula evaluated in another order)."""
    from conformance import compare  # noqa: PLC0415
    from impls.caseio import Case  # noqa: PLC0415
    from impls.ops import OPS  # noqa: PLC0415
    from impls.reference import CONVENTIONS  # noqa: PLC0415

    rows = []
    for entry in (manifest or {}).get("cases", []):
        op = OPS.get(entry["op"])
        path = Path(cases_dir) / entry["file"]
        if op is None or not op.conventions or entry.get("invalid") or not path.is_file():
            continue  # (a manifest without its case files: nothing to read the goldens from)
        case = Case.read(path)
        conventions = case.meta.get("conventions", {})
        names = sorted({name for differ in conventions.values() for name in differ})
        if not names:
            continue
        tol = compare.tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
        scales = compare.output_scales(case)
        base = CONVENTIONS[0]  # case.golden is the first convention's (meta.json's keys are sorted)
        for name in names:
            golden = case.golden[name]
            row = {"case": case.id, "output": name, "%s |value|" % base: _nan_max(np.abs(golden))}
            beyond = []
            for convention in CONVENTIONS:
                if convention == base:
                    continue
                if convention not in conventions:
                    row[convention] = "no formula"
                    continue
                other = case.golden_for(convention)[name]
                with np.errstate(invalid="ignore"):
                    delta = np.abs(other - golden)
                nan_mismatch = bool((np.isnan(other) != np.isnan(golden)).any())
                row[convention] = np.inf if nan_mismatch else _nan_max(delta)
                allowed = tol.rtol * (np.abs(np.where(np.isfinite(golden), golden, 0)) + scales.get(name, 1.0))
                if nan_mismatch or bool((np.nan_to_num(delta, nan=0.0) > allowed).any()):
                    beyond.append(convention)
            row["beyond tolerance"] = ", ".join(beyond) if beyond else "rounding only"
            rows.append(row)
    columns = ["case", "output", "%s |value|" % CONVENTIONS[0]] + list(CONVENTIONS[1:]) + ["beyond tolerance"]
    return pd.DataFrame(rows, columns=columns)


def _nan_max(values) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size else float("nan")


def top_findings(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` groups of the differences table for the first screen: every numeric
    disagreement and broken run first, then known deviations and bad input taking turns."""
    rank = table["kind"].map(lambda k: KIND_RANK.get(k, 9))
    turn = table.groupby("kind").cumcount()
    order = pd.DataFrame({"tier": (rank >= 2).astype(int), "turn": turn.where(rank >= 2, 0), "rank": rank,
                          "row": range(len(table))}, index=table.index)
    return table.assign(row=range(len(table))).loc[order.sort_values(["tier", "turn", "rank", "row"]).index].head(n)


def reproducer(impl: str, device: str, case: str) -> str:
    device_flag = "" if device == "cpu" else " --device %s" % device
    return "python -m conformance run --impl %s%s --select '%s' --keep-outputs" % (impl, device_flag, case)


def _cause(row) -> tuple:
    """The worst output and its problem kind (for bad input: what the impl did), the grouping key."""
    if row["kind"] == "bad input":
        return "", row["behaviour"] or row["status"]
    worst = worst_output(row["parsed"])
    if worst is None:
        return row["worst_output"], ""
    name, info = worst
    problem = info.get("problem")
    if problem is None:  # an older row: non-finite ratio, or numeric
        problem = "" if math.isfinite(info["ratio"]) else "nonfinite/shape/missing"
    return name, problem


def differences(frame: pd.DataFrame, manifest: dict, cases_dir, registry=None, statuses=DIFFERENCE_STATUSES,
                impl_order=()) -> pd.DataFrame:
    """Every non-passing row grouped by cause: impl, op, status, known deviation, worst output and the
    kind of its problem (all structured fields; messages are never compared)."""
    rows = frame[frame["status"].isin(statuses)].copy()
    if rows.empty:
        return pd.DataFrame(columns=DIFFERENCE_COLUMNS)
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

    whats = {d.key: d.what for d in registry.entries} if registry is not None else {}
    scripts = {d.key: d.reproducer for d in registry.entries} if registry is not None else {}
    causes = [_cause(row) for _, row in rows.iterrows()]
    rows["_output"] = [c[0] for c in causes]
    rows["_problem"] = [c[1] for c in causes]
    groups = []
    keys = ["kind", "impl", "op", "status", "deviation", "_output", "_problem"]
    for (kind, impl, op, status, deviation, output, problem), group in rows.groupby(keys, sort=False):
        group = group.assign(size=group["case"].map(size)).sort_values(["size", "case"])
        smallest = group.iloc[0]
        feature_sets = [set(_words(f)) for f in group["features"]]
        shared = set.intersection(*feature_sets) if feature_sets else set()
        entry = entries.get(smallest["case"], {})
        mode = smallest.get("mode", "")
        groups.append({
            "source": "adapter" if mode == "composed" else "framework", "mode": mode,
            "kind": kind, "impl": impl,
            "devices": " ".join(sorted(group["device"].unique(), key=lambda d: (d != "cpu", d))),
            "op": op, "status": status, "cases": len(group), "dtypes": " ".join(dtype_sorted(group["dtype"])),
            "shared features": " ".join(sorted(shared)) or MISSING,
            "what differs": what_differs(smallest, whats.get(deviation, ""), entry.get("invalid")),
            "finding": what_differs(smallest, "", entry.get("invalid"), lead=False),
            "worst output": output, "problem": problem,
            "smallest case": smallest["case"], "description": entry.get("description", ""),
            "reproducer": reproducer(impl, smallest["device"], smallest["case"]),
            "known deviation": deviation,
            "framework reproducer": scripts.get(deviation, ""),
            "all cases": " ".join(sorted(group["case"].unique())),
        })
    table = pd.DataFrame(groups, columns=DIFFERENCE_COLUMNS)
    rank = {name: i for i, name in enumerate(impl_order)}
    table["_source"] = table["source"].map(lambda k: list(SOURCES).index(k))
    table["_kind"] = table["kind"].map(lambda k: KIND_RANK.get(k, 9))
    table["_impl"] = table["impl"].map(lambda i: rank.get(i, len(rank)))
    table["_sev"] = table["status"].map(lambda s: SEVERITY.index(s) if s in SEVERITY else 99)
    table = table.sort_values(["_source", "_kind", "cases", "_impl", "impl", "_sev", "op"],
                              ascending=[True, True, False, True, True, True, True], kind="stable")
    return table.drop(columns=["_source", "_kind", "_impl", "_sev"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# pairwise agreement
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


class PairJudge:
    """Whether two runs' outputs of one case are within one tolerance of each other.

    The rule: max over outputs and elements of |A - B| <= the case's own tolerance
    ``rtol * (|golden| + scale)``, equal NaN/inf agreeing.  Measured exactly from outputs kept with
    ``--keep-outputs`` (``exact_difference``); otherwise bounded from the stored per-output error
    ratios (``pair_bounds``): *agree* when r_A + r_B <= 1, *disagree* when |r_A - r_B| > 1,
    *undetermined* in between."""

    def __init__(self, frame: pd.DataFrame, raw_dir=None, manifest=None, cases_dir=None):
        from impls.caseio import Case, read_npz

        self.read_case, self.read_npz = Case.read, read_npz
        self.entries = {e["id"]: e for e in (manifest or {}).get("cases", [])}
        self.outputs_root = Path(raw_dir) / "outputs" if raw_dir else None
        self.cases_dir = cases_dir
        self.output_cache, self.case_cache = {}, {}
        compared = frame[frame["errors"] != ""]
        # label -> case -> {output: error ratio}, for the rows that were compared with the golden outputs
        self.ratios = {label: dict(zip(group["case"], group["parsed"].map(lambda e: {n: i["ratio"] for n, i in e.items()})))
                       for label, group in compared.groupby("label")}

    def _outputs(self, label, case_id):
        key = (label, case_id)
        if key not in self.output_cache:
            impl, _, device = label.rpartition("/")
            root = self.outputs_root
            path = root / ("%s-%s" % (impl, device)) / (case_id + ".npz") if root else None
            self.output_cache[key] = self.read_npz(path)[0] if path and path.is_file() else None
        return self.output_cache[key]

    def _case(self, case_id):
        if case_id not in self.case_cache:
            entry = self.entries.get(case_id)
            path = Path(self.cases_dir) / entry["file"] if entry and self.cases_dir else None
            self.case_cache[case_id] = self.read_case(path) if path and path.is_file() else None
        return self.case_cache[case_id]

    def compared(self, label) -> dict:
        return self.ratios.get(label, {})

    def verdict(self, a, b, case_id):
        """``(verdict, exact difference or None)``: verdict ``agree``, ``disagree``, ``undetermined``,
        or None when the two runs have no output in common to compare."""
        oa, ob = self._outputs(a, case_id), self._outputs(b, case_id)
        if oa is not None and ob is not None and self._case(case_id) is not None:
            try:
                d = exact_difference(self._case(case_id), oa, ob)
            except Exception:  # a malformed output file: fall back to the bounds
                d = None
            if d is not None:
                return ("agree" if d <= 1.0 else "disagree"), d
        bounds = pair_bounds(self.compared(a).get(case_id, {}), self.compared(b).get(case_id, {}))
        if bounds is None:
            return None, None
        low, high = bounds
        return ("agree" if high <= 1.0 else "disagree" if low > 1.0 else "undetermined"), None


def agreement(frame: pd.DataFrame, labels: list, raw_dir=None, manifest=None, cases_dir=None) -> pd.DataFrame:
    """One row per ordered pair of impl/device labels (both directions, diagonal excluded)."""
    judge = PairJudge(frame, raw_dir, manifest, cases_dir)
    rows = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            counts = {"agree": 0, "disagree": 0, "undetermined": 0, "exact": 0}
            worst_exact = 0.0
            disagreeing = []
            for case_id in sorted(set(judge.compared(a)) & set(judge.compared(b))):
                verdict, exact = judge.verdict(a, b, case_id)
                if verdict is None:
                    continue
                if exact is not None:
                    counts["exact"] += 1
                    worst_exact = max(worst_exact, exact)
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


def compiled_agreement(frame: pd.DataFrame, compiled_modes: dict, raw_dir=None, manifest=None, cases_dir=None):
    """Each compiled mode against its own eager impl, case by case (``compiled_modes``: compiled impl
    -> eager impl, from the adapters' ``compiled_from``).

    A case *agrees* when both runs reached the same verdict (status; for bad input also the same
    behaviour) and, where both outputs were compared with the golden ones, the outputs are within one
    tolerance of each other (:class:`PairJudge`).  Returns ``(per op counts, differing cases)``.
    """
    judge = PairJudge(frame, raw_dir, manifest, cases_dir)
    rows = frame.set_index(["label", "case"])
    counts, differing = [], []
    for compiled, eager in compiled_modes.items():
        for device in sorted(set(frame.loc[frame["impl"] == compiled, "device"])):
            a, b = "%s/%s" % (eager, device), "%s/%s" % (compiled, device)
            both = sorted(set(frame.loc[frame["label"] == a, "case"]) & set(frame.loc[frame["label"] == b, "case"]))
            tally = {}
            for case_id in both:
                ra, rb = rows.loc[(a, case_id)], rows.loc[(b, case_id)]
                if ra["status"] in NOT_RUN and rb["status"] in NOT_RUN:
                    continue
                key = (ra["op"],)
                t = tally.setdefault(key, {"cases": 0, "agree": 0, "verdict differs": 0, "outputs differ": 0,
                                           "undetermined": 0})
                t["cases"] += 1
                same_verdict = ra["status"] == rb["status"] and ra["behaviour"] == rb["behaviour"]
                verdict, exact = judge.verdict(a, b, case_id)
                if not same_verdict:
                    outcome = "verdict differs"
                elif verdict in ("disagree", "undetermined"):
                    outcome = "outputs differ" if verdict == "disagree" else "undetermined"
                else:
                    outcome = "agree"
                t[outcome] += 1
                if outcome != "agree":
                    differing.append({
                        "eager": a, "compiled": b, "op": ra["op"], "case": case_id, "outcome": outcome,
                        "eager status": ra["status"], "compiled status": rb["status"],
                        "eager ratio": ra["tol_ratio"], "compiled ratio": rb["tol_ratio"],
                        "difference / tolerance": exact if exact is not None else math.nan,
                        "eager message": first_line(ra["message"]), "compiled message": first_line(rb["message"])})
            for (op,), t in tally.items():
                counts.append({"eager": a, "compiled": b, "op": op, **t,
                               "agree share": t["agree"] / t["cases"] if t["cases"] else math.nan})
    count_columns = ["eager", "compiled", "op", "cases", "agree", "verdict differs", "outputs differ", "undetermined",
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
    ran = frame[frame["status"].isin(("pass", "fail", "xfail", "xpass")) & ~frame["invalid"]].copy()
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
        ax.barh(range(len(labels)), values, left=left, color=STATUS_COLOURS[status], label=status, height=0.7)
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
# rendering: pandas Styler for tables, the package's jinja2 templates for the page
def table_html(table: pd.DataFrame, uuid: str, *, classes=None, tips=None, fmt=None, sortable=True,
               index=False, extra_class="") -> str:
    """A DataFrame as an HTML table through pandas Styler (cells escaped, CSS classes, tooltips)."""
    styler = table.style
    if not index:
        styler = styler.hide(axis="index")
    styler = styler.format(fmt_number, escape="html", na_rep=MISSING)
    if fmt:  # a dict formatter resets the columns it does not name unless given a subset
        styler = styler.format(fmt, subset=list(fmt), escape="html", na_rep=MISSING)
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


def prose_classes(table, columns):
    """CSS classes that let the named text columns wrap at a readable width."""
    classes = _blank_classes(table)
    for column in columns:
        if column in table:
            classes[column] = "prose"
    return classes


def _status_count_classes(table, statuses):
    classes = _blank_classes(table)
    for status in statuses:
        if status in table:
            classes[status] = table[status].map(lambda n, s=status: "num st-%s" % s if n else "num zero")
    return classes


def overview_html(table: pd.DataFrame, statuses) -> str:
    classes = _status_count_classes(table, statuses)
    classes["cases"] = "num"
    classes["median ratio"] = "num"
    classes["worst ratio"] = table["worst ratio"].map(lambda r: "num bad" if r > 1 else "num")
    return table_html(table, "overview", classes=classes)


def summary_html(table: pd.DataFrame, statuses) -> str:
    table = table.rename(columns={"worst_tol_ratio": "worst ratio"})
    classes = _status_count_classes(table, statuses)
    classes["worst ratio"] = table["worst ratio"].map(lambda r: "num bad" if r > 1 else "num")
    return table_html(table, "summary", classes=classes)


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
    return table_html(table, "cases", classes=classes, tips=tips)


def agreement_html(share: pd.DataFrame, text: pd.DataFrame, tips: pd.DataFrame):
    def shade(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "color: #999"
        # white (all agree) to red (none agree)
        level = int(round(255 * (0.35 + 0.65 * float(value))))
        return "background-color: rgb(255, %d, %d)" % (level, level) if value < 1 else "background-color: #d7f0d4"

    share_styler = (share.style.map(shade)
                    .format(fmt_share, na_rep=MISSING)
                    .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
                    .set_tooltips(tips.map(lambda t: _attr(t) if t else ""), as_title_attribute=True))
    share_html = share_styler.to_html(table_uuid="agreement", table_attributes='class="report matrix"')
    counts_html = (text.style.format(escape="html").format_index(escape="html", axis=0)
                   .format_index(escape="html", axis=1)
                   .set_tooltips(tips.map(lambda t: _attr(t) if t else ""), as_title_attribute=True)
                   .to_html(table_uuid="agreement_counts", table_attributes='class="report matrix"'))
    return share_html, counts_html


def matrix_html(matrix: pd.DataFrame, classes: pd.DataFrame, tips: pd.DataFrame, uuid: str, index=True) -> str:
    """A small labelled matrix (rows and columns named) with a CSS class and a tooltip per cell."""
    styler = matrix.style.set_td_classes(classes).format(escape="html", na_rep=MISSING)
    styler = styler.format_index(escape="html", axis=1)
    styler = styler.format_index(escape="html", axis=0).hide(axis="index", names=True) if index \
        else styler.hide(axis="index")
    if tips is not None:
        styler = styler.set_tooltips(tips.map(lambda t: _attr(t) if t else ""), as_title_attribute=True)
    return styler.to_html(table_uuid=uuid, table_attributes='class="report matrix"')


def modes_html(matrix: pd.DataFrame, tips: pd.DataFrame) -> str:
    classes = matrix.map(lambda m: "mode-%s" % m if m in ("native", "composed") else "mode-none")
    return matrix_html(matrix, classes, tips, "modes")


def generic_html(table: pd.DataFrame, uuid: str) -> str:
    return table_html(table.reset_index(drop=True), uuid)


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("conformance", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(context: dict) -> str:
    """The page: ``templates/report.html.j2`` with each section's own template included in order."""
    import markupsafe

    env = _environment()
    env.filters.update(breakable=breakable)

    def asset(name):  # the page's CSS and script, inlined as they are: the page is one file
        return markupsafe.Markup(env.loader.get_source(env, name)[0])

    return env.get_template("report.html.j2").render(style=asset("report.css"), script=asset("report.js"), **context)
