"""The registry of known, explained deviations (``known_deviations.toml``).

Each entry names an impl, a case selector, what the framework does differently, a minimal
reproducer anyone can run, and where in the framework's docs or source the behaviour comes from.
A matching case that fails (or errors, or crashes) is recorded as ``xfail``; one that passes is
``xpass``, so an entry that stops failing is visible.  Entries are added only after the deviation
was reproduced; a tolerance is never widened instead.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from conformance.outcomes import FAILING, PASS, XFAIL, XPASS

try:
    import tomllib
except ImportError:  # Python < 3.11 (the reference tests also run on 3.8)
    import tomli as tomllib

REGISTRY = Path(__file__).resolve().parent.parent / "known_deviations.toml"
REQUIRED = ("key", "impl", "cases", "what", "reproducer", "source")


@dataclass
class Deviation:
    key: str
    impl: str
    cases: list  # fnmatch patterns over case ids
    what: str
    reproducer: str
    source: str
    devices: list = field(default_factory=lambda: ["cpu", "gpu"])
    features: list = field(default_factory=list)  # every one must be among the case's features
    varies_by_cpu: str = ""  # where it was and was not seen, when the CPU's instruction set decides
    # A piece of the error the deviation causes whatever the input: a bad-input case of the entry's
    # impl and cases that raises with it is "masked" (its error says nothing about the bad input).
    error: str = ""

    def matches(self, impl: str, device: str, entry: dict) -> bool:
        """Covers a valid case (a bad-input case is never a deviation's failure: see ``masking``)."""
        return (impl == self.impl and device in self.devices and not entry.get("invalid")
                and any(fnmatch.fnmatchcase(entry["id"], pattern) for pattern in self.cases)
                and set(self.features) <= set(entry.get("features", ())))


class Registry:
    def __init__(self, entries):
        self.entries = list(entries)

    def match(self, impl, device, entry):
        return next((d for d in self.entries if d.matches(impl, device, entry)), None)

    def masking(self, impl, device, entry, message):
        """The entry whose error this bad-input case raised (e.g. an op that fails for every float64
        input), so that the error cannot be read as the op rejecting the bad input.  Matched by the
        entry's impl, devices, case patterns and ``error`` text; not by its features, which a bad-input
        case does not list (its features are ``invalid_input`` only)."""
        if not entry.get("invalid"):
            return None
        return next((d for d in self.entries if d.error and d.error in message and impl == d.impl
                     and device in d.devices and any(fnmatch.fnmatchcase(entry["id"], p) for p in d.cases)), None)


def load(path: Path = REGISTRY) -> Registry:
    if not Path(path).exists():
        return Registry([])
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    entries = []
    for index, raw in enumerate(data.get("deviation", [])):
        missing = [k for k in REQUIRED if not raw.get(k)]
        if missing:
            raise ValueError("%s: deviation #%d lacks %s" % (path, index + 1, ", ".join(missing)))
        entries.append(Deviation(**raw))
    return Registry(entries)


def apply(status: str) -> str:
    """The status of a case that a registry entry covers."""
    if status in FAILING:
        return XFAIL
    return XPASS if status == PASS else status
