"""What a native batch writes to the ledger: one intent per recipient before the request,
one outcome per recipient after it, and the idempotency keys held meanwhile.

The default :class:`~mimgw.ledger.MemoryLedger` keeps intents and entries as records
(tuples of values): a batch's recipients are written to it as records at once
(:meth:`~mimgw.ledger.MemoryLedger.begin_batch`,
:meth:`~mimgw.ledger.MemoryLedger.finish_batch`) instead of as models it would only take
apart. Any other ledger is given the models (``begin_many``, ``finish_many``). Either
way every recipient has its own write-ahead intent, its own finished intent and, when
accepted, its own entry.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import anyio

from mimgw.errors import MimgwError, OutcomeUnknownError, ProviderError
from mimgw.gateway.batching import SHARED_BATCH_IDS, orphaned_report
from mimgw.gateway.core import Trace
from mimgw.gateway.sending import SendingMixin
from mimgw.ledger import Intent, IntentAttempt, IntentState, LedgerEntry, MemoryLedger
from mimgw.ledger.memory import BatchFinish
from mimgw.models import Message, Receipt
from mimgw.providers.base import Outgoing

__all__ = ["BatchLedgerMixin", "Slot"]

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
            return _ACCEPTED
        trace = self.trace
        unsure = self.maybe_sent or (trace is not None and (trace.maybe_sent or trace.in_request))
        return _UNKNOWN if unsure else _NOT_SENT


# module constants: an enum member's lookup costs a recipient of a batch more than this
_ACCEPTED, _UNKNOWN, _NOT_SENT = IntentState.ACCEPTED, IntentState.UNKNOWN, IntentState.NOT_SENT


def _direct(ledger: object) -> MemoryLedger | None:
    """The ledger when a batch may write its recipients to it as records."""
    if isinstance(ledger, MemoryLedger) and ledger.batch_direct:
        return ledger
    return None


class BatchLedgerMixin(SendingMixin):
    async def _begin_slots(self, slots: Sequence[Slot], now: datetime) -> list[Intent | None]:
        """Write each slot's intent (``IN_FLIGHT``, created ``now``): None where it was
        written, else the intent that holds its idempotency key."""
        ledger = self.ledger
        direct = _direct(ledger)
        if direct is not None:
            return direct.begin_batch([s.message for s in slots], [s.intent_id for s in slots], now)
        intents = [Intent.for_message(s.message, now=now, id=s.intent_id) for s in slots]
        held = await ledger.begin_many(intents)
        return [None if h.id == s.intent_id else h for s, h in zip(slots, held, strict=True)]

    def _live(self, slots: list[Slot], held: list[Intent | None]) -> list[Slot]:
        """The slots whose intent was written; the others answered from the ledger."""
        live: list[Slot] = []
        for slot, intent in zip(slots, held, strict=True):
            if intent is None:
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
        ledger = self.ledger
        rows: list[BatchFinish] = []
        receipts: list[Receipt] = []
        row: BatchFinish
        for slot in slots:
            outcome = slot.outcome
            if isinstance(outcome, Receipt):
                receipts.append(outcome)
                row = (
                    slot.message,
                    slot.intent_id,
                    slot.state(),
                    outcome,
                    slot.attempts,
                    None,
                    keep,
                )
            else:
                error = str(outcome) if outcome else "cancelled"
                row = (
                    slot.message,
                    slot.intent_id,
                    slot.state(),
                    None,
                    slot.attempts,
                    error,
                    False,
                )
            rows.append(row)

        async def write() -> None:
            direct = _direct(ledger)
            entries: Sequence[LedgerEntry | None]
            if direct is not None:
                entries = direct.finish_batch(rows, created_at=created_at, now=now)
            else:
                entries = await ledger.finish_many(
                    [
                        (
                            Intent.finished_for(
                                m, id=i, created_at=created_at, state=s, now=now,
                                receipt=r, attempts=a, error=e,
                            ),
                            1,
                            m if k else None,
                        )
                        for m, i, s, r, a, e, k in rows
                    ]
                )  # fmt: skip
            for entry in entries:
                # a fresh submit needs a follow-up only when a report beat it to a final
                # state (the redelivery mixin settles or reschedules it)
                if entry is not None and entry.state.final and not entry.settled:
                    await self._after_record(entry)
            await self._adopt_orphans(receipts)

        try:
            await self._guarded(write)
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
