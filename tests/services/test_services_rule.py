"""The rule of tests/services/conftest.py: a service that is down skips on a laptop, fails in CI."""

from __future__ import annotations

import pytest
from service_check import unavailable


@pytest.mark.parametrize(("ci", "outcome"), [("true", "failed"), ("", "skipped"), ("0", "skipped")])
def test_a_missing_service_skips_on_a_laptop_and_fails_in_ci(
    ci: str, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if outcome == "failed" else pytest.skip.Exception
    with pytest.raises(expected, match=r"PostgreSQL not reachable .*: refused"):
        unavailable("PostgreSQL not reachable on 127.0.0.1:5432: refused")
