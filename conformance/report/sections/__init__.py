"""The page's sections, in page order: each a function from the run's tables
(:class:`conformance.report.data.ReportData`) to a :class:`conformance.report.section.Section`, its
tables as data (written as CSV) and the context its own template
(``templates/sections/<name>.html.j2``) renders.  A section module holds the tables, sentences and
verdicts only it shows; what several share lives beside the package's other modules."""
from conformance.report.sections.agreement import agreement_section
from conformance.report.sections.backends import backends_section
from conformance.report.sections.badinput import bad_input_section
from conformance.report.sections.cases import cases_section
from conformance.report.sections.compiled import compiled_section
from conformance.report.sections.conventions import conventions_section
from conformance.report.sections.counts import counts_section
from conformance.report.sections.differences import differences_section
from conformance.report.sections.distribution import distribution_section
from conformance.report.sections.environment import environment_section
from conformance.report.sections.first import first_screen
from conformance.report.sections.memory import memory_section
from conformance.report.sections.modes import capability_section
from conformance.report.sections.sampler import sampler_section
from conformance.report.sections.speed import speed_section
from conformance.report.sections.summary import summary_section

SECTIONS = [first_screen, differences_section, speed_section, agreement_section, compiled_section, backends_section,
            bad_input_section,
            conventions_section, capability_section, sampler_section, memory_section, counts_section, distribution_section,
            summary_section, cases_section, environment_section]
