"""The plain sentences of what differs in a result row, built from its structured fields.

:func:`what_differs` reads the row's status, its parsed per-output errors (:mod:`.errors`) and, for a
bad-input case, the row's ``behaviour`` and the manifest's ``invalid`` entry; rows written before
``where``/``problem`` existed get a generic sentence from their status and worst output.  A
framework's own message (error, crash, timeout) is shown, never parsed.
"""
from __future__ import annotations

import math

from conformance import outcomes as O
from conformance.report.errors import failing_outputs, number
from conformance.report.fmt import MISSING, first_line, fmt_number


def _value_text(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, (list, tuple)):
        return _index_text(value)
    return fmt_number(number(value)) if value is not None else MISSING


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
    return "%s's `%s` is off by %s%s, %s times the tolerance" % (impl, name, fmt_number(info["abs"]), at,
                                                                fmt_number(info["ratio"]))


def what_differs(row, known_what: str = "", invalid: dict = None, lead: bool = True) -> str:
    """One plain sentence of what differs in a result row, from its structured fields.

    ``row`` has ``impl``, ``status``, ``parsed`` (its per-output errors, ``data.load_details``),
    ``message``, ``behaviour`` and ``worst_output``; ``invalid`` is the manifest's ``invalid`` entry of a
    bad-input case; a known deviation's sentence starts with what the registry says of it unless
    ``lead`` is false.
    """
    impl, status = row["impl"], row["status"]
    message = first_line(row.get("message"))
    if invalid:
        sentence = bad_input_sentence(impl, status, row.get("behaviour", ""), invalid, row.get("message", ""))
    elif status in (O.FAIL, O.XFAIL) and row["parsed"]:
        bad = failing_outputs(row["parsed"])
        if bad:
            sentence = output_sentence(impl, *bad[0])
            if len(bad) > 1:
                sentence += " (and %d more output%s)" % (len(bad) - 1, "s" if len(bad) > 2 else "")
        else:
            sentence = "%s differs from the reference" % impl
    elif status == O.XFAIL and message:  # a known deviation that raised, crashed or hung
        sentence = "%s: %s" % (impl, message[:240])
    elif status in (O.FAIL, O.XFAIL):
        sentence = "%s differs from the reference%s" % (
            impl, " in `%s`" % row["worst_output"] if row.get("worst_output") else "")
    elif status == O.ERROR:
        sentence = "%s raises an error: %s" % (impl, message[:240] or "(no message)")
    elif status == O.CRASH:
        sentence = "The %s worker process dies: %s" % (impl, message[:240])
    elif status == O.TIMEOUT:
        sentence = "%s does not answer in time: %s" % (impl, message[:200])
    else:
        sentence = "%s: %s" % (status, message[:240])
    sentence = sentence.rstrip(".") + "."
    if status == O.XFAIL and lead:
        head = ("Known deviation: %s" % known_what).rstrip(".") if known_what else "Known deviation"
        return "%s. Here: %s" % (head, sentence)
    return sentence


def bad_input_sentence(impl, status, behaviour, invalid: dict, message="") -> str:
    """What an impl does with an invalid-input case, from the row's ``behaviour`` and the manifest."""
    reason, argument = invalid.get("reason", "invalid input"), invalid.get("argument", "?")
    if behaviour == O.RAISES:
        if status == O.FAIL:  # only the reference is held to naming the argument
            return "%s raises on %s without naming `%s`" % (impl, reason, argument)
        return "%s raises on %s" % (impl, reason)
    if behaviour in O.ACCEPTED:
        return "%s accepts %s and %s" % (impl, reason, behaviour)
    if status == O.UNSUPPORTED:
        return "%s cannot express this case: %s" % (impl, first_line(message)[:200])
    return "%s %s on %s: %s" % (impl, behaviour or status, reason, first_line(message)[:200])
