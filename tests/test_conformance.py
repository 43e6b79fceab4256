"""Every corpus case on every selected impl and device (parametrized by conformance.pytest_plugin)."""
import pytest


def test_conformance(conformance_result):
    status, message = conformance_result["status"], conformance_result["message"]
    if status == "unsupported":
        pytest.skip(message)
    assert status in ("pass", "xpass"), "%s: %s" % (status, message)
