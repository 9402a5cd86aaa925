"""Sending one message: write-ahead intent, idempotency key, retry and failover.

Every send writes an :class:`~mimgw.ledger.Intent` before its first request and
records the answer after the last one, both through :func:`mimgw._shield.complete`,
so no cancellation — anyio scope, ``Task.cancel()`` or ``asyncio.wait_for`` — can
separate "a gateway took it" from "the ledger knows it".
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import anyio

from mimgw._shield import complete, complete_eager
from mimgw.errors import (
    AllProvidersFailedError,
    ConfigurationError,
    InvalidMessageError,
    MimgwError,
    OutcomeUnknownError,
    ProviderError,
    UnsupportedOperationError,
)
from mimgw.gateway.core import GatewayCore, Trace
from mimgw.ledger import Intent, IntentAttempt, IntentState, Ledger, LedgerError, MemoryLedger
from mimgw.models import Category, Message, Receipt, trusted
from mimgw.providers.base import Outgoing, Provider
from mimgw.taxonomy import ErrorKind

__all__ = ["SendingMixin"]

log = logging.getLogger("mimgw.gateway")

T = TypeVar("T")

_REFUSALS = (InvalidMessageError, ConfigurationError, UnsupportedOperationError)
RECORD_GRACE = 30.0
"""Seconds a ledger write may take once it matters for the truth (the intent before a
request, the answer after it); it is finished through any cancellation that long."""


class SendingMixin(GatewayCore):
    async def send(
        self,
        to: str,
        text: str,
        *,
        sender: str | None = None,
        reference: str | None = None,
        category: Category = "transactional",
        send_at: datetime | None = None,
        idempotency_key: str | None = None,
        provider: str | None = None,
    ) -> Receipt:
        """Submit one message through the first gateway that takes it.

        With ``idempotency_key`` the message is sent at most once for that key, across
        calls, retries of a job and processes sharing the ledger (see docs/ledger.md).
        """
        message = Message(
            to=to,
            text=text,
            sender=sender,
            reference=reference,
            category=category,
            send_at=send_at,
            idempotency_key=idempotency_key,
        )
        return await self.send_message(message, provider=provider)

    async def send_message(self, message: Message, *, provider: str | None = None) -> Receipt:
        """Submit a prepared message; ``provider=`` pins one gateway (no failover)."""
        if not isinstance(message, Message):
            raise InvalidMessageError(f"send_message takes a Message, not {type(message).__name__}")
        if provider is not None:
            self._provider(provider)
        if self._pending:
            await self.flush()
        return await self._submit(message, provider)

    async def resolve(
        self,
        ref: str,
        *,
        sent: bool,
        provider: str | None = None,
        message_id: str | None = None,
        note: str | None = None,
    ) -> Intent:
        """Settle an unknown send by hand (an intent id or idempotency key), after
        checking the gateway's portal: see :meth:`mimgw.ledger.Ledger.resolve`."""
        if provider is not None:
            self._provider(provider)
        return await self.ledger.resolve(
            ref, sent=sent, provider=provider, message_id=message_id, note=note
        )

    # -- one message, start to end ---------------------------------------------------------

    async def _submit(
        self,
        message: Message,
        pin: str | None,
        *,
        attempt: int = 1,
        order: list[str] | None = None,
    ) -> Receipt:
        """``order``: the gateways to try, when the caller chose them (a bulk window's
        turn); else the strategy picks them now."""
        key = message.idempotency_key
        if key is None:
            return await self._submit_once(message, pin, attempt, order)
        while (running := self._keyed.get(key)) is not None:  # same key in flight here
            await running.wait()
        done = self._keyed[key] = anyio.Event()
        try:
            return await self._submit_once(message, pin, attempt, order)
        finally:
            if self._keyed.get(key) is done:
                del self._keyed[key]
            done.set()

    async def _submit_once(
        self, message: Message, pin: str | None, attempt: int, order: list[str] | None = None
    ) -> Receipt:
        intent = Intent.for_message(message, now=self._now())
        try:
            held = await self._guarded(lambda: self.ledger.begin(intent))
        except TimeoutError:
            raise LedgerError("ledger: writing the send intent timed out; nothing sent") from None
        except BaseException:  # cancelled: the intent may be written, nothing was sent
            await self._finish_quietly(
                intent.finished(IntentState.NOT_SENT, now=self._now(), error="cancelled")
            )
            raise
        if held.id != intent.id:
            return self._replay(held)
        trace = Trace()
        attempts: list[IntentAttempt] = []
        try:
            receipt = await self._route_send(message, pin, trace, attempts, order)
        except MimgwError as exc:
            state = IntentState.UNKNOWN if _maybe_sent(exc, trace) else IntentState.NOT_SENT
            await self._finish_quietly(
                intent.finished(state, now=self._now(), attempts=tuple(attempts), error=str(exc))
            )
            raise
        except BaseException:  # cancelled (or a bug): a request under way may have gone out
            unsure = trace.maybe_sent or trace.in_request
            state = IntentState.UNKNOWN if unsure else IntentState.NOT_SENT
            await self._finish_quietly(
                intent.finished(state, now=self._now(), attempts=tuple(attempts), error="cancelled")
            )
            raise
        accepted = intent.finished(
            IntentState.ACCEPTED, now=self._now(), receipt=receipt, attempts=tuple(attempts)
        )
        await self._record_accepted(accepted, message, attempt)
        return receipt

    async def _guarded(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a ledger write to its end through any cancellation (see module doc)."""
        if _never_suspends(self.ledger):  # nothing to interrupt: no task needed
            return await fn()
        if _eager(type(self.ledger)):  # a task of its own only if the write suspends
            return await complete_eager(fn, grace=RECORD_GRACE)
        return await complete(fn, grace=RECORD_GRACE)

    def _replay(self, held: Intent) -> Receipt:
        """The key is held by an earlier send: its receipt, or "unknown", nothing sent."""
        if held.state is IntentState.ACCEPTED and held.receipt is not None:
            log.info("idempotency key %r: already accepted; not sent again", held.key)
            return held.receipt
        last = held.attempts[-1].provider if held.attempts else "ledger"
        raise OutcomeUnknownError(
            last,
            ErrorKind.OUTCOME_UNKNOWN,
            None,
            f"idempotency key {held.key!r}: an earlier send ({held.id}) is "
            f"{held.state.value.replace('_', ' ')}; not sent again (after checking the "
            "gateway, settle it with Gateway.resolve)",
        )

    async def _record_accepted(self, intent: Intent, message: Message, attempt: int) -> None:
        """A gateway took the message: the ledger must know, whatever happens now."""
        keep = message if self.redelivery is not None else None

        async def write() -> None:
            entry = await self.ledger.finish(intent, attempt=attempt, message=keep)
            if entry is not None:
                await self._after_record(entry)
            await self._follow_up_late()

        try:
            await self._guarded(write)
        except (MimgwError, TimeoutError) as exc:  # never turn an accepted message into an error
            log.error("ledger: recording accepted send %s failed: %r", intent.id, exc)
        receipt = intent.receipt
        if receipt is not None and not receipt.message_id:
            log.warning("ledger: %s accepted %s without an id", receipt.provider, receipt.reference)

    async def _finish_quietly(self, intent: Intent) -> None:
        try:
            await self._guarded(lambda: self.ledger.finish(intent))
        except (MimgwError, TimeoutError) as exc:
            log.error("ledger: recording the outcome of send %s failed: %r", intent.id, exc)

    # -- routing one message ----------------------------------------------------------------

    async def _route_send(
        self,
        message: Message,
        pin: str | None,
        trace: Trace,
        attempts: list[IntentAttempt],
        order: list[str] | None = None,
    ) -> Receipt:
        errors: list[ProviderError] = []
        refusals: list[MimgwError] = []
        started = self.retry.clock()  # one deadline for every gateway tried
        order = self._order(pin) if order is None else order
        for index, name in enumerate(order):
            provider = self._providers[name]
            try:
                outgoing = provider.prepare(message)  # once: the same is sent below
            except _REFUSALS as exc:  # this gateway cannot take it: not a send attempt
                if pin is not None:
                    raise
                refusals.append(exc)
                continue
            breaker = self._breakers.get(name)
            if breaker is not None and not breaker.allow():
                if pin is not None:
                    raise _truthful(breaker.rejection(), trace)
                errors.append(breaker.rejection())
                continue
            try:
                if breaker is not None and breaker.needs_balance_probe:
                    await self._probe_balance(name, breaker)
                receipt = await self._call(
                    name,
                    "submit",
                    _sender(outgoing),
                    started=started,
                    trace=trace,
                )
            except ProviderError as exc:
                errors.append(exc)
                attempts.append(
                    trusted(
                        IntentAttempt,
                        {
                            "provider": name,
                            "kind": exc.kind,
                            "may_have_been_sent": exc.may_have_been_sent,
                        },
                    )
                )
                if pin is not None or not self._fails_over(exc):
                    raise _truthful(exc, trace)  # noqa: B904 - the same error, re-raised
                if index + 1 < len(order):
                    log.warning("%s failed (%s); trying the next gateway", name, exc.kind.value)
                continue
            attempts.append(
                trusted(
                    IntentAttempt, {"provider": name, "kind": None, "may_have_been_sent": False}
                )
            )
            return receipt
        if not errors and refusals:
            invalid = [r for r in refusals if isinstance(r, InvalidMessageError)]
            raise (invalid or refusals)[0]
        raise AllProvidersFailedError(errors)


_WRITES = ("begin", "finish", "record_submit", "schedule", "settle", "begin_many", "finish_many")


@functools.cache
def _suspends(kind: type[Ledger]) -> bool:
    """False for the memory ledger as shipped: its writes never await anything, so no
    cancellation can land inside one (a subclass that awaits is treated as suspending)."""
    return not (
        issubclass(kind, MemoryLedger)
        and all(getattr(kind, m) is getattr(MemoryLedger, m) for m in _WRITES)
    )


def _never_suspends(ledger: Ledger) -> bool:
    return not _suspends(type(ledger))


@functools.cache
def _eager(kind: type[Ledger]) -> bool:
    """True for the ledgers as shipped whose writes may start in the caller's task and,
    if they suspend, end in another: the SQLite ledger's (``_movable_writes``) end
    inline or wait on a plain future. A subclass that overrides a write may hold
    task-bound state across a suspension: not trusted."""
    home = next((k for k in kind.__mro__ if k.__dict__.get("_movable_writes")), None)
    return home is not None and all(getattr(kind, m) is getattr(home, m) for m in _WRITES)


def _sender(outgoing: Outgoing) -> Callable[[Provider], Awaitable[Receipt]]:
    """Sends what routing prepared, without preparing it again."""
    return lambda provider: provider.send_prepared(outgoing)


def _truthful(error: ProviderError, trace: Trace) -> ProviderError:
    """An error whose ``may_have_been_sent`` counts every attempt for the message."""
    if trace.maybe_sent and not error.may_have_been_sent:
        error.mark_may_have_been_sent()
    return error


def _maybe_sent(error: MimgwError, trace: Trace) -> bool:
    if trace.maybe_sent:
        return True
    if isinstance(error, ProviderError | AllProvidersFailedError):
        return error.may_have_been_sent
    return False
