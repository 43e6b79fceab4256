"""Result rows are typed records written and read by conformance/results.py: a row and its output
errors survive the round trip (NaN and inf included), a killed run's files are readable and resume
appends to both consistently, and a file of the older format is a clear error."""
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import results, runs
from conformance.compare import OutputError

REPO = Path(__file__).resolve().parent.parent
INF, NAN = math.inf, math.nan


def passing(case, impl="numpy"):
    return results.ResultRow(
        case=case, op="some_op", dtype="float32", impl=impl, impl_version="1.0", device="cpu", mode="native",
        status="pass", max_abs_err=1e-7, max_rel_err=2e-8, tol_ratio=0.25, worst_output="loss", rtol=1.9e-6,
        tolerance="float32: 16 ulp", seconds=0.001, deterministic=True, python="3.11", tags="base",
        first_seconds=0.002, outputs=[OutputError("grad/logits", 1e-8, 1e-9, 0.01, (6, 6), "", 0.5, 0.50000001),
                                      OutputError("loss", 1e-7, 2e-8, 0.25, (), "", 2.0, 2.0000001)])


def odd(case):
    """Every kind of output problem, non-finite numbers, absent values and flags, a multi-line message."""
    return results.ResultRow(
        case=case, op="some_op", dtype="float64", impl="numpy", device="cpu", status="fail",
        message='grad/logits: nan where inf was expected at (0, 1);\nsecond line, "quoted", commas',
        max_abs_err=INF, max_rel_err=NAN, tol_ratio=INF, worst_output="grad/logits", rtol=1e-15, deterministic=False,
        outputs=[OutputError("grad/bias", INF, INF, INF, (), "missing"),
                 OutputError("grad/logits", INF, INF, INF, (0, 1), "nonfinite", NAN, INF),
                 OutputError("grad/weights", INF, INF, INF, (), "shape", (4, 10), ()),
                 OutputError("loss", 0.0, 0.0, 0.0, (), "", None, None),  # no finite golden value
                 OutputError("softmax", 0.0, 0.0, 0.0, (2,), "", -INF, -INF)])


def unsupported(case):
    return results.ResultRow(case=case, op="some_op", dtype="bfloat16", impl="numpy", device="cpu",
                             status="unsupported", message="numpy some_op does not take bfloat16")


def same(a, b):
    """Rows equal, NaN equal to NaN (the dataclass's == says nan != nan)."""
    return results._row_cells(a) == results._row_cells(b) and [e.record() for e in a.outputs] == [
        e.record() for e in b.outputs]


def write(folder, rows):
    path = results.results_path(folder, "numpy", "cpu")
    with results.ResultsFile(path) as out:
        for row in rows:
            out.write(row)
    return path


def test_rows_and_their_output_errors_survive_the_round_trip(tmp_path):
    rows = [passing("a"), odd("b"), unsupported("c")]
    path = write(tmp_path, rows)
    back = results.read(path)
    assert len(back) == 3 and all(same(a, b) for a, b in zip(rows, back))
    assert back[2].outputs == [] and back[0].deterministic is True and back[1].deterministic is False
    assert back[2].deterministic is None and back[2].max_abs_err is None
    shape = back[1].outputs[2]
    assert (shape.actual, shape.expected, shape.where) == ((4, 10), (), ())
    assert back[1].outputs[1].actual != back[1].outputs[1].actual  # NaN stays NaN
    assert (back[1].outputs[3].actual, back[1].outputs[3].expected) == (None, None)  # no value stays None
    assert back[1].message == rows[1].message


def test_the_dataframes_have_their_types(tmp_path):
    write(tmp_path, [passing("a"), odd("b"), unsupported("c")])
    frame = results.load(tmp_path)
    assert list(frame.columns) == results.COLUMNS and len(frame) == 3
    assert all(frame[c].dtype == "float64" for c in results.NUMBER_COLUMNS)
    assert frame["deterministic"].dtype == "boolean" and frame["deterministic"].isna().tolist() == [False, False, True]
    assert frame.loc[1, "max_abs_err"] == INF and math.isnan(frame.loc[1, "max_rel_err"])
    assert math.isnan(frame.loc[2, "tol_ratio"]) and frame.loc[2, "message"].startswith("numpy some_op")
    outputs = results.load_output_errors(tmp_path)
    assert list(outputs.columns) == results.OUTPUT_COLUMNS and len(outputs) == 7  # c was not compared
    assert all(outputs[c].dtype == "float64" for c in ("abs", "rel", "ratio"))
    b = outputs[outputs["case"] == "b"].set_index("output")
    assert b.loc["grad/logits", "where"] == (0, 1) and math.isnan(b.loc["grad/logits", "actual"])
    assert b.loc["grad/logits", "expected"] == INF and b.loc["softmax", "actual"] == -INF
    assert b.loc["grad/bias", "actual"] is None and b.loc["loss", "expected"] is None
    assert b.loc["grad/weights", "actual"] == (4, 10) and b.loc["grad/weights", "problem"] == "shape"
    details = results.details_by_row(outputs)
    assert list(details[("a", "numpy", "cpu")]) == ["grad/logits", "loss"]
    assert details[("a", "numpy", "cpu")]["loss"]["ratio"] == 0.25
    empty = results.load(tmp_path / "nothing")
    assert empty.empty and list(empty.columns) == results.COLUMNS


def test_a_row_reads_by_column_name_too():
    row = passing("a")
    assert row["status"] == "pass" and row.get("deviation") == "" and row.get("nonesuch", 7) == 7
    assert list(dict(row)) == results.COLUMNS and "outputs" not in row
    with pytest.raises(KeyError):
        row["outputs"]  # noqa: B018 - not a column


def test_a_torn_last_line_is_ignored_and_cut_before_appending(tmp_path):
    path = write(tmp_path, [passing("a"), odd("b")])
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # killed while writing b's row: b's output rows are there, its row is not
    assert [r.case for r in results.read(path)] == ["a"]
    assert set(results.load_output_errors(tmp_path)["case"]) == {"a"}  # b's output rows belong to no row
    assert results.done_cases(tmp_path, "numpy", "cpu") == {"a"}
    assert path.read_bytes() == data[:data.index(b"\r\nb,") + 2]  # cut: the next row starts on its own line
    side = results._table(results.outputs_path(path), results.OUTPUT_COLUMNS)
    assert {o["case"] for o in side} == {"a"}  # and b's orphan output rows dropped
    with results.ResultsFile(path) as out:  # what resume does next
        out.write(odd("b"))
    back = results.read(path)
    assert [r.case for r in back] == ["a", "b"] and same(back[1], odd("b")) and len(back[1].outputs) == 5


def test_a_header_cut_short_reads_as_an_empty_file(tmp_path):
    path = results.results_path(tmp_path, "numpy", "cpu")
    path.write_bytes(b"case,op,dty")
    assert results.read(path) == [] and results.done_cases(tmp_path, "numpy", "cpu") == set()
    write(tmp_path, [passing("a")])
    assert [r.case for r in results.read(path)] == ["a"]


def test_a_row_without_its_output_rows_reads(tmp_path):
    path = write(tmp_path, [passing("a"), passing("b")])
    results.outputs_path(path).unlink()
    back = results.read(path)
    assert [r.case for r in back] == ["a", "b"] and back[0].outputs == [] and back[0].tol_ratio == 0.25
    assert results.load_output_errors(tmp_path).empty


def test_replace_rows_drops_a_case_from_both_files(tmp_path):
    write(tmp_path, [passing("a"), odd("b"), passing("c")])
    assert results.replace_rows(tmp_path, "numpy", "cpu", {"b"}) == 2
    assert [r.case for r in results.read(results.results_path(tmp_path, "numpy", "cpu"))] == ["a", "c"]
    assert set(results.load_output_errors(tmp_path)["case"]) == {"a", "c"}
    results.remove(tmp_path, "numpy", "cpu")
    assert not list(tmp_path.iterdir())


OLD_FORMAT = ("case,op,dtype,impl,impl_version,device,mode,status,message,max_abs_err,max_rel_err,tol_ratio,"
              "worst_output,rtol,tolerance,errors,seconds,deterministic,behaviour,python,tags,features,deviation,"
              "first_seconds\r\n"
              'a,some_op,float32,numpy,1.0,cpu,native,pass,,0.1,0.1,0.5,loss,0.1,x,"{""loss"": {""abs"": 0.1}}",'
              "0.1,True,,3.11,,,,0.1\r\n")


def test_a_file_of_the_older_format_is_a_clear_error(tmp_path):
    path = results.results_path(tmp_path, "numpy", "cpu")
    path.write_bytes(OLD_FORMAT.encode())
    for attempt in (lambda: results.read(path), lambda: results.ResultsFile(path),
                    lambda: results.done_cases(tmp_path, "numpy", "cpu")):
        with pytest.raises(results.ResultsFormatError, match=r"older version .*'errors' column.*conformance run"):
            attempt()
    assert path.read_bytes() == OLD_FORMAT.encode()  # never rewritten
    # the CLI says it in one line, e.g. when resuming such a folder
    result = subprocess.run([sys.executable, "-m", "conformance", "run", "--impl", "numpy", "--select", "*-base-hard-f32",
                             "--out", str(tmp_path), "--resume"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "older version" in result.stderr and "Traceback" not in result.stderr, \
        result.stderr


def test_a_cell_that_is_not_its_type_names_the_file_and_row(tmp_path):
    path = write(tmp_path, [passing("a")])
    path.write_bytes(path.read_bytes().replace(b",True,", b",yes,"))
    with pytest.raises(results.ResultsFormatError, match=r"results-numpy-cpu.csv, row 2: .*'yes'"):
        results.read(path)


def test_merged_run_folders_keep_the_output_errors(tmp_path):
    write(tmp_path / "one", [passing("a"), odd("b")])
    write(tmp_path / "two", [passing("c")])
    into = runs.merged([tmp_path / "one", tmp_path / "two"], tmp_path / "both")
    assert [r.case for r in results.read(results.results_path(into, "numpy", "cpu"))] == ["a", "b", "c"]
    assert results.load_output_errors(into).groupby("case").size().to_dict() == {"a": 2, "b": 5, "c": 2}
    write(tmp_path / "three", [passing("a")])
    with pytest.raises(runs.RunError, match="case a of results-numpy-cpu.csv is in two runs"):
        runs.merged([tmp_path / "one", tmp_path / "three"], tmp_path / "clash")


def test_the_committed_results_read_back():
    raw = REPO / "reports" / "raw"
    frame, outputs = results.load(raw), results.load_output_errors(raw)
    assert len(frame) > 3000 and set(frame["status"]) <= {"pass", "fail", "error", "unsupported", "inapplicable",
                                                          "crash", "timeout", "xfail", "xpass"}
    compared = frame[frame["tol_ratio"].notna()]
    keys = set(zip(outputs["case"], outputs["impl"], outputs["device"]))
    assert keys == set(zip(compared["case"], compared["impl"], compared["device"]))
    assert set(outputs["problem"]) <= {"", "missing", "shape", "nonfinite"}
