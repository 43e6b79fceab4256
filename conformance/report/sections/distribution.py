"""Distribution: every case's worst |error| / tolerance, per impl/device and op (a strip plot)."""
from __future__ import annotations

from conformance.report.plots import ratio_plot
from conformance.report.section import Section


def distribution_section(d) -> Section:
    return Section("distribution", "Distribution", "sections/distribution.html.j2",
                   {"ratio_plot": ratio_plot(d.frame, d.labels, d.ops)})
