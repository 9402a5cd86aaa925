"""The SQLite ledger's inline connection: small writes done at once, on the caller's thread.

A write through the writer thread costs two thread hops and wakes the event loop
twice; most writes are one short transaction that nobody else is contending for. This
second connection runs them synchronously on the thread that opened it (the event
loop's), as a *try-lock*: its busy timeout is 0, so when the file is locked (by our
own writer thread or by another process) the call fails at once with
:class:`Later`, nothing written, and the caller hands it to the writer thread, which
waits for the lock as long as ``busy_timeout``. The loop never waits for a lock.

A write needing one statement runs in autocommit mode; others in their own ``BEGIN
IMMEDIATE`` transaction (atomic against every other writer of the file, as the writer
thread's are). Every commit is in the WAL before the call returns: a killed process
keeps it. Automatic checkpoints are off on this connection: every
:data:`CHECKPOINT_EVERY` commits it asks the writer thread for a passive checkpoint,
so the fsyncs a checkpoint costs are never paid on the loop. A checkpoint can fall
behind (a slow disk's fsync, a reader of another process); after
:data:`COMMITS_LIMIT` commits with no restart of the WAL, writes go to the writer
thread, where they wait their turn behind the checkpoint, until one has restarted it:
the WAL stays bounded however fast the loop commits.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from mimgw.ledger._sqlite_writer import JOURNAL_SIZE_LIMIT, Writer, busy
from mimgw.ledger.entry import LedgerError

__all__ = ["CHECKPOINT_EVERY", "COMMITS_LIMIT", "Inline", "Later"]

T = TypeVar("T")

CHECKPOINT_EVERY = 256
"""Inline commits between two checkpoint requests (a commit adds 2 to 8 pages to the
WAL, a send's two about 10: about SQLite's own default of 1,000 pages each time; a
checkpoint's fsyncs cost the process more CPU than the pages it copies, 64 commits
apart they cost a send 15% more)."""

COMMITS_LIMIT = 1024
"""Inline commits allowed since the WAL last started over (a commit adds at most ~8
pages: 32 MiB of WAL at most, half the journal size limit, before writes wait for a
checkpoint)."""


class Later(Exception):
    """Not done inline, and nothing written: hand the call to the writer thread."""


class Inline:
    """The inline connection of one ledger, bound to the thread that opened it."""

    def __init__(self, path: str, writer: Writer) -> None:
        db = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        except BaseException:
            db.close()
            raise
        self.db: sqlite3.Connection | None = db
        self.thread = threading.get_ident()
        self._writer = writer
        self._commits = 0
        self._rewinds = 0  # the writer's count when ``_commits`` was last reset

    def run(self, fn: Callable[[sqlite3.Connection], T], *, atomic: bool, write: bool = True) -> T:
        """``fn(connection)`` now, in a transaction of its own when ``atomic`` (else it
        must be one statement); raises :class:`Later` when the file is locked or this
        connection cannot be used from here."""
        db = self.db
        writer = self._writer
        if db is None or threading.get_ident() != self.thread or writer.restarting:
            raise Later
        if writer.rewinds != self._rewinds:
            self._rewinds, self._commits = writer.rewinds, 0
        elif write and self._commits >= COMMITS_LIMIT:
            writer.checkpoint()  # the checkpoints fell behind: wait for one, in line
            raise Later
        try:
            if atomic:
                db.execute("BEGIN IMMEDIATE")
            value = fn(db)
            if atomic:
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(db)
            if busy(exc):
                raise Later from None
            raise LedgerError(f"SQLite ledger failed: {exc}") from None
        except BaseException:
            self._rollback(db)
            raise
        if write:
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0:
                writer.checkpoint()
        return value

    def _rollback(self, db: sqlite3.Connection) -> None:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if db.in_transaction:  # cannot tell what state it is in: stop using it
                self.close()

    def close(self) -> None:
        db, self.db = self.db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
