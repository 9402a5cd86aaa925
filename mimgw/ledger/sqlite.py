"""The embedded SQLite ledger: one file, shared safely by every process that opens it.

One writer thread owns the connection. Calls queue up while it works and are run
together in one transaction (each in its own savepoint, so one failing call does not
undo the others): many sends in flight cost one commit, not one each. The file is in
WAL mode with ``synchronous=NORMAL``: a commit survives a killed process; only a power
loss can take back the last few. ``BEGIN IMMEDIATE`` makes each group atomic against
other processes on the same file, which is what the idempotency-key constraint needs.
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
from typing import Any, TypeVar

import anyio.to_thread
import sniffio
from pydantic import ValidationError

from mimgw.ledger._sqlite_writer import SCHEMA_VERSION, Writer, iso
from mimgw.ledger.base import Finish, Ledger
from mimgw.ledger.entry import LedgerEntry, LedgerError, settled, utcnow
from mimgw.ledger.intent import Intent, IntentState
from mimgw.models import DeliveryReport, Message, Receipt

__all__ = ["SCHEMA_VERSION", "SqliteLedger"]

log = logging.getLogger("mimgw.ledger")

T = TypeVar("T")

_OPEN = (IntentState.IN_FLIGHT.value, IntentState.UNKNOWN.value)


class SqliteLedger(Ledger):
    """Entries and intents in an embedded SQLite file (``":memory:"``: private, in memory).

    Nothing touches the disk until the first call (building a gateway from settings
    creates no file). ``busy_timeout`` is how long a write waits for another process
    holding the file.
    """

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
        self._closed = False
        self._start_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqliteLedger(path={self.path!r})"

    # -- plumbing -------------------------------------------------------------------

    def _started(self) -> Writer:
        with self._start_lock:
            if self._closed:
                raise LedgerError("the SQLite ledger is closed")
            if self._writer is None:
                self._writer = Writer(self.path, self._busy_timeout)
                self._writer.start()
            return self._writer

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

    @staticmethod
    def _load(data: str) -> LedgerEntry:
        try:
            return LedgerEntry.model_validate_json(data)
        except ValidationError as exc:
            raise LedgerError(f"corrupt ledger row: {exc.error_count()} errors") from None

    @staticmethod
    def _load_intent(data: str) -> Intent:
        try:
            return Intent.model_validate_json(data)
        except ValidationError as exc:
            raise LedgerError(f"corrupt intent row: {exc.error_count()} errors") from None

    def _read(self, db: sqlite3.Connection, provider: str, message_id: str) -> LedgerEntry | None:
        row = db.execute(
            "SELECT data FROM mimgw_ledger WHERE provider = ? AND message_id = ?",
            (provider, message_id),
        ).fetchone()
        return None if row is None else self._load(row[0])

    @staticmethod
    def _write(db: sqlite3.Connection, entry: LedgerEntry) -> None:
        db.execute(
            "INSERT OR REPLACE INTO mimgw_ledger "
            "(provider, message_id, reference, due_at, settled, created_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                entry.provider,
                entry.message_id,
                entry.reference,
                iso(entry.next_attempt_at),
                int(entry.settled),
                iso(entry.created_at),
                entry.model_dump_json(),
            ),
        )

    def _rows(
        self, db: sqlite3.Connection, sql: str, args: tuple[object, ...]
    ) -> list[LedgerEntry]:
        return [self._load(row[0]) for row in db.execute(sql, args).fetchall()]

    # -- intents ----------------------------------------------------------------------

    def _begin(self, db: sqlite3.Connection, intent: Intent) -> Intent:
        if intent.key is not None:
            row = db.execute(
                "SELECT data FROM mimgw_intents WHERE key = ?", (intent.key,)
            ).fetchone()
            if row is not None:
                held = self._load_intent(row[0])
                if held.state is not IntentState.NOT_SENT:
                    return held
                # provably never sent: the key is free; the old intent stays as history
                db.execute("UPDATE mimgw_intents SET key = NULL WHERE id = ?", (held.id,))
        db.execute(
            "INSERT INTO mimgw_intents (id, key, state, created_at, data) VALUES (?, ?, ?, ?, ?)",
            _intent_row(intent),
        )
        return intent

    def _finish(
        self, db: sqlite3.Connection, intent: Intent, attempt: int, message: Message | None
    ) -> LedgerEntry | None:
        updated = db.execute(
            "UPDATE mimgw_intents SET state = ?, data = ? WHERE id = ?",
            (intent.state.value, intent.model_dump_json(), intent.id),
        )
        if updated.rowcount == 0:  # never begun here; a key another intent holds stays its
            db.execute(
                "INSERT OR IGNORE INTO mimgw_intents (id, key, state, created_at, data) "
                "VALUES (?, ?, ?, ?, ?)",
                _intent_row(intent),
            )
        receipt = intent.receipt
        if intent.state is IntentState.ACCEPTED and receipt is not None and receipt.message_id:
            return self._submit(db, receipt, attempt, message, self._clock())
        return None

    async def begin(self, intent: Intent) -> Intent:
        return await self._run(lambda db: self._begin(db, intent))

    async def begin_many(self, intents: Sequence[Intent]) -> list[Intent]:
        return await self._run(lambda db: [self._begin(db, i) for i in intents])

    async def finish(
        self, intent: Intent, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry | None:
        return await self._run(lambda db: self._finish(db, intent, attempt, message))

    async def finish_many(self, items: Sequence[Finish]) -> list[LedgerEntry | None]:
        return await self._run(lambda db: [self._finish(db, i, a, m) for i, a, m in items])

    async def intent(self, ref: str) -> Intent | None:
        def op(db: sqlite3.Connection) -> Intent | None:
            row = db.execute(
                "SELECT data FROM mimgw_intents WHERE id = ? OR key = ? "
                "ORDER BY id = ? DESC LIMIT 1",
                (ref, ref, ref),
            ).fetchone()
            return None if row is None else self._load_intent(row[0])

        return await self._run(op)

    async def unresolved(self, older_than: timedelta | None = None) -> list[Intent]:
        # without older_than, every open intent: one stamped by a clock ahead of ours
        # (the Gateway's own ``now``, another process) is still unresolved
        limit = None if older_than is None else iso(self._clock() - older_than)

        def op(db: sqlite3.Connection) -> list[Intent]:
            rows = db.execute(
                "SELECT data FROM mimgw_intents WHERE state IN (?, ?) "
                "AND (? IS NULL OR created_at <= ?) ORDER BY created_at",
                (*_OPEN, limit, limit),
            ).fetchall()
            return [self._load_intent(r[0]) for r in rows]

        return await self._run(op)

    # -- entries ----------------------------------------------------------------------

    def _submit(
        self,
        db: sqlite3.Connection,
        receipt: Receipt,
        attempt: int,
        message: Message | None,
        now: datetime,
    ) -> LedgerEntry:
        old = self._read(db, receipt.provider, receipt.message_id)
        entry = (
            LedgerEntry.from_submit(receipt, attempt=attempt, message=message, now=now)
            if old is None
            else old.merge_submit(receipt, attempt=attempt, message=message, now=now)
        )
        if entry is not old:
            self._write(db, entry)
        return entry

    async def record_submit(
        self, receipt: Receipt, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry:
        now = self._clock()
        return await self._run(lambda db: self._submit(db, receipt, attempt, message, now))

    async def record_report(self, report: DeliveryReport) -> tuple[LedgerEntry, bool]:
        now = self._clock()

        def op(db: sqlite3.Connection) -> tuple[LedgerEntry, bool]:
            old = self._read(db, report.provider, report.message_id)
            if old is None:
                entry, changed = LedgerEntry.from_report(report, now=now), True
            else:
                entry, changed = old.merge_report(report, now=now)
            if changed:
                self._write(db, entry)
            return entry, changed

        return await self._run(op)

    async def get(self, provider: str, message_id: str) -> LedgerEntry | None:
        return await self._run(lambda db: self._read(db, provider, message_id))

    async def find(self, message_id: str, *, provider: str | None = None) -> list[LedgerEntry]:
        sql = "SELECT data FROM mimgw_ledger WHERE message_id = ?"
        args: tuple[object, ...] = (message_id,)
        if provider is not None:
            sql += " AND provider = ?"
            args = (message_id, provider)
        return await self._run(lambda db: self._rows(db, sql + " ORDER BY created_at DESC", args))

    async def by_reference(self, reference: str) -> list[LedgerEntry]:
        entries = await self._run(
            lambda db: self._rows(
                db, "SELECT data FROM mimgw_ledger WHERE reference = ?", (reference,)
            )
        )
        return sorted(entries, key=lambda e: (e.attempt, e.created_at))

    async def schedule(self, provider: str, message_id: str, at: datetime | None) -> None:
        now = self._clock()

        def op(db: sqlite3.Connection) -> None:
            entry = self._read(db, provider, message_id)
            if entry is not None and not entry.settled:
                self._write(db, entry.model_copy(update={"next_attempt_at": at, "updated_at": now}))

        await self._run(op)

    async def settle(self, provider: str, message_id: str) -> bool:
        now = self._clock()

        def op(db: sqlite3.Connection) -> bool:
            entry = self._read(db, provider, message_id)
            if entry is None or entry.settled:
                return False
            self._write(db, settled(entry, now))
            return True

        return await self._run(op)

    async def restore(self, entry: LedgerEntry) -> None:
        await self._run(lambda db: self._write(db, entry))

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
        return await self._run(lambda db: self._rows(db, sql, args))

    async def aclose(self) -> None:
        with self._start_lock:
            writer, self._writer = self._writer, None
            self._closed = True
        if writer is not None:
            writer.calls.put(None)
            await anyio.to_thread.run_sync(writer.join)


def _intent_row(intent: Intent) -> tuple[str, str | None, str, str | None, str]:
    return (
        intent.id,
        intent.key,
        intent.state.value,
        iso(intent.created_at),
        intent.model_dump_json(),
    )
