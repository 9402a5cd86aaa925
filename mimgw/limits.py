"""Per-gateway pacing: a requests-per-second token bucket and a cap on requests in flight.

Every request the :class:`~mimgw.Gateway` makes to a gateway (single sends, each
single or native batch of a bulk, retries, balance and status reads) takes one token
and one in-flight slot, so bulk traffic cannot starve or flood a gateway. A batch is
one request: one token for all its recipients.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from mimgw.errors import ConfigurationError

__all__ = ["Limiter", "RateLimit"]

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Pacing for one gateway. ``None`` means unlimited.

    ``rate`` is requests per second; ``burst`` how many may go at once after a quiet
    spell (default: ``ceil(rate)``, at least 1); ``max_in_flight`` caps concurrent
    requests.
    """

    rate: float | None = None
    burst: int | None = None
    max_in_flight: int | None = None
    sleep: Callable[[float], Awaitable[None]] = field(
        default=anyio.sleep, repr=False, compare=False
    )
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigurationError("limits.rate must be a positive finite number (or None)")
        if self.burst is not None and self.burst < 1:
            raise ConfigurationError("limits.burst must be at least 1")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ConfigurationError("limits.max_in_flight must be at least 1")


class Limiter:
    """Applies one :class:`RateLimit`: ``async with limiter.slot(): ...`` around each request."""

    def __init__(self, limit: RateLimit | None = None) -> None:
        self.limit = limit or RateLimit()
        rate = self.limit.rate
        self._capacity = float(
            self.limit.burst or (max(1, math.ceil(rate)) if rate is not None else 1)
        )
        self._tokens = self._capacity
        self._stamp = self.limit.clock()
        self._lock = anyio.Lock()
        self._slots = (
            anyio.Semaphore(self.limit.max_in_flight)
            if self.limit.max_in_flight is not None
            else None
        )
        self.in_flight = 0
        self.peak_in_flight = 0

    async def _take_token(self) -> None:
        rate = self.limit.rate
        if rate is None:
            return
        async with self._lock:  # waiters queue here in arrival order
            while True:
                now = self.limit.clock()
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * rate)
                self._stamp = now
                # a refill that falls short of 1 by a rounding error counts as a token:
                # waiting for the last 1e-16 would not move a clock (a fake one never)
                if self._tokens >= 1 - _EPSILON:
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self.limit.sleep((1 - self._tokens) / rate)

    def slot(self) -> Limiter:
        """One request's slot: ``async with limiter.slot(): ...`` (holds no per-use state,
        so the limiter itself is the context manager)."""
        return self

    async def __aenter__(self) -> None:
        if self._slots is not None:
            await self._slots.acquire()
        try:
            await self._take_token()
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    async def __aexit__(self, *exc_info: object) -> None:
        self.in_flight -= 1
        if self._slots is not None:
            self._slots.release()

    def snapshot(self) -> dict[str, float | int | None]:
        return {
            "rate": self.limit.rate,
            "max_in_flight": self.limit.max_in_flight,
            "in_flight": self.in_flight,
        }
