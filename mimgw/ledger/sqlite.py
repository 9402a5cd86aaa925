"""The embedded SQLite ledger: one file, shared safely by every process that opens it.

A write is tried first *inline*: at once, on the caller's thread, through a second
connection that never waits for a lock (see :mod:`mimgw.ledger._sqlite_inline`); that
is one short transaction and no thread hop. When the file is locked — by another
process, or by our writer thread busy with a group — the call goes to the writer thread,
which owns the main connection and waits for the lock as long as ``busy_timeout``:
calls queued while it works run together in one transaction (each in its own savepoint,
so one failing call does not undo the others). The file is in WAL mode with
``synchronous=NORMAL``: a commit survives a killed process; only a power loss can take
back the last few. ``BEGIN IMMEDIATE`` (or a single statement) makes each write atomic
against other processes on the same file, which is what the idempotency-key constraint
needs.

A send *without* an idempotency key writes its intent and its outcome as two lines of
the process's own journal instead (:mod:`mimgw.ledger._sqlite_journal`): as durable
against a killed process as a commit, they reach the tables in groups, before any
other call of the ledger and within milliseconds otherwise; a journal left by a process
that ended is applied by the next one to open the file. Keyed sends claim their key in
the table at once.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar, TypeVar

import anyio.to_thread

from mimgw.ledger import _sqlite_rows as rows
from mimgw.ledger._sqlite_base import SqliteBase, nothing
from mimgw.ledger._sqlite_inline import Later
from mimgw.ledger._sqlite_journal import apply
from mimgw.ledger._sqlite_writer import SCHEMA_VERSION, iso
from mimgw.ledger.base import Finish, Ledger
from mimgw.ledger.entry import LedgerEntry, LedgerError, settled, utcnow
from mimgw.ledger.intent import Intent
from mimgw.models import DeliveryReport, Message, Receipt

__all__ = ["SCHEMA_VERSION", "SqliteLedger"]

log = logging.getLogger("mimgw.ledger")

T = TypeVar("T")

_INLINE_MANY = 64
"""``begin_many``/``finish_many`` of up to this many intents are tried inline; larger
batches go to the writer thread (a long transaction would hold up the event loop)."""


class SqliteLedger(SqliteBase, Ledger):
    """Entries and intents in an embedded SQLite file (``":memory:"``: private, in memory).

    Nothing touches the disk until the first call (building a gateway from settings
    creates no file). ``busy_timeout`` is how long a write waits for another process
    holding the file (on the writer thread: the event loop never waits for a lock).
    """

    _movable_writes: ClassVar[bool] = True
    """Every write either ends without suspending (inline) or suspends only on a plain
    future the writer thread settles, holding nothing bound to the awaiting task: a
    write begun in one task can be finished by another (the Gateway starts its writes
    in the caller's task and needs a task of their own only when they suspend)."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], datetime] = utcnow,
        busy_timeout: float = 30.0,
    ) -> None:
        super().__init__(str(path), busy_timeout)
        self._clock = clock

    def __repr__(self) -> str:
        return f"SqliteLedger(path={self.path!r})"

    # -- intents ----------------------------------------------------------------------

    async def begin(self, intent: Intent) -> Intent:
        if intent.key is None and (journal := self._journal_here()) is not None:
            try:
                journal.begin(intent)
            except OSError as exc:
                self._journal_failed(journal, exc)
            else:
                self._journaled(journal)
                return intent
        try:
            if self._now(lambda db: rows.insert_intent(db, intent), atomic=False):
                return intent
            # the key is taken (or, one in 2**128, the id): decide in a transaction
            return self._now(lambda db: rows.begin_intent(db, intent), atomic=True)
        except Later:
            return await self._run(lambda db: rows.begin_intent(db, intent))

    async def begin_many(self, intents: Sequence[Intent]) -> list[Intent]:
        def op(db: sqlite3.Connection) -> list[Intent]:
            return [rows.begin_intent(db, i) for i in intents]

        if len(intents) <= _INLINE_MANY:
            with contextlib.suppress(Later):
                return self._now(op, atomic=True)
        return await self._run(op)

    async def finish(
        self, intent: Intent, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry | None:
        now = self._clock()
        if intent.key is None and (journal := self._journal_here()) is not None:
            with contextlib.suppress(Later):
                return self._finish_journaled(journal, intent, attempt, message, now)

        def op(db: sqlite3.Connection) -> LedgerEntry | None:
            return rows.finish_intent(db, intent, attempt, message, now)

        try:
            return self._now(op, atomic=True)
        except Later:
            return await self._run(op)

    async def finish_many(self, items: Sequence[Finish]) -> list[LedgerEntry | None]:
        now = self._clock()

        def op(db: sqlite3.Connection) -> list[LedgerEntry | None]:
            return [rows.finish_intent(db, i, a, m, now) for i, a, m in items]

        if len(items) <= _INLINE_MANY:
            with contextlib.suppress(Later):
                return self._now(op, atomic=True)
        return await self._run(op)

    async def intent(self, ref: str) -> Intent | None:
        try:
            return self._now(lambda db: rows.read_intent(db, ref), atomic=False, write=False)
        except Later:
            return await self._run(lambda db: rows.read_intent(db, ref))

    async def unresolved(self, older_than: timedelta | None = None) -> list[Intent]:
        # without older_than, every open intent: one stamped by a clock ahead of ours
        # (the Gateway's own ``now``, another process) is still unresolved
        limit = None if older_than is None else iso(self._clock() - older_than)

        def op(db: sqlite3.Connection) -> list[Intent]:
            # the states written out, as in the partial index (a parameter would not
            # let SQLite use it: every intent ever written would be read)
            found = db.execute(
                "SELECT data FROM mimgw_intents WHERE state IN ('in_flight', 'unknown') "
                "AND (? IS NULL OR created_at <= ?) ORDER BY created_at",
                (limit, limit),
            ).fetchall()
            return [rows.load_intent(r[0]) for r in found]

        self._started().recover_orphans()  # journals of processes that ended, first
        return await self._run(op)  # may be many: not on the event loop

    # -- entries ----------------------------------------------------------------------

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """A read-modify-write: in a transaction, inline when it can be."""
        try:
            return self._now(op, atomic=True)
        except Later:
            return await self._run(op)

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """One statement (a few rows): inline when it can be."""
        try:
            return self._now(op, atomic=False, write=False)
        except Later:
            return await self._run(op)

    async def record_submit(
        self, receipt: Receipt, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry:
        now = self._clock()
        return await self._write(lambda db: rows.submit_entry(db, receipt, attempt, message, now))

    async def record_report(self, report: DeliveryReport) -> tuple[LedgerEntry, bool]:
        now = self._clock()

        def op(db: sqlite3.Connection) -> tuple[LedgerEntry, bool]:
            old = rows.read_entry(db, report.provider, report.message_id)
            if old is None:
                entry, changed = LedgerEntry.from_report(report, now=now), True
            else:
                entry, changed = old.merge_report(report, now=now)
            if changed:
                rows.write_entry(db, entry)
            return entry, changed

        return await self._write(op)

    async def get(self, provider: str, message_id: str) -> LedgerEntry | None:
        return await self._read(lambda db: rows.read_entry(db, provider, message_id))

    async def find(self, message_id: str, *, provider: str | None = None) -> list[LedgerEntry]:
        sql = "SELECT data FROM mimgw_ledger WHERE message_id = ?"
        args: tuple[object, ...] = (message_id,)
        if provider is not None:
            sql += " AND provider = ?"
            args = (message_id, provider)
        sql += " ORDER BY created_at DESC"
        return await self._read(lambda db: rows.entries(db, sql, args))

    async def by_reference(self, reference: str) -> list[LedgerEntry]:
        found = await self._read(
            lambda db: rows.entries(
                db, "SELECT data FROM mimgw_ledger WHERE reference = ?", (reference,)
            )
        )
        return sorted(found, key=lambda e: (e.attempt, e.created_at))

    async def schedule(self, provider: str, message_id: str, at: datetime | None) -> None:
        now = self._clock()

        def op(db: sqlite3.Connection) -> None:
            entry = rows.read_entry(db, provider, message_id)
            if entry is not None and not entry.settled:
                update = {"next_attempt_at": at, "updated_at": now}
                rows.write_entry(db, entry.model_copy(update=update))

        await self._write(op)

    async def settle(self, provider: str, message_id: str) -> bool:
        now = self._clock()

        def op(db: sqlite3.Connection) -> bool:
            entry = rows.read_entry(db, provider, message_id)
            if entry is None or entry.settled:
                return False
            rows.write_entry(db, settled(entry, now))
            return True

        return await self._write(op)

    async def restore(self, entry: LedgerEntry) -> None:
        try:
            self._now(lambda db: rows.write_entry(db, entry), atomic=False)
        except Later:
            await self._run(lambda db: rows.write_entry(db, entry))

    async def due(self, now: datetime, *, limit: int | None = None) -> list[LedgerEntry]:
        # ISO strings of UTC datetimes compare in time order
        sql = (
            "SELECT data FROM mimgw_ledger WHERE settled = 0 AND due_at IS NOT NULL "
            "AND due_at <= ? ORDER BY due_at"
        )
        args: tuple[object, ...] = (iso(now),)
        if limit is not None:
            sql += " LIMIT ?"
            args = (*args, limit)
        return await self._run(lambda db: rows.entries(db, sql, args))  # may be many

    async def _late_entries(self, *, apply: bool = False) -> list[LedgerEntry]:
        journal = self._journal
        if apply and journal is not None and journal.pending and journal.owned():
            try:
                self._now(nothing, atomic=True)
            except Later:
                await self._run(nothing)
        late, self._late = self._late, []
        return late

    async def aclose(self) -> None:
        journal = self._journal
        if journal is not None and journal.pending and not self._closed:
            records, mark = journal.snapshot()
            try:
                await self._queue(lambda db: apply(db, records))
            except LedgerError as exc:  # kept in the file: the next process applies it
                log.warning("SQLite ledger: journal %s left to recover: %s", journal, exc)
            else:
                journal.applied(mark)
        with self._start_lock:
            writer, self._writer = self._writer, None
            inline, self._inline = self._inline, None
            journal, self._journal = self._journal, None
            self._closed = True
        if journal is not None:
            journal.close()
        if inline is not None:  # first: the writer's connection, closed last, checkpoints
            inline.close()
        if writer is not None:
            writer.calls.put(None)
            await anyio.to_thread.run_sync(writer.join)
