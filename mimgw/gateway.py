"""The Gateway: several providers behind the provider interface, with routing, safe retry,
failover, circuit breakers, pacing, a ledger of everything sent and reported, and
redelivery driven by the gateways' own DLR tables. See ``docs/failover.md``.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import anyio
import httpx

from mimgw.breaker import BreakerPolicy, CircuitBreaker
from mimgw.errors import (
    AllProvidersFailedError,
    ConfigurationError,
    InvalidMessageError,
    MimgwError,
    ProviderError,
    UnsupportedOperationError,
)
from mimgw.ledger import Ledger, LedgerEntry, MemoryLedger
from mimgw.limits import Limiter, RateLimit
from mimgw.models import Balance, BulkResult, Category, DeliveryReport, Message, Receipt
from mimgw.providers.base import Capabilities, Provider, ReportListener, WebhookItem
from mimgw.retry import Operation, RedeliveryPolicy, RetryPolicy, retry_call
from mimgw.taxonomy import ErrorKind, State

if TYPE_CHECKING:
    from mimgw.config import GatewaySettings

__all__ = ["DEFAULT_BREAKER", "DEFAULT_RETRY", "Gateway", "OnUnknown", "Strategy"]

log = logging.getLogger("mimgw.gateway")

T = TypeVar("T")
Strategy = Literal["priority", "round_robin", "weighted"]
OnUnknown = Literal["raise", "failover"]

DEFAULT_RETRY = RetryPolicy()
DEFAULT_BREAKER = BreakerPolicy()
_REFUSALS = (InvalidMessageError, ConfigurationError, UnsupportedOperationError)
_RECORD_GRACE = 30.0
"""Seconds a submit's ledger write may take once the gateway has taken the message;
it is shielded from cancellation for that long."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Gateway:
    """Several providers used as one. Offers the provider methods, plus ``provider=`` pins.

    ``providers`` is a sequence (priority order) or a mapping name -> provider. A
    submit is retried on one gateway only while nothing can have been sent, then
    fails over to the next gateway for kinds marked ``failover``; a non-failover
    error is raised as itself, and when every gateway failed
    :class:`~mimgw.AllProvidersFailedError` lists each attempt in order.
    """

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
        self._breakers = {
            n: CircuitBreaker(n, breaker) for n in self._providers if breaker is not None
        }
        if isinstance(limits, Mapping) and set(limits) - set(self._providers):
            # a misspelt name would silently leave that gateway unpaced
            unknown = sorted(set(limits) - set(self._providers))
            raise ConfigurationError(f"limits: unknown provider(s) {unknown}")
        self._limiters = {n: Limiter(_limit_for(limits, n)) for n in self._providers}
        self._rng = rng or random.Random()  # noqa: S311 - load spreading, not security
        self._turn = itertools.count()
        self._now = now
        self._pending: list[DeliveryReport] = []
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

    def add_listener(self, listener: ReportListener) -> None:
        """Call ``listener`` with every report and inbound message any provider parses."""
        for provider in self._providers.values():
            provider.add_listener(listener)

    def __repr__(self) -> str:
        return f"Gateway(providers={list(self._providers)!r}, strategy={self.strategy!r})"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        for provider in self._providers.values():
            await provider.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Record what is pending, then close every provider and the ledger."""
        try:
            await self.flush()
        finally:
            for provider in self._providers.values():
                try:
                    await provider.aclose()
                except Exception:  # one provider's close must not leak the others
                    log.exception("%s: closing failed", provider.name)
            await self.ledger.aclose()

    # -- sending -------------------------------------------------------------------------

    async def send(
        self,
        to: str,
        text: str,
        *,
        sender: str | None = None,
        reference: str | None = None,
        category: Category = "transactional",
        send_at: datetime | None = None,
        provider: str | None = None,
    ) -> Receipt:
        """Submit one message through the first gateway that takes it."""
        message = Message(
            to=to, text=text, sender=sender, reference=reference, category=category, send_at=send_at
        )
        return await self.send_message(message, provider=provider)

    async def send_message(self, message: Message, *, provider: str | None = None) -> Receipt:
        """Submit a prepared message; ``provider=`` pins one gateway (no failover)."""
        if not isinstance(message, Message):
            raise InvalidMessageError(f"send_message takes a Message, not {type(message).__name__}")
        await self.flush()
        receipt = await self._route_send(message, provider)
        await self._record_submit(receipt, message, attempt=1)
        return receipt

    async def send_bulk(
        self,
        messages: Iterable[Message],
        *,
        concurrency: int | None = None,
        provider: str | None = None,
    ) -> BulkResult:
        """Send each message with the full single-send semantics; one outcome per message.

        Messages go concurrently (at most ``concurrency`` at a time, and within each
        gateway's own limits); a failure of one message never raises.
        """
        batch = list(messages)
        for item in batch:
            if not isinstance(item, Message):
                raise InvalidMessageError(
                    f"send_bulk takes Message objects, not {type(item).__name__}"
                )
        limit = self.default_concurrency if concurrency is None else concurrency
        if limit < 1:
            raise ConfigurationError("concurrency must be at least 1")
        if provider is not None:
            self._provider(provider)
        outcomes: list[Receipt | MimgwError | None] = [None] * len(batch)
        gate = anyio.Semaphore(limit)

        async def one(index: int, message: Message) -> None:
            async with gate:
                try:
                    outcomes[index] = await self.send_message(message, provider=provider)
                except MimgwError as exc:
                    outcomes[index] = exc

        async with anyio.create_task_group() as tg:
            for index, message in enumerate(batch):
                tg.start_soon(one, index, message)
        done = [o for o in outcomes if o is not None]
        return BulkResult(messages=tuple(batch), outcomes=tuple(done))

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

    async def _route_send(self, message: Message, pin: str | None) -> Receipt:
        attempts: list[ProviderError] = []
        refusals: list[MimgwError] = []
        started = self.retry.clock()  # one deadline for every gateway tried
        for name in self._order(pin):
            provider = self._providers[name]
            try:
                provider.prepare(message)
            except _REFUSALS as exc:  # this gateway cannot take it: not a send attempt
                if pin is not None:
                    raise
                refusals.append(exc)
                continue
            breaker = self._breakers.get(name)
            if breaker is not None and not breaker.allow():
                if pin is not None:
                    raise breaker.rejection()
                attempts.append(breaker.rejection())
                continue
            try:
                if breaker is not None and breaker.needs_balance_probe:
                    await self._probe_balance(name, breaker)
                return await self._call(
                    name, "submit", lambda p: p.send_message(message), started=started
                )
            except ProviderError as exc:
                attempts.append(exc)
                if pin is not None or not self._fails_over(exc):
                    raise
                log.warning("%s failed (%s); trying the next gateway", name, exc.kind.value)
        if not attempts and refusals:
            invalid = [r for r in refusals if isinstance(r, InvalidMessageError)]
            raise (invalid or refusals)[0]
        raise AllProvidersFailedError(attempts)

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
    ) -> T:
        """One call to one gateway: paced, retried per policy; submits feed the breaker."""
        provider = self._providers[name]
        limiter = self._limiters[name]
        track = operation == "submit" if use_breaker is None else use_breaker
        breaker = self._breakers.get(name) if track else None

        async def once() -> T:
            async with limiter.slot():
                try:
                    result = await fn(provider)
                except ProviderError as exc:
                    if breaker is not None:
                        breaker.record_error(exc)
                    raise
                except BaseException:
                    if breaker is not None:
                        breaker.release()
                    raise
            if breaker is not None:
                breaker.record_success()
            return result

        def keep_going() -> bool:
            return breaker is None or not breaker.is_open

        return await retry_call(
            once, policy=self.retry, operation=operation, keep_going=keep_going, started=started
        )

    # -- reads -------------------------------------------------------------------------

    async def balance(self, *, provider: str | None = None) -> Balance:
        """Credit of the pinned gateway, or of the first one (in priority order) that tells."""
        if provider is None:
            able = [n for n, p in self._providers.items() if p.capabilities.balance]
            if not able:
                raise next(iter(self._providers.values())).unsupported("balance")
            provider = able[0]
        self._provider(provider)
        return await self._call(provider, "read", lambda p: p.balance())

    async def balances(self) -> dict[str, Balance | MimgwError]:
        """Every gateway's credit (or the error saying why not), concurrently."""
        results: dict[str, Balance | MimgwError] = {}

        async def one(name: str) -> None:
            try:
                results[name] = await self.balance(provider=name)
            except MimgwError as exc:
                results[name] = exc

        async with anyio.create_task_group() as tg:
            for name in self._providers:
                tg.start_soon(one, name)
        return {name: results[name] for name in self._providers}

    async def status(self, message_id: str, *, provider: str | None = None) -> DeliveryReport:
        """Delivery status: pulled where the gateway can, recorded, else from the ledger.

        A message already final in the ledger is answered from it (several gateways
        answer a status only once). When a pull says the id is unknown or pulling is
        unsupported, the ledger answers if it knows the message.
        """
        if not isinstance(message_id, str) or not message_id.strip():
            raise InvalidMessageError("message_id must be a non-empty string")
        message_id = message_id.strip()
        await self.flush()
        if provider is not None:
            self._provider(provider)
        entries = await self.ledger.find(message_id, provider=provider)
        # several gateways may have said something about this id (one of them only "no
        # idea", while looking for it): the one that sent it, or knows its state, wins
        entry = max(entries, key=_relevance) if entries else None
        if provider is None and entry is not None:
            provider = entry.provider
        if provider is None:
            return await self._status_anywhere(message_id)
        if entry is not None and entry.state.final:
            return entry.as_report()
        gateway = self._providers.get(provider)
        if gateway is None or not gateway.capabilities.status:
            if entry is not None:
                return entry.as_report()
            raise self._providers[provider].unsupported("status")
        try:
            report = await self._call(provider, "read", lambda p: p.status(message_id))
        except ProviderError as exc:
            if entry is not None and exc.kind in (
                ErrorKind.UNSUPPORTED,
                ErrorKind.REQUEST_REJECTED,
            ):
                return entry.as_report()
            raise
        return await self._recorded(report)

    async def _status_anywhere(self, message_id: str) -> DeliveryReport:
        """An id the ledger does not know: ask each gateway that can pull, in order."""
        errors: list[ProviderError] = []
        unknown: DeliveryReport | None = None
        for name, gateway in self._providers.items():
            if not gateway.capabilities.status:
                errors.append(gateway.unsupported("status"))
                continue
            try:
                report = await self._call(name, "read", lambda p: p.status(message_id))
            except ProviderError as exc:
                errors.append(exc)
                continue
            if report.state is State.UNKNOWN:  # "no report for that id": maybe not ours
                unknown = unknown or report
                continue
            return await self._recorded(report)
        if unknown is not None:
            return await self._recorded(unknown)
        if len(errors) == 1:
            raise errors[0]
        tried = "; ".join(str(e) for e in errors)
        raise AllProvidersFailedError(errors, f"no gateway knows message {message_id!r}: {tried}")

    async def _recorded(self, report: DeliveryReport) -> DeliveryReport:
        self._pending.append(report)
        await self.flush()
        entry = await self.ledger.get(report.provider, report.message_id)
        return report if entry is None else entry.as_report()

    async def fetch_reports(
        self, *, provider: str | None = None, limit: int | None = None
    ) -> list[DeliveryReport]:
        """Pull unread reports from the pinned gateway or every gateway that offers it.

        Everything pulled is recorded before it is returned. Without a pin, a gateway
        that fails is logged and skipped unless all fail.
        """
        names = [provider] if provider is not None else list(self._providers)
        for name in names:
            self._provider(name)
        able = [n for n in names if provider is not None or self._providers[n].capabilities.reports]
        reports: list[DeliveryReport] = []
        errors: list[ProviderError] = []
        for name in able:
            try:
                reports.extend(
                    await self._call(name, "read", lambda p: p.fetch_reports(limit=limit))
                )
            except ProviderError as exc:
                if provider is not None:
                    raise
                log.warning("%s: pulling reports failed: %s", name, exc)
                errors.append(exc)
        await self.flush()
        if errors and len(errors) == len(able):
            raise AllProvidersFailedError(errors)
        return reports

    async def history(self, reference: str) -> list[LedgerEntry]:
        """Every recorded attempt for a reference (first submit, failovers, redeliveries)."""
        await self.flush()
        return await self.ledger.by_reference(reference)

    # -- pushed reports ---------------------------------------------------------------------

    def parse_webhook(
        self, body: bytes, headers: Mapping[str, str] | None = None, *, provider: str
    ) -> list[WebhookItem]:
        """Parse what ``provider`` pushed. Plain function; reports reach the ledger on the
        next gateway call or :meth:`flush` (use :meth:`ingest_webhook` to do both)."""
        return self._provider(provider).parse_webhook(body, headers)

    async def ingest_webhook(
        self, provider: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> list[WebhookItem]:
        """Parse a push from ``provider`` and record its reports in the ledger."""
        items = self.parse_webhook(body, headers, provider=provider)
        await self.flush()
        return items

    def _on_item(self, item: WebhookItem) -> None:
        if isinstance(item, DeliveryReport):
            self._pending.append(item)

    async def flush(self) -> None:
        """Record every report the providers have parsed since the last flush.

        A report leaves the queue only once it is recorded and acted upon: a ledger
        failure or a cancellation puts the rest back for the next flush. Recording a
        report twice is harmless (the ledger ignores duplicates) and the follow-up in
        :meth:`_after_record` is idempotent, so it runs even when nothing changed.
        """
        while self._pending:
            batch, self._pending = self._pending, []
            for index, report in enumerate(batch):
                try:
                    entry, _changed = await self.ledger.record_report(report)
                    await self._after_record(entry)
                except MimgwError:
                    log.exception("ledger: recording a report failed; will retry")
                    self._pending[:0] = batch[index:]
                    return
                except BaseException:  # cancelled: nothing fetched may be dropped
                    self._pending[:0] = batch[index:]
                    raise

    # -- ledger and redelivery -----------------------------------------------------------

    async def _record_submit(self, receipt: Receipt, message: Message, *, attempt: int) -> None:
        if not receipt.message_id:  # accepted without an id: nothing to key a report to
            log.warning("ledger: %s accepted %s without an id", receipt.provider, receipt.reference)
            return
        keep = message if self.redelivery is not None else None
        # the gateway took the message: a cancellation arriving now must not lose the
        # record of it (the caller is cancelled right after, with the entry written);
        # a ledger that hangs is still given up on after a grace period
        with anyio.move_on_after(_RECORD_GRACE, shield=True) as scope:
            try:
                entry = await self.ledger.record_submit(receipt, attempt=attempt, message=keep)
                await self._after_record(entry)
            except MimgwError:  # never turn an accepted message into an error
                log.exception("ledger: recording submit %s failed", receipt.message_id)
        if scope.cancelled_caught:
            log.error("ledger: recording submit %s timed out", receipt.message_id)

    async def _after_record(self, entry: LedgerEntry) -> None:
        """Schedule a redelivery the report allows, or settle a final entry."""
        if entry.settled or not entry.submitted or not entry.state.final:
            return
        policy = self.redelivery
        report = entry.report
        if (
            policy is not None
            and entry.failed
            and entry.text is not None
            and report is not None
            and report.permanent is not True
            and policy.allows(entry.redeliveries, report.retries_allowed)
        ):
            if entry.next_attempt_at is None:
                at = self._now() + policy.delay(entry.redeliveries)
                await self.ledger.schedule(entry.provider, entry.message_id, at)
            return
        await self.ledger.settle(entry.provider, entry.message_id)

    async def redeliver_due(self, *, limit: int | None = None) -> list[Receipt | MimgwError]:
        """Resubmit every message whose redelivery is due; one outcome per message.

        Each resubmission carries the original reference and is recorded as the next
        attempt; the failed entry is settled first, so a message is never resent twice
        for one report. Settling is the claim: of several gateways (workers) sharing a
        ledger, only the one whose settle succeeded resends; the others skip the entry.
        """
        if self.redelivery is None:
            return []
        async with self._redelivery_lock:
            await self.flush()
            outcomes: list[Receipt | MimgwError] = []
            for entry in await self.ledger.due(self._now(), limit=limit):
                outcome = await self._redeliver(entry, self.redelivery)
                if outcome is not None:
                    outcomes.append(outcome)
            return outcomes

    async def _redeliver(
        self, entry: LedgerEntry, policy: RedeliveryPolicy
    ) -> Receipt | MimgwError | None:
        """Resend one due entry; None when another worker sharing the ledger took it."""
        message = entry.message()
        if not await self.ledger.settle(entry.provider, entry.message_id):
            return None
        if message is None:
            return InvalidMessageError(f"{entry.message_id}: text no longer kept; not resent")
        pin = entry.provider if policy.target == "same" else None
        if pin is not None and pin not in self._providers:
            pin = None
        try:
            receipt = await self._route_send(message, pin)
        except MimgwError as exc:
            if _transient_and_unsent(exc):
                # nothing went out and the cause may pass: the message stays due, and
                # this try does not count against what the report allows
                at = self._now() + policy.delay(entry.redeliveries)
                await self.ledger.restore(
                    entry.model_copy(update={"next_attempt_at": at, "updated_at": self._now()})
                )
                log.warning("redelivery of %s postponed to %s: %s", entry.reference, at, exc)
            else:
                log.warning("redelivery of %s failed: %s", entry.reference, exc)
            return exc
        await self._record_submit(receipt, message, attempt=entry.attempt + 1)
        return receipt

    @asynccontextmanager
    async def redelivery_loop(
        self, interval: float = 30.0, *, pull_reports: bool = False
    ) -> AsyncIterator[None]:
        """Run :meth:`redeliver_due` (and optionally :meth:`fetch_reports`) every
        ``interval`` seconds while the block runs; stopped cleanly on exit."""
        if interval <= 0:
            raise ConfigurationError("interval must be positive")

        async def forever() -> None:
            while True:
                if pull_reports:
                    try:
                        await self.fetch_reports()
                    except MimgwError as exc:  # a gateway down must not stall redelivery
                        log.warning("redelivery loop: pulling reports: %s", exc)
                try:
                    await self.redeliver_due()
                except MimgwError as exc:
                    log.warning("redelivery loop: %s", exc)
                await anyio.sleep(interval)

        async with anyio.create_task_group() as tg:
            tg.start_soon(forever)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

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


def _transient_and_unsent(error: MimgwError) -> bool:
    """Nothing was sent, and trying again later may succeed (a gateway down, paced,
    or skipped by its breaker), on every gateway that was tried."""
    attempts = error.attempts if isinstance(error, AllProvidersFailedError) else [error]
    return bool(attempts) and all(
        isinstance(a, ProviderError) and a.retryable and not a.may_have_been_sent for a in attempts
    )


def _relevance(entry: LedgerEntry) -> tuple[bool, bool]:
    """Order of preference among ledger entries sharing a message id (ties: newest)."""
    return entry.submitted, entry.state is not State.UNKNOWN


def _limit_for(limits: RateLimit | Mapping[str, RateLimit] | None, name: str) -> RateLimit | None:
    if limits is None or isinstance(limits, RateLimit):
        return limits
    return limits.get(name)
