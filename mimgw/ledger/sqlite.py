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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anyio.to_thread
import sniffio

from mimgw.ledger import _sqlite_rows as rows
from mimgw.ledger._sqlite_inline import Inline, Later
from mimgw.ledger._sqlite_writer import SCHEMA_VERSION, Writer, iso
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


class SqliteLedger(Ledger):
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
        self.path = str(path)
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._writer: Writer | None = None
        self._inline: Inline | None = None
        self._inline_off = self.path in ("", ":memory:")  # another connection: another db
        self._closed = False
        self._start_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqliteLedger(path={self.path!r})"

    # -- plumbing -------------------------------------------------------------------

    def _started(self) -> Writer:
        with self._start_lock:
            if self._closed:
                raise LedgerError("the SQLite ledger is closed")
            failed = self._writer is not None and self._writer.open_error is not None
            if self._writer is None or failed:  # a file that could not be opened: try again
                self._writer = Writer(self.path, self._busy_timeout)
                self._writer.start()
            return self._writer

    def _now(self, fn: Callable[[sqlite3.Connection], T], *, atomic: bool, write: bool = True) -> T:
        """``fn`` inline (see the module doc); raises :class:`Later` when it must go to
        the writer thread, nothing written."""
        inline = self._inline
        if inline is None:
            inline = self._open_inline()
        return inline.run(fn, atomic=atomic, write=write)

    def _open_inline(self) -> Inline:
        writer = self._writer  # the writer thread creates the schema: it opens first
        if self._inline_off or writer is None or not writer.opened.is_set():
            raise Later
        with self._start_lock:
            if self._closed or writer.open_error is not None:
                raise Later
            if self._inline is None:
                try:
                    self._inline = Inline(self.path, writer)
                except sqlite3.Error as exc:
                    log.warning("SQLite ledger: no inline connection (%s); using the writer", exc)
                    self._inline_off = True
                    raise Later from None
            return self._inline

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        writer = self._started()
        if writer.open_error is not None:
            raise writer.open_error
        if sniffio.current_async_library() != "asyncio":
            box: list[tuple[Any, BaseException | None]] = []
            done_event = threading.Event()

            def done_sync(value: Any, error: BaseException | None) -> None:
                box.append((value, error))
                done_event.set()

            writer.calls.put((fn, done_sync))
            await anyio.to_thread.run_sync(done_event.wait)
            value, error = box[0]
        else:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()

            def settle(value: Any, error: BaseException | None) -> None:
                if not future.done():
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(value)

            def done(value: Any, error: BaseException | None) -> None:
                # RuntimeError: the loop is closed, nobody waits any more
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(settle, value, error)

            writer.calls.put((fn, done))
            return await future  # type: ignore[no-any-return]
        if error is not None:
            raise error
        return value  # type: ignore[no-any-return]

    # -- intents ----------------------------------------------------------------------

    async def begin(self, intent: Intent) -> Intent:
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

    async def aclose(self) -> None:
        with self._start_lock:
            writer, self._writer = self._writer, None
            inline, self._inline = self._inline, None
            self._closed = True
        if inline is not None:  # first: the writer's connection, closed last, checkpoints
            inline.close()
        if writer is not None:
            writer.calls.put(None)
            await anyio.to_thread.run_sync(writer.join)
