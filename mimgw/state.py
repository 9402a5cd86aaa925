"""Where a Gateway keeps per-gateway pacing and breaker state.

:class:`LocalState` (the default) keeps them in this process. ``mimgw.shared.RedisState``
(extra ``redis``) shares them between every process that uses the same Redis, so a
rate limit holds for all workers together and a breaker opened by one is open for all.
"""

from __future__ import annotations

from mimgw.breaker import BreakerPolicy, CircuitBreaker
from mimgw.limits import Limiter, RateLimit

__all__ = ["GatewayState", "LocalState"]


class GatewayState:
    """Makes the limiter and the breaker of each gateway; override to share them."""

    def limiter(self, provider: str, limit: RateLimit | None) -> Limiter:
        return Limiter(limit)

    def breaker(self, provider: str, policy: BreakerPolicy | None) -> CircuitBreaker:
        return CircuitBreaker(provider, policy)

    async def start(self) -> None:
        """Called when the Gateway is opened (``async with``)."""

    async def aclose(self) -> None:
        """Called when the Gateway is closed."""


class LocalState(GatewayState):
    """Everything in this process (the default)."""
