"""A circuit breaker per gateway: stop sending to a gateway that keeps failing, probe it later.

Only errors that say something about the gateway's health count (transport failures,
unavailability, rate limiting, unparseable answers, and account problems). An answer
such as "recipient rejected" proves the gateway is up and resets the count.

States: ``closed`` (traffic flows), ``open`` (skipped until the cool-down ends) and
``half_open`` (one probe call is let through; its success closes the breaker, a
health failure opens it again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mimgw.errors import ConfigurationError, ProviderError, ProviderUnavailableError
from mimgw.taxonomy import ErrorKind

__all__ = [
    "ACCOUNT_KINDS",
    "HEALTH_KINDS",
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
]

HEALTH_KINDS = frozenset(
    {
        ErrorKind.CONNECT_FAILED,
        ErrorKind.RATE_LIMITED,
        ErrorKind.PROVIDER_UNAVAILABLE,
        ErrorKind.OUTCOME_UNKNOWN,
        ErrorKind.BAD_RESPONSE,
        ErrorKind.AUTH,
        ErrorKind.ACCESS_DENIED,
        ErrorKind.INSUFFICIENT_BALANCE,
    }
)
"""Kinds that count against a gateway's health."""

ACCOUNT_KINDS = frozenset({ErrorKind.AUTH, ErrorKind.ACCESS_DENIED, ErrorKind.INSUFFICIENT_BALANCE})
"""Kinds that will not heal by themselves: they open the breaker for the long cool-down."""


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a gateway's breaker opens and for how long.

    ``threshold`` consecutive health failures open it for ``cooldown`` seconds. An
    account failure (AUTH, ACCESS_DENIED, INSUFFICIENT_BALANCE) opens it after
    ``account_threshold`` occurrences for ``account_cooldown`` seconds. With
    ``probe_balance`` a breaker that opened for INSUFFICIENT_BALANCE only lets real
    traffic through once ``balance()`` reports credit above zero.
    """

    threshold: int = 5
    cooldown: float = 30.0
    account_threshold: int = 1
    account_cooldown: float = 600.0
    probe_balance: bool = False
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.account_threshold < 1:
            raise ConfigurationError("breaker thresholds must be at least 1")
        if self.cooldown < 0 or self.account_cooldown < 0:
            raise ConfigurationError("breaker cool-downs must not be negative")


class CircuitOpenError(ProviderUnavailableError):
    """The gateway was skipped because its circuit breaker is open. Nothing was sent."""

    def __init__(self, provider: str, *, reopens_in: float, cause: ErrorKind | None) -> None:
        self.reopens_in = reopens_in
        self.cause = cause
        why = f" after {cause.value}" if cause is not None else ""
        super().__init__(
            provider,
            ErrorKind.PROVIDER_UNAVAILABLE,
            "circuit_open",
            f"circuit breaker open{why}; next probe in {reopens_in:.1f}s",
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_open, (self.provider, self.reopens_in, self.cause))


def _rebuild_open(provider: str, reopens_in: float, cause: ErrorKind | None) -> CircuitOpenError:
    return CircuitOpenError(provider, reopens_in=reopens_in, cause=cause)


class CircuitBreaker:
    """The breaker of one gateway. Not thread-safe; used from one event loop."""

    def __init__(self, provider: str, policy: BreakerPolicy | None = None) -> None:
        self.provider = provider
        self.policy = policy or BreakerPolicy()
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.account_failures = 0
        self.opened_at: float | None = None
        self.open_for = 0.0
        self.last_error: ErrorKind | None = None
        self.cause: ErrorKind | None = None
        """The kind that opened the breaker last."""
        self.times_opened = 0
        self._probing = False

    # -- asking -------------------------------------------------------------------

    def _now(self) -> float:
        return self.policy.clock()

    def reopens_in(self) -> float:
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.open_for - self._now())

    def allow(self) -> bool:
        """May a call go to this gateway now? Half-open lets exactly one probe through."""
        if self.state is BreakerState.OPEN:
            if self.reopens_in() > 0:
                return False
            self.state = BreakerState.HALF_OPEN
            self._probing = False
        if self.state is BreakerState.HALF_OPEN:
            if self._probing:
                return False
            self._probing = True
        return True

    @property
    def needs_balance_probe(self) -> bool:
        """True while probing a gateway that opened for lack of credit, if so configured."""
        return (
            self.policy.probe_balance
            and self.state is BreakerState.HALF_OPEN
            and self.cause is ErrorKind.INSUFFICIENT_BALANCE
        )

    def rejection(self) -> CircuitOpenError:
        return CircuitOpenError(self.provider, reopens_in=self.reopens_in(), cause=self.cause)

    @property
    def is_open(self) -> bool:
        return self.state is BreakerState.OPEN and self.reopens_in() > 0

    # -- telling ------------------------------------------------------------------

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.account_failures = 0
        self.opened_at = None
        self._probing = False

    def record_error(self, error: BaseException) -> None:
        """Account for a failed call: health kinds count, anything else proves it is up."""
        if not isinstance(error, ProviderError) or isinstance(error, CircuitOpenError):
            self.release()
            return
        kind = error.kind
        if kind not in HEALTH_KINDS:
            self.record_success()
            return
        self.last_error = kind
        if self.state is BreakerState.HALF_OPEN:
            self._open(kind)
            return
        self.failures += 1
        if kind in ACCOUNT_KINDS:
            self.account_failures += 1
            if self.account_failures >= self.policy.account_threshold:
                self._open(kind)
                return
        if self.failures >= self.policy.threshold:
            self._open(kind)

    def release(self) -> None:
        """A probe ended without a verdict (cancelled, or failed before any request)."""
        self._probing = False

    def _open(self, kind: ErrorKind) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = self._now()
        self.cause = kind
        self.open_for = (
            self.policy.account_cooldown if kind in ACCOUNT_KINDS else self.policy.cooldown
        )
        self.times_opened += 1
        self._probing = False
        self.failures = 0
        self.account_failures = 0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable view for health endpoints."""
        state = self.state
        if state is BreakerState.OPEN and self.reopens_in() == 0:
            state = BreakerState.HALF_OPEN  # would let a probe through right now
        return {
            "state": state.value,
            "failures": self.failures,
            "last_error": None if self.last_error is None else self.last_error.value,
            "opened_because": None if self.cause is None else self.cause.value,
            "reopens_in": round(self.reopens_in(), 3),
            "times_opened": self.times_opened,
        }

    def __repr__(self) -> str:
        return f"CircuitBreaker(provider={self.provider!r}, state={self.state.value!r})"
