"""Across backends: the impls of one API that runs on several backends (Keras 3 on TensorFlow, JAX and
PyTorch) side by side, case by case: where the backends agree and every case where they do not."""
from __future__ import annotations

import itertools

import pandas as pd

from conformance.report.html import prose_classes, table_markup
from conformance.report.section import Section
from conformance.report.sections.compiled import compiled_agreement


def api_backends() -> dict:
    """``api -> [impl, ...]`` (report order) of the eager impls that declare an ``api`` (adapters'
    ``api``/``backend``; a compiled mode is compared with its own eager impl in *Compiled* instead)."""
    from impls import get_adapter, impl_names

    groups = {}
    for name in impl_names():
        try:
            adapter = get_adapter(name)
        except ValueError:  # a plugin that cannot be imported here
            continue
        if adapter.api and not adapter.compiled_from:
            groups.setdefault(adapter.api, []).append(name)
    return groups


def backend_agreement(frame: pd.DataFrame, groups: dict, raw_dir=None, manifest=None, cases_dir=None):
    """Every pair of backends of each api, per op: the cases both ran where they reached the same
    verdict (status and bad-input behaviour) and outputs within one tolerance of each other (the rule
    of *Compiled against eager*, :func:`compiled_agreement`, one judge for every pair), and every case
    where they did not."""
    api_of = {impl: api for api, impls in groups.items() for impl in impls}
    pairs = [(second, first) for impls in groups.values() for first, second in itertools.combinations(impls, 2)]
    tables = compiled_agreement(frame, pairs, raw_dir=raw_dir, manifest=manifest, cases_dir=cases_dir)
    named = []
    for table in tables:
        table = table.rename(columns=lambda column: column.replace("compiled", "second").replace("eager", "first"))
        table.insert(0, "api", [api_of[label.rpartition("/")[0]] for label in table["first"]])
        named.append(table)
    return tuple(named)


def backends_section(d) -> Section:
    groups = api_backends()
    counts, differing = backend_agreement(d.frame, groups, raw_dir=d.raw_dir, manifest=d.manifest,
                                          cases_dir=d.cases_dir)
    return Section("backends", "Backends", "sections/backends.html.j2", {
        "groups": sorted(groups.items()),
        "counts": table_markup(counts, "backend_counts", extra_class="compact"),
        "differing": table_markup(differing, "backend_differing",
                                  classes=prose_classes(differing, ["first message", "second message"])),
        "n_differing": len(differing),
    }, csv={"backend_agreement.csv": counts if not counts.empty else None,
            "backend_differing.csv": differing if not differing.empty else None})
