"""Sampler: the statistical checks of each impl's candidate sampler (``conformance sampler``), one
verdict per impl/device with its failing tests."""
from __future__ import annotations

import pandas as pd

from conformance import outcomes as O
from conformance.outcomes import APPROXIMATE
from conformance.report.fmt import first_line, label_order
from conformance.report.html import markup, prose_classes, table_html
from conformance.report.section import Section

SAMPLER_SETTING = ["range_max", "num_sampled", "unique", "num_true"]


def sampler_verdicts(sampler: pd.DataFrame, impl_order=()) -> list:
    """One verdict per impl/device of the sampler checks: fail (its failing tests listed), pass or unsupported."""
    if "status" not in sampler or "impl" not in sampler:
        return []
    frame = sampler.copy()
    device = frame["device"] if "device" in frame else pd.Series("cpu", index=frame.index)
    frame["label"] = frame["impl"].astype(str) + "/" + device.astype(str)
    frame["message"] = frame.get("message", pd.Series("", index=frame.index)).fillna("").astype(str)
    verdicts = []
    for label in label_order(frame["label"], impl_order):
        rows = frame[frame["label"] == label]
        ran = rows[rows["status"] != O.UNSUPPORTED]
        failing = ran[~ran["status"].isin((O.PASS, APPROXIMATE))]
        approximate = ran[ran["status"] == APPROXIMATE]  # the documented unique=True rule (conformance/sampler/)
        unsupported = rows[rows["status"] == O.UNSUPPORTED]
        columns = [c for c in ["check", *SAMPLER_SETTING, "p_value", "p_holm", "status", "message"] if c in rows]
        shown = failing[columns].assign(message=failing["message"].map(lambda m: first_line(m)[:300]))
        verdicts.append({
            "label": label, "ran": len(ran), "passed": int((ran["status"] == O.PASS).sum()),
            "failed": len(failing), "unsupported": len(unsupported), "approximate": len(approximate),
            "verdict": O.FAIL if len(failing) else O.PASS if len(ran) else O.UNSUPPORTED,
            "checks_failing": " ".join(sorted(set(failing.get("check", ())))),
            "reason": first_line(unsupported["message"].iloc[0]) if len(unsupported) else "",
            "failing": shown.reset_index(drop=True),
        })
    rank = {O.FAIL: 0, O.PASS: 1, O.UNSUPPORTED: 2}
    return sorted(verdicts, key=lambda v: rank[v["verdict"]])


def sampler_section(d) -> Section:
    # the page's table leaves out what the environment section says (versions) and the timing, so
    # that it fits 1400 px; the CSV has every column
    shown = (d.sampler.drop(columns=["file", "impl_version", "python", "seconds"], errors="ignore")
             if d.sampler is not None else None)
    return Section("sampler", "Sampler", "sections/sampler.html.j2", {
        "verdicts": [dict(v, failing=markup(table_html(v["failing"], "sampler_fail_%d" % i, extra_class="compact"))
                          if not v["failing"].empty else "") for i, v in enumerate(d.sampler_verdicts)],
        "sampler": markup(table_html(shown, "sampler", classes=prose_classes(shown, ["message"]), extra_class="compact"))
        if shown is not None else "",
        "sampler_files": d.sampler_files,
    }, csv={"sampler.csv": d.sampler})
