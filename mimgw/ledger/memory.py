"""The in-process ledger: the default; lost when the process ends, capped in size."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from mimgw.errors import ConfigurationError
from mimgw.ledger.base import Ledger
from mimgw.ledger.entry import LedgerEntry, settled, utcnow
from mimgw.ledger.intent import Intent, IntentState
from mimgw.models import DeliveryReport, Message, Receipt

__all__ = ["MemoryLedger"]

log = logging.getLogger("mimgw.ledger")

DEFAULT_MAX_ENTRIES = 100_000

K = TypeVar("K")
V = TypeVar("V")


class MemoryLedger(Ledger):
    """Entries and intents in process memory.

    A long-running service must not grow without bound: past ``max_entries`` entries
    (default 100,000; ``None`` for no cap) the oldest entries that need nothing more
    (settled, or final with no redelivery due) are dropped first, then the oldest of
    the rest; intents likewise keep their unresolved ones longest. An accepted intent
    without an idempotency key is not kept at all (its entry holds the receipt).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_entries: int | None = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if max_entries is not None and max_entries < 1:
            raise ConfigurationError("ledger.max_entries must be at least 1 (or None)")
        self._entries: dict[tuple[str, str], LedgerEntry] = {}
        self._intents: dict[str, Intent] = {}
        self._keys: dict[str, str] = {}
        self._clock = clock
        self.max_entries = max_entries
        self._warned = False

    # -- intents ------------------------------------------------------------------------

    async def begin(self, intent: Intent) -> Intent:
        if intent.key is not None:
            held_id = self._keys.get(intent.key)
            held = self._intents.get(held_id) if held_id is not None else None
            if held is not None and held.state is not IntentState.NOT_SENT:
                return held
            if held is not None:
                del self._intents[held.id]
            self._keys[intent.key] = intent.id
        self._intents[intent.id] = intent
        self._trim(self._intents, _intent_done, "intents")
        return intent

    async def finish(
        self, intent: Intent, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry | None:
        if intent.key is None and intent.state is IntentState.ACCEPTED:
            self._intents.pop(intent.id, None)
        elif intent.key is None or self._keys.setdefault(intent.key, intent.id) == intent.id:
            self._intents[intent.id] = intent
        else:  # another intent holds the key (this one never got it): keep it as history
            self._intents[intent.id] = intent.model_copy(update={"key": None})
        receipt = intent.receipt
        if intent.state is IntentState.ACCEPTED and receipt is not None and receipt.message_id:
            return await self.record_submit(receipt, attempt=attempt, message=message)
        return None

    async def intent(self, ref: str) -> Intent | None:
        found = self._intents.get(ref)
        if found is None and ref in self._keys:
            found = self._intents.get(self._keys[ref])
        return found

    async def unresolved(self, older_than: timedelta | None = None) -> list[Intent]:
        limit = None if older_than is None else self._clock() - older_than
        found = [
            i
            for i in self._intents.values()
            if not i.state.resolved and (limit is None or i.created_at <= limit)
        ]
        return sorted(found, key=lambda i: i.created_at)

    # -- entries ------------------------------------------------------------------------

    async def record_submit(
        self, receipt: Receipt, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry:
        key = (receipt.provider, receipt.message_id)
        now = self._clock()
        old = self._entries.get(key)
        entry = (
            LedgerEntry.from_submit(receipt, attempt=attempt, message=message, now=now)
            if old is None
            else old.merge_submit(receipt, attempt=attempt, message=message, now=now)
        )
        self._entries[key] = entry
        self._trim(self._entries, _entry_done, "entries")
        return entry

    async def record_report(self, report: DeliveryReport) -> tuple[LedgerEntry, bool]:
        key = (report.provider, report.message_id)
        now = self._clock()
        old = self._entries.get(key)
        if old is None:
            entry, changed = LedgerEntry.from_report(report, now=now), True
        else:
            entry, changed = old.merge_report(report, now=now)
        self._entries[key] = entry
        self._trim(self._entries, _entry_done, "entries")
        return entry, changed

    async def get(self, provider: str, message_id: str) -> LedgerEntry | None:
        return self._entries.get((provider, message_id))

    async def find(self, message_id: str, *, provider: str | None = None) -> list[LedgerEntry]:
        if provider is not None:
            one = self._entries.get((provider, message_id))
            return [] if one is None else [one]
        found = [e for (_, m), e in self._entries.items() if m == message_id]
        return sorted(found, key=lambda e: e.created_at, reverse=True)

    async def by_reference(self, reference: str) -> list[LedgerEntry]:
        found = [e for e in self._entries.values() if e.reference == reference]
        return sorted(found, key=lambda e: (e.attempt, e.created_at))

    async def schedule(self, provider: str, message_id: str, at: datetime | None) -> None:
        key = (provider, message_id)
        entry = self._entries.get(key)
        if entry is not None and not entry.settled:
            self._entries[key] = entry.model_copy(
                update={"next_attempt_at": at, "updated_at": self._clock()}
            )

    async def settle(self, provider: str, message_id: str) -> bool:
        key = (provider, message_id)
        entry = self._entries.get(key)
        if entry is None or entry.settled:
            return False
        self._entries[key] = settled(entry, self._clock())
        return True

    async def restore(self, entry: LedgerEntry) -> None:
        self._entries[(entry.provider, entry.message_id)] = entry

    async def due(self, now: datetime, *, limit: int | None = None) -> list[LedgerEntry]:
        found = sorted(
            (
                e
                for e in self._entries.values()
                if not e.settled and e.next_attempt_at is not None and e.next_attempt_at <= now
            ),
            key=lambda e: e.next_attempt_at or now,
        )
        return found if limit is None else found[:limit]

    def __len__(self) -> int:
        return len(self._entries)

    # -- the cap --------------------------------------------------------------------------

    def _trim(self, store: dict[K, V], done: Callable[[V], bool], what: str) -> None:
        cap = self.max_entries
        if cap is None or len(store) <= cap:
            return
        target = cap - max(1, cap // 10)  # drop a tenth at once: amortised O(1) per write
        for key in [k for k, v in store.items() if done(v)]:
            if len(store) <= target:
                break
            self._forget(store, key)
        if len(store) > target:
            if not self._warned:
                self._warned = True
                log.warning(
                    "ledger: more than %d %s still need attention; dropping the oldest "
                    "(raise max_entries or use a SQLite/PostgreSQL ledger)",
                    cap,
                    what,
                )
            for key in list(store)[: len(store) - target]:
                self._forget(store, key)

    def _forget(self, store: dict[K, V], key: K) -> None:
        value = store.pop(key)
        if (
            isinstance(value, Intent)
            and value.key is not None
            and self._keys.get(value.key) == value.id
        ):
            del self._keys[value.key]


def _entry_done(entry: LedgerEntry) -> bool:
    return entry.settled or (entry.state.final and entry.next_attempt_at is None)


def _intent_done(intent: Intent) -> bool:
    return intent.state.resolved
