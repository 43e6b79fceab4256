"""Result rows: their one schema (:class:`ResultRow`), the one writer and the one reader.

A run folder holds, per impl and device, two CSV files written side by side:

``results-<impl>-<device>.csv``
    One row per case, the columns :data:`COLUMNS` (the fields of :class:`ResultRow` but ``outputs``).
    A number is written as Python writes a float (``0.015625``, ``inf``, ``nan``), ``deterministic``
    as ``True``/``False``, and an absent number or flag as an empty cell.
``output-errors-<impl>-<device>.csv``
    One row per golden output of each case that was compared with the golden outputs (one
    :class:`conformance.compare.OutputError`), the columns :data:`OUTPUT_COLUMNS`:

    * ``case``, ``impl``, ``device``: the results row it belongs to; ``output``: the output's name
      (``loss``, ``grad/logits``...), in the order :func:`conformance.compare.compare` gives them;
    * ``abs``, ``rel``, ``ratio``: the largest |error|, that over the largest |golden|, and the
      worst |error| / allowed (above 1 fails); ``inf`` for a ``problem`` other than ``""``;
    * ``where``: the element of the worst ratio (or of the problem) as its index, ``6,6``; empty for
      none (a missing output, a shape mismatch, a scalar);
    * ``problem``: ``""`` (a numeric comparison), ``missing``, ``shape`` or ``nonfinite``
      (:data:`conformance.compare.PROBLEMS`);
    * ``actual``, ``expected``: the impl's and the golden value at ``where`` (a number; empty when
      there is none: a missing output, or no finite golden value); for ``problem`` ``shape`` the two
      shapes, written like ``where`` (``4,10``; empty for a scalar).

    A case that was not compared (unsupported, raised, crashed, bad input) has no rows here; a
    compared case has one per golden output.

:class:`ResultsFile` appends to both, a case at a time and flushed: first the case's output rows,
then its results row, so that a results row always has all its output rows.  A run killed in
between leaves a torn last line, or output rows of a case without a results row: every reader and
every writer that opens the files ignores (and the writers cut) both, so ``resume`` re-runs that
case and appends it once.  :func:`read` gives typed rows back (each with its ``outputs``),
:func:`load` and :func:`load_output_errors` a run folder as pandas DataFrames.

Files written before the output errors had their own file (an ``errors`` column of JSON in the
results file) are refused with a :class:`ResultsFormatError` saying so.

Only the standard library and numpy here, as the worker-side environments have no pandas: the two
DataFrame readers import pandas when they are called.
"""
from __future__ import annotations

import csv
import io
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from conformance.compare import OutputError

ROWS_PREFIX, OUTPUTS_PREFIX = "results-", "output-errors-"


class ResultsFormatError(ValueError):
    """A results file this version cannot read or append to (a user error, one line)."""


@dataclass
class ResultRow(Mapping):
    """The result of one case on one impl and device.

    It also reads as a mapping of its columns (``row["status"]``, ``dict(row)``): a user's own test
    reads the pytest fixture ``conformance_result`` that way (docs/OWN_IMPL.md), and code that writes
    rows with ``csv.DictWriter`` or builds a DataFrame from them gets the columns.
    """
    case: str
    op: str = ""
    dtype: str = ""
    impl: str = ""
    impl_version: str = ""
    device: str = ""
    mode: str = ""  # the adapter's mode for the op: native, composed...
    status: str = ""  # one of runner.STATUSES
    message: str = ""
    max_abs_err: Optional[float] = None  # over the outputs the impl returned (a missing one is in ``outputs``)
    max_rel_err: Optional[float] = None
    tol_ratio: Optional[float] = None  # the worst output's |error| / allowed
    worst_output: str = ""
    rtol: Optional[float] = None
    tolerance: str = ""  # how ``rtol`` was chosen, for people
    seconds: Optional[float] = None  # the fastest of the case's runs in the worker
    deterministic: Optional[bool] = None  # the runs' outputs were bitwise equal (None: run once)
    behaviour: str = ""  # what the impl did with a bad-input case
    python: str = ""
    tags: str = ""  # space-separated, as in the manifest
    features: str = ""
    deviation: str = ""  # the key of the known deviation that matched
    first_seconds: Optional[float] = None  # the first run (a compiled mode's compilation included)
    outputs: list = field(default_factory=list)  # one compare.OutputError per golden output compared

    def __getitem__(self, column):
        if column not in _COLUMN_SET:
            raise KeyError(column)
        return getattr(self, column)

    def __iter__(self):
        return iter(COLUMNS)

    def __len__(self):
        return len(COLUMNS)


_HINTS = typing.get_type_hints(ResultRow)
COLUMNS = [f.name for f in fields(ResultRow) if f.name != "outputs"]
_COLUMN_SET = frozenset(COLUMNS)
NUMBER_COLUMNS = [c for c in COLUMNS if _HINTS[c] == Optional[float]]
FLAG_COLUMNS = [c for c in COLUMNS if _HINTS[c] == Optional[bool]]
OUTPUT_COLUMNS = ["case", "impl", "device", "output", "abs", "rel", "ratio", "where", "problem", "actual", "expected"]
OLD_FORMAT_COLUMN = "errors"  # the JSON column of per-output errors, before they had their own file


def results_path(out_dir, impl: str, device: str) -> Path:
    return Path(out_dir) / ("%s%s-%s.csv" % (ROWS_PREFIX, impl, device))


def outputs_path(rows_path) -> Path:
    """The output-errors file beside a results file."""
    rows_path = Path(rows_path)
    return rows_path.with_name(OUTPUTS_PREFIX + rows_path.name[len(ROWS_PREFIX):])


# --------------------------------------------------------------------------------------------
# cells
def _number_text(value) -> str:
    return "" if value is None else repr(float(value))  # float(): a numpy scalar's repr names its type


def _number(text: str) -> Optional[float]:
    return None if text == "" else float(text)


def _index_text(index) -> str:
    return ",".join(str(int(i)) for i in index)


def _index(text: str) -> tuple:
    return tuple(int(i) for i in text.split(",")) if text else ()


def _flag_text(value) -> str:
    return "" if value is None else str(bool(value))


def _flag(text: str) -> Optional[bool]:
    if text not in ("", "True", "False"):
        raise ValueError("not True, False or empty: %r" % text)
    return None if text == "" else text == "True"


def _row_cells(row: ResultRow) -> dict:
    cells = {}
    for column in COLUMNS:
        value = getattr(row, column)
        if column in NUMBER_COLUMNS:
            cells[column] = _number_text(value)
        elif column in FLAG_COLUMNS:
            cells[column] = _flag_text(value)
        else:
            cells[column] = "" if value is None else str(value)
    return cells


def _row_of(cells: dict) -> ResultRow:
    values = {}
    for column in COLUMNS:
        text = cells[column]
        values[column] = (_number(text) if column in NUMBER_COLUMNS else _flag(text) if column in FLAG_COLUMNS
                          else text)
    return ResultRow(**values)


def _output_cells(row: ResultRow, error: OutputError) -> dict:
    def value(v):  # a shape for the "shape" problem, else a number or nothing
        return _index_text(v) if error.problem == "shape" else _number_text(v)

    return {"case": row.case, "impl": row.impl, "device": row.device, "output": error.name,
            "abs": _number_text(error.max_abs), "rel": _number_text(error.max_rel), "ratio": _number_text(error.ratio),
            "where": _index_text(error.where), "problem": error.problem,
            "actual": value(error.actual), "expected": value(error.expected)}


def _output_of(cells: dict) -> OutputError:
    problem = cells["problem"]
    value = _index if problem == "shape" else _number
    return OutputError(cells["output"], float(cells["abs"]), float(cells["rel"]), float(cells["ratio"]),
                       _index(cells["where"]), problem, value(cells["actual"]), value(cells["expected"]))


# --------------------------------------------------------------------------------------------
# files
def _whole_lines(data: bytes) -> bytes:
    """``data`` up to its last complete line: a run killed mid-write leaves a torn one (the csv
    module ends every row with ``\\r\\n``; a message may hold a bare ``\\n``)."""
    if data.endswith(b"\r\n"):
        return data
    end = data.rfind(b"\r\n")
    return data[:end + 2] if end >= 0 else b""


def _table(path: Path, columns: list) -> list:
    """The complete rows of one of the two files as dicts of text; [] for none or no file."""
    text = _whole_lines(path.read_bytes() if path.exists() else b"").decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames
    if header is None:
        return []
    if header != columns:
        if OLD_FORMAT_COLUMN in header and columns == COLUMNS:
            raise ResultsFormatError(
                "%s was written by an older version (per-output errors as JSON in its %r column, now in %s): "
                "run that impl again into a new folder (`conformance run --impl IMPL --out DIR`)"
                % (path, OLD_FORMAT_COLUMN, outputs_path(path).name))
        raise ResultsFormatError("%s: unexpected columns (missing %s, unknown %s)" % (
            path, sorted(set(columns) - set(header)) or "none", sorted(set(header) - set(columns)) or "none"))
    # a row cut short (a torn line a version without this check appended to) has empty slots
    return [row for row in reader if None not in row.values() and None not in row]


def _rewrite(path: Path, columns: list, rows: list) -> None:
    """Replace the file by ``rows`` (dicts of text), atomically."""
    scratch = path.with_name(path.name + ".tmp")
    with open(scratch, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(scratch, path)


def _cut_torn_line(path: Path) -> None:
    """Truncate a torn last line, so that appended rows start on a line of their own."""
    if path.exists():
        with open(path, "rb+") as handle:
            data = handle.read()
            whole = len(_whole_lines(data))
            if whole != len(data):
                handle.truncate(whole)


def _tidy(path: Path) -> list:
    """Cut the torn last line of both files, drop the output rows of cases without a results row
    (a run killed between the two) and check both files' columns; return the results rows (text)."""
    path, side = Path(path), outputs_path(path)
    # read first: a file of another format raises before anything in it is cut
    rows, outputs = _table(path, COLUMNS), _table(side, OUTPUT_COLUMNS)
    for file in (path, side):
        _cut_torn_line(file)
    cases = {row["case"] for row in rows}
    kept = [o for o in outputs if o["case"] in cases]
    if len(kept) != len(outputs):
        _rewrite(side, OUTPUT_COLUMNS, kept)
    return rows


def done_cases(out_dir, impl: str, device: str) -> set:
    """The cases already recorded (for ``resume``); tidies the files first (see :func:`_tidy`)."""
    return {row["case"] for row in _tidy(results_path(out_dir, impl, device))}


def exists(out_dir, impl: str, device: str) -> bool:
    return results_path(out_dir, impl, device).exists()


def remove(out_dir, impl: str, device: str) -> None:
    """Delete an impl's results (a whole re-run replaces them)."""
    path = results_path(out_dir, impl, device)
    for file in (path, outputs_path(path)):
        if file.exists():
            file.unlink()


def replace_rows(out_dir, impl: str, device: str, case_ids: set) -> int:
    """Drop the rows of ``case_ids`` (about to be re-run) from both files; return how many results
    rows of other cases were kept.  A ``--select`` re-run never loses the results of other cases."""
    path = results_path(out_dir, impl, device)
    kept = [row for row in _tidy(path) if row["case"] not in case_ids]
    side = outputs_path(path)
    _rewrite(path, COLUMNS, kept)
    _rewrite(side, OUTPUT_COLUMNS, [o for o in _table(side, OUTPUT_COLUMNS) if o["case"] not in case_ids])
    return len(kept)


class _Appender:
    def __init__(self, path: Path, columns: list):
        new = not path.exists() or path.stat().st_size == 0
        self.handle = open(path, "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.handle, fieldnames=columns)
        if new:
            self.writer.writeheader()

    def write(self, cells: dict) -> None:
        self.writer.writerow(cells)


class ResultsFile:
    """An impl's two files, appended a case at a time and flushed after each (a killed run leaves
    readable results); written by ``runner.run_impl`` and by the pytest plugin."""

    def __init__(self, path):
        """``path``: the results file (:func:`results_path`); the output errors go beside it."""
        self.path = Path(path)
        self.outputs_path = outputs_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _tidy(self.path)  # checks the format; appended rows start on a line of their own
        self._outputs = _Appender(self.outputs_path, OUTPUT_COLUMNS)
        self._rows = _Appender(self.path, COLUMNS)

    def write(self, row: ResultRow) -> None:
        for error in row.outputs:
            self._outputs.write(_output_cells(row, error))
        self._outputs.handle.flush()  # before the row: a results row always has its output rows
        self._rows.write(_row_cells(row))
        self._rows.handle.flush()

    def close(self) -> None:
        self._outputs.handle.close()
        self._rows.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------------------------
# reading
def read(path) -> list:
    """The complete rows of one results file, typed, each with its ``outputs`` (from the file beside
    it; a row without output rows has none).  Raises :class:`ResultsFormatError` for a file of
    another format or a cell that is not what its column holds."""
    path = Path(path)
    by_case = {}
    for line, cells in enumerate(_table(outputs_path(path), OUTPUT_COLUMNS), start=2):
        try:
            by_case.setdefault(cells["case"], {})[cells["output"]] = _output_of(cells)  # a repeat: the last wins
        except ValueError as error:
            raise ResultsFormatError("%s, row %d: %s" % (outputs_path(path), line, error)) from None
    rows = []
    for line, cells in enumerate(_table(path, COLUMNS), start=2):
        try:
            row = _row_of(cells)
        except ValueError as error:
            raise ResultsFormatError("%s, row %d: %s" % (path, line, error)) from None
        row.outputs = list(by_case.get(row.case, {}).values())
        rows.append(row)
    return rows


def read_folder(raw_dir) -> list:
    """The rows of every ``results-*.csv`` of a run folder, file by file in name order."""
    return [row for path in sorted(Path(raw_dir).glob(ROWS_PREFIX + "*.csv")) for row in read(path)]


def frame(rows):
    """Typed rows as a DataFrame of :data:`COLUMNS`: text columns of str, numbers float64 (NaN
    where absent), ``deterministic`` pandas' nullable ``boolean``."""
    import pandas as pd  # noqa: PLC0415 - the report's dependency, not the runner's

    def dtype(column):
        return "float64" if column in NUMBER_COLUMNS else "boolean" if column in FLAG_COLUMNS else str

    return pd.DataFrame({column: pd.Series([getattr(row, column) for row in rows], dtype=dtype(column))
                         for column in COLUMNS}, columns=COLUMNS)


def load(raw_dir):
    """Every results row of a run folder as one DataFrame (see :func:`frame`); empty, with the
    columns, when the folder has none."""
    return frame(read_folder(raw_dir))


def output_frame(rows):
    """The output errors of typed rows as a DataFrame of :data:`OUTPUT_COLUMNS` (module docstring):
    ``abs``, ``rel``, ``ratio`` float64; ``where`` a tuple of ints; ``problem`` str; ``actual`` and
    ``expected`` a float, a shape tuple (``problem == "shape"``) or None."""
    return _outputs_frame([((row.case, row.impl, row.device), e) for row in rows for e in row.outputs])


def _outputs_frame(pairs):
    """``pairs``: ``((case, impl, device), OutputError)`` each."""
    import pandas as pd  # noqa: PLC0415

    columns = {"case": [r[0] for r, _ in pairs], "impl": [r[1] for r, _ in pairs],
               "device": [r[2] for r, _ in pairs], "output": [e.name for _, e in pairs],
               "abs": [e.max_abs for _, e in pairs], "rel": [e.max_rel for _, e in pairs],
               "ratio": [e.ratio for _, e in pairs], "where": [tuple(e.where) for _, e in pairs],
               "problem": [e.problem for _, e in pairs], "actual": [e.actual for _, e in pairs],
               "expected": [e.expected for _, e in pairs]}
    dtypes = {"abs": "float64", "rel": "float64", "ratio": "float64", "where": object, "actual": object,
              "expected": object}  # object: None stays None (no value), apart from NaN (a value)
    return pd.DataFrame({c: pd.Series(v, dtype=dtypes.get(c, str)) for c, v in columns.items()}, columns=OUTPUT_COLUMNS)


def load_output_errors(raw_dir):
    """Every output error of a run folder's results rows, one DataFrame row per (case, impl,
    device, output); see :func:`output_frame`."""
    return output_frame(read_folder(raw_dir))


def details_by_row(outputs) -> dict:
    """``{(case, impl, device): {output: {"abs", "rel", "ratio", "where", "problem", "actual",
    "expected"}}}`` of an :func:`output_frame`, the outputs in their file's order."""
    details = {}
    for record in outputs.to_dict("records"):
        key = (record.pop("case"), record.pop("impl"), record.pop("device"))
        details.setdefault(key, {})[record.pop("output")] = record
    return details



# --------------------------------------------------------------------------------------------
# the search's finds: its ``found-<shard>.csv`` rows carry a ``signature`` beside the results columns
# (so they are not a results file); their output errors go to a file of this module's own format
def found_outputs_path(found_path) -> Path:
    """``output-errors-found-<shard>.csv`` beside ``found-<shard>.csv`` (not matched by ``found-*``)."""
    found_path = Path(found_path)
    return found_path.with_name(OUTPUTS_PREFIX + found_path.name)


def append_outputs(path, row: ResultRow) -> None:
    """Append one row's output errors to an output-errors file (made with its header when new)."""
    appender = _Appender(Path(path), OUTPUT_COLUMNS)
    try:
        for error in row.outputs:
            appender.write(_output_cells(row, error))
    finally:
        appender.handle.close()


def read_outputs(path):
    """One output-errors file as a DataFrame (see :func:`output_frame`)."""
    pairs = []
    for line, cells in enumerate(_table(Path(path), OUTPUT_COLUMNS), start=2):
        try:
            pairs.append(((cells["case"], cells["impl"], cells["device"]), _output_of(cells)))
        except ValueError as error:
            raise ResultsFormatError("%s, row %d: %s" % (path, line, error)) from None
    return _outputs_frame(pairs)
