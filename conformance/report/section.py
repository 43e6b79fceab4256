"""One part of the page: what a section function returns (see :mod:`conformance.report.sections`)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Section:
    """One part of the page: its anchor, its title in the navigation bar, its template and what it shows."""
    id: str
    title: str
    template: str
    context: dict = field(default_factory=dict)
    csv: dict = field(default_factory=dict)  # file name -> table written beside the page
