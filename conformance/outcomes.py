"""The outcome vocabulary: what a result row's ``status`` and ``behaviour`` can say, and what each means.

Every module that writes or reads an outcome imports its name from here (the runner writes them,
the known-deviation registry and the search judge them, the report counts, groups, words and colours
them).  Plain Python with no third-party import, and no syntax beyond Python 3.8: the 3.8
environment's pytest (tox ``paddle-legacy``) imports ``conformance/``.

* **statuses**: one per result row (:data:`STATUSES`, the order of the report's count columns);
* **kinds**: what a row means for the reader (:data:`KINDS`), from its status, whether the case
  is a bad-input one and what the impl did with it (:func:`row_kind`): the columns of each impl's
  summary line;
* **finding kinds**: what a finding of the report is about (:data:`FINDING_KINDS`: framework finding,
  documented limit, convention difference, adapter limitation, bad input accepted);
* **status sets**: :data:`FAILING` (a wrong or missing result no known deviation covers),
  :data:`DIFFERENCE_STATUSES` (what the report's differences table lists: the failing ones and the
  known deviations), :data:`NOT_RUN`, :data:`COMPARED`, :data:`SEVERITY`;
* **bad-input behaviours**: what an impl did with an invalid-input case (the ``behaviour`` column);
* **declared-limit checks**: what a framework did with a case its adapter declares it cannot run
  (the ``capabilities-*.csv`` rows' ``outcome`` and ``status``).

The page's colours live in ``templates/report.css`` under the same keys: ``st-<status>``,
``k-<kind_key(kind)>`` and the :data:`BEHAVIOUR_CLASS` values; the plots' colours are
:data:`STATUS_COLOURS` (tests/test_report.py checks that every key has its CSS rule).
"""
from collections import OrderedDict

# --------------------------------------------------------------------------------------------
# statuses of a result row
PASS = "pass"
FAIL = "fail"
ERROR = "error"
CRASH = "crash"
TIMEOUT = "timeout"
UNSUPPORTED = "unsupported"
# A bad-input case of an op the adapter composes (no framework contract to test), or a case the
# adapter could not pass to the framework unchanged (``impls.base.NotNative``): not a verdict.
INAPPLICABLE = "inapplicable"
XFAIL = "xfail"  # a failure a known deviation (known_deviations.toml) covers
XPASS = "xpass"  # covered by a known deviation, yet it passed

STATUSES = (PASS, FAIL, ERROR, UNSUPPORTED, INAPPLICABLE, CRASH, TIMEOUT, XFAIL, XPASS)

# The legend's text of each status (the report's status counts), and its colour in the plots.
STATUS_LABELS = OrderedDict([
    (PASS, "within the tolerance of the float64 golden outputs"),
    (FAIL, "outside the tolerance, a wrong NaN/inf, a wrong shape or a missing output; for an invalid input: "
           "accepted it and returned finite numbers (the kind bad input accepted)"),
    (ERROR, "the impl raised an exception"),
    (CRASH, "the worker process died (signal or exit)"),
    (TIMEOUT, "no answer within the per-case time limit"),
    (XFAIL, "a failure covered by a known deviation (known_deviations.toml)"),
    (XPASS, "covered by a known deviation, yet it passed: the entry may be stale"),
    (UNSUPPORTED, "the impl declares it cannot express the case"),
    (INAPPLICABLE, "not a test of the framework: bad input to an op the adapter composes, or a case "
                   "the adapter could not pass to the framework unchanged"),
])
STATUS_COLOURS = {PASS: "#3a9a35", FAIL: "#d6402f", ERROR: "#f0961c", CRASH: "#8a4fc4", TIMEOUT: "#c9b21c",
                  XFAIL: "#a89a7a", XPASS: "#3b8fd0", UNSUPPORTED: "#bbbbbb", INAPPLICABLE: "#9fb8c8"}

# --------------------------------------------------------------------------------------------
# sets of statuses
# A wrong or missing result that no known deviation covers: the registry turns these into ``xfail``
# (deviations.apply), the search calls them divergences, the pytest plugin fails on them.
FAILING = (FAIL, ERROR, CRASH, TIMEOUT)
# What the report's differences table groups: the failing rows and the known deviations (an xfail
# is still a difference from the oracle, only an explained one).
DIFFERENCE_STATUSES = FAILING + (XFAIL,)
# The impl did not run the case (a declared or adapter limit): no verdict about the framework.
NOT_RUN = (UNSUPPORTED, INAPPLICABLE)
# The case ran to outputs compared with the golden ones (an xfail may also be a covered error).
COMPARED = (PASS, FAIL, XFAIL, XPASS)
# Worst first: the order groups of one cause are listed in.
SEVERITY = (CRASH, TIMEOUT, ERROR, FAIL, XFAIL, XPASS)

# --------------------------------------------------------------------------------------------
# kinds: what a row means for the reader, the columns of each impl's summary line on the report's
# first screen (as pytest's summary line gives them), each counted and coloured apart
KIND_PASS = "pass"
KNOWN = "known deviation"
NUMERIC = "fail"  # a wrong number: outside the tolerance, a wrong NaN/inf, shape or a missing output
BROKEN = "error"  # raised, its worker died or hung
BAD_INPUT_ACCEPTED = "bad input accepted"  # an invalid input the impl took without raising
KIND_UNSUPPORTED = UNSUPPORTED
KIND_INAPPLICABLE = INAPPLICABLE

KINDS = OrderedDict([
    (KIND_PASS, "within the tolerance of the float64 golden outputs (for an invalid input: it raised)"),
    (KNOWN, "a difference a known deviation covers (known_deviations.toml)"),
    (NUMERIC, "a wrong number: outside the tolerance, a wrong NaN/inf, shape or a missing output"),
    (BROKEN, "the impl raised, its worker died or hung"),
    (BAD_INPUT_ACCEPTED, "an invalid input taken without raising: NaN/inf or finite numbers returned (see Bad input)"),
    (KIND_UNSUPPORTED, "the impl declares it cannot express the case (a capability limit)"),
    (KIND_INAPPLICABLE, "not a test of the framework (bad input to a composed op, or not passed through natively)"),
])
# The kind of a row that ran, by status; any other status (error, crash, timeout) is BROKEN.
_RAN_KIND = {PASS: KIND_PASS, XPASS: KIND_PASS, FAIL: NUMERIC, XFAIL: KNOWN}
# The kinds that are differences from the oracle (the report's differences table lists them).
DIFFERENCE_KINDS = (NUMERIC, BROKEN, KNOWN, BAD_INPUT_ACCEPTED)


def row_kind(status, invalid, behaviour=""):
    """The :data:`KINDS` key of a result row: bad input accepted and capability limits apart from numerics.

    An invalid-input row is *bad input accepted* whatever its status when the impl returned outputs
    (``behaviour`` in :data:`ACCEPTED`); one that raised is a pass, one masked by a known deviation is
    a known deviation, one whose worker died is an error.
    """
    if status == UNSUPPORTED:
        return KIND_UNSUPPORTED
    if status == INAPPLICABLE:
        return KIND_INAPPLICABLE
    if invalid and behaviour in ACCEPTED:
        return BAD_INPUT_ACCEPTED
    return _RAN_KIND.get(status, BROKEN)


def kind_key(kind):
    """The kind's name in CSS classes (``k-<key>`` in templates/report.css): no spaces."""
    return kind.replace(" ", "")


# --------------------------------------------------------------------------------------------
# finding kinds: what the report's findings are about, counted once (conformance/report/data.py,
# ``ReportData.findings``) and named the same in every section and on the first screen's chips
FRAMEWORK_FINDING = "framework finding"
DOCUMENTED_LIMIT = "documented limit"
CONVENTION_DIFFERENCE = "convention difference"
ADAPTER_LIMITATION = "adapter limitation"
FINDING_BAD_INPUT = BAD_INPUT_ACCEPTED

FINDING_KINDS = OrderedDict([
    (FRAMEWORK_FINDING, "the framework's own op differs from the oracle (a wrong number, an error, a crash, a "
                        "hang), known deviation or not: one per cause (Differences)"),
    (DOCUMENTED_LIMIT, "a dtype or feature the adapter declares unsupported, and the framework, tried anyway, "
                       "cannot do (raises, crashes, answers wrongly or gives no gradient): one per impl, op and "
                       "limit (Capability)"),
    (CONVENTION_DIFFERENCE, "an output on which the frameworks' documented conventions give different numbers, "
                            "beyond the tolerance; each framework is judged by its own (Conventions)"),
    (ADAPTER_LIMITATION, "not about the framework: a difference in an op the adapter composes (one per cause), a "
                         "declared limit the adapter cannot express or one the framework contradicts"),
    (FINDING_BAD_INPUT, "an invalid input an impl took without raising: one per impl and case (Bad input)"),
])

# --------------------------------------------------------------------------------------------
# bad-input behaviours: what an impl did with an invalid-input case (the row's ``behaviour``;
# a worker that crashed or hung records its reply's status, ``crash`` or ``timeout``, instead)
RAISES = "raises"
RETURNS_NONFINITE = "returns NaN/inf"
RETURNS_FINITE = "returns finite numbers"  # a silent wrong answer
NOT_TESTED_NATIVELY = "not tested natively"  # the adapter could not pass the input through unchanged
COMPOSED_OP = "not applicable (composed op)"  # an op the adapter composes: no framework contract
MASKED = "masked by a known deviation"  # the op raises for every input of this kind: says nothing here
ACCEPTED = (RETURNS_NONFINITE, RETURNS_FINITE)  # the impl took the bad input and returned outputs

# The CSS class of each behaviour in the report's bad-input table (templates/report.css: bi-*);
# any other (a crash, a timeout) is BEHAVIOUR_BROKEN_CLASS.
BEHAVIOUR_CLASS = {RAISES: "bi-raises", RETURNS_NONFINITE: "bi-nonfinite", RETURNS_FINITE: "bi-finite",
                   COMPOSED_OP: "bi-none", NOT_TESTED_NATIVELY: "bi-none", MASKED: "bi-none"}
BEHAVIOUR_BROKEN_CLASS = "bi-broken"
# The bad-input table's words and classes of two more cells: a reference that raised without naming
# the argument (its contract; status fail), and an impl that declares the case unsupported.
RAISES_UNNAMED = "raises without naming the argument"
RAISES_UNNAMED_CLASS = "bi-wrong"
NOT_RUN_CLASS = "bi-none"
# The bad-input tally's column order.
BEHAVIOUR_ORDER = (RAISES, RAISES_UNNAMED, RETURNS_NONFINITE, RETURNS_FINITE, MASKED, NOT_TESTED_NATIVELY,
                   COMPOSED_OP, UNSUPPORTED)

# --------------------------------------------------------------------------------------------
# sampler checks (``sampler-*.csv``) have the statuses pass, fail, error and unsupported, and one more:
# a rejected check of a rule the framework documents as approximate (conformance/sampler.py says which).
APPROXIMATE = "approximate"

# --------------------------------------------------------------------------------------------
# declared-limit checks (``capabilities-*.csv``): what the framework did with a case its adapter
# declares it cannot run, and the row's status
LIMIT_AGREES = "agrees with the oracle"
LIMIT_WRONG = "wrong answer"
LIMIT_RAISES = RAISES
LIMIT_NO_GRADIENT = "no gradient"
LIMIT_ADAPTER = "adapter cannot express it"
LIMIT_CRASH = CRASH
LIMIT_TIMEOUT = TIMEOUT
LIMIT_NO_CASE = "no case to try"
# A status of its own per outcome: agreeing with the oracle contradicts the declaration (``fail``);
# anything else confirms a limit.
LIMIT_CONFIRMED = "limit"
LIMIT_ADAPTER_STATUS = "adapter limit"
LIMIT_UNCHECKED = "unchecked"
CAPABILITY_STATUS = {LIMIT_AGREES: FAIL, LIMIT_WRONG: LIMIT_CONFIRMED, LIMIT_RAISES: LIMIT_CONFIRMED,
                     LIMIT_NO_GRADIENT: LIMIT_CONFIRMED, LIMIT_ADAPTER: LIMIT_ADAPTER_STATUS,
                     LIMIT_CRASH: LIMIT_CONFIRMED, LIMIT_TIMEOUT: LIMIT_CONFIRMED}
