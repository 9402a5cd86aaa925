"""When a service the tests need is down: skip on a laptop, fail under CI (``CI=true``)."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> None:
    """Skip (laptop) or fail (CI) a test whose service is down."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: services are required)", pytrace=False)
    pytest.skip(reason)
