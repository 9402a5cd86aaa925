"""The in-process ledger: the default; lost when the process ends, capped in size."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import islice
from typing import TypeVar

from mimgw.errors import ConfigurationError
from mimgw.ledger._records import (
    EntryRecord,
    IntentRecord,
    entry_done,
    entry_due,
    entry_record,
    entry_reference,
    fresh_intent_record,
    intent_done,
    intent_key,
    intent_record,
    intent_state,
    intent_values_record,
    load_entry,
    load_intent,
    submit_record,
)
from mimgw.ledger.base import Finish, Ledger
from mimgw.ledger.entry import LedgerEntry, settled, utcnow
from mimgw.ledger.intent import Intent, IntentAttempt, IntentState, process_token
from mimgw.models import DeliveryReport, Message, Receipt
from mimgw.taxonomy import State

__all__ = ["BatchFinish", "MemoryLedger"]

BatchFinish = tuple[
    Message, str, IntentState, Receipt | None, tuple[IntentAttempt, ...], str | None, bool
]
"""One recipient of a batch as :meth:`MemoryLedger.finish_batch` takes it: its message,
its intent's id, the intent's state, receipt, attempts and error, and whether the
message's text is kept (for redelivery)."""

_FINAL = frozenset(s for s in State if s.final)

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
    without an idempotency key is not kept at all when the gateway gave an id (its
    entry holds the receipt).

    Each entry and intent is kept as a compact record (a tuple of its values, a few
    hundred bytes) and built as a :class:`LedgerEntry` or :class:`Intent` when read.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_entries: int | None = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if max_entries is not None and max_entries < 1:
            raise ConfigurationError("ledger.max_entries must be at least 1 (or None)")
        self._entries: dict[tuple[str, str], EntryRecord] = {}
        self._intents: dict[str, IntentRecord] = {}
        self._keys: dict[str, str] = {}
        self._clock = clock
        self.max_entries = max_entries
        self._warned = False
        self._warned_keys = False
        self._done_unseen = False
        """Whether an entry that needs nothing more may have been written since the last
        trim looked for one (at the cap with none, a trim looks no more until one is)."""
        kind = type(self)
        self._plain = all(
            getattr(kind, name) is getattr(MemoryLedger, name)
            for name in ("begin", "finish", "record_submit")
        )
        self.batch_direct = self._plain and all(
            getattr(kind, name) is getattr(MemoryLedger, name)
            for name in ("begin_many", "finish_many")
        )
        """Whether :meth:`begin_batch` and :meth:`finish_batch` write what ``begin_many``
        and ``finish_many`` would (false for a subclass that hooks any of them)."""

    # -- intents ------------------------------------------------------------------------

    async def begin(self, intent: Intent) -> Intent:
        return self._begin(intent)

    async def begin_many(self, intents: Sequence[Intent]) -> list[Intent]:
        if not self._plain:  # a subclass hooks begin: call it
            return await super().begin_many(intents)
        held = [self._begin(i, trim=False) for i in intents]
        self._trim(self._intents, intent_done, "intents")
        return held

    def _begin(self, intent: Intent, *, trim: bool = True) -> Intent:
        if intent.key is not None:
            held_id = self._keys.get(intent.key)
            held = self._intents.get(held_id) if held_id is not None else None
            if held_id is not None and held is not None:
                if intent_state(held) is not IntentState.NOT_SENT:
                    return load_intent(held_id, held)
                del self._intents[held_id]
            self._keys[intent.key] = intent.id
        self._intents[intent.id] = intent_record(intent)
        if trim:
            self._trim(self._intents, intent_done, "intents")
        return intent

    async def finish(
        self, intent: Intent, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry | None:
        self._finish(intent)
        receipt = intent.receipt
        if intent.state is IntentState.ACCEPTED and receipt is not None and receipt.message_id:
            return await self.record_submit(receipt, attempt=attempt, message=message)
        return None

    async def finish_many(self, items: Sequence[Finish]) -> list[LedgerEntry | None]:
        if not self._plain:  # a subclass hooks finish or record_submit: call them
            return await super().finish_many(items)
        done: list[LedgerEntry | None] = []
        now = self._clock()  # one write: one time for all
        for intent, attempt, message in items:
            self._finish(intent)
            receipt = intent.receipt
            accepted = intent.state is IntentState.ACCEPTED
            if accepted and receipt is not None and receipt.message_id:
                done.append(self._submit(receipt, attempt, message, now, trim=False))
            else:
                done.append(None)
        self._trim(self._entries, entry_done, "entries")
        return done

    def _finish(self, intent: Intent) -> None:
        key = intent.key
        if key is None and _held_by_entry(intent.state, intent.receipt):
            self._intents.pop(intent.id, None)
        elif key is None or self._keys.setdefault(key, intent.id) == intent.id:
            self._intents[intent.id] = intent_record(intent)
        else:  # another intent holds the key (this one never got it): keep it as history
            self._intents[intent.id] = intent_record(intent, drop_key=True)

    # -- a batch's recipients, without building models only to take them apart --------

    def begin_batch(
        self, messages: Sequence[Message], ids: Sequence[str], now: datetime
    ) -> list[Intent | None]:
        """``begin_many`` of ``Intent.for_message(m, now=now, id=i)`` for each message
        and id; None where that intent was written, else the intent holding its key.
        Only while :attr:`batch_direct`."""
        held: list[Intent | None] = []
        intents = self._intents
        for message, intent_id in zip(messages, ids, strict=True):
            if message.idempotency_key is None:  # nothing to hold: its record at once
                intents[intent_id] = fresh_intent_record(message, now)
                held.append(None)
                continue
            fresh = Intent.for_message(message, now=now, id=intent_id)
            found = self._begin(fresh, trim=False)
            held.append(None if found.id == intent_id else found)
        self._trim(intents, intent_done, "intents")
        return held

    def finish_batch(
        self, items: Sequence[BatchFinish], *, created_at: datetime, now: datetime
    ) -> list[LedgerEntry]:
        """``finish_many`` of ``(Intent.finished_for(message, id=…, created_at=created_at,
        state=…, now=now, receipt=…, attempts=…, error=…), 1, message if kept else None)``
        for each item. Returns the entries built: every entry that existed already, and
        every new one in a final state; a new entry in any other state needs no follow-up
        and is written as a record only. Only while :attr:`batch_direct`."""
        built: list[LedgerEntry] = []
        intents = self._intents
        entries = self._entries
        clock = self._clock()  # one write: one time for all
        owner = process_token()
        for message, intent_id, state, receipt, attempts, error, keep in items:
            key = message.idempotency_key
            accepted = state is _ACCEPTED
            if key is None and _held_by_entry(state, receipt):
                intents.pop(intent_id, None)
            else:
                mine = key is None or self._keys.setdefault(key, intent_id) == intent_id
                intents[intent_id] = intent_values_record(
                    key if mine else None,
                    message.reference,
                    message.to,
                    state,
                    receipt,
                    attempts,
                    error,
                    None,
                    owner,
                    created_at,
                    now,
                )
            if not accepted or receipt is None or not receipt.message_id:
                continue
            kept = message if keep else None
            where = (receipt.provider, receipt.message_id)
            if where not in entries:
                entries[where] = record = submit_record(receipt, 1, kept, clock)
                if receipt.state in _FINAL:
                    self._done_unseen = self._done_unseen or entry_done(record)
                    built.append(load_entry(where, record))
                continue
            built.append(self._submit(receipt, 1, kept, clock, trim=False))
        self._trim(entries, entry_done, "entries")
        return built

    async def intent(self, ref: str) -> Intent | None:
        found = self._intents.get(ref)
        if found is not None:
            return load_intent(ref, found)
        held_id = self._keys.get(ref)
        found = None if held_id is None else self._intents.get(held_id)
        return None if held_id is None or found is None else load_intent(held_id, found)

    async def unresolved(self, older_than: timedelta | None = None) -> list[Intent]:
        limit = None if older_than is None else self._clock() - older_than
        found = [load_intent(i, r) for i, r in self._intents.items() if not intent_done(r)]
        found = [i for i in found if limit is None or i.created_at <= limit]
        return sorted(found, key=lambda i: i.created_at)

    # -- entries ------------------------------------------------------------------------

    def _entry(self, key: tuple[str, str]) -> LedgerEntry | None:
        record = self._entries.get(key)
        return None if record is None else load_entry(key, record)

    def _store(self, entry: LedgerEntry, *, trim: bool = True) -> None:
        self._put(entry)
        if trim:
            self._trim(self._entries, entry_done, "entries")

    async def record_submit(
        self, receipt: Receipt, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry:
        return self._submit(receipt, attempt, message, self._clock())

    def _submit(
        self,
        receipt: Receipt,
        attempt: int,
        message: Message | None,
        now: datetime,
        *,
        trim: bool = True,
    ) -> LedgerEntry:
        old = self._entry((receipt.provider, receipt.message_id))
        if old is None:
            entry = LedgerEntry.from_submit(receipt, attempt=attempt, message=message, now=now)
        else:
            entry = old.merge_submit(receipt, attempt=attempt, message=message, now=now)
            if entry is old:
                return entry
        self._store(entry, trim=trim)
        return entry

    async def record_report(self, report: DeliveryReport) -> tuple[LedgerEntry, bool]:
        now = self._clock()
        old = self._entry((report.provider, report.message_id))
        if old is None:
            entry, changed = LedgerEntry.from_report(report, now=now), True
        else:
            entry, changed = old.merge_report(report, now=now)
        if changed:
            self._store(entry)
        return entry, changed

    async def get(self, provider: str, message_id: str) -> LedgerEntry | None:
        return self._entry((provider, message_id))

    async def find(self, message_id: str, *, provider: str | None = None) -> list[LedgerEntry]:
        if provider is not None:
            one = self._entry((provider, message_id))
            return [] if one is None else [one]
        found = [load_entry(k, r) for k, r in self._entries.items() if k[1] == message_id]
        return sorted(found, key=lambda e: e.created_at, reverse=True)

    async def by_reference(self, reference: str) -> list[LedgerEntry]:
        found = [
            load_entry(k, r) for k, r in self._entries.items() if entry_reference(r) == reference
        ]
        return sorted(found, key=lambda e: (e.attempt, e.created_at))

    async def schedule(self, provider: str, message_id: str, at: datetime | None) -> None:
        entry = self._entry((provider, message_id))
        if entry is not None and not entry.settled:
            update = {"next_attempt_at": at, "updated_at": self._clock()}
            self._store(entry.model_copy(update=update))

    async def settle(self, provider: str, message_id: str) -> bool:
        entry = self._entry((provider, message_id))
        if entry is None or entry.settled:
            return False
        self._store(settled(entry, self._clock()))
        return True

    async def restore(self, entry: LedgerEntry) -> None:
        self._put(entry)

    def _put(self, entry: LedgerEntry) -> None:
        self._entries[(entry.provider, entry.message_id)] = record = entry_record(entry)
        self._done_unseen = self._done_unseen or entry_done(record)

    async def due(self, now: datetime, *, limit: int | None = None) -> list[LedgerEntry]:
        found = sorted(
            (load_entry(k, r) for k, r in self._entries.items() if entry_due(r, now)),
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
        excess = len(store) - target
        if store is not self._entries or self._done_unseen:
            # the oldest that need nothing more, as many as are to go (the scan stops there)
            found = list(islice((k for k, v in store.items() if done(v)), excess))
            for key in found:
                self._forget(store, key)
            if store is self._entries:  # all that were wanted: more may be left
                self._done_unseen = len(found) == excess
        if len(store) > target:
            if not self._warned:
                self._warned = True
                log.warning(
                    "ledger: more than %d %s still need attention; dropping the oldest "
                    "(raise max_entries or use a SQLite/PostgreSQL ledger)",
                    cap,
                    what,
                )
            for key in list(islice(store, len(store) - target)):
                self._forget(store, key)

    def _forget(self, store: dict[K, V], key: K) -> None:
        record = store.pop(key)
        if store is self._intents:
            held = intent_key(record)  # type: ignore[arg-type]
            if held is not None and self._keys.get(held) == key:
                del self._keys[held]
                if not self._warned_keys:
                    self._warned_keys = True
                    log.warning(
                        "ledger: more than %s intents: dropping the oldest idempotency "
                        "keys; a message sent again under one of them will be sent again "
                        "(raise max_entries or use a SQLite/PostgreSQL ledger)",
                        self.max_entries,
                    )


def _held_by_entry(state: IntentState, receipt: Receipt | None) -> bool:
    """An accepted send whose gateway gave an id: its ledger entry holds the receipt, and
    an intent without a key has nothing more to say. One accepted *without* an id keeps
    its intent: it is the only record of that send."""
    return state is _ACCEPTED and receipt is not None and bool(receipt.message_id)


_ACCEPTED = IntentState.ACCEPTED  # a module constant: an enum member's lookup is not free
