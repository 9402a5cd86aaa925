"""The public surface of DESIGN.md: every documented name importable from where it is promised."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import mimgw
import mimgw.providers
from mimgw.providers.base import Provider

DESIGN_NAMES = (
    # models
    "Message",
    "Receipt",
    "DeliveryReport",
    "Balance",
    "InboundMessage",
    "BulkResult",
    # taxonomy and errors
    "State",
    "ErrorKind",
    "MimgwError",
    "ProviderError",
    "InvalidMessageError",
    "UnsupportedOperationError",
    "ConfigurationError",
    "AllProvidersFailedError",
    "OutcomeUnknownError",
    "CampaignRequiredError",
    # gateway
    "Gateway",
    "RetryPolicy",
    "RedeliveryPolicy",
    "BreakerPolicy",
    "RateLimit",
    "MemoryLedger",
    "SqliteLedger",
    "GatewaySettings",
)


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions and dunders (ruff's RUF022 order)."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


@pytest.mark.parametrize("module", [mimgw, mimgw.providers])
def test_all_is_sorted_and_importable(module: object) -> None:
    names = list(module.__all__)  # type: ignore[attr-defined]
    assert names == sorted(names, key=_isort_key)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(module, name), name


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_design_names_are_exported_from_the_package(name: str) -> None:
    assert name in mimgw.__all__


def test_every_exported_error_is_a_mimgw_error() -> None:
    for name in mimgw.__all__:
        obj = getattr(mimgw, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            assert issubclass(obj, mimgw.MimgwError), name


def test_provider_registry_covers_every_backend() -> None:
    registry = mimgw.providers.PROVIDER_CLASSES
    assert list(registry) == ["mimsms_v4", "mimsms_v3", "mimsms_v3_json", "dinisoft", "imiconnect"]
    for kind, cls in registry.items():
        assert issubclass(cls, Provider)
        assert cls.kind == kind
        assert cls.__name__ in mimgw.providers.__all__


def test_package_ships_py_typed() -> None:
    assert Path(mimgw.__file__).with_name("py.typed").is_file()
