"""RetryPolicy and the retry runner: which kinds are retried, how long it waits, when it stops."""

from __future__ import annotations

import pytest

from mimgw import ConfigurationError, ErrorKind, ProviderError
from mimgw.retry import RedeliveryPolicy, RetryPolicy, retry_call, should_retry
from mimgw.testing import FakeClock

TRANSIENT = {ErrorKind.CONNECT_FAILED, ErrorKind.RATE_LIMITED, ErrorKind.PROVIDER_UNAVAILABLE}


def policy(clock: FakeClock, **kwargs: object) -> RetryPolicy:
    options: dict[str, object] = {"jitter": False, "sleep": clock.sleep, "clock": clock.monotonic}
    options.update(kwargs)
    return RetryPolicy(**options)  # type: ignore[arg-type]


def err(kind: ErrorKind, **kwargs: object) -> ProviderError:
    return ProviderError.of(kind, "gw", None, "boom", **kwargs)


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_submits_are_retried_only_when_nothing_was_sent(kind: ErrorKind) -> None:
    decided = should_retry(err(kind), "submit", RetryPolicy())
    assert decided is (kind in TRANSIENT)
    if decided:
        assert kind.policy.sent is False


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_reads_are_retried_for_transient_kinds_and_lost_answers(kind: ErrorKind) -> None:
    expected = kind in TRANSIENT or kind is ErrorKind.OUTCOME_UNKNOWN
    assert should_retry(err(kind), "read", RetryPolicy()) is expected


def test_resending_after_an_unknown_outcome_is_opt_in() -> None:
    unknown = err(ErrorKind.OUTCOME_UNKNOWN)
    assert not should_retry(unknown, "submit", RetryPolicy())
    assert should_retry(unknown, "submit", RetryPolicy(resend_unknown=True))
    assert not should_retry(err(ErrorKind.BAD_RESPONSE), "submit", RetryPolicy(resend_unknown=True))


def test_foreign_exceptions_are_never_retried() -> None:
    assert not should_retry(ValueError("x"), "read", RetryPolicy())


async def test_backoff_grows_and_is_capped() -> None:
    clock = FakeClock()
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 5:
            raise err(ErrorKind.CONNECT_FAILED)
        return "ok"

    p = policy(clock, attempts=5, initial=1.0, max_backoff=3.0, deadline=None)
    assert await retry_call(flaky, policy=p, operation="submit") == "ok"
    assert clock.sleeps == [1.0, 2.0, 3.0, 3.0]


async def test_retry_after_is_a_floor_on_the_wait() -> None:
    clock = FakeClock()
    answers = [err(ErrorKind.RATE_LIMITED, retry_after=7.5), None]

    async def call() -> str:
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        return "ok"

    assert await retry_call(call, policy=policy(clock), operation="submit") == "ok"
    assert clock.sleeps == [7.5]


async def test_gives_up_after_attempts_with_the_last_error_unchanged() -> None:
    clock = FakeClock()
    errors = [err(ErrorKind.PROVIDER_UNAVAILABLE) for _ in range(3)]
    seen = list(errors)

    async def call() -> str:
        raise errors.pop(0)

    with pytest.raises(ProviderError) as caught:
        await retry_call(call, policy=policy(clock, attempts=3), operation="submit")
    assert caught.value is seen[-1]
    assert len(clock.sleeps) == 2


async def test_deadline_stops_a_wait_that_would_end_too_late() -> None:
    clock = FakeClock()
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        raise err(ErrorKind.RATE_LIMITED, retry_after=60)

    with pytest.raises(ProviderError):
        await retry_call(call, policy=policy(clock, deadline=30), operation="submit")
    assert calls == 1
    assert clock.sleeps == []


async def test_keep_going_can_stop_retries() -> None:
    clock = FakeClock()
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        raise err(ErrorKind.CONNECT_FAILED)

    with pytest.raises(ProviderError):
        await retry_call(call, policy=policy(clock), operation="submit", keep_going=lambda: False)
    assert calls == 1


def test_jitter_stays_within_half_and_full_backoff() -> None:
    p = RetryPolicy(initial=1.0, max_backoff=8.0, jitter=True)
    for n in range(1, 6):
        base = min(8.0, 2.0 ** (n - 1))
        assert all(base / 2 <= p.backoff(n) <= base for _ in range(50))


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"initial": -1}, {"multiplier": 0.5}, {"deadline": 0}],
)
def test_invalid_retry_policy_is_a_configuration_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="retry"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_redelivery_policy_caps_and_delays() -> None:
    from datetime import timedelta

    p = RedeliveryPolicy(delays=(timedelta(seconds=1), timedelta(seconds=5)), max_redeliveries=2)
    assert [p.delay(n).total_seconds() for n in range(4)] == [1, 5, 5, 5]
    assert p.allows(0, 3) and p.allows(1, 3) and not p.allows(2, 3)
    assert not RedeliveryPolicy().allows(0, 0)
    with pytest.raises(ConfigurationError):
        RedeliveryPolicy(delays=())
