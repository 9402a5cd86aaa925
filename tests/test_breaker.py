"""The circuit breaker: opens on health failures, half-opens after the cool-down, closes."""

from __future__ import annotations

import pickle

import pytest

from mimgw import ErrorKind, ProviderError
from mimgw.breaker import (
    HEALTH_KINDS,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
)
from mimgw.testing import FakeClock


def err(kind: ErrorKind) -> ProviderError:
    return ProviderError.of(kind, "gw", None, "boom")


def make(clock: FakeClock, **kwargs: object) -> CircuitBreaker:
    options: dict[str, object] = {"threshold": 3, "cooldown": 10, "clock": clock.monotonic}
    options.update(kwargs)
    return CircuitBreaker("gw", BreakerPolicy(**options))  # type: ignore[arg-type]


def test_opens_after_consecutive_failures_then_half_opens_and_closes() -> None:
    clock = FakeClock()
    b = make(clock)
    for _ in range(2):
        assert b.allow()
        b.record_error(err(ErrorKind.CONNECT_FAILED))
    assert b.state is BreakerState.CLOSED
    b.record_error(err(ErrorKind.PROVIDER_UNAVAILABLE))
    assert b.state is BreakerState.OPEN and not b.allow()
    assert b.snapshot()["reopens_in"] == 10
    clock.advance(9.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.allow()  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow()  # only one probe at a time
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow()


def test_a_failed_probe_reopens() -> None:
    clock = FakeClock()
    b = make(clock, threshold=1)
    b.record_error(err(ErrorKind.CONNECT_FAILED))
    clock.advance(10)
    assert b.allow()
    b.record_error(err(ErrorKind.CONNECT_FAILED))
    assert b.state is BreakerState.OPEN and b.times_opened == 2
    assert not b.allow()


def test_a_probe_without_verdict_frees_the_slot() -> None:
    clock = FakeClock()
    b = make(clock, threshold=1)
    b.record_error(err(ErrorKind.CONNECT_FAILED))
    clock.advance(10)
    assert b.allow() and not b.allow()
    b.release()
    assert b.allow()


def test_success_resets_the_count() -> None:
    b = make(FakeClock())
    b.record_error(err(ErrorKind.CONNECT_FAILED))
    b.record_error(err(ErrorKind.CONNECT_FAILED))
    b.record_success()
    b.record_error(err(ErrorKind.CONNECT_FAILED))
    assert b.state is BreakerState.CLOSED and b.failures == 1


@pytest.mark.parametrize("kind", sorted(set(ErrorKind) - HEALTH_KINDS))
def test_answers_about_the_message_do_not_count(kind: ErrorKind) -> None:
    b = make(FakeClock(), threshold=1)
    b.record_error(err(kind))
    assert b.state is BreakerState.CLOSED and b.failures == 0


@pytest.mark.parametrize(
    "kind", [ErrorKind.AUTH, ErrorKind.ACCESS_DENIED, ErrorKind.INSUFFICIENT_BALANCE]
)
def test_account_failures_open_at_once_for_the_long_cooldown(kind: ErrorKind) -> None:
    clock = FakeClock()
    b = make(clock, account_cooldown=600)
    b.record_error(err(kind))
    assert b.state is BreakerState.OPEN
    clock.advance(599)
    assert not b.allow()
    clock.advance(1)
    assert b.allow()
    assert b.snapshot()["opened_because"] == kind.value


def test_balance_probe_is_asked_only_for_insufficient_balance() -> None:
    clock = FakeClock()
    b = make(clock, probe_balance=True, account_cooldown=5)
    b.record_error(err(ErrorKind.INSUFFICIENT_BALANCE))
    assert not b.needs_balance_probe
    clock.advance(5)
    assert b.allow() and b.needs_balance_probe
    b.record_success()
    assert not b.needs_balance_probe


def test_rejection_is_a_pickleable_provider_unavailable_error() -> None:
    clock = FakeClock()
    b = make(clock, threshold=1)
    b.record_error(err(ErrorKind.CONNECT_FAILED))
    rejection = b.rejection()
    assert isinstance(rejection, CircuitOpenError)
    assert rejection.kind is ErrorKind.PROVIDER_UNAVAILABLE and rejection.failover
    assert not rejection.may_have_been_sent
    again = pickle.loads(pickle.dumps(rejection))  # noqa: S301 - our own bytes
    assert (again.provider, again.reopens_in, again.cause) == ("gw", 10, ErrorKind.CONNECT_FAILED)


def test_snapshot_is_json_serialisable() -> None:
    import json

    b = make(FakeClock(), threshold=1)
    b.record_error(err(ErrorKind.BAD_RESPONSE))
    data = json.loads(json.dumps(b.snapshot()))
    assert data["state"] == "open" and data["last_error"] == "bad_response"
