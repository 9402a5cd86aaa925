from __future__ import annotations

import pickle

import pytest

import mimgw
from mimgw import (
    AllProvidersFailedError,
    ConfigurationError,
    ErrorKind,
    InvalidMessageError,
    MimgwError,
    ProviderError,
)

SUBCLASS = {
    ErrorKind.CONNECT_FAILED: mimgw.ConnectFailedError,
    ErrorKind.RATE_LIMITED: mimgw.RateLimitedError,
    ErrorKind.PROVIDER_UNAVAILABLE: mimgw.ProviderUnavailableError,
    ErrorKind.OUTCOME_UNKNOWN: mimgw.OutcomeUnknownError,
    ErrorKind.AUTH: mimgw.AuthenticationError,
    ErrorKind.ACCESS_DENIED: mimgw.AccessDeniedError,
    ErrorKind.INSUFFICIENT_BALANCE: mimgw.InsufficientBalanceError,
    ErrorKind.SENDER_REJECTED: mimgw.SenderRejectedError,
    ErrorKind.RECIPIENT_REJECTED: mimgw.RecipientRejectedError,
    ErrorKind.CONTENT_REJECTED: mimgw.ContentRejectedError,
    ErrorKind.REQUEST_REJECTED: mimgw.RequestRejectedError,
    ErrorKind.BAD_RESPONSE: mimgw.BadResponseError,
    ErrorKind.UNSUPPORTED: mimgw.UnsupportedOperationError,
}


def test_one_subclass_per_kind() -> None:
    assert set(SUBCLASS) == set(ErrorKind)


@pytest.mark.parametrize(("kind", "cls"), list(SUBCLASS.items()))
def test_of_builds_the_subclass_with_the_kind_policy(
    kind: ErrorKind, cls: type[ProviderError]
) -> None:
    err = ProviderError.of(kind, "gw", 216, "out of credit", raw="{}", retry_after=2.5)
    assert type(err) is cls
    assert isinstance(err, ProviderError)
    assert isinstance(err, MimgwError)
    assert err.kind is kind
    assert err.code == "216"
    assert err.retryable is kind.retryable
    assert err.failover is kind.failover
    assert err.retry_after == 2.5
    assert err.raw == "{}"
    assert str(err) == f"gw: {kind.value} (code 216): out of credit"


def test_policy_can_be_overridden_per_error() -> None:
    err = ProviderError.of(ErrorKind.OUTCOME_UNKNOWN, "gw", failover=True)
    assert err.failover is True
    assert err.retryable is False


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_errors_pickle_round_trip(kind: ErrorKind) -> None:
    err = ProviderError.of(kind, "gw", "7", "detail", raw="body", http_status=500)
    back = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own object
    assert type(back) is type(err)
    assert (back.kind, back.code, back.detail, back.raw, back.http_status) == (
        kind,
        "7",
        "detail",
        "body",
        500,
    )


def test_value_error_compatibility() -> None:
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(InvalidMessageError, ValueError)


def test_all_providers_failed_keeps_every_attempt() -> None:
    a = ProviderError.of(ErrorKind.AUTH, "one", 401, "bad key")
    b = ProviderError.of(ErrorKind.CONNECT_FAILED, "two")
    err = AllProvidersFailedError([a, b])
    assert err.attempts == [a, b]
    assert err.last is b
    assert "one: auth" in str(err)
    assert "two: connect_failed" in str(err)
    assert AllProvidersFailedError([]).last is None
