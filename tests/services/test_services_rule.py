"""The rule of tests/services/conftest.py: a service that is down skips on a laptop, fails in CI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# the conftest by path (other test folders load it the same way; it imports nothing local)
_spec = importlib.util.spec_from_file_location(
    "services_conftest_rule", Path(__file__).with_name("conftest.py")
)
assert _spec is not None and _spec.loader is not None
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
unavailable = _conftest.unavailable


@pytest.mark.parametrize(("ci", "outcome"), [("true", "failed"), ("", "skipped"), ("0", "skipped")])
def test_a_missing_service_skips_on_a_laptop_and_fails_in_ci(
    ci: str, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if outcome == "failed" else pytest.skip.Exception
    with pytest.raises(expected, match=r"PostgreSQL not reachable .*: refused"):
        unavailable("PostgreSQL not reachable on 127.0.0.1:5432: refused")
