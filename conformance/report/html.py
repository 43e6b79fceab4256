"""HTML: the report's tables through pandas Styler, and the page from the package's jinja2 templates.

Every table of the page goes through :func:`table_html` or one of the matrix functions here (cells
escaped, CSS classes and tooltips per cell); :func:`render` fills ``templates/report.html.j2``, which
includes each section's own template (``templates/sections/<name>.html.j2``).  The CSS classes named
here are styled in ``templates/report.css``: ``st-<status>`` and ``k-<kind>`` by the keys of
:mod:`conformance.outcomes`.
"""
from __future__ import annotations

import math

import pandas as pd

from conformance.report.fmt import MISSING, attr, breakable, fmt_number, fmt_share, fmt_times


def markup(text):
    """An HTML fragment built here, passed to a template unescaped ("" stays "": the template's ``if``)."""
    import markupsafe

    return markupsafe.Markup(text) if text else ""


def _tooltips(tips: pd.DataFrame) -> pd.DataFrame:
    return tips.map(lambda t: attr(t) if t else "")


def table_html(table: pd.DataFrame, uuid: str, *, classes=None, tips=None, fmt=None, sortable=True,
               index=False, extra_class="") -> str:
    """A DataFrame as an HTML table through pandas Styler (cells escaped, CSS classes, tooltips)."""
    styler = table.style
    if not index:
        styler = styler.hide(axis="index")
    styler = styler.format(fmt_number, escape="html", na_rep=MISSING)
    if fmt:  # a dict formatter resets the columns it does not name unless given a subset
        styler = styler.format(fmt, subset=list(fmt), escape="html", na_rep=MISSING)
    styler = styler.format_index(escape="html", axis=1)
    if index:
        styler = styler.format_index(escape="html", axis=0)
    if classes is not None:
        styler = styler.set_td_classes(classes)
    if tips is not None and not tips.empty:
        styler = styler.set_tooltips(_tooltips(tips), as_title_attribute=True)
    css = " ".join(filter(None, ["report", "sortable" if sortable else "", extra_class]))
    return styler.to_html(table_uuid=uuid, table_attributes='class="%s"' % css)


def blank_classes(table):
    return pd.DataFrame("", index=table.index, columns=table.columns)


def prose_classes(table, columns):
    """CSS classes that let the named text columns wrap at a readable width."""
    classes = blank_classes(table)
    for column in columns:
        if column in table:
            classes[column] = "prose"
    return classes


def status_count_classes(table, statuses):
    """A count column per status coloured as the status (``st-<status>``), zeros greyed."""
    classes = blank_classes(table)
    for status in statuses:
        if status in table:
            classes[status] = table[status].map(lambda n, s=status: "num st-%s" % s if n else "num zero")
    return classes


def worst_ratio_classes(ratios: pd.Series) -> pd.Series:
    return ratios.map(lambda r: "num bad" if r > 1 else "num")


def matrix_html(matrix: pd.DataFrame, classes: pd.DataFrame, tips: pd.DataFrame, uuid: str, index=True) -> str:
    """A small labelled matrix (rows and columns named) with a CSS class and a tooltip per cell."""
    styler = matrix.style.set_td_classes(classes).format(escape="html", na_rep=MISSING)
    styler = styler.format_index(escape="html", axis=1)
    styler = styler.format_index(escape="html", axis=0).hide(axis="index", names=True) if index \
        else styler.hide(axis="index")
    if tips is not None:
        styler = styler.set_tooltips(_tooltips(tips), as_title_attribute=True)
    return styler.to_html(table_uuid=uuid, table_attributes='class="report matrix"')


def agreement_html(share: pd.DataFrame, text: pd.DataFrame, tips: pd.DataFrame):
    """The pairwise agreement matrices: the share that agrees (shaded), and the counts."""
    def shade(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "color: #999"
        # white (all agree) to red (none agree)
        level = int(round(255 * (0.35 + 0.65 * float(value))))
        return "background-color: rgb(255, %d, %d)" % (level, level) if value < 1 else "background-color: #d7f0d4"

    share_styler = (share.style.map(shade)
                    .format(fmt_share, na_rep=MISSING)
                    .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
                    .set_tooltips(_tooltips(tips), as_title_attribute=True))
    share_html = share_styler.to_html(table_uuid="agreement", table_attributes='class="report matrix"')
    counts_html = (text.style.format(escape="html").format_index(escape="html", axis=0)
                   .format_index(escape="html", axis=1)
                   .set_tooltips(_tooltips(tips), as_title_attribute=True)
                   .to_html(table_uuid="agreement_counts", table_attributes='class="report matrix"'))
    return share_html, counts_html


def ratio_shade(value) -> str:
    """Green for the fastest, shading towards red as the ratio grows (log2: 1x green, 2x amber, >= 8x red)."""
    if value is None or not math.isfinite(value):
        return "color:#888"
    position = min(max(math.log2(value) / 3.0, 0.0), 1.0)
    return "background-color:hsl(%d,65%%,85%%)" % (120 * (1 - position))


def speed_summary_html(table: pd.DataFrame, modes: dict, uuid: str) -> str:
    """The per-framework speed summary: geometric-mean ratios (``modes``: mode -> its column title)."""
    shown = table.rename(columns=modes, level=1).rename(columns=breakable, level=0)
    styler = (shown.style.map(ratio_shade).format(fmt_times, na_rep=MISSING)
              .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
              .hide(axis="index", names=True).hide(axis="columns", names=True))
    return styler.to_html(table_uuid=uuid, table_attributes='class="report matrix speedsum"')


def speed_html(display: pd.DataFrame, tips: pd.DataFrame, ratios: pd.DataFrame) -> str:
    """The speed table: green for the fastest impl of a row, shading towards red as the ratio grows."""
    def shade(column):
        return [ratio_shade(v) for v in ratios[column.name]] if column.name in ratios else [""] * len(column)

    styler = display.style.apply(shade, axis=0).hide(axis="index").format(escape="html")
    tips = tips.reindex(columns=display.columns).fillna("")
    styler = styler.set_tooltips(_tooltips(tips), as_title_attribute=True)
    return styler.to_html(table_uuid="speed", table_attributes='class="report sortable"')


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("conformance.report", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(context: dict) -> str:
    """The page: ``templates/report.html.j2`` with each section's own template included in order."""
    import markupsafe

    from conformance import outcomes

    env = _environment()
    env.filters.update(breakable=breakable, kind_key=outcomes.kind_key)
    env.globals.update(outcomes=outcomes)  # the templates name statuses and kinds as the code does

    def asset(name):  # the page's CSS and script, inlined as they are: the page is one file
        return markupsafe.Markup(env.loader.get_source(env, name)[0])

    return env.get_template("report.html.j2").render(style=asset("report.css"), script=asset("report.js"), **context)
