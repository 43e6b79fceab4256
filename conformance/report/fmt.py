"""Formatting for people, shared by every section: numbers (3 significant digits, SI units, "—" for
missing), the order of impl/device labels and dtypes, and the first line of a framework's message."""
from __future__ import annotations

import html
import math

import numpy as np

MISSING = "—"
DTYPE_COLOURS = {"float16": "#e4572e", "bfloat16": "#f3a712", "float32": "#29335c", "float64": "#669bbc"}
DTYPE_ORDER = list(DTYPE_COLOURS)
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def is_missing(value) -> bool:
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


def fmt_times(value) -> str:
    """A speed ratio: ``1.00×``."""
    return MISSING if is_missing(value) else "%.2f×" % float(value)


def _si(value, units) -> str:
    if is_missing(value):
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
    if not is_missing(value) and 0 <= float(value) < 1000:
        return "%d B" % float(value)
    return _si(value, (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0)))


def fmt_share(value) -> str:
    return MISSING if is_missing(value) else "%.1f%%" % (100 * float(value))


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


def attr(text) -> str:
    """Styler puts tooltips in ``title="..."`` verbatim: escape them ourselves."""
    return html.escape(str(text), quote=True)


def words(value) -> list:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return str(value).split()


def first_line(message) -> str:
    """The first line of a framework's message, shown as it is (never parsed)."""
    return str(message or "").strip().split("\n")[0]


def shape_text(row) -> str:
    """A benchmark shape as the speed and memory tables show it: ``B=128 K=10^4 S=512 D=128``."""
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
