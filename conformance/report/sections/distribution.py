"""Distribution: every case's worst |error| / tolerance, per impl/device and op (a strip plot)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from conformance.report.plots import ratio_plot
from conformance.report.section import Section

if TYPE_CHECKING:
    from conformance.report.data import ReportData


def distribution_section(d: ReportData) -> Section:
    return Section("distribution", "Distribution", "sections/distribution.html.j2",
                   {"ratio_plot": ratio_plot(d.frame, d.labels, d.ops)})
