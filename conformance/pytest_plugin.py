"""pytest plugin: one test per (impl, device, case), run in the same isolated workers as the CLI.

Any test function that takes the ``conformance_case`` fixture is parametrized over the selected
impls, devices and corpus cases with ids like ``numpy-cpu-sampled_softmax_loss-T2-hits-mod3-f32``
and marks for the op and dtype (``-m "sampled_softmax_loss and float32"``).  Options:
``--impl torch,tensorflow``, ``--device cpu,gpu``, ``--cases DIR``, ``--python IMPL=PATH``.
An impl whose framework is not installed (or a GPU impl without a GPU) is skipped with the reason.

``--conformance-out DIR`` also writes each tested impl's raw results into the run folder ``DIR``
exactly as ``conformance run --impl X --out DIR`` does: each case's row as its test runs (run twice,
as ``conformance run`` does, for the ``deterministic`` and ``seconds`` columns) and the environment
file.  When every case of an impl is tested (no ``-k``/``-m`` narrowing), the end of the session
also runs, with the same worker, what ``conformance run`` adds to a whole run: the rows of the
framework's bad-input cases (recorded, not tests: there is no pass/fail contract) and the check of
the declared limits.  A narrowed session writes only its own rows, as ``conformance run --select``
does.  So a CI job runs the corpus once, not once for pytest and once for the report.

Loading the plugin pins NumPy's dispatch (``NPY_DISABLE_CPU_FEATURES``, unless already set) to the
loops the corpus was generated with: see impls/numpy_dispatch.py.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from impls import numpy_dispatch

# Before anything imports NumPy (this plugin loads before conftest files): the suite runs with
# NumPy's dispatch pinned to the loops the corpus was generated with; the oracle's ulp bounds and the
# bit-reproduced goldens assume libm's float64 exp/log, not NumPy's AVX-512 ones.  Workers inherit it.
numpy_dispatch.pin_this_process()

from conformance import corpus, deviations, results, runner  # noqa: E402 (after the pin)
from conformance.outcomes import NOT_RUN  # noqa: E402
from impls import dtypes, get_adapter, impl_names, resolve
from impls.ops import OPS


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "framework conformance cases")
    group.addoption("--impl", default=None,
                    help="comma-separated impls to test: %s, or package.module:AdapterClass for your own "
                         "(default: all; missing frameworks are skipped)" % ", ".join(impl_names()))
    group.addoption("--device", default="cpu", help="comma-separated devices: cpu, gpu (default: cpu)")
    group.addoption("--cases", default=str(corpus.DEFAULT_CASES_DIR), help="corpus folder (default: cases/)")
    group.addoption("--python", action="append", default=[], metavar="IMPL=PATH",
                    help="interpreter for an impl's worker, e.g. paddle-legacy=/path/python3.8")
    group.addoption("--case-timeout", type=float, default=runner.DEFAULT_CASE_TIMEOUT, help="seconds per case")
    group.addoption("--conformance-out", default=None, metavar="DIR",
                    help="also write the results of every tested impl into the run folder DIR, as `conformance run "
                         "--out DIR` does (every case run %d times; the untested rows and the declared-limit check are "
                         "run at the end of the session)" % runner.DEFAULT_REPEAT)


def pytest_configure(config):
    config.addinivalue_line("markers", "conformance: a framework conformance case from the corpus")
    config.addinivalue_line("markers", "gpu: needs a GPU")
    for name in tuple(OPS) + dtypes.NAMES:
        config.addinivalue_line("markers", "%s: conformance cases of this op or dtype" % name)
    if config.getoption("--conformance-out") and (getattr(config.option, "numprocesses", None)
                                                  or hasattr(config, "workerinput")):
        raise pytest.UsageError("--conformance-out: one process writes each impl's results file; run it without -n")


def _split(value):
    return [item.strip() for item in value.split(",") if item.strip()]


def selected_impls(config) -> list:
    """The impls of ``--impl`` (names or package.module:Adapter specs); by default every known impl
    but the opt-in ones (see ``Adapter.opt_in``)."""
    default = ",".join(name for name in impl_names() if not get_adapter(name).opt_in)
    try:
        return [resolve(item) for item in _split(config.getoption("--impl") or default)]
    except ValueError as error:
        raise pytest.UsageError("--impl: %s" % error) from None


def is_tested(impl, entry) -> bool:
    """Whether a case is a test for the impl: bad input has a contract only for the reference (raise,
    naming the argument); what a framework does with it is recorded by `conformance run` and shown in
    the report."""
    return not entry.get("invalid") or impl in runner.REFERENCE_IMPLS


TESTED_CASES = pytest.StashKey()  # (impl, device) -> case ids of the session's test items, after -k/-m


def pytest_collection_finish(session):
    tested = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "conformance_case" in callspec.params:
            impl, device, entry = callspec.params["conformance_case"]
            tested.setdefault((impl, device), set()).add(entry["id"])
    session.config.stash[TESTED_CASES] = tested


def pytest_generate_tests(metafunc):
    if "conformance_case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    impls = selected_impls(config)
    devices = _split(config.getoption("--device"))
    manifest = corpus.load_manifest(Path(config.getoption("--cases")))
    params = []
    for impl in impls:
        adapter = get_adapter(impl)
        for device in devices:
            if device not in adapter.devices:
                continue
            marks = [pytest.mark.gpu] if device == "gpu" else []
            for entry in manifest["cases"]:
                if not is_tested(impl, entry):
                    continue
                params.append(pytest.param((impl, device, entry), id="%s-%s-%s" % (impl, device, entry["id"]),
                                           marks=marks + [pytest.mark.conformance, getattr(pytest.mark, entry["op"]),
                                                          getattr(pytest.mark, entry["dtype"])]))
    metafunc.parametrize("conformance_case", params)


class _WorkerPool:
    """One worker per (impl, device) for the whole session; an impl that cannot start is remembered.

    With ``--conformance-out`` each row is also written to the impl's results file, and ``close``
    finishes each impl's run folder (see the module docstring)."""

    def __init__(self, config):
        self.config = config
        self.workers, self.unavailable, self.files = {}, {}, {}
        self.overrides = dict(item.split("=", 1) for item in config.getoption("--python"))
        self.scratch = Path(tempfile.mkdtemp(prefix="conformance-pytest-"))
        self.registry = deviations.load()
        self.cases_dir = Path(config.getoption("--cases"))
        self.cases = corpus.load_manifest(self.cases_dir)["cases"]
        out = config.getoption("--conformance-out")
        self.out = Path(out) if out else None
        self.repeat = runner.DEFAULT_REPEAT if self.out else 1  # the same rows as `conformance run`

    def run(self, impl, device, entry):
        key = (impl, device)
        if key in self.unavailable:
            pytest.skip(self.unavailable[key])
        if key not in self.workers:  # started by its first supported case only
            log_dir = self.out / "logs" if self.out else None
            self.workers[key] = runner.Worker(impl, device, runner.python_for(impl, self.overrides), log_dir=log_dir)
        try:
            if self.out and self.workers[key].process is None:
                self.workers[key].start()  # an impl that cannot start writes no results file at all
            # execute_case decides support (impls/support.py) as `conformance run` does.
            row = runner.execute_case(self.workers[key], get_adapter(impl), entry, self.cases_dir, self.scratch,
                                      self.registry, repeat=self.repeat, timeout=self.config.getoption("--case-timeout"))
        except runner.WorkerUnavailable as error:
            self.unavailable[key] = "impl not available: %s" % error
            pytest.skip(self.unavailable[key])
        if self.out:
            self._results_file(key).write(row)
        if row.status in NOT_RUN:  # a declared limit; not a test of the framework
            pytest.skip(row.message)
        return row

    def _tested(self, key) -> set:
        return self.config.stash.get(TESTED_CASES, {}).get(key, set())

    def _whole(self, key) -> bool:
        """Whether the session tests every case of the corpus that is a test for this impl."""
        return self._tested(key) >= {e["id"] for e in self.cases if is_tested(key[0], e)}

    def _results_file(self, key):
        if key not in self.files:
            if results.exists(self.out, *key):  # as in `conformance run`: a whole run replaces the files,
                if self._whole(key):            # a narrowed one its own rows
                    results.remove(self.out, *key)
                else:
                    results.replace_rows(self.out, *key, self._tested(key))
            self.files[key] = results.ResultsFile(results.results_path(self.out, *key))
        return self.files[key]

    def close(self, finish=False):
        """Stop the workers; with ``finish``, first complete each written run folder (module docstring),
        with ``conformance run``'s own code."""
        for key, results_file in self.files.items():
            results_file.close()
            if not finish:
                continue
            impl, device = key
            worker = self.workers[key]
            if self._whole(key):
                try:  # the whole corpus was tested: the untested rows and the declared limits, as a whole run
                    runner.run_impl(impl, device, self.cases_dir, self.out, resume=True, repeat=self.repeat,
                                    timeout=self.config.getoption("--case-timeout"), worker=worker)
                except runner.WorkerUnavailable as error:  # it ran some cases, then could not restart
                    print("\n%s/%s: results in %s are incomplete: %s" % (impl, device, self.out, error))
                    continue
            if worker.info:
                runner.write_environment(self.out, impl, device, worker.info, self.cases_dir)
        for worker in self.workers.values():
            worker.stop()


@pytest.fixture(scope="session")
def conformance_workers(request):
    problems = corpus.verify(Path(request.config.getoption("--cases")))
    if problems:
        pytest.fail("the corpus does not match its manifest:\n" + "\n".join(problems[:10]), pytrace=False)
    pool = _WorkerPool(request.config)
    yield pool
    # An interrupted session (Ctrl-C, -x) leaves its rows as they are; `conformance run --resume` finishes them.
    pool.close(finish=not request.session.shouldstop and not request.session.shouldfail)


@pytest.fixture
def conformance_result(conformance_case, conformance_workers, request):
    """The result row of this case (a ``conformance.results.ResultRow``: ``row.status``, or by column
    name, ``row["status"]``); a registry entry turns the test into a (non-strict) xfail."""
    impl, device, entry = conformance_case
    row = conformance_workers.run(impl, device, entry)
    if row.deviation:
        request.applymarker(pytest.mark.xfail(reason="known deviation %s" % row.deviation, strict=False))
    return row
