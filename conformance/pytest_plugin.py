"""pytest plugin: one test per (impl, device, case), run in the same isolated workers as the CLI.

Any test function that takes the ``conformance_case`` fixture is parametrized over the selected
impls, devices and corpus cases with ids like ``numpy-cpu-sampled_softmax_loss-T2-hits-mod3-f32``
and marks for the op and dtype (``-m "sampled_softmax_loss and float32"``).  Options:
``--impl torch,tensorflow``, ``--device cpu,gpu``, ``--cases DIR``, ``--python IMPL=PATH``.
An impl whose framework is not installed (or a GPU impl without a GPU) is skipped with the reason.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from conformance import corpus, deviations, runner
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


def pytest_configure(config):
    config.addinivalue_line("markers", "conformance: a framework conformance case from the corpus")
    config.addinivalue_line("markers", "gpu: needs a GPU")
    for name in tuple(OPS) + dtypes.NAMES:
        config.addinivalue_line("markers", "%s: conformance cases of this op or dtype" % name)


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
                # Bad input has a contract only for the reference (raise, naming the argument); what a
                # framework does with it is recorded by `conformance run` and shown in the report.
                if entry.get("invalid") and impl not in runner.REFERENCE_IMPLS:
                    continue
                params.append(pytest.param((impl, device, entry), id="%s-%s-%s" % (impl, device, entry["id"]),
                                           marks=marks + [pytest.mark.conformance, getattr(pytest.mark, entry["op"]),
                                                          getattr(pytest.mark, entry["dtype"])]))
    metafunc.parametrize("conformance_case", params)


class _WorkerPool:
    """One worker per (impl, device) for the whole session; an impl that cannot start is remembered."""

    def __init__(self, config):
        self.config = config
        self.workers, self.unavailable = {}, {}
        self.overrides = dict(item.split("=", 1) for item in config.getoption("--python"))
        self.scratch = Path(tempfile.mkdtemp(prefix="conformance-pytest-"))
        self.registry = deviations.load()

    def run(self, impl, device, entry):
        key = (impl, device)
        if key in self.unavailable:
            pytest.skip(self.unavailable[key])
        if key not in self.workers:  # started by its first supported case only
            self.workers[key] = runner.Worker(impl, device, runner.python_for(impl, self.overrides))
        try:
            # execute_case decides support (impls/support.py) as `conformance run` does.
            row = runner.execute_case(self.workers[key], get_adapter(impl), entry,
                                      Path(self.config.getoption("--cases")), self.scratch, self.registry,
                                      repeat=1, timeout=self.config.getoption("--case-timeout"))
        except runner.WorkerUnavailable as error:
            self.unavailable[key] = "impl not available: %s" % error
            pytest.skip(self.unavailable[key])
        if row["status"] in ("unsupported", "inapplicable"):  # a declared limit; not a test of the framework
            pytest.skip(row["message"])
        return row

    def close(self):
        for worker in self.workers.values():
            worker.stop()


@pytest.fixture(scope="session")
def conformance_workers(request):
    problems = corpus.verify(Path(request.config.getoption("--cases")))
    if problems:
        pytest.fail("the corpus does not match its manifest:\n" + "\n".join(problems[:10]), pytrace=False)
    pool = _WorkerPool(request.config)
    yield pool
    pool.close()


@pytest.fixture
def conformance_result(conformance_case, conformance_workers, request):
    """The result row of this case; a registry entry turns the test into a (non-strict) xfail."""
    impl, device, entry = conformance_case
    row = conformance_workers.run(impl, device, entry)
    if row.get("deviation"):
        request.applymarker(pytest.mark.xfail(reason="known deviation %s" % row["deviation"], strict=False))
    return row
