"""What every reproducer of ``repro/found/`` does: run one impl on one stored found case and assert
that it still diverges the way ``conformance search`` found (exit status 0 means it still shows).

Imports no framework itself; the impl's adapter imports its one framework in ``load``.
"""
from __future__ import annotations

from conformance.compare import compare
from impls import get_adapter
from impls.caseio import Case
from impls.support import convention_of


def reproduce(case_file, impl: str, status: str, output: str = "", device: str = "cpu") -> None:
    """``status`` ``fail``: the worst output is ``output``; ``error``: the impl raises; ``crash`` or
    ``timeout``: the call kills or hangs the process (so returning at all is the assertion error)."""
    case = Case.read(case_file)
    adapter = get_adapter(impl)
    adapter.load(device)
    if status == "fail":
        case.golden = case.golden_for(convention_of(adapter, case.op))
        verdict, errors, _, message = compare(case, adapter.run(case))
        print(message)
        worst = max(errors, key=lambda e: (bool(e.problem), e.ratio))
        assert verdict == "fail" and worst.name == output, "no longer diverges: %s" % (message or "passes")
    elif status == "error":
        try:
            adapter.run(case)
        except Exception as error:  # noqa: BLE001 - the divergence: the oracle answers this valid input
            print("raises: %s: %s" % (type(error).__name__, error))
            return
        raise AssertionError("no longer raises")
    else:
        adapter.run(case)  # crash or timeout: this call kills or hangs the process
        raise AssertionError("returned: no longer %s" % {"crash": "crashes"}.get(status, "hangs"))
