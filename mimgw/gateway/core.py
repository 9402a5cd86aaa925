"""The Gateway's core: construction, lifecycle, introspection, routing order, pacing,
breakers and the one place a call reaches a gateway (:meth:`GatewayCore._call`)."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import anyio
import httpx

from mimgw.breaker import BreakerPolicy, CircuitBreaker
from mimgw.errors import ConfigurationError, ProviderError
from mimgw.ledger import Ledger, LedgerEntry, MemoryLedger
from mimgw.limits import RateLimit
from mimgw.models import DeliveryReport, InboundMessage
from mimgw.providers.base import Capabilities, Provider, WebhookItem
from mimgw.retry import Operation, RedeliveryPolicy, RetryPolicy, retry_call
from mimgw.state import GatewayState, LocalState
from mimgw.taxonomy import ErrorKind

if TYPE_CHECKING:
    from mimgw.config import GatewaySettings
    from mimgw.gateway import Gateway

__all__ = [
    "DEFAULT_BREAKER",
    "DEFAULT_RETRY",
    "GatewayCore",
    "Hook",
    "OnUnknown",
    "Recorded",
    "Strategy",
    "Trace",
]

log = logging.getLogger("mimgw.gateway")

T = TypeVar("T")
E = TypeVar("E")
Strategy = Literal["priority", "round_robin", "weighted"]
OnUnknown = Literal["raise", "failover"]
Hook = Callable[[E], Awaitable[None] | None]
"""A report or inbound-message callback: a coroutine function or a plain function."""

DEFAULT_RETRY = RetryPolicy()
DEFAULT_BREAKER = BreakerPolicy()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Trace:
    """What the attempts to send one message did, as far as the Gateway can see."""

    __slots__ = ("in_request", "maybe_sent")

    def __init__(self) -> None:
        self.in_request = False
        """A request to a gateway is under way (cancelled now: it may have been sent)."""
        self.maybe_sent = False
        """Some attempt may have sent the message."""


class Recorded:
    """A queued report already in the ledger whose callbacks have yet to hear of it (a
    flush was interrupted between the two)."""

    __slots__ = ("report",)

    def __init__(self, report: DeliveryReport) -> None:
        self.report = report


class GatewayCore:
    """State and plumbing shared by the Gateway's concerns (see :class:`mimgw.Gateway`)."""

    default_concurrency = 8

    def __init__(
        self,
        providers: Sequence[Provider] | Mapping[str, Provider],
        *,
        strategy: Strategy = "priority",
        weights: Mapping[str, float] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        breaker: BreakerPolicy | None = DEFAULT_BREAKER,
        limits: RateLimit | Mapping[str, RateLimit] | None = None,
        ledger: Ledger | None = None,
        on_unknown: OnUnknown = "raise",
        redelivery: RedeliveryPolicy | None = None,
        rng: random.Random | None = None,
        now: Callable[[], datetime] = _utcnow,
        state: GatewayState | None = None,
    ) -> None:
        self._providers = _named(providers)
        if strategy not in ("priority", "round_robin", "weighted"):
            raise ConfigurationError(f"strategy: unknown strategy {strategy!r}")
        if on_unknown not in ("raise", "failover"):
            raise ConfigurationError(
                f"on_unknown: must be 'raise' or 'failover', not {on_unknown!r}"
            )
        self.strategy: Strategy = strategy
        self.on_unknown: OnUnknown = on_unknown
        self.weights = self._check_weights(weights)
        self.retry = retry
        self.redelivery = redelivery
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger(clock=now)
        self.state: GatewayState = state if state is not None else LocalState()
        self._breakers = {
            n: self.state.breaker(n, breaker) for n in self._providers if breaker is not None
        }
        if isinstance(limits, Mapping) and set(limits) - set(self._providers):
            # a misspelt name would silently leave that gateway unpaced
            unknown = sorted(set(limits) - set(self._providers))
            raise ConfigurationError(f"limits: unknown provider(s) {unknown}")
        self._limiters = {n: self.state.limiter(n, _limit_for(limits, n)) for n in self._providers}
        self._rng = rng or random.Random()  # noqa: S311 - load spreading, not security
        self._turn = itertools.count()
        self._now = now
        self._pending: list[WebhookItem | Recorded] = []
        self._report_hooks: list[Hook[DeliveryReport]] = []
        self._inbound_hooks: list[Hook[InboundMessage]] = []
        self._keyed: dict[str, anyio.Event] = {}
        self._redelivery_lock = anyio.Lock()
        for provider in self._providers.values():
            provider.add_listener(self._on_item)

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_settings(
        cls,
        settings: GatewaySettings | None = None,
        *,
        toml: str | Path | None = None,
        env_file: str | Path | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> Gateway:
        """Build a gateway from configuration (``MIMGW_*`` env, ``.env``, TOML). See config docs."""
        from mimgw.config import GatewaySettings, build_gateway

        if settings is None:
            settings = GatewaySettings.load(toml=toml, env_file=env_file)
        return build_gateway(settings, client=client)

    def _check_weights(self, weights: Mapping[str, float] | None) -> dict[str, float]:
        if weights is None:
            return dict.fromkeys(self._providers, 1.0)
        unknown = set(weights) - set(self._providers)
        if unknown:
            raise ConfigurationError(f"weights: unknown provider(s) {sorted(unknown)}")
        result = {n: float(weights.get(n, 0.0)) for n in self._providers}
        if any(w < 0 for w in result.values()) or not any(w > 0 for w in result.values()):
            raise ConfigurationError("weights: must be >= 0 with at least one above 0")
        return result

    # -- introspection --------------------------------------------------------------

    @property
    def providers(self) -> Mapping[str, Provider]:
        """Name -> provider, in priority order."""
        return MappingProxyType(self._providers)

    @property
    def capabilities(self) -> dict[str, Capabilities]:
        return {name: p.capabilities for name, p in self._providers.items()}

    def breaker(self, name: str) -> CircuitBreaker | None:
        self._provider(name)
        return self._breakers.get(name)

    def health(self) -> dict[str, dict[str, Any]]:
        """Per provider: kind, breaker state and requests in flight (JSON-serialisable)."""
        out: dict[str, dict[str, Any]] = {}
        for name, provider in self._providers.items():
            breaker = self._breakers.get(name)
            snap = breaker.snapshot() if breaker is not None else {"state": "disabled"}
            out[name] = {"kind": provider.kind, **snap, **self._limiters[name].snapshot()}
        return out

    def __repr__(self) -> str:
        return f"Gateway(providers={list(self._providers)!r}, strategy={self.strategy!r})"

    async def flush(self) -> None:
        """Record what providers parsed (see :class:`~mimgw.gateway.hooks.HooksMixin`)."""

    async def _after_record(self, entry: LedgerEntry) -> None:
        """Follow-up of a recorded entry (see :mod:`mimgw.gateway.redelivery`)."""

    async def _follow_up_late(self, *, apply: bool = False) -> None:
        """Follow-up of the entries the ledger merged after the fact
        (:meth:`~mimgw.ledger.Ledger._late_entries`)."""
        for entry in await self.ledger._late_entries(apply=apply):
            await self._after_record(entry)

    if TYPE_CHECKING:  # provided by the concern modules

        def _on_item(self, item: WebhookItem) -> None: ...

        async def fetch_reports(
            self, *, provider: str | None = None, limit: int | None = None
        ) -> list[DeliveryReport]: ...

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        for provider in self._providers.values():
            await provider.__aenter__()
        await self.state.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Record what is pending, then close every provider, the shared state and the
        ledger."""
        try:
            await self.flush()
        finally:
            for provider in self._providers.values():
                try:
                    await provider.aclose()
                except Exception:  # one provider's close must not leak the others
                    log.exception("%s: closing failed", provider.name)
            try:
                await self.state.aclose()
            finally:
                await self.ledger.aclose()

    # -- routing ------------------------------------------------------------------------

    def _order(self, pin: str | None) -> list[str]:
        if pin is not None:
            self._provider(pin)
            return [pin]
        names = list(self._providers)
        if self.strategy == "round_robin":
            start = next(self._turn) % len(names)
            return names[start:] + names[:start]
        if self.strategy == "weighted":
            ordered: list[str] = []
            left = [n for n in names if self.weights[n] > 0]
            while left:
                pick = self._rng.choices(left, [self.weights[n] for n in left])[0]
                ordered.append(pick)
                left.remove(pick)
            return ordered + [n for n in names if n not in ordered]
        return names

    def _fails_over(self, error: ProviderError) -> bool:
        if error.may_have_been_sent:  # OUTCOME_UNKNOWN, or an answer nobody can read
            return error.failover or self.on_unknown == "failover"
        return error.failover

    async def _probe_balance(self, name: str, breaker: CircuitBreaker) -> None:
        """Before real traffic, check that a gateway that ran dry has credit again."""
        provider = self._providers[name]
        if not provider.capabilities.balance:
            return
        try:
            balance = await self._call(name, "read", lambda p: p.balance(), use_breaker=False)
        except ProviderError as exc:
            breaker.record_error(exc)
            if exc.failover and not exc.may_have_been_sent:
                raise
            # no message was submitted, whatever the read said (a lost answer, a garbled
            # page): report it as "gateway unavailable" so the message fails over
            raise ProviderError.of(
                ErrorKind.PROVIDER_UNAVAILABLE,
                name,
                "balance_probe",
                f"balance probe failed ({exc.kind.value}): {exc.detail}",
            ) from exc
        except BaseException:  # cancelled: free the half-open probe slot for the next call
            breaker.release()
            raise
        if balance.amount <= 0:
            error = ProviderError.of(
                ErrorKind.INSUFFICIENT_BALANCE,
                name,
                None,
                f"balance probe: credit is {balance.amount}",
            )
            breaker.record_error(error)
            raise error

    async def _call(
        self,
        name: str,
        operation: Operation,
        fn: Callable[[Provider], Awaitable[T]],
        *,
        use_breaker: bool | None = None,
        started: float | None = None,
        trace: Trace | None = None,
    ) -> T:
        """One call to one gateway: paced, retried per policy; submits feed the breaker.

        ``trace`` (submits) learns whether a request was under way and whether any
        attempt may have sent the message.
        """
        provider = self._providers[name]
        limiter = self._limiters[name]
        track = operation == "submit" if use_breaker is None else use_breaker
        breaker = self._breakers.get(name) if track else None

        async def once() -> T:
            async with limiter.slot():
                if trace is not None:
                    trace.in_request = True
                try:
                    result = await fn(provider)
                except ProviderError as exc:
                    if trace is not None:
                        trace.in_request = False
                        trace.maybe_sent = trace.maybe_sent or exc.may_have_been_sent
                    if breaker is not None:
                        breaker.record_error(exc)
                    raise
                except BaseException:
                    if breaker is not None:
                        breaker.release()
                    raise
                if trace is not None:
                    trace.in_request = False
            if breaker is not None:
                breaker.record_success()
            return result

        def keep_going() -> bool:
            return breaker is None or not breaker.is_open

        return await retry_call(
            once, policy=self.retry, operation=operation, keep_going=keep_going, started=started
        )

    # -- helpers ----------------------------------------------------------------------------

    def _provider(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise ConfigurationError(
                f"provider: unknown provider {name!r}; configured: {list(self._providers)}"
            ) from None


def _named(providers: Sequence[Provider] | Mapping[str, Provider]) -> dict[str, Provider]:
    if isinstance(providers, Mapping):
        pairs = list(providers.items())
    else:
        pairs = [(p.name, p) for p in providers]
    if not pairs:
        raise ConfigurationError("providers: at least one provider is required")
    named: dict[str, Provider] = {}
    for name, provider in pairs:
        if not isinstance(provider, Provider):
            raise ConfigurationError(f"providers: {name!r} is not a Provider")
        if name != provider.name:
            raise ConfigurationError(
                f"providers: key {name!r} differs from the provider's name {provider.name!r}"
            )
        if name in named:
            raise ConfigurationError(f"providers: two providers are named {name!r}")
        named[name] = provider
    return named


def _limit_for(limits: RateLimit | Mapping[str, RateLimit] | None, name: str) -> RateLimit | None:
    if limits is None or isinstance(limits, RateLimit):
        return limits
    return limits.get(name)
