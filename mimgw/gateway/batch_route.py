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

import logging
from collections.abc import Sequence
from functools import partial

from mimgw.errors import (
    AllProvidersFailedError,
    InvalidMessageError,
    MimgwError,
    ProviderError,
)
from mimgw.gateway.batch_ledger import BatchLedgerMixin, Slot
from mimgw.gateway.batching import Batch, adapter_for
from mimgw.gateway.core import Trace
from mimgw.gateway.sending import _REFUSALS
from mimgw.ledger import IntentAttempt, LedgerError
from mimgw.models import Message, Receipt, new_references, trusted
from mimgw.providers.base import Outgoing
from mimgw.taxonomy import ErrorKind

__all__ = ["BatchRouteMixin", "Slot"]

log = logging.getLogger("mimgw.gateway")

Outcome = Receipt | MimgwError


def _attempt(provider: str, kind: ErrorKind | None = None, maybe: bool = False) -> IntentAttempt:
    """One attempt, shared by every recipient of a request (attempts are frozen)."""
    return trusted(IntentAttempt, {"provider": provider, "kind": kind, "may_have_been_sent": maybe})


class BatchRouteMixin(BatchLedgerMixin):
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
            ids = new_references(len(messages))
            slots = [Slot(m, i, o) for m, i, o in zip(messages, ids, outgoing, strict=True)]
            try:
                held = await self._guarded(partial(self._begin_slots, slots, now))
            except TimeoutError:
                error = LedgerError("ledger: writing the send intents timed out; nothing sent")
                return [error] * len(slots)
            except MimgwError as exc:
                return [exc] * len(slots)
            except BaseException:  # cancelled: the intents may be written, nothing was sent
                await self._finish_slots(slots, now)
                raise
            live = self._live(slots, held)
            del held  # while requests are under way, a slot is all there is
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
