"""The HTML comparison report on small synthetic results (no framework runs)."""
import html
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance import corpus, report
from conformance.report import data as report_data
from conformance.report import fmt as report_fmt
from conformance.report import pairs as pair_judge
from conformance.report import sentences as report_sentences
from conformance.report.sections import compiled as compiled_section
from conformance.report.sections import speed as speed_section
from conformance import results
from conformance.compare import OutputError
from conformance.results import COLUMNS
from impls.caseio import Case, write_npz

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = report.CHROMIUM_FLAGS

SWCE, SSWCE = "softmax_with_cross_entropy", "sampled_softmax_with_cross_entropy"
BAD = "swce-invalid-label-f64"
CASES = [  # id, op, dtype, description, tags, features
    ("swce-base-hard-f32", SWCE, "float32", "logits [8, 10] (normal), axis -1; hard labels", ["K10", "base"], []),
    ("swce-base-soft-f64", SWCE, "float64", "logits [8, 10] (normal), axis -1; soft labels", ["K10", "base"],
     ["soft_label"]),
    ("swce-neg_inf-soft-f32", SWCE, "float32", "logits [6, 12] (neg_inf); soft labels", ["K12", "extreme"],
     ["neg_inf_logits", "soft_label"]),
    ("swce-neg_inf-soft-f64", SWCE, "float64", "logits [6, 12] (neg_inf); soft labels", ["K12", "extreme"],
     ["neg_inf_logits", "soft_label"]),
    ("sswce-base-f16", SSWCE, "float16", "logits [6, 50], T=1, S=8 <per-row> & hits", ["K50", "base"],
     ["per_row_negatives"]),
    ("sswce-hits-f32", SSWCE, "float32", "logits [6, 50], T=2, S=8, accidental hits", ["K50", "hits"],
     ["per_row_negatives", "remove_accidental_hits"]),
    (BAD, SWCE, "float64", "invalid input: a label equal to the number of classes (label)", ["invalid"],
     ["invalid_input"]),
]
INVALID = {BAD: {"argument": "label", "reason": "a label equal to the number of classes"}}
# what each impl did with the invalid case (runner.py's ``behaviour``); tensorflow/cpu: unsupported
BEHAVIOUR = {("numpy", "cpu"): ("pass", "raises", "ValueError: label must be < 10"),
             ("torch", "cpu"): ("fail", "returns finite numbers",
                                "accepted invalid input (a label equal to the number of classes) and returned finite numbers"),
             ("torch", "gpu"): ("pass", "raises", "IndexError: Target 10 is out of bounds."),
             ("tensorflow", "cpu"): ("unsupported", "", "tf cannot take <this> label")}
NAN_MESSAGE = "loss: nan where %s was expected at (0, 0)"  # prose: shown nowhere, parsed by nothing


def nonfinite(expected):
    """The structured error of a NaN where the golden loss is finite (compare.py's contract)."""
    return {"loss": {"abs": "inf", "rel": "inf", "ratio": "inf", "where": [0, 0], "problem": "nonfinite",
                     "actual": "nan", "expected": expected},
            "grad/logits": {"abs": 0.0, "rel": 0.0, "ratio": 0.0, "where": [0, 0], "problem": "", "actual": None,
                            "expected": None}}


def off_by(abs_error, ratio, where):
    return {"loss": {"abs": abs_error, "rel": abs_error / 10, "ratio": ratio, "where": where, "problem": "",
                     "actual": None, "expected": None}}
OUTCOMES = {  # (impl, device) -> case -> (status, tol_ratio, message, deviation)
    ("numpy", "cpu"): {c[0]: ("pass", 0.01, "", "") for c in CASES if c[0] != BAD},
    ("torch", "cpu"): {
        "swce-base-hard-f32": ("pass", 0.02, "", ""),
        "swce-base-soft-f64": ("pass", 0.5, "", ""),
        "swce-neg_inf-soft-f32": ("fail", math.inf, NAN_MESSAGE % "3.5464123185578957", "",
                                  nonfinite(3.5464123185578957)),
        "swce-neg_inf-soft-f64": ("fail", math.inf, NAN_MESSAGE % "2.1006920021699074", "",
                                  nonfinite(2.1006920021699074)),
        "sswce-base-f16": ("xfail", 3.5, "loss: max error 0.0123 is 3.5x the tolerance at index (1,)",
                           "torch-f16-sampled", off_by(0.0123, 3.5, [1])),
        "sswce-hits-f32": ("pass", 0.03, "", ""),
    },
    ("torch", "gpu"): {
        "swce-base-hard-f32": ("pass", 0.04, "", ""),
        "swce-base-soft-f64": ("pass", 0.7, "", ""),
        "swce-neg_inf-soft-f32": ("crash", None, "worker died: killed by signal SIGSEGV: Segmentation fault <core>", ""),
        "swce-neg_inf-soft-f64": ("timeout", None, "no answer within 120s; worker killed and restarted", ""),
        "sswce-base-f16": ("pass", 0.2, "", ""),
        "sswce-hits-f32": ("pass", 0.03, "", ""),
    },
    ("tensorflow", "cpu"): {
        "swce-base-hard-f32": ("pass", 0.01, "", ""),
        "swce-base-soft-f64": ("unsupported", None, "soft labels with axis != -1 are not expressible", ""),
        "swce-neg_inf-soft-f32": ("error", None, "InvalidArgumentError: logits & labels must be <finite>", ""),
        "swce-neg_inf-soft-f64": ("xpass", 0.1, "", "tf-neg-inf"),
        "sswce-base-f16": ("pass", 0.05, "", ""),
        "sswce-hits-f32": ("fail", 2.5, "loss: max error 0.0004 is 2.5x the tolerance at index (3,)", "",
                           off_by(0.0004, 2.5, [3])),
    },
}


NOT_REPEATABLE = ("tensorflow", "sswce-hits-f32")  # gave different bits on its second run


def _row(impl, device, case, outcome=None):
    case_id, op, dtype, _, tags, features = case
    if case_id in INVALID and outcome is None:
        status, behaviour, message = BEHAVIOUR[(impl, device)]
        row = _row(impl, device, case, (status, None, message, ""))
        row["behaviour"] = behaviour
        return row
    status, ratio, message, deviation = outcome[:4]
    errors = outcome[4] if len(outcome) > 4 else None  # per-output details; without: a default pair
    row = dict.fromkeys(COLUMNS, "")
    row.update(case=case_id, op=op, dtype=dtype, impl=impl, impl_version="1.0", device=device,
               mode="native", status=status, message=message, python="3.11.7", tags=" ".join(tags),
               features=" ".join(features), deviation=deviation)
    if ratio is not None:
        row.update(tol_ratio=ratio, max_abs_err=ratio * 1e-6, max_rel_err=ratio * 1e-7, worst_output="loss",
                   rtol=1e-6, tolerance="%s: 16 ulp" % dtype, seconds=0.01,
                   deterministic=(impl, case_id) != NOT_REPEATABLE,
                   errors=errors or {"loss": {"abs": ratio * 1e-6, "rel": ratio * 1e-7, "ratio": ratio},
                                     "grad/logits": {"abs": 0.0, "rel": 0.0, "ratio": min(ratio, 0.001)}})
    return row


def _output_error(name, info) -> OutputError:
    return OutputError(name, float(info["abs"]), float(info["rel"]), float(info["ratio"]), tuple(info.get("where", ())),
                       info.get("problem", ""), info.get("actual"), info.get("expected"))


def result_row(row: dict) -> results.ResultRow:
    """A typed row of a test's dict (text or numbers per column; ``errors``: {output: details})."""
    typed = results._row_of({c: "" if row.get(c) in (None, "") else str(row[c]) for c in COLUMNS})
    typed.outputs = [_output_error(name, info) for name, info in (row.get("errors") or {}).items()]
    return typed


def write_results(path: Path, rows):
    """Through the suite's own writer (conformance.results), as a run writes them."""
    with results.ResultsFile(path) as handle:
        for row in rows:
            handle.write(result_row(row))


def make_raw(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for (impl, device), outcomes in OUTCOMES.items():
        write_results(folder / ("results-%s-%s.csv" % (impl, device)),
                      [_row(impl, device, case, outcomes.get(case[0])) for case in CASES])
        mode = "composed" if impl == "torch" else "native"
        environment = {"impl": impl, "device": device, "version": "1.0", "python": "3.11.7", "numpy": "2.4.6",
                       "numpy_avx512": ["X86_V4", "AVX512_ICL"] if impl == "torch" else [],
                       "corpus_sha256": "ab" * 32, "finished": "2026-01-01 00:00:00 UTC", "event": "ready",
                       "ops": {SWCE: {"mode": "native", "dtypes": ["float32", "float64"],
                                      "unsupported_features": [], "note": "F.cross_entropy"},
                               SSWCE: {"mode": mode, "dtypes": ["float16", "float32"],
                                       "unsupported_features": ["sampler"], "note": "gather + log_softmax"}}}
        (folder / ("environment-%s-%s.json" % (impl, device))).write_text(json.dumps(environment), encoding="utf-8")
    return folder


def make_cases(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entries = [{"id": c[0], "op": c[1], "dtype": c[2], "description": c[3], "tags": c[4], "features": c[5],
                "file": "%s/%s.npz" % (c[1], c[0]), "sha256": ""} for c in CASES]
    for entry in entries:
        if entry["id"] in INVALID:
            entry["invalid"] = INVALID[entry["id"]]
    manifest = {"format": corpus.FORMAT_VERSION, "corpus_sha256": "ab" * 32, "generator": "test", "cases": entries}
    (folder / corpus.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return folder


BENCH_HEADER = ("impl,impl_version,device,op,mode,dtype,batch,classes,samples,dim,num_true,median_s,iqr_s,"
                "iqr_over_median,n,noisy,peak_mem_bytes,mem_method,status,message,ratio_to_fastest\n")


def write_bench(raw: Path):
    """Hand-written benchmark rows: numpy twice as fast as torch on one shape, torch faster on another,
    a noisy row, an unsupported row, and the class sweep of sampled_softmax_loss.  ``ratio_to_fastest``
    (written by conformance/bench.py) is filled in by hand from the medians."""
    numpy_rows = [
        "numpy-fast,2.0,cpu,%s,forward_backward,float32,64,1000,0,0,1,0.001,0.0001,0.1,20,False,4000,tracemalloc,ok,,1.0"
        % SWCE,
        "numpy-fast,2.0,cpu,%s,forward_backward,float32,4096,1000,0,0,1,0.030,0.006,0.2,9,True,9000,tracemalloc,ok,,3.0"
        % SWCE,
    ]
    torch_rows = [
        "torch,2.13,cpu,%s,forward_backward,float32,64,1000,0,0,1,0.002,0.0001,0.05,20,False,5000,rss_hwm,ok,,2.0" % SWCE,
        "torch,2.13,cpu,%s,forward_backward,float32,4096,1000,0,0,1,0.010,0.0001,0.01,20,False,7000,rss_hwm,ok,,1.0"
        % SWCE,
        "torch,2.13,cpu,%s,forward_backward,float16,64,1000,0,0,1,,,,,,,,unsupported,no <float16> here," % SWCE,
    ]
    for k, seconds in ((1000, 0.001), (10000, 0.002), (100000, 0.004), (1000000, 0.008)):
        for impl, scale in (("numpy-fast", 1.0), ("torch", 3.0)):
            row = ("%s,1,cpu,sampled_softmax_loss,forward_backward,float32,128,%d,512,128,1,%g,0.0001,0.01,10,False,"
                   "%d,m,ok,,%g" % (impl, k, seconds * scale, 1_000_000, scale))
            (numpy_rows if impl == "numpy-fast" else torch_rows).append(row)
    (raw / "bench-numpy-fast-cpu.csv").write_text(BENCH_HEADER + "\n".join(numpy_rows) + "\n", encoding="utf-8")
    (raw / "bench-torch-cpu.csv").write_text(BENCH_HEADER + "\n".join(torch_rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    raw = make_raw(root / "raw")
    write_bench(raw)
    (raw / "sampler-torch-cpu.csv").write_text("impl,device,range_max,check,p_value,status,message\n"
                                               "torch,cpu,50,uniform,0.42,pass,\n"
                                               "torch,cpu,50,expected_count,1e-9,fail,REJECTED: class 0 too often\n"
                                               "torch,cpu,1000,uniform,0.31,pass,\n")
    (raw / "sampler-numpy-cpu.csv").write_text("impl,device,range_max,check,p_value,status,message\n"
                                               "numpy,cpu,50,uniform,0.5,pass,\n")
    cases = make_cases(root / "cases")
    table = report.write_report(raw, root / "out", cases)
    html_text = (root / "out" / "index.html").read_text(encoding="utf-8")
    return root, table, html_text


def test_summary_and_csv_tables(built):
    root, table, _ = built
    out = root / "out"
    for name in ("summary.csv", "results.csv", "cases.csv", "differences.csv", "agreement.csv", "modes.csv",
                 "environment.csv", "overview.csv", "bench.csv", "sampler.csv"):
        assert (out / name).is_file(), name
    assert table.loc[(SWCE, "float32", "torch", "gpu"), "crash"] == 1
    assert table.loc[(SWCE, "float32", "torch", "cpu"), "worst_tol_ratio"] == math.inf
    import pandas as pd

    cases = pd.read_csv(out / "cases.csv")
    assert len(cases) == len(CASES)
    assert {"torch/gpu status", "torch/gpu ratio", "tensorflow/cpu status", "description"} <= set(cases.columns)
    loops = pd.read_csv(out / "environment.csv").set_index("impl/device")["numpy AVX-512 loops"]
    assert (loops["torch/cpu"], loops["tensorflow/cpu"]) == ("X86_V4, AVX512_ICL", "off")


def test_html_has_every_section_and_case(built):
    _, _, page = built
    for section in ("overview", "differences", "agreement", "compiled", "distribution", "summary", "cases", "modes",
                    "environment", "speed", "sampler"):
        assert 'id="%s"' % section in page, section
    for case in CASES:
        assert case[0] in page
    assert "logits [8, 10] (normal), axis -1; hard labels" in page  # descriptions from the manifest
    for status in ("pass", "fail", "error", "crash", "timeout", "xfail", "xpass", "unsupported"):
        assert "st-%s" % status in page  # colour classes, and the legend
    for label in ("numpy/cpu", "torch/cpu", "torch/gpu", "tensorflow/cpu"):
        assert label in page
    assert "p_<wbr>value" in page  # the sampler table, every check (its column names may wrap after "_")
    assert "mode-composed" in page and "mode-native" in page


def test_speed_section(built):
    root, _, page = built
    import pandas as pd

    speed = pd.read_csv(root / "out" / "speed.csv")
    ratio = speed[speed["dtype"] == "float32"].set_index(["impl", "batch", "classes", "op"])["ratio"]
    assert ratio[("numpy-fast", 64, 1000, SWCE)] == 1.0 and ratio[("torch", 64, 1000, SWCE)] == 2.0
    assert ratio[("torch", 4096, 1000, SWCE)] == 1.0 and ratio[("numpy-fast", 4096, 1000, SWCE)] == 3.0
    target = pd.read_csv(root / "out" / "speed_target.csv")
    assert len(target) == 6  # every forward+backward shape both ran
    met = target.set_index("shape")["met"]
    assert met["B=64 K=10^3"] == "yes" and met["B=4096 K=10^3"] == "NO"
    assert "numpy-fast/cpu, forward+backward: 5 of 6 shapes at or under 0.7× the fastest framework" in page
    assert "float32: 5 of 6, median" in page  # the per-dtype breakdown
    assert "1 of 12 timed rows have an IQR above 10% of their median" in page
    assert "no &lt;float16&gt; here" in page  # an unsupported row keeps its reason, escaped
    memory = pd.read_csv(root / "out" / "speed_memory.csv")
    assert len(memory) == 8
    at_million = memory[memory["shape"].str.contains("K=10^6", regex=False)]["peak / B·K"]
    assert list(at_million) == [1e6 / (128 * 10 ** 6 * 4)] * 2  # 1 MB against B*K*4 bytes
    assert "Time against the number of classes" in page


def test_determinism_column(built):
    root, _, page = built
    import pandas as pd

    overview = pd.read_csv(root / "out" / "overview.csv").set_index("impl/device")["bitwise repeatable"]
    ran = {label: sum(1 for o in OUTCOMES[tuple(label.split("/"))].values() if o[1] is not None)
           for label in overview.index}
    assert overview["tensorflow/cpu"] == "%d of %d" % (ran["tensorflow/cpu"] - 1, ran["tensorflow/cpu"])
    assert overview["numpy/cpu"] == "%d of %d" % (ran["numpy/cpu"], ran["numpy/cpu"])
    assert "Not bitwise repeatable" in page and 'id="T_not_repeatable"' in page
    table = page.split('id="T_not_repeatable"')[1].split("</table>")[0]
    assert "tensorflow/cpu" in table and "sswce-hits-f32" in table and "numpy/cpu" not in table


def test_html_escapes_messages(built):
    _, _, page = built
    assert "&lt;per-row&gt; &amp; hits" in page
    assert "<per-row>" not in page and "<finite>" not in page and "<core>" not in page


def test_embedded_images_and_no_external_urls(built):
    _, _, page = built
    images = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(images) >= 2
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert all(len(src) > 5000 for src in images)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "@import" not in page and not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert "<script src" not in page


def test_differences_grouped_by_cause(built):
    root, _, page = built
    import pandas as pd

    found = pd.read_csv(root / "out" / "differences.csv").astype(object).fillna("")
    nan_group = found[(found["impl"] == "torch") & (found["status"] == "fail") & (found["kind"] == "fail")]
    assert len(nan_group) == 1  # two NaN failures, one cause: same output, same problem kind
    group = nan_group.iloc[0]
    assert group["cases"] == 2 and group["dtypes"] == "float32 float64"
    assert (group["worst output"], group["problem"]) == ("loss", "nonfinite")
    assert group["shared features"] == "neg_inf_logits soft_label"
    assert group["what differs"] == "torch returns nan in `loss` at index (0, 0) where the reference has 3.55."
    assert group["reproducer"] == ("python -m conformance run --impl torch --select 'swce-neg_inf-soft-f32' "
                                   "--keep-outputs")
    numeric = found[(found["impl"] == "tensorflow") & (found["status"] == "fail")].iloc[0]
    assert numeric["what differs"] == "tensorflow's `loss` is off by 0.0004 at index (3), 2.5 times the tolerance."
    known = found[found["status"] == "xfail"].iloc[0]
    # (an entry the registry does not have: no sentence of its own, the smallest case's)
    assert known["kind"] == "known deviation" and known["in the smallest case"] == ""
    assert known["what differs"] == "torch's `loss` is off by 0.0123 at index (1), 3.5 times the tolerance."
    statuses = set(zip(found["impl"], found["devices"], found["status"]))
    assert {("torch", "gpu", "crash"), ("torch", "gpu", "timeout"), ("tensorflow", "cpu", "error"),
            ("torch", "cpu", "xfail"), ("tensorflow", "cpu", "fail")} <= statuses
    crash = found[found["status"] == "crash"].iloc[0]
    assert "--device gpu" in crash["reproducer"] and crash["kind"] == "error"
    assert crash["what differs"] == "The torch worker process dies: worker died: killed by signal SIGSEGV: " \
                                    "Segmentation fault <core>."
    assert "xpass" not in set(found["status"]) and "unsupported" not in set(found["status"])
    assert "Known deviations that passed" in page


def test_bad_input_counted_apart_from_numeric_fails(built):
    """The invalid-input case torch/cpu accepted is a 'bad input accepted' finding, not a numeric fail."""
    root, _, page = built
    import pandas as pd

    found = pd.read_csv(root / "out" / "differences.csv").astype(object).fillna("")
    bad = found[found["kind"] == "bad input accepted"]
    assert list(zip(bad["impl"], bad["status"], bad["problem"])) == [("torch", "fail", "returns finite numbers")]
    assert bad.iloc[0]["what differs"] == ("torch accepts a label equal to the number of classes and returns "
                                           "finite numbers.")
    assert set(found.loc[found["all cases"].str.contains(BAD), "finding kind"]) == {"bad input accepted"}
    # the first screen: 6 framework findings in 7 cases (torch/cpu's NaNs, its known deviation,
    # torch/gpu's crash and timeout, tensorflow's error and fail), 1 accepted bad input
    first = page.split('id="overview"')[1].split("</section>")[0]
    assert "<b>6</b>framework findings (7 cases)" in first
    assert "<b>1</b>bad input accepted" in first
    # the bad-input table: a cell for every impl, none blank, the reason of the unsupported one shown
    table = pd.read_csv(root / "out" / "bad_input.csv")
    assert table.set_index("case").loc[BAD].to_dict() == {
        "argument": "label", "reason": "a label equal to the number of classes", "numpy/cpu": "raises",
        "torch/cpu": "returns finite numbers", "torch/gpu": "raises",
        "tensorflow/cpu": "unsupported: tf cannot take <this> label"}
    assert "unsupported: tf cannot take &lt;this&gt; label" in page


def glance_rows(first: str) -> dict:
    """The first screen's table as {impl/device: [cell texts]} (the summary line, the matrix, the speed)."""
    table = first.split('id="T_glance"')[1].split("</table>")[0]
    body = table.split("<tbody>")[1].split("</tbody>")[0]
    rows = {}
    for row in body.split("<tr")[1:]:
        label = re.sub(r"<[^>]+>", "", re.search(r"<th[^>]*>(.*?)</th>", row, re.S).group(1)).split()[0]
        rows[label] = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    return rows


def test_first_screen_answers_the_three_questions(built):
    _, _, page = built
    from conformance import outcomes as O

    first = page.split('id="overview"')[1].split("</section>")[0]
    rows = glance_rows(first)
    # do they agree: each impl's summary line, every case counted once (the kinds' order)
    assert list(O.KINDS) == ["pass", "known deviation", "fail", "error", "bad input accepted", "unsupported",
                             "inapplicable"]
    lines = {label: [int(n) for n in cells[:len(O.KINDS)]] for label, cells in rows.items()}
    assert lines == {"torch/cpu": [3, 1, 2, 0, 1, 0, 0], "torch/gpu": [5, 0, 0, 2, 0, 0, 0],
                     "tensorflow/cpu": [3, 0, 1, 1, 0, 2, 0], "numpy/cpu": [7, 0, 0, 0, 0, 0, 0]}
    assert list(rows) == ["torch/cpu", "torch/gpu", "tensorflow/cpu", "numpy/cpu"]  # the suite's own oracle last
    # the matrix: softmax_with_cross_entropy float32, float64, then the sampled op's float16, float32
    matrix = {label: cells[len(O.KINDS):len(O.KINDS) + 4] for label, cells in rows.items()}
    assert matrix["torch/cpu"] == ["1", "1", "1", "✓"]  # a NaN each softmax dtype; the f16 known deviation
    assert matrix["torch/gpu"] == ["1", "1", "✓", "✓"]  # the crash (f32) and the timeout (f64)
    assert matrix["tensorflow/cpu"] == ["1", "✓", "✓", "1"]  # the error; the soft f64 one unsupported
    # pale where only some of a cell's cases have the kind (torch/cpu float32: a NaN and a pass)
    assert re.search(r'class="cell k-fail some[^"]*"[^>]*>1<', first) and 'class="cell k-knowndeviation opstart"' in first
    # where not: worst first, a wrong number (by how far beyond the tolerance) before an error, with
    # the Differences table's sentence and its reproducer
    findings = first.split('class="findings"')[1].split("</li>")
    items = [html.unescape(re.sub(r"<[^>]+>", "", item)) for item in findings]
    assert "torch returns nan in `loss` at index (0, 0) where the reference has 3.55." in items[0]
    assert "torch's `loss` is off by 0.0123" in items[1] and "3.5× the tolerance" in items[1]
    assert "tensorflow's `loss` is off by 0.0004" in items[2]
    assert "The torch worker process dies" in items[3]
    assert "python -m conformance run --impl torch --select 'swce-neg_inf-soft-f32' --keep-outputs" in items[0]
    assert 'href="#diff-0"' in findings[0] and 'id="diff-0"' in page and 'id="repro-0"' in page
    # how fast: per op the geometric mean of the forward+backward ratios and one call's time at the
    # reference shape; numpy-fast is the suite's own contender, marked
    speed = {label: cells[len(O.KINDS) + 4:] for label, cells in rows.items()}
    assert speed["torch/cpu"] == ["1.41× 2 ms", "3.00× 6 ms"] and speed["numpy/cpu"] == ["not timed"] * 2
    assert "softmax_\u200bwith_\u200bcross_\u200bentropy<div class=\"dt\">B=64 K=10^3</div>" in first
    assert "numpy-fast" not in rows  # timed but no results: not on the first screen


def test_sampler_verdicts(built):
    _, _, page = built
    section = page.split('id="sampler"')[1].split("</section>")[0]
    verdicts = section.split('class="verdicts"')[1].split("<details>")[0]
    assert verdicts.index("torch/cpu") < verdicts.index("numpy/cpu")  # failing impls first
    assert "fails 1 of 3 tests</span> (expected_count)" in verdicts and "passes all 1 tests" in verdicts
    assert "REJECTED: class 0 too often" in verdicts


def test_numbers_formatted_for_people(built):
    assert report_fmt.fmt_number(0.0) == "0" and report_fmt.fmt_number(float("nan")) == "—" and report_fmt.fmt_number(math.inf) == "∞"
    assert report_fmt.fmt_number(1.61e13) == "1.61×10¹³" and report_fmt.fmt_number(0.000123456) == "0.000123"
    assert report_fmt.fmt_number(2.5e-9) == "2.5×10⁻⁹" and report_fmt.fmt_number(12.0) == "12"
    assert report_fmt.fmt_seconds(12.3e-6) == "12.3 µs" and report_fmt.fmt_seconds(0.0009999) == "1 ms"
    assert report_fmt.fmt_bytes(4.56e6) == "4.56 MB" and report_fmt.fmt_bytes(512) == "512 B" and report_fmt.fmt_bytes(None) == "—"
    _, _, page = built
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", page, flags=re.S)
    text = re.sub(r'src="data:[^"]*"', "", text)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", text)
    assert cells and not [c for c in cells if re.search(r"\bnan\b|e[+-]\d\d", c, re.I) or c.strip() == ""]


def test_sections_are_units_in_package_files(built):
    _, _, page = built
    templates = Path(report.__file__).parent / "templates"
    ids = re.findall(r'<section id="([^"]+)"', page)
    assert len(ids) == len(report.SECTIONS)  # one part of the page per section unit, in the list's order
    assert ids == ["overview", "differences", "speed", "agreement", "compiled", "backends", "badinput", "conventions", "modes",
                   "sampler", "memory",
                   "counts", "distribution", "summary", "cases", "environment"]
    nav = page.split("<nav>")[1].split("</nav>")[0]
    assert re.findall(r'href="#([^"]+)"', nav) == ids
    for name in ("report.html.j2", "report.css", "report.js", "macros.html.j2"):
        assert (templates / name).is_file(), name
    assert (templates / "report.css").read_text(encoding="utf-8") in page  # inlined: the page is one file
    # the All cases table is behind a <details>, not a nested scroll box
    cases = page.split('id="cases"')[1].split("</section>")[0]
    assert "<details>" in cases and "max-height" not in (templates / "report.css").read_text(encoding="utf-8")


STRUCTURED = {  # case -> (per-output errors of one paddle row, the sentence the report must build from it)
    "swce-base-hard-f32": ({"softmax": {"abs": "inf", "rel": "inf", "ratio": "inf", "where": [], "problem": "missing",
                                        "actual": None, "expected": None},
                            "loss": {"abs": 0.0, "rel": 0.0, "ratio": 0.0, "where": [0], "problem": ""}},
                           "paddle returns no `softmax` output."),
    "swce-base-soft-f64": ({"grad/logits": {"abs": "inf", "rel": "inf", "ratio": "inf", "where": [],
                                            "problem": "shape", "actual": [8], "expected": [8, 10]}},
                           "paddle returns `grad/logits` with shape (8) where the reference has shape (8, 10)."),
    "swce-neg_inf-soft-f32": ({"loss": {"abs": "inf", "rel": "inf", "ratio": "inf", "where": [2, 0],
                                        "problem": "nonfinite", "actual": "-inf", "expected": 0.5}},
                              "paddle returns -inf in `loss` at index (2, 0) where the reference has 0.5."),
    "swce-neg_inf-soft-f64": ({"loss": {"abs": 3e-5, "rel": 1e-6, "ratio": 12.345, "where": [1, 0], "problem": ""},
                               "softmax": {"abs": 1e-5, "rel": 1e-6, "ratio": 4.0, "where": [0, 3], "problem": ""},
                               "grad/logits": {"abs": 0.0, "rel": 0.0, "ratio": 0.5, "where": [0, 0], "problem": ""}},
                              "paddle's `loss` is off by 3×10⁻⁵ at index (1, 0), 12.3 times the tolerance "
                              "(and 1 more output)."),
    "sswce-base-f16": ({"loss": {"abs": "inf", "rel": "inf", "ratio": "inf", "where": [3], "problem": "nonfinite",
                                 "actual": "nan", "expected": 1.5}},
                       "paddle returns nan in `loss` at index (3) where the reference has 1.5."),
    "sswce-hits-f32": ({"loss": {"abs": 0.002, "rel": 0.001, "ratio": 3.0, "where": [], "problem": ""}},
                       "paddle's `loss` is off by 0.002, 3 times the tolerance."),
}


def test_sentences_from_structured_errors(tmp_path):
    """A raw folder with one row of each problem kind: the differences table's
    sentences and grouping come from the structured fields; the messages are nonsense on purpose."""
    raw = tmp_path / "raw"
    raw.mkdir()
    write_results(raw / "results-paddle-cpu.csv",
                  [_row("paddle", "cpu", case, ("fail", math.inf, "no regex can read this 1.5 at (9, 9)", "",
                                                STRUCTURED[case[0]][0])) for case in CASES if case[0] in STRUCTURED])
    report.write_report(raw, tmp_path / "out", make_cases(tmp_path / "cases"))
    import pandas as pd

    found = pd.read_csv(tmp_path / "out" / "differences.csv", keep_default_na=False)
    sentences = {cases: what for cases, what in zip(found["all cases"], found["what differs"])}
    assert sentences == {case: sentence for case, (_, sentence) in STRUCTURED.items()}
    problems = dict(zip(found["all cases"], zip(found["worst output"], found["problem"])))
    assert problems["swce-base-hard-f32"] == ("softmax", "missing")
    assert problems["swce-base-soft-f64"] == ("grad/logits", "shape")
    assert problems["swce-neg_inf-soft-f64"] == ("loss", "")
    assert set(found["kind"]) == {"fail"}


def test_sentences_of_runs_that_did_not_compare():
    row = {"impl": "paddle", "status": "error", "parsed": {}, "message": "ValueError: bad axis\nTraceback",
           "behaviour": "", "worst_output": ""}
    assert report_sentences.what_differs(row) == "paddle raises an error: ValueError: bad axis."
    assert report_sentences.what_differs(dict(row, status="timeout", message="no answer within 120s")) == \
        "paddle does not answer in time: no answer within 120s."
    known = report_sentences.what_differs(dict(row, status="xfail"), known_what="Paddle rejects this axis.")
    assert known == "Known deviation: Paddle rejects this axis. Here: paddle: ValueError: bad axis."
    invalid = {"argument": "axis", "reason": "axis 2 for rank-2 logits"}
    assert report_sentences.what_differs(dict(row, status="fail", behaviour="raises"), invalid=invalid) == \
        "paddle raises on axis 2 for rank-2 logits without naming `axis`."
    assert report_sentences.what_differs(dict(row, status="pass", behaviour="returns NaN/inf"), invalid=invalid) == \
        "paddle accepts axis 2 for rank-2 logits and returns NaN/inf."


def test_agreement_matrix_from_ratio_bounds(built):
    root, _, _ = built
    import pandas as pd

    pairs = pd.read_csv(root / "out" / "agreement.csv").set_index(["a", "b"])
    assert len(pairs) == 4 * 3  # every ordered pair of the four runs
    pair = pairs.loc[("numpy/cpu", "torch/cpu")]
    # compared: all 6 (xfail kept outputs); agree: 0.01+0.02, 0.01+0.5, 0.01+0.03;
    # disagree: finite vs inf twice, |0.01 - 3.5| > 1
    assert (pair["compared"], pair["agree"], pair["disagree"], pair["undetermined"]) == (6, 3, 3, 0)
    pair = pairs.loc[("torch/cpu", "torch/gpu")]
    # both ran 4 cases: 0.02+0.04 agree; 0.5+0.7 undetermined; |3.5-0.2| > 1 disagree; 0.03+0.03 agree
    assert (pair["compared"], pair["agree"], pair["disagree"], pair["undetermined"]) == (4, 2, 1, 1)
    assert pair["agree share"] == pytest.approx(0.5)
    assert pairs.loc[("torch/gpu", "torch/cpu"), "agree"] == 2  # symmetric


def test_pair_bounds():
    assert pair_judge.pair_bounds({"loss": 0.2}, {"loss": 0.3}) == (pytest.approx(0.1), pytest.approx(0.5))
    assert pair_judge.pair_bounds({"loss": math.inf}, {"loss": 0.3})[0] == math.inf
    assert pair_judge.pair_bounds({"loss": math.inf}, {"loss": math.inf}) == (0.0, math.inf)
    assert pair_judge.pair_bounds({"loss": 0.1}, {"softmax": 0.1}) is None


def test_agreement_exact_from_kept_outputs(tmp_path):
    """With --keep-outputs files, the pairwise difference is measured, not bounded."""
    manifest = corpus.load_manifest()
    entry = next(e for e in manifest["cases"] if e["id"] == "softmax_with_cross_entropy-base-hard-f32")
    case = Case.read(corpus.DEFAULT_CASES_DIR / entry["file"])
    raw = tmp_path / "raw"
    rows = []
    # both a and b are 0.6 tolerance off the golden loss, in opposite directions: ratios alone cannot
    # tell (0.6 + 0.6 > 1, |0.6 - 0.6| < 1); the outputs show they are 1.2 tolerances apart.
    from conformance import compare

    tol = compare.tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
    allowed = tol.rtol * (np.abs(case.golden["loss"]) + compare.output_scales(case)["loss"])
    for impl, sign in (("numpy", 1), ("torch", -1)):
        outputs = dict(case.golden)
        outputs["loss"] = case.golden["loss"] + sign * 0.6 * allowed
        out_dir = raw / "outputs" / ("%s-cpu" % impl)
        out_dir.mkdir(parents=True)
        write_npz(out_dir / (entry["id"] + ".npz"), outputs)
        row = _row(impl, "cpu", (entry["id"], entry["op"], entry["dtype"], "", entry["tags"], entry["features"]),
                   ("pass", 0.6, "", ""))
        rows.append(row)
        write_results(raw / ("results-%s-cpu.csv" % impl), [row])
    frame = report_data.prepare(report.load_results(raw), details=report_data.load_details(raw))
    pairs = pair_judge.agreement(frame, ["numpy/cpu", "torch/cpu"], raw_dir=raw, manifest=manifest,
                        cases_dir=corpus.DEFAULT_CASES_DIR)
    first = pairs.iloc[0]
    assert (first["exact"], first["disagree"], first["undetermined"]) == (1, 1, 0)
    assert first["worst exact difference"] == pytest.approx(1.2)
    shutil.rmtree(raw / "outputs")  # without outputs the same pair is undetermined
    pairs = pair_judge.agreement(frame, ["numpy/cpu", "torch/cpu"], raw_dir=raw, manifest=manifest,
                        cases_dir=corpus.DEFAULT_CASES_DIR)
    assert (pairs.iloc[0]["exact"], pairs.iloc[0]["undetermined"]) == (0, 1)


def test_cli_report_writes_the_page(tmp_path):
    raw = make_raw(tmp_path / "raw")
    result = subprocess.run([sys.executable, "-m", "conformance", "report", "--raw", str(raw), "--out",
                             str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "index.html").is_file() and (tmp_path / "out" / "summary.csv").is_file()


def _chromium():
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_renders_in_headless_chromium(built, tmp_path):
    root, _, _ = built
    page = (root / "out" / "index.html").resolve()
    browser = [_chromium(), *CHROMIUM_FLAGS]
    shot = tmp_path / "screenshot.png"
    subprocess.run([*browser, "--user-data-dir=%s" % (tmp_path / "profile1"), "--screenshot=%s" % shot,
                    "--window-size=1400,2000", page.as_uri()], capture_output=True, timeout=180)
    assert shot.is_file() and shot.stat().st_size > 20_000
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2000, 1400) and pixels.std() > 10  # not a blank page

    dom = subprocess.run([*browser, "--user-data-dir=%s" % (tmp_path / "profile2"), "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout
    assert dom.count("<table") >= 8
    for table in ("T_overview", "T_differences_framework-findings", "T_glance", "T_kinds", "T_agreement", "T_summary", "T_cases", "T_modes", "T_environment",
                  "T_speed", "T_target", "T_memory", "T_sampler", "T_not_repeatable"):
        assert 'id="%s"' % table in dom, table
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', dom)) >= 3  # statuses, ratios, speed
    assert "%d of %d rows shown" % (len(CASES), len(CASES)) in dom  # the inline filter script ran
    assert "sortkey" in dom  # and made the headers sortable


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_screenshot_of_the_report(built, tmp_path):
    root, _, _ = built
    shot = tmp_path / "shot.png"
    assert report.screenshot(root / "out" / "index.html", shot, size=(1000, 1200)) == ""
    from PIL import Image

    assert Image.open(shot).size == (1000, 1200)


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_sorting_and_filtering_work_in_chromium(built, tmp_path):
    root, _, page = built
    probe = """<script>
    var ths = document.querySelectorAll('#T_cases thead tr:last-child th'), ratios = [];
    ths.forEach(function (th, i) { if (th.textContent.trim() === 'ratio') ratios.push(i); });
    ths[ratios[1]].click(); ths[ratios[1]].click();  // torch/cpu ratio, descending
    var order = Array.from(document.querySelectorAll('#T_cases tbody tr')).map(function (r) {
      return r.cells[0].textContent.trim(); });
    var bar = document.querySelector('.filterbar[data-table=T_cases]');
    var box = bar.querySelector('input[type=search]'); box.value = 'neg_inf'; box.dispatchEvent(new Event('input'));
    var pick = bar.querySelector('select'); pick.value = 'crash'; pick.dispatchEvent(new Event('change'));
    document.body.setAttribute('data-probe', order.join(',') + '|' + bar.querySelector('.count').textContent);
    </script></body>"""
    probe_page = root / "out" / "probe.html"
    probe_page.write_text(page.replace("</body>", probe), encoding="utf-8")
    dom = subprocess.run([_chromium(), *CHROMIUM_FLAGS, "--user-data-dir=%s" % (tmp_path / "profile"), "--dump-dom",
                          probe_page.as_uri()], capture_output=True, text=True, timeout=180).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, dom[-2000:]
    order, count = found.group(1).split("|")
    assert order.split(",")[:3] == ["swce-neg_inf-soft-f32", "swce-neg_inf-soft-f64", "sswce-base-f16"]
    assert order.split(",")[-2:] == ["swce-base-hard-f32", BAD]  # the invalid case has no ratio: blanks last
    assert count == "1 of %d rows shown" % len(CASES)


def test_degenerate_inputs(tmp_path):
    """One impl, nothing compared, no environment files, no manifest: the page still renders."""
    raw = tmp_path / "raw"
    raw.mkdir()
    write_results(raw / "results-cupy-gpu.csv",
                  [_row("cupy", "gpu", case, ("unsupported", None, "no GPU", "")) for case in CASES])
    (raw / "results-torch-cpu.csv").write_text(",".join(COLUMNS) + "\n")  # started, no rows yet
    table = report.write_report(raw, tmp_path / "out", tmp_path / "no-cases")
    assert int(table["unsupported"].sum()) == len(CASES)
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "No case manifest" in page and "Fewer than two" in page and "No compared outputs" in page
    assert "No framework finding and no bad input accepted" in page


def test_compiled_modes_are_set_against_their_eager_impl_case_by_case():
    """Same verdict and outputs within one tolerance of each other agree; everything else is listed."""
    def row(impl, case, status, ratio=None):
        errors = off_by(ratio / 100, ratio, [0]) if ratio is not None else {}
        return dict({c: "" for c in COLUMNS}, case=case, op=SWCE, dtype="float32", impl=impl, device="cpu",
                    status=status, tol_ratio=ratio if ratio is not None else "", errors=errors)

    import pandas as pd

    outcomes = {  # case -> (eager status, ratio), (compiled status, ratio), expected outcome
        "both-close": (("pass", 0.1), ("pass", 0.2), "agree"),
        "compiler-raises": (("pass", 0.1), ("error", None), "verdict differs"),
        "both-fail-apart": (("fail", 5.0), ("fail", 1.5), "outputs differ"),  # |5 - 1.5| > 1: apart
        "both-near-one": (("pass", 0.6), ("pass", 0.6), "undetermined"),  # 0.6 + 0.6 > 1 but no gap shown
        "neither-runs": (("unsupported", None), ("unsupported", None), None),
    }
    rows = []
    for case, (eager, compiled, _) in outcomes.items():
        rows += [row("torch", case, *eager), row("torch-compile", case, *compiled), row("numpy", case, "pass", 0.0)]
    details = {(r["case"], r["impl"], r["device"]): r.pop("errors") for r in rows}
    frame = report_data.prepare(pd.DataFrame(rows), details=details)
    counts, differing = compiled_section.compiled_agreement(frame, {"torch-compile": "torch", "tensorflow-xla": "tensorflow"})
    assert counts.to_dict("records") == [{
        "eager": "torch/cpu", "compiled": "torch-compile/cpu", "op": SWCE, "cases": 4, "agree": 1,
        "verdict differs": 1, "outputs differ": 1, "undetermined": 1, "agree share": 0.25}]
    assert dict(zip(differing["case"], differing["outcome"])) == {
        case: expected for case, (_, _, expected) in outcomes.items() if expected not in (None, "agree")}


def test_target_floor_wording():
    """A missed row whose floor alone exceeds the budget is out of reach; one whose floor is below is
    not ruled out; a met row needs no reason; a floor above the contender's own time is flagged
    (fixed rows, budget 0.7 x the fastest framework)."""
    import pandas as pd


    rows = []
    # (batch, contender seconds, torch seconds, floor seconds)
    for batch, mine, theirs, floor in ((64, 1e-3, 1e-3, 0.9e-3), (128, 1e-3, 1e-3, 0.35e-3),
                                       (256, 0.5e-3, 1e-3, 0.4e-3), (512, 1e-3, 1e-3, 1.2e-3)):
        shape = dict(device="cpu", op=SWCE, mode="forward_backward", dtype="float32", batch=batch, classes=1000,
                     samples=0, dim=0, num_true=1, status="ok", noisy=False, iqr_s=0.0, iqr_over_median=0.0,
                     peak_mem_bytes=None)
        rows.append(dict(shape, impl="numpy-fast", median_s=mine, floor_s=floor,
                         floor_part="exp + row sums + gradient multiply", ratio_to_fastest=mine / min(mine, theirs)))
        rows.append(dict(shape, impl="torch", median_s=theirs, ratio_to_fastest=theirs / min(mine, theirs)))
    target = speed_section.reference_target(speed_section.prepare_bench(pd.DataFrame(rows))).set_index("shape")
    assert target["floor / budget"].round(6).tolist() == [round(0.9 / 0.7, 6), 0.5, round(0.4 / 0.7, 6),
                                                          round(1.2 / 0.7, 6)]
    why = speed_section.target_display(target.reset_index()).set_index("shape")["why missed"]
    assert why["B=64 K=10^3"] == ("out of reach in NumPy: exp + row sums + gradient multiply alone takes 900 µs "
                                  "= 1.29× the budget")
    assert why["B=128 K=10^3"] == ("missed; the floor does not rule it out (exp + row sums + gradient multiply: "
                                   "0.50× the budget)")
    assert why["B=256 K=10^3"] == ""
    # A floor above the contender's own time is no lower bound (the machine changed speed): not out of reach.
    assert why["B=512 K=10^3"] == ("missed; the floor (exp + row sums + gradient multiply) measured 1.20× the "
                                   "contender's own time: not a lower bound in this run")
    line, = speed_section.target_summary(target.reset_index())
    assert "1 of 4 shapes at or under 0.7×" in line
    assert "of the 3 missed, 1 out of reach in NumPy (a measured floor alone exceeds the budget)" in line


def test_the_speed_section_states_the_allocator_settings():
    import pandas as pd

    def line(*settings):
        frame = pd.DataFrame({"status": ["ok"] * len(settings), "malloc": list(settings)})
        return speed_section.malloc_line(frame)

    assert "thresholds fixed" in line("fixed", "fixed") and "--malloc default" in line("fixed")
    assert "glibc's own dynamic malloc thresholds" in line("default")
    assert "different allocator settings (default, fixed" in line("fixed", "default")
    assert line("", "") == ""  # CSVs written before the column say nothing


def test_the_outcome_vocabulary_is_defined_once_and_styled():
    """conformance/outcomes.py names every status, kind and behaviour; the page's CSS styles each by its key."""
    import ast

    from conformance import deviations, outcomes as O, runner, search  # noqa: F401 (search: it imports FAILING)

    assert runner.STATUSES is O.STATUSES and set(O.STATUS_LABELS) == set(O.STATUSES) == set(O.STATUS_COLOURS)
    assert set(O.FAILING) < set(O.DIFFERENCE_STATUSES) and set(O.DIFFERENCE_STATUSES) - set(O.FAILING) == {O.XFAIL}
    assert [deviations.apply(s) for s in O.STATUSES] == [O.XPASS, O.XFAIL, O.XFAIL, O.UNSUPPORTED, O.INAPPLICABLE,
                                                         O.XFAIL, O.XFAIL, O.XFAIL, O.XPASS]
    assert {O.row_kind(s, False) for s in O.STATUSES} | {O.row_kind(O.FAIL, True, O.RETURNS_FINITE)} == set(O.KINDS)
    # an invalid input that raised passes, one taken without raising is accepted whatever its status
    assert O.row_kind(O.PASS, True, O.RAISES) == O.KIND_PASS
    assert O.row_kind(O.PASS, True, O.RETURNS_NONFINITE) == O.row_kind(O.FAIL, True, O.RETURNS_FINITE) == \
        O.BAD_INPUT_ACCEPTED
    assert list(O.FINDING_KINDS) == ["framework finding", "documented limit", "convention difference",
                                     "adapter limitation", "bad input accepted"]
    css = (Path(report.__file__).parent / "templates" / "report.css").read_text(encoding="utf-8")
    for status in O.STATUSES:
        assert "td.st-%s," % status in css, status
    for kind in O.KINDS:
        assert ".k-%s {" % O.kind_key(kind) in css, kind
    for name in set(O.BEHAVIOUR_CLASS.values()) | {O.BEHAVIOUR_BROKEN_CLASS, O.RAISES_UNNAMED_CLASS, O.NOT_RUN_CLASS}:
        assert "td.%s {" % name in css, name
    # the worker side may import it: no third-party import, Python 3.8 syntax
    tree = ast.parse(Path(O.__file__).read_text(encoding="utf-8"), feature_version=(3, 8))
    assert [a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in n.names] == ["OrderedDict"]


def test_backends_of_one_api_are_set_side_by_side_pair_by_pair():
    """Every pair of an api's backends is judged by the compiled section's rule; a bad input one backend
    rejects and another answers with NaN is a differing verdict."""
    import pandas as pd

    from conformance.report.sections import backends

    def row(impl, case, status, behaviour=""):
        return dict({c: "" for c in COLUMNS}, case=case, op=SWCE, dtype="float32", impl=impl, device="cpu",
                    status=status, behaviour=behaviour, tol_ratio="")

    rows = [row("keras-tensorflow", "bad", "pass", "raises"), row("keras-jax", "bad", "pass", "returns NaN/inf"),
            row("keras-torch", "bad", "pass", "raises"),
            row("keras-tensorflow", "axis", "error"), row("keras-jax", "axis", "error"), row("keras-torch", "axis", "pass")]
    frame = report_data.prepare(pd.DataFrame(rows), details={})
    groups = {"keras": ["keras-tensorflow", "keras-jax", "keras-torch"]}
    assert backends.api_backends() == groups  # the adapters' declarations (compiled modes left out)
    counts, differing = backends.backend_agreement(frame, groups)
    assert [(r["first"], r["second"], r["cases"], r["agree"]) for r in counts.to_dict("records")] == [
        ("keras-tensorflow/cpu", "keras-jax/cpu", 2, 1), ("keras-tensorflow/cpu", "keras-torch/cpu", 2, 1),
        ("keras-jax/cpu", "keras-torch/cpu", 2, 0)]
    assert sorted(zip(differing["first"], differing["second"], differing["case"])) == [
        ("keras-jax/cpu", "keras-torch/cpu", "axis"), ("keras-jax/cpu", "keras-torch/cpu", "bad"),
        ("keras-tensorflow/cpu", "keras-jax/cpu", "bad"), ("keras-tensorflow/cpu", "keras-torch/cpu", "axis")]
