"""Sending one native batch with the rules of singles: intents, retry, failover, keys.

Every recipient of a batch has its own write-ahead :class:`~mimgw.ledger.Intent`
(written together with :meth:`~mimgw.ledger.Ledger.begin_many` before the request)
and its own outcome (written with :meth:`~mimgw.ledger.Ledger.finish_many`). A
recipient whose idempotency key an earlier send holds is answered from the ledger
and not sent. The request is retried on one gateway only while it provably sent
nothing. A batch that provably sent nothing and whose error fails over (connection
refused, rate limited, unavailable, auth, balance, open breaker) moves whole to the
next gateway, where it is planned again (as batches or singles). A batch of unknown
outcome is unknown for every recipient in it and is never re-sent, whatever
``on_unknown`` says (that setting applies to singles). An error the gateway gives
for one recipient of an answered batch is that recipient's, under the rules for a
single. A batch a gateway answers all or nothing (MiMSMS v4) refused whole, provably
unsent, for a reason that may be one recipient's (its number; where the texts differ,
a text or a malformed item) is sent again as singles on the same gateway, so that one
bad message does not sink the others. A key this process is already sending waits for
that send, as a single does.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import anyio

from mimgw._shield import complete
from mimgw.errors import (
    AllProvidersFailedError,
    InvalidMessageError,
    MimgwError,
    OutcomeUnknownError,
    ProviderError,
)
from mimgw.gateway.batching import SHARED_BATCH_IDS, Batch, adapter_for, orphaned_report
from mimgw.gateway.core import Trace
from mimgw.gateway.sending import _REFUSALS, RECORD_GRACE, SendingMixin
from mimgw.ledger import Intent, IntentAttempt, IntentState, LedgerError
from mimgw.ledger.base import Finish
from mimgw.models import Message, Receipt, trusted
from mimgw.providers.base import Outgoing
from mimgw.taxonomy import ErrorKind

__all__ = ["BatchRouteMixin", "Slot"]

log = logging.getLogger("mimgw.gateway")

Outcome = Receipt | MimgwError


@dataclass(slots=True, eq=False)
class Slot:
    """One recipient of a batch on its way through the gateways (thousands may be in
    flight at once: nothing here is allocated before it is needed)."""

    message: Message
    intent_id: str
    """Its intent (only the id is kept while the request is under way: the intent is
    built again, finished, from the message and the id)."""
    outgoing: Outgoing | None = None
    """Prepared for the gateway about to be tried (the first one: by the planner)."""
    trace: Trace | None = None
    """The request under way or last made for this recipient (shared by its batch)."""
    attempts: tuple[IntentAttempt, ...] = ()
    errors: tuple[ProviderError, ...] = ()
    refusals: tuple[MimgwError, ...] = ()
    outcome: Outcome | None = None
    maybe_sent: bool = False

    def settle(self, outcome: Outcome, *, maybe_sent: bool = False) -> None:
        self.maybe_sent = self.maybe_sent or maybe_sent
        if (
            self.maybe_sent
            and isinstance(outcome, ProviderError)
            and not outcome.may_have_been_sent
        ):
            # an earlier attempt may have sent it (a single that failed over after an
            # unknown outcome): its error says so; a copy, as a batch's is shared
            outcome = copy.copy(outcome)
            outcome.mark_may_have_been_sent()
        self.outcome = outcome

    def state(self) -> IntentState:
        if isinstance(self.outcome, Receipt):
            return IntentState.ACCEPTED
        trace = self.trace
        unsure = self.maybe_sent or (trace is not None and (trace.maybe_sent or trace.in_request))
        return IntentState.UNKNOWN if unsure else IntentState.NOT_SENT


def _attempt(provider: str, kind: ErrorKind | None = None, maybe: bool = False) -> IntentAttempt:
    """One attempt, shared by every recipient of a request (attempts are frozen)."""
    return trusted(IntentAttempt, {"provider": provider, "kind": kind, "may_have_been_sent": maybe})


class BatchRouteMixin(SendingMixin):
    async def _send_batch(
        self,
        messages: Sequence[Message],
        outgoing: Sequence[Outgoing | None],
        order: list[str],
        pin: str | None,
        plan: Batch | None = None,
    ) -> list[Outcome]:
        """Send ``messages`` (prepared for ``order[0]`` as ``outgoing``; None: prepared
        for each gateway as it is tried) as batches; ``plan``, when given, is one batch of
        all of them for ``order[0]``."""
        if self._pending:
            await self.flush()
        events = await self._hold_keys([m.idempotency_key for m in messages])
        try:
            now = self._now()
            intents = Intent.for_messages(messages, now=now)
            slots = [Slot(m, i.id, o) for m, i, o in zip(messages, intents, outgoing, strict=True)]
            try:
                held = await complete(partial(self.ledger.begin_many, intents), grace=RECORD_GRACE)
            except TimeoutError:
                error = LedgerError("ledger: writing the send intents timed out; nothing sent")
                return [error] * len(slots)
            except MimgwError as exc:
                return [exc] * len(slots)
            except BaseException:  # cancelled: the intents may be written, nothing was sent
                await self._finish_slots(slots, now)
                raise
            live = self._live(slots, held)
            del intents, held  # while requests are under way, a slot is all there is
            try:
                plan = plan if len(live) == len(slots) else None
                await self._route_batch(live, order, pin, plan)
            finally:
                # cancelled or not: every recipient's outcome is written (unknown when a
                # request was under way)
                await self._finish_slots(live, now)
        finally:
            self._release_keys(events)
        return [s.outcome if s.outcome is not None else _lost() for s in slots]

    def _live(self, slots: list[Slot], held: list[Intent]) -> list[Slot]:
        """The slots whose intent was written; the others answered from the ledger."""
        live: list[Slot] = []
        for slot, intent in zip(slots, held, strict=True):
            if intent.id == slot.intent_id:
                live.append(slot)
                continue
            try:  # another send holds the key: answered from the ledger, not sent
                slot.outcome = self._replay(intent)
            except OutcomeUnknownError as exc:
                slot.outcome = exc
        return live

    async def _hold_keys(self, keys: Sequence[str | None]) -> dict[str, anyio.Event]:
        """Wait until no send of this process holds any of ``keys``, then hold them all
        (holding none while waiting: two batches never wait for each other)."""
        wanted = [key for key in keys if key is not None]
        while held := next((e for k in wanted if (e := self._keyed.get(k)) is not None), None):
            await held.wait()
        return {key: self._keyed.setdefault(key, anyio.Event()) for key in wanted}

    def _release_keys(self, events: dict[str, anyio.Event]) -> None:
        for key, event in events.items():
            if self._keyed.get(key) is event:
                del self._keyed[key]
            event.set()

    async def _finish_slots(self, slots: list[Slot], created_at: datetime) -> None:
        now = self._now()
        keep = self.redelivery is not None
        items: list[Finish] = []
        for slot in slots:
            state = slot.state()
            outcome = slot.outcome
            receipt = outcome if isinstance(outcome, Receipt) else None
            error = None if receipt is not None else str(outcome) if outcome else "cancelled"
            intent = Intent.finished_for(
                slot.message,
                id=slot.intent_id,
                created_at=created_at,
                state=state,
                now=now,
                receipt=receipt,
                attempts=slot.attempts,
                error=error,
            )
            items.append((intent, 1, slot.message if keep and receipt else None))

        async def write() -> None:
            entries = await self.ledger.finish_many(items)
            for entry in entries:
                # a fresh submit needs a follow-up only when a report beat it to a final
                # state (the redelivery mixin settles or reschedules it)
                if entry is not None and entry.state.final and not entry.settled:
                    await self._after_record(entry)
            await self._adopt_orphans([i.receipt for i, _, _ in items if i.receipt is not None])

        try:
            await complete(write, grace=RECORD_GRACE)
        except (MimgwError, TimeoutError) as exc:  # never turn accepted messages into errors
            log.error("ledger: recording the outcomes of a batch failed: %r", exc)

    async def _adopt_orphans(self, receipts: list[Receipt]) -> None:
        """Reports a gateway sharing one id per batch pushed before this batch's submit
        was recorded go to their recipients with the next :meth:`flush`."""
        names = {r.provider for r in receipts}
        for name in names:
            provider = self._providers.get(name)
            if provider is None or provider.kind not in SHARED_BATCH_IDS:
                continue
            mine = receipts if len(names) == 1 else [r for r in receipts if r.provider == name]
            self._pending += await orphaned_report(self.ledger, name, mine)

    async def _route_batch(
        self, slots: list[Slot], order: list[str], pin: str | None, plan: Batch | None
    ) -> None:
        started = self.retry.clock()  # one deadline for every gateway tried
        waiting = slots
        for position, name in enumerate(order):
            if not waiting:
                return
            provider = self._providers[name]
            ready: list[Slot] = []
            moving: list[Slot] = []
            for slot in waiting:
                if slot.outgoing is None:
                    try:
                        slot.outgoing = provider.prepare(slot.message)
                    except _REFUSALS as exc:  # this gateway cannot take it: not an attempt
                        if pin is not None:
                            slot.settle(exc)
                        else:
                            slot.refusals += (exc,)
                            moving.append(slot)
                        continue
                ready.append(slot)
            if position == 0 and plan is not None and len(ready) == len(plan.outgoing):
                # the caller planned it for this gateway
                moving += await self._request(name, plan, ready, pin, started)
            else:
                moving += await self._send_planned(name, ready, pin, started)
            for slot in moving:
                slot.outgoing = None
            waiting = moving
            if waiting and position + 1 < len(order):
                log.warning("%s: %d message(s) move to the next gateway", name, len(waiting))
        for slot in waiting:
            if not slot.errors and slot.refusals:
                invalid = [r for r in slot.refusals if isinstance(r, InvalidMessageError)]
                slot.settle((invalid or slot.refusals)[0])
            else:
                slot.settle(AllProvidersFailedError(slot.errors))

    async def _send_planned(
        self, name: str, ready: list[Slot], pin: str | None, started: float
    ) -> list[Slot]:
        """``ready`` (prepared for ``name``) as the gateway's batches and singles; returns
        the slots that move on."""
        provider = self._providers[name]
        adapter = adapter_for(provider)
        batches: list[Batch] = []
        singles = list(range(len(ready)))
        if adapter is not None and len(ready) > 1:
            prepared = [s.outgoing for s in ready if s.outgoing is not None]
            batches, singles = adapter.plan(provider, prepared)
        moving: list[Slot] = []
        for batch in batches:
            members = [ready[i] for i in batch.members]
            moving += await self._request(name, batch, members, pin, started)
        for index in singles:
            moving += await self._request(name, None, [ready[index]], pin, started)
        return moving

    async def _request(
        self, name: str, batch: Batch | None, slots: list[Slot], pin: str | None, started: float
    ) -> list[Slot]:
        """One request for ``slots`` at ``name``; returns those that move on."""
        breaker = self._breakers.get(name)
        if breaker is not None and not breaker.allow():
            rejection = breaker.rejection()
            for slot in slots:
                slot.errors += (rejection,)
                if pin is not None:
                    slot.settle(rejection)
            return [] if pin is not None else slots
        trace = Trace()
        for slot in slots:
            slot.trace = trace
        try:
            if breaker is not None and breaker.needs_balance_probe:
                await self._probe_balance(name, breaker)
            if batch is None:
                outgoing = slots[0].outgoing
                assert outgoing is not None
                results: list[Outcome] = [
                    await self._call(
                        name,
                        "submit",
                        lambda p: p.send_prepared(outgoing),
                        started=started,
                        trace=trace,
                    )
                ]
            else:
                results = await self._call(name, "submit", batch.send, started=started, trace=trace)
        except ProviderError as exc:
            maybe = exc.may_have_been_sent or trace.maybe_sent
            whole = batch is not None and batch.all_or_nothing and len(slots) > 1
            if whole and not maybe and _maybe_one_recipients(exc, slots):
                for slot in slots:
                    slot.trace = None  # this request provably sent none of them
                log.info(
                    "%s: a batch of %d refused whole (%s); sent as singles",
                    name,
                    len(slots),
                    exc.kind.value,
                )
                alone: list[Slot] = []
                for slot in slots:
                    alone += await self._request(name, None, [slot], pin, started)
                return alone
            failed = _attempt(name, exc.kind, maybe)
            for slot in slots:
                slot.attempts += (failed,)
                slot.errors += (exc,)
            # a single follows the rules of singles (on_unknown included); a batch of
            # unknown outcome is never re-sent
            moves = pin is None and self._fails_over(exc) and (batch is None or not maybe)
            if moves:
                for slot in slots:
                    slot.maybe_sent = slot.maybe_sent or maybe
                return slots
            for slot in slots:
                slot.settle(exc, maybe_sent=maybe)
            return []
        accepted = (_attempt(name),)
        moving: list[Slot] = []
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, Receipt):
                slot.attempts = slot.attempts + accepted if slot.attempts else accepted
                slot.settle(result)
                continue
            maybe = isinstance(result, ProviderError) and result.may_have_been_sent
            if isinstance(result, ProviderError):
                slot.attempts += (_attempt(name, result.kind, maybe),)
                slot.errors += (result,)
                if pin is None and not maybe and self._fails_over(result):
                    moving.append(slot)
                    continue
            slot.settle(result, maybe_sent=maybe)
        return moving


_ONE_RECIPIENTS = frozenset(
    {ErrorKind.RECIPIENT_REJECTED, ErrorKind.CONTENT_REJECTED, ErrorKind.REQUEST_REJECTED}
)


def _maybe_one_recipients(exc: ProviderError, slots: list[Slot]) -> bool:
    """Whether a whole batch's refusal may be the fault of some of its recipients only:
    a number always may; a text or a malformed request only where the texts differ (a
    same-text batch is one text and one set of parameters for all of them)."""
    if exc.kind not in _ONE_RECIPIENTS:
        return False
    if exc.kind is ErrorKind.RECIPIENT_REJECTED:
        return True
    text = slots[0].message.text
    return any(s.message.text != text for s in slots)


def _lost() -> MimgwError:  # pragma: no cover - every slot is settled or the call raised
    return MimgwError("batch: no outcome recorded")
