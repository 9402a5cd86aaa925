"""The SQLite ledger's connections: where a call runs (inline or on the writer thread)
and how the journal of sends without a key is written and applied. The ledger's
operations are in :mod:`mimgw.ledger.sqlite`, which explains the design.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import anyio.to_thread
import sniffio

from mimgw.ledger import _sqlite_journal
from mimgw.ledger._sqlite_inline import Inline, Later
from mimgw.ledger._sqlite_journal import Journal, apply
from mimgw.ledger._sqlite_writer import Writer
from mimgw.ledger.entry import LedgerEntry, LedgerError
from mimgw.ledger.intent import Intent, IntentState
from mimgw.models import Message

__all__ = ["SqliteBase", "nothing"]

log = logging.getLogger("mimgw.ledger")

T = TypeVar("T")


def nothing(db: sqlite3.Connection) -> None:
    """An operation that only applies the journal (see :meth:`SqliteBase._now`)."""


class SqliteBase:
    """Connections and journal of a :class:`~mimgw.ledger.SqliteLedger`."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._writer: Writer | None = None
        self._inline: Inline | None = None
        self._inline_off = path in ("", ":memory:")  # another connection: another db
        self._closed = False
        self._start_lock = threading.Lock()
        self._journal: Journal | None = None
        self._journal_off = self._inline_off
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._late: list[LedgerEntry] = []  # see Ledger._late_entries

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
        wrapped = self._after_journal(fn)
        if wrapped is None:
            return inline.run(fn, atomic=atomic, write=write)
        op, committed = wrapped
        value = inline.run(op, atomic=True)
        committed()
        return value

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
        """``fn`` on the writer thread, after what the journal holds (see :meth:`_now`)."""
        wrapped = self._after_journal(fn)
        if wrapped is None:
            return await self._queue(fn)
        op, committed = wrapped
        value = await self._queue(op)
        committed()
        return value

    def _after_journal(
        self, fn: Callable[[sqlite3.Connection], T]
    ) -> tuple[Callable[[sqlite3.Connection], T], Callable[[], None]] | None:
        """``fn`` preceded, in its transaction, by the lines the journal holds, and what
        to call once that committed; None when it holds none that are ours to apply."""
        journal = self._journal
        if journal is None or not journal.pending or not journal.owned():
            return None
        records, mark = journal.snapshot()
        late: list[LedgerEntry] = []

        def both(db: sqlite3.Connection) -> T:
            late[:] = apply(db, records)
            return fn(db)

        def committed() -> None:  # applied again, maybe: settling twice is harmless
            journal.applied(mark)
            self._late.extend(late)

        return both, committed

    async def _queue(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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

    # -- the journal (see mimgw.ledger._sqlite_journal) ---------------------------------

    def _journal_here(self) -> Journal | None:
        """The journal, when a write may go there from here (opened on first use)."""
        journal = self._journal
        if journal is not None:
            return journal if journal.usable() else None
        if self._journal_off or self._inline is None or self._closed:
            return None
        try:
            asyncio.get_running_loop()  # its flushes are the loop's callbacks
        except RuntimeError:
            return None
        if threading.get_ident() != self._inline.thread:
            return None
        try:
            journal = self._journal = Journal(self.path)
        except OSError as exc:
            log.warning("SQLite ledger: no journal (%s); every write goes to the tables", exc)
            self._journal_off = True
            return None
        return journal

    def _journaled(self, journal: Journal) -> None:
        """A line was written: the tables get it soon, or now."""
        if len(journal.pending) >= _sqlite_journal.FLUSH_EVERY:
            self._flush()
            return
        loop = asyncio.get_running_loop()
        if self._flush_loop is not loop:
            self._flush_loop = loop
            loop.call_later(_sqlite_journal.FLUSH_DELAY, self._flush)

    def _journal_failed(self, journal: Journal, exc: OSError) -> None:
        log.warning("SQLite ledger: journal %s failed (%s); writing to the tables", journal, exc)
        journal.broken = True

    def _flush(self) -> None:
        """The journal's lines into the tables, inline, else soon on the writer thread."""
        self._flush_loop = None
        journal = self._journal
        if journal is None or not journal.pending or not journal.owned():
            return
        try:
            self._now(nothing, atomic=True)
        except Later:
            if self._flush_task is None or self._flush_task.done():
                self._flush_task = asyncio.get_running_loop().create_task(self._flush_queued())
        except LedgerError as exc:  # the lines stay pending and in the file
            log.warning("SQLite ledger: journal not applied yet: %s", exc)

    async def _flush_queued(self) -> None:
        try:
            await self._run(nothing)
        except LedgerError as exc:
            if not self._closed:  # else the close applied it (or says why not)
                log.warning("SQLite ledger: journal not applied yet: %s", exc)

    def _finish_journaled(
        self,
        journal: Journal,
        intent: Intent,
        attempt: int,
        message: Message | None,
        now: datetime,
    ) -> LedgerEntry | None:
        """:meth:`finish` as a journal line; :class:`Later` when it cannot be written."""
        receipt = intent.receipt
        entry = None
        if intent.state is IntentState.ACCEPTED and receipt is not None and receipt.message_id:
            # the entry as this submit makes it; one a report left first is merged with
            # it when the line is applied, and followed up then (Ledger._late_entries)
            entry = LedgerEntry.from_submit(receipt, attempt=attempt, message=message, now=now)
        try:
            journal.finish(intent, entry)
        except OSError as exc:
            self._journal_failed(journal, exc)
            raise Later from None
        self._journaled(journal)
        return entry
