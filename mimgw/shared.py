"""Pacing and breaker state shared through Redis (extra ``redis``): many processes, one limit.

    gateway = Gateway(providers, limits=RateLimit(rate=10), state=RedisState("redis://127.0.0.1"))

- **Rate limits** hold for every process using the same Redis and ``prefix`` together:
  each request takes an entry in a moving window kept by the `limits
  <https://limits.readthedocs.io>`_ library (its async Redis storage). Windows are whole
  seconds: a limit of ``rate`` with ``burst`` becomes ``floor(rate * W)`` requests in any
  ``W = max(1, round(burst / rate))`` seconds, so a gateway never sees more than
  ``rate * t + burst`` requests in ``t`` seconds, whatever the number of processes.
  ``max_in_flight`` stays per process.
- **Breakers** are shared: when one process's breaker opens (five transport failures, or
  a single AUTH / INSUFFICIENT_BALANCE answer), it writes a key that lives as long as the
  cool-down and publishes the opening; every other process applies it within
  milliseconds (pub/sub) or at the next poll (every ``poll_interval`` seconds). A probe
  that succeeds closes the breaker everywhere.
- **A Redis outage** never fails a send: pacing falls back to this process's own token
  bucket and breakers to local state, with one warning per outage; the shared state
  resumes when Redis answers again (openings made meanwhile are announced then).

asyncio only (redis-py's asyncio client). Timestamps come from each host's clock, so keep
hosts' clocks in sync (NTP) when processes on several machines share a limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
import uuid
from typing import Any

try:
    import redis.asyncio as aioredis
    from limits import RateLimitItemPerSecond
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter
    from limits.errors import StorageError
    from packaging.version import Version
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from mimgw.errors import ConfigurationError

    raise ConfigurationError(
        "mimgw.shared needs the redis extra: pip install 'mimgw[redis]'"
    ) from exc

from mimgw.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from mimgw.limits import Limiter, RateLimit
from mimgw.state import GatewayState
from mimgw.taxonomy import ErrorKind

__all__ = ["RedisState", "SharedBreaker", "SharedLimiter", "shared_window"]

log = logging.getLogger("mimgw.shared")

_FAILURES: tuple[type[BaseException], ...] = (RedisError, StorageError, OSError, TimeoutError)
RETRY_AFTER = 1.0
"""Seconds between attempts to reach Redis again during an outage."""


def shared_window(limit: RateLimit) -> tuple[int, int]:
    """``(amount, seconds)`` of the moving window that paces ``limit`` across processes."""
    rate = limit.rate
    if rate is None:
        raise ValueError("an unlimited rate has no window")
    burst = limit.burst or max(1, math.ceil(rate))
    seconds = max(1, round(burst / rate))
    return max(1, math.floor(rate * seconds + 1e-9)), seconds


class _RedisPyStorage(RedisStorage):
    """limits' async Redis storage on redis-py alone: the stock one imports every client
    library it supports (coredis, valkey) when it is built, which costs seconds."""

    DEPENDENCIES = {"redis": Version("5.2.0")}  # noqa: RUF012 - the parent's shape


class _Link:
    """Whether Redis answers: one warning when it stops, one notice when it is back."""

    def __init__(self, url: str) -> None:
        self.where = _safe_url(url)
        self.up = True
        self.retry_at = 0.0
        self.outages = 0

    def usable(self) -> bool:
        return self.up or time.monotonic() >= self.retry_at

    def failed(self, exc: BaseException) -> None:
        self.retry_at = time.monotonic() + RETRY_AFTER
        if self.up:
            self.up = False
            self.outages += 1
            log.warning(
                "redis at %s unreachable (%s); using this process's own limits and breakers "
                "until it answers again",
                self.where,
                type(exc).__name__,
            )

    def succeeded(self) -> bool:
        """Mark Redis as answering; True when that ends an outage."""
        if self.up:
            return False
        self.up = True
        log.warning("redis at %s answers again; limits and breakers are shared again", self.where)
        return True


class SharedLimiter(Limiter):
    """A :class:`~mimgw.limits.Limiter` whose tokens come from a window kept in Redis."""

    def __init__(self, limit: RateLimit | None, state: RedisState, provider: str) -> None:
        super().__init__(limit)
        self._state = state
        self._key = provider
        self._item: RateLimitItemPerSecond | None = None
        if self.limit.rate is not None:
            amount, seconds = shared_window(self.limit)
            self._item = RateLimitItemPerSecond(amount, seconds, namespace="rate")

    async def _take_token(self) -> None:
        item = self._item
        if item is None:
            return
        link = self._state.link
        if link.usable():
            try:
                async with self._lock:  # one waiter per process asks Redis at a time
                    await self._shared_token(item)
            except _FAILURES as exc:
                link.failed(exc)
            else:
                link.succeeded()
                return
        await super()._take_token()

    async def _shared_token(self, item: RateLimitItemPerSecond) -> None:
        window = self._state.window
        while not await window.hit(item, self._key):
            reset, _ = await window.get_window_stats(item, self._key)
            wait = min(max(reset - time.time(), 0.002), float(item.get_expiry()))
            await self.limit.sleep(wait + random.uniform(0, 0.002))  # noqa: S311 - spreading


class SharedBreaker(CircuitBreaker):
    """A :class:`~mimgw.breaker.CircuitBreaker` that tells the other processes when it
    opens or closes, and applies their openings."""

    def __init__(self, provider: str, policy: BreakerPolicy | None, state: RedisState) -> None:
        super().__init__(provider, policy)
        self._state = state
        self.remote = False
        """The current opening came from another process."""

    def _open(self, kind: ErrorKind) -> None:
        super()._open(kind)
        self.remote = False
        self._state.announce(self)

    def record_success(self) -> None:
        closing = self.state is not BreakerState.CLOSED
        super().record_success()
        if closing:
            self.remote = False
            self._state.announce(self)

    def apply_open(self, cause: ErrorKind | None, remaining: float) -> bool:
        """Apply another process's opening (unless this one is open for longer)."""
        if remaining <= 0 or (self.is_open and self.reopens_in() >= remaining - 0.05):
            return False
        self.state = BreakerState.OPEN
        self.opened_at = self._now()
        self.open_for = remaining
        self.cause = cause
        self.last_error = cause
        self.failures = 0
        self.account_failures = 0
        self._probing = False
        self.times_opened += 1
        self.remote = True
        return True

    def apply_close(self) -> None:
        if self.state is not BreakerState.CLOSED:
            CircuitBreaker.record_success(self)
            self.remote = False


class RedisState(GatewayState):
    """Rate limits and breakers shared by every process using ``url`` and ``prefix``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "mimgw",
        poll_interval: float = 1.0,
        timeout: float = 0.5,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.poll_interval = poll_interval
        self.link = _Link(url)
        self.origin = uuid.uuid4().hex
        # A connection pooled before a Redis restart fails on its next use; one retry on
        # a fresh connection tells that apart from Redis being down (which fails again
        # at once: connection refused), so a restart is not taken for a second outage.
        self._client: Any = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
        pool: Any = self._client.connection_pool  # shared: one pool, closed with the client
        storage = _RedisPyStorage(
            "async+" + url if not url.startswith("async+") else url,
            implementation="redispy",
            key_prefix=f"{prefix}:rate",
            connection_pool=pool,
        )
        self.window = MovingWindowRateLimiter(storage)
        self.breakers: dict[str, SharedBreaker] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._closing = False

    def __repr__(self) -> str:
        return f"RedisState(url={self.link.where!r}, prefix={self.prefix!r})"

    @property
    def channel(self) -> str:
        return f"{self.prefix}:breaker"

    def _key(self, provider: str) -> str:
        return f"{self.prefix}:breaker:{provider}"

    # -- GatewayState ---------------------------------------------------------------------

    def limiter(self, provider: str, limit: RateLimit | None) -> Limiter:
        return SharedLimiter(limit, self, provider)

    def breaker(self, provider: str, policy: BreakerPolicy | None) -> CircuitBreaker:
        breaker = self.breakers[provider] = SharedBreaker(provider, policy, self)
        return breaker

    async def start(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._closing = False
            await self.sync()
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def aclose(self) -> None:
        watcher, self._watcher = self._watcher, None
        self._closing = True  # redis-py may turn a cancellation into a ConnectionError
        if watcher is not None:
            watcher.cancel()
            await asyncio.wait({watcher}, timeout=2.0)
        if self._sends:
            await asyncio.wait(set(self._sends), timeout=2.0)
        await self._client.aclose()

    # -- breakers ---------------------------------------------------------------------------

    def announce(self, breaker: SharedBreaker) -> None:
        """Publish an opening or closing in the background (from synchronous code)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): nothing to share with
            return
        task = loop.create_task(self._publish(breaker))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _publish(self, breaker: SharedBreaker) -> None:
        if not self.link.usable():
            return  # announced when Redis is back (see _watch)
        key = self._key(breaker.provider)
        try:
            if breaker.is_open:
                remaining = breaker.reopens_in()
                note = {
                    "op": "open",
                    "provider": breaker.provider,
                    "cause": None if breaker.cause is None else breaker.cause.value,
                    "until": time.time() + remaining,
                    "origin": self.origin,
                }
                payload = json.dumps(note)
                await self._client.set(key, payload, px=max(1, int(remaining * 1000)))
            else:
                payload = json.dumps(
                    {"op": "close", "provider": breaker.provider, "origin": self.origin}
                )
                await self._client.delete(key)
            await self._client.publish(self.channel, payload)
        except _FAILURES as exc:
            self.link.failed(exc)
        else:
            self.link.succeeded()

    def _apply(self, note: dict[str, Any]) -> None:
        breaker = self.breakers.get(str(note.get("provider")))
        if breaker is None or note.get("origin") == self.origin:
            return
        if note.get("op") == "close":
            breaker.apply_close()
            return
        raw = note.get("cause")
        cause = (
            ErrorKind(raw) if isinstance(raw, str) and raw in ErrorKind._value2member_map_ else None
        )
        if breaker.apply_open(cause, float(note.get("until", 0)) - time.time()):
            log.warning(
                "%s: breaker opened by another process (%s)",
                breaker.provider,
                raw or "unknown cause",
            )

    async def sync(self) -> None:
        """Read every shared opening now (the watcher does this every ``poll_interval``)."""
        if not self.breakers or not self.link.usable():
            return
        try:
            values = await self._client.mget([self._key(n) for n in self.breakers])
        except _FAILURES as exc:
            self.link.failed(exc)
            return
        if self.link.succeeded():
            self._reannounce()
        for value in values:
            note = None if value is None else _decode(value)
            if note is not None:
                self._apply(note)

    def _reannounce(self) -> None:
        for breaker in self.breakers.values():
            if breaker.is_open and not breaker.remote:
                self.announce(breaker)

    async def _watch(self) -> None:
        while not self._closing:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self.sync()
                polled = time.monotonic()
                while not self._closing:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self.poll_interval
                    )
                    if message is not None and message.get("type") == "message":
                        note = _decode(message["data"])
                        if note is not None:
                            self._apply(note)
                    if time.monotonic() - polled >= self.poll_interval:
                        await self.sync()
                        polled = time.monotonic()
            except _FAILURES as exc:
                if self._closing:
                    return
                self.link.failed(exc)
            finally:
                with contextlib.suppress(*_FAILURES):
                    await pubsub.aclose()
            await asyncio.sleep(RETRY_AFTER)


def _decode(raw: bytes | str) -> dict[str, Any] | None:
    """A breaker note, or None for anything else found on our channel or keys."""
    try:
        note = json.loads(raw)
    except ValueError:
        note = None
    if not isinstance(note, dict):
        log.warning("shared breaker state: ignored a malformed note")
        return None
    return note


def _safe_url(url: str) -> str:
    """The URL without its password (for logs and reprs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if user else '***'}@{host}"
