"""Whether an impl can run a case on a device: decided here, and only here.

The runner (once per case, of the case's metadata, in ``runner.execute_case``: the pytest plugin and
the search run cases through it), the search's draws and the benchmark (both sides) call
:func:`why_unsupported`; the corpus's manifest says nothing about impls, so adding or changing an
adapter never changes a corpus file.

Worker side: no framework (an adapter's declarations are read, its ``load`` is never called).
"""
from __future__ import annotations

from typing import Optional


def why_unsupported(adapter, device: str, meta: dict) -> Optional[str]:
    """``None`` when the impl can express the case on ``device``, else the reason why not.

    ``adapter``: an :class:`impls.base.Adapter` or an impl name.  ``meta``: a case's metadata, or
    any dict with ``op``, ``dtype`` and (optionally) ``features``, e.g. a benchmark spec's.
    """
    if isinstance(adapter, str):
        from impls import get_adapter  # noqa: PLC0415 - impls/__init__ imports nothing of ours

        adapter = get_adapter(adapter)
    if device not in adapter.devices:
        return "%s does not run on %s" % (adapter.name, device)
    support = adapter.ops.get(meta["op"])
    if support is None:
        elsewhere = adapter.ops_elsewhere.get(meta["op"])
        if elsewhere:
            return "%s runs %s as impl %s" % (adapter.name, meta["op"], elsewhere)
        return "%s has no %s" % (adapter.name, meta["op"])
    if meta["dtype"] not in support.dtypes:
        return "%s %s does not take %s" % (adapter.name, meta["op"], meta["dtype"])
    missing = sorted(support.unsupported_features.intersection(meta.get("features", ())))
    if missing:
        return "%s %s cannot express %s" % (adapter.name, meta["op"], ", ".join(missing))
    undefined = meta.get("undefined_conventions", {}).get(support.convention)
    if undefined:  # no golden: the framework's own documentation gives no formula for the case
        return "%s follows the %s convention, which documents no formula here: %s" % (
            adapter.name, support.convention, undefined.split(": ", 1)[-1])
    return None


def convention_of(adapter, op: str) -> str:
    """The documented convention an impl follows for ``op`` (``""``: the base golden)."""
    if isinstance(adapter, str):
        from impls import get_adapter  # noqa: PLC0415

        adapter = get_adapter(adapter)
    support = adapter.ops.get(op)
    return support.convention if support is not None else ""


def why_not_applicable(adapter, meta: dict) -> Optional[str]:
    """``None`` when a bad-input case tests the impl's own contract, else why it does not.

    Only a framework's own op has a contract for bad input.  An op the adapter composes from
    primitives would be judged on what the adapter chose to check, so its bad-input cases are not
    run: "not applicable", counted apart from the framework's results.
    """
    if not meta.get("invalid"):
        return None
    if isinstance(adapter, str):
        from impls import get_adapter  # noqa: PLC0415

        adapter = get_adapter(adapter)
    support = adapter.ops.get(meta["op"])
    if support is not None and support.mode == "composed":
        return ("%s composes %s itself: the framework has no such op, so no contract for bad input to test"
                % (adapter.name, meta["op"]))
    return None
