"""Retrying one call on one gateway: which errors are worth another try, and how long to wait.

The decision is driven by :class:`~mimgw.ErrorKind`. Reads (balance, status, report
pulls) are repeated for every transient kind, including ``OUTCOME_UNKNOWN``, since
repeating a read changes nothing at the gateway. A submit is repeated only when the
error proves that nothing was sent (``kind.policy.sent is False``); after an
``OUTCOME_UNKNOWN`` it is repeated only when the caller opted in with
``resend_unknown=True``, accepting that the recipient may get the message twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, TypeVar

import anyio
from tenacity import AsyncRetrying, RetryCallState

from mimgw.errors import ConfigurationError, ProviderError
from mimgw.taxonomy import ErrorKind

__all__ = ["Operation", "RedeliveryPolicy", "RetryPolicy", "retry_call", "should_retry"]

T = TypeVar("T")

Operation = Literal["submit", "read"]
"""``submit`` may create a message at the gateway; ``read`` never does."""

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one call is retried on one gateway before the gateway is given up on.

    ``attempts`` counts every try (1 disables retrying). Waits grow exponentially from
    ``initial`` to ``max_backoff`` seconds; with ``jitter`` each wait is drawn between
    half and all of that value. A ``retry_after`` from the gateway (HTTP Retry-After)
    is a floor on the wait. ``deadline`` bounds the waiting: no retry starts whose wait
    would end more than ``deadline`` seconds after the call began (for a gateway send,
    the clock starts with the first gateway tried). ``sleep`` and ``clock`` are
    injectable for tests.
    """

    attempts: int = 3
    initial: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: bool = True
    deadline: float | None = 30.0
    resend_unknown: bool = False
    """Opt in to re-submitting after ``OUTCOME_UNKNOWN`` (risks a duplicate SMS)."""
    sleep: Sleep = field(default=anyio.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError("retry.attempts must be at least 1")
        if self.initial < 0 or self.max_backoff < 0:
            raise ConfigurationError("retry.initial and retry.max_backoff must not be negative")
        if self.multiplier < 1:
            raise ConfigurationError("retry.multiplier must be at least 1")
        if self.deadline is not None and self.deadline <= 0:
            raise ConfigurationError("retry.deadline must be positive (or None)")

    def backoff(self, retry_number: int, *, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        base = min(self.max_backoff, self.initial * self.multiplier ** (retry_number - 1))
        if self.jitter and base > 0:
            base = random.uniform(base / 2, base)  # noqa: S311 - spreading load, not security
        if retry_after is not None:
            base = max(base, retry_after)
        return base


def should_retry(error: BaseException, operation: Operation, policy: RetryPolicy) -> bool:
    """Whether ``error`` is worth another try of the same call on the same gateway."""
    if not isinstance(error, ProviderError):
        return False
    if operation == "read":
        return error.retryable or error.kind is ErrorKind.OUTCOME_UNKNOWN
    if error.kind is ErrorKind.OUTCOME_UNKNOWN:
        return policy.resend_unknown
    return error.retryable and not error.may_have_been_sent


async def retry_call(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    operation: Operation,
    keep_going: Callable[[], bool] = lambda: True,
    started: float | None = None,
) -> T:
    """Run ``call`` under ``policy``; the last error is re-raised unchanged when giving up.

    ``keep_going`` is asked before every retry (the gateway uses it to stop once the
    circuit breaker has opened). ``started`` (a ``policy.clock()`` reading) lets a
    deadline span several calls, e.g. every gateway tried for one message.
    """
    if started is None:
        started = policy.clock()
    # the first try runs directly: a call that succeeds (the common case) builds no
    # retry machinery; the decisions below are the ones tenacity makes for later tries
    try:
        return await call()
    except Exception as exc:
        first = exc
    if not (should_retry(first, operation, policy) and keep_going()):
        raise first
    delay = _wait_after(first, 1, policy)
    if _stop_after(1, delay, policy, started):
        raise first
    await policy.sleep(delay)

    def retry(state: RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        error = outcome.exception()
        return error is not None and should_retry(error, operation, policy) and keep_going()

    def wait(state: RetryCallState) -> float:  # tenacity counts from the second try
        error = state.outcome.exception() if state.outcome is not None else None
        return _wait_after(error, state.attempt_number + 1, policy)

    def stop(state: RetryCallState) -> bool:
        return _stop_after(state.attempt_number + 1, state.upcoming_sleep, policy, started)

    retrying = AsyncRetrying(sleep=policy.sleep, retry=retry, wait=wait, stop=stop, reraise=True)
    return await retrying(call)


def _wait_after(error: BaseException | None, attempt: int, policy: RetryPolicy) -> float:
    """Seconds to wait after try number ``attempt`` failed with ``error``."""
    after = error.retry_after if isinstance(error, ProviderError) else None
    return policy.backoff(attempt, retry_after=after)


def _stop_after(attempt: int, upcoming: float, policy: RetryPolicy, started: float) -> bool:
    """Whether to give up after try number ``attempt``, before waiting ``upcoming``."""
    if attempt >= policy.attempts:
        return True
    if policy.deadline is None:
        return False
    return policy.clock() - started + upcoming > policy.deadline


@dataclass(frozen=True, slots=True)
class RedeliveryPolicy:
    """Resending messages whose delivery report says it is worthwhile.

    A failed report (UNDELIVERABLE, EXPIRED, REJECTED) that is not ``permanent`` and
    whose ``retries_allowed`` exceeds the redeliveries made so far schedules one more
    submit of the same message (same reference), after ``delays[n]`` (the last delay
    repeats). ``target="same"`` resubmits on the gateway that failed; ``"route"`` goes
    through normal routing and failover. ``max_redeliveries`` caps every table.
    """

    delays: tuple[timedelta, ...] = (
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
    )
    target: Literal["same", "route"] = "same"
    max_redeliveries: int | None = None

    def __post_init__(self) -> None:
        if not self.delays or any(d < timedelta(0) for d in self.delays):
            raise ConfigurationError("redelivery.delays must be non-empty and not negative")
        if self.max_redeliveries is not None and self.max_redeliveries < 0:
            raise ConfigurationError("redelivery.max_redeliveries must not be negative")

    def delay(self, done: int) -> timedelta:
        """Wait before redelivery number ``done + 1``."""
        return self.delays[min(done, len(self.delays) - 1)]

    def allows(self, done: int, retries_allowed: int) -> bool:
        cap = retries_allowed
        if self.max_redeliveries is not None:
            cap = min(cap, self.max_redeliveries)
        return done < cap
