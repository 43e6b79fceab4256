"""HTML: the report's tables through pandas Styler, and the page from the package's jinja2 templates.

Every table of the page goes through :func:`table_html` or one of the matrix functions here (cells
escaped, CSS classes and tooltips per cell); :func:`render` fills ``templates/report.html.j2``, which
includes each section's own template (``templates/sections/<name>.html.j2``).  The CSS classes named
here are styled in ``templates/report.css``: ``st-<status>`` and ``k-<kind>`` by the keys of
:mod:`conformance.outcomes`, the shades of a ratio ``rs<n>`` and of a share ``ag<n>``.

Styler gives every cell an id and position classes (``row3 col5``), which nothing on the page reads
and which made the page megabytes; :func:`_html` drops them (the tooltips Styler insists on ids for
are ``title`` attributes, and every colour is a class, so no style rule names a cell).
"""
from __future__ import annotations

import math
import re

import pandas as pd

from conformance.report.fmt import MISSING, attr, breakable, fmt_number, fmt_share, fmt_times


def markup(text):
    """An HTML fragment built here, passed to a template unescaped ("" stays "": the template's ``if``)."""
    import markupsafe

    return markupsafe.Markup(text) if text else ""


def table_markup(table: pd.DataFrame, uuid: str, **kwargs):
    """:func:`table_html` of a table with rows, ready for a template; ``""`` for an empty one (the
    template's ``if`` then shows its own sentence)."""
    return markup(table_html(table, uuid, **kwargs)) if not table.empty else ""


def _tooltips(tips: pd.DataFrame) -> pd.DataFrame:
    return tips.map(lambda t: attr(t) if t else "")


_CELL_ID = re.compile(r' id="T_[A-Za-z0-9_]+?_(?:row\d+_col\d+|level\d+_(?:row|col)\d+|row\d+|col\d+)"')
_POSITION = re.compile(r'\b(?:data|row_heading|col_heading|blank|index_name|level\d+|row\d+|col\d+|col_trim|row_trim)\b ?')


def _html(styler, uuid: str, attributes: str) -> str:
    """The Styler's table without per-cell ids and position classes (see the module's docstring)."""
    page = styler.to_html(table_uuid=uuid, table_attributes=attributes)
    page = _CELL_ID.sub("", page)
    page = re.sub(r' class="([^"]*)"', lambda m: _classes(_POSITION.sub("", m.group(1))), page)
    page = re.sub(r'<style type="text/css">\s*</style>\s*', "", page)
    return re.sub(r"[ \t]+>", ">", page)


def _classes(names: str) -> str:
    names = " ".join(names.split())
    return ' class="%s"' % names if names else ""


def _wrappable(name) -> str:
    """A column name that may wrap after its underscores (escaped first: Styler escapes, then formats)."""
    return str(name).replace("_", "_<wbr>")


def table_html(table: pd.DataFrame, uuid: str, *, classes=None, tips=None, fmt=None, sortable=True,
               index=False, extra_class="") -> str:
    """A DataFrame as an HTML table through pandas Styler (cells escaped, CSS classes, tooltips)."""
    styler = table.style
    if not index:
        styler = styler.hide(axis="index")
    styler = styler.format(fmt_number, escape="html", na_rep=MISSING)
    if fmt:  # a dict formatter resets the columns it does not name unless given a subset
        styler = styler.format(fmt, subset=list(fmt), escape="html", na_rep=MISSING)
    styler = styler.format_index(_wrappable, escape="html", axis=1)
    if index:
        styler = styler.format_index(escape="html", axis=0)
    if classes is not None:
        styler = styler.set_td_classes(classes)
    if tips is not None and not tips.empty:
        styler = styler.set_tooltips(_tooltips(tips), as_title_attribute=True)
    css = " ".join(filter(None, ["report", "sortable" if sortable else "", extra_class]))
    return _html(styler, uuid, 'class="%s"' % css)


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
    return _html(styler, uuid, 'class="report matrix"')


def share_class(value) -> str:
    """The shade of an agreeing share: ``ag-all`` (every case agrees), ``ag0`` (none) to ``ag9``, ``ag-none`` (no cases)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "ag-none"
    return "ag-all" if value >= 1 else "ag%d" % min(int(float(value) * 10), 9)


def agreement_html(share: pd.DataFrame, text: pd.DataFrame, tips: pd.DataFrame):
    """The pairwise agreement matrices: the share that agrees (shaded), and the counts."""
    share_styler = (share.style.set_td_classes(share.map(share_class))
                    .format(fmt_share, na_rep=MISSING)
                    .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
                    .set_tooltips(_tooltips(tips), as_title_attribute=True))
    share_html = _html(share_styler, "agreement", 'class="report matrix"')
    counts_html = _html(text.style.format(escape="html").format_index(escape="html", axis=0)
                        .format_index(escape="html", axis=1)
                        .set_tooltips(_tooltips(tips), as_title_attribute=True),
                        "agreement_counts", 'class="report matrix"')
    return share_html, counts_html


RATIO_SHADES = 7  # rs0 (the fastest, green) to rs6 (8x and slower, red): templates/report.css


def ratio_class(value) -> str:
    """The shade of a ratio to the fastest: log2 steps, 1x green, 2x amber, >= 8x red; ``rs-none`` without one."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "rs-none"
    position = min(max(math.log2(value) / 3.0, 0.0), 1.0)
    return "rs%d" % round(position * (RATIO_SHADES - 1))


def speed_summary_html(table: pd.DataFrame, modes: dict, uuid: str) -> str:
    """The per-framework speed summary: geometric-mean ratios (``modes``: mode -> its column title)."""
    shown = table.rename(columns=modes, level=1).rename(columns=breakable, level=0)
    classes = pd.DataFrame([[ratio_class(v) for v in row] for row in table.to_numpy()], index=shown.index,
                           columns=shown.columns)
    styler = (shown.style.set_td_classes(classes).format(fmt_times, na_rep=MISSING)
              .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
              .hide(axis="index", names=True).hide(axis="columns", names=True))
    return _html(styler, uuid, 'class="report matrix speedsum"')


def speed_html(display: pd.DataFrame, tips: pd.DataFrame, ratios: pd.DataFrame) -> str:
    """The speed table: green for the fastest impl of a row, shading towards red as the ratio grows."""
    classes = pd.DataFrame("", index=display.index, columns=display.columns)
    for column in ratios.columns:
        if column in classes:
            classes[column] = [ratio_class(v) for v in ratios[column]]
    styler = display.style.set_td_classes(classes).hide(axis="index").format(escape="html")
    tips = tips.reindex(columns=display.columns).fillna("")
    styler = styler.set_tooltips(_tooltips(tips), as_title_attribute=True)
    return _html(styler, "speed", 'class="report sortable"')


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
