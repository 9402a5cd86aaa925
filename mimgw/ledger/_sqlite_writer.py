"""The SQLite ledger's writer thread: owns the connection, runs queued calls in grouped
transactions (one savepoint each), creates or upgrades the schema on first use, and runs
the checkpoints the inline connection asks for (see :mod:`mimgw.ledger._sqlite_inline`)."""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mimgw.errors import ConfigurationError
from mimgw.ledger.entry import LedgerError

__all__ = ["SCHEMA_VERSION", "Op", "Writer", "busy", "iso", "open_error"]

log = logging.getLogger("mimgw.ledger")

Op = Callable[[sqlite3.Connection], Any]
Call = tuple[Op, Callable[[Any, BaseException | None], None]]


WAL_FRAMES_LIMIT = 4096
"""WAL pages (16 MiB of 4 KiB pages) past which a checkpoint blocks writers until the WAL
can start over (under constant commits it never gets the chance otherwise)."""

JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
"""Bytes a WAL file is cut back to when it starts over after a burst."""


class _Checkpoint:
    """Queued by :meth:`Writer.checkpoint`."""


_CHECKPOINT = _Checkpoint()


class _Recover:
    """Queued by :meth:`Writer.recover_orphans`."""


_RECOVER = _Recover()

SCHEMA_VERSION = 3
"""1: entries only (mimgw 0.1). 2: adds ``mimgw_intents`` and ``mimgw_meta``. 3: the same
columns laid out so that a send writes fewer pages: entries keyed by ``(message_id,
provider)`` (which also serves lookups by id alone), intents stored in their key's
B-tree (``WITHOUT ROWID``), the key, reference and due indexes partial (a row without a
key, reference or due time is in none of them). A file of an older version is upgraded in
place when first opened; one of a newer version is refused."""

_TABLES = {
    "mimgw_ledger": """CREATE TABLE mimgw_ledger (
    message_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    reference TEXT,
    due_at TEXT,
    settled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (message_id, provider)
)""",
    "mimgw_intents": """CREATE TABLE mimgw_intents (
    id TEXT PRIMARY KEY,
    key TEXT,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL
) WITHOUT ROWID""",
}
_COLUMNS = {
    "mimgw_ledger": "message_id, provider, reference, due_at, settled, created_at, data",
    "mimgw_intents": "id, key, state, created_at, data",
}
_INDEXES = (
    "CREATE INDEX mimgw_ledger_reference ON mimgw_ledger (reference) WHERE reference IS NOT NULL",
    "CREATE INDEX mimgw_ledger_due ON mimgw_ledger (due_at) "
    "WHERE settled = 0 AND due_at IS NOT NULL",
    "CREATE UNIQUE INDEX mimgw_intents_key ON mimgw_intents (key) WHERE key IS NOT NULL",
    "CREATE INDEX mimgw_intents_open ON mimgw_intents (created_at) "
    "WHERE state IN ('in_flight', 'unknown')",
)
# Commits write every B-tree page they change: with time-ordered intent ids and
# references (mimgw.models.new_reference) each of these grows at one end; on a file of
# 50,000 sends a send changes about 9 pages instead of 13 (version 2, random ids).


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _version(db: sqlite3.Connection) -> int | None:
    """The file's layout version; None for a file without a ledger."""
    tables = _tables(db)
    if "mimgw_ledger" not in tables:
        return None
    if "mimgw_meta" not in tables:
        return 1
    row = db.execute("SELECT value FROM mimgw_meta WHERE name = 'schema_version'").fetchone()
    if row is None:
        return 1
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise ConfigurationError(f"not a mimgw ledger: schema version {row[0]!r}") from None


def _create(db: sqlite3.Connection) -> None:
    """The current layout; a table of an older one has its rows copied over (the columns
    never changed) and is dropped, indexes and all."""
    old = _tables(db)
    for table, create in _TABLES.items():
        if table in old:
            db.execute(create.replace(f"TABLE {table}", f"TABLE {table}_v3", 1))
            columns = _COLUMNS[table]
            db.execute(f"INSERT INTO {table}_v3 ({columns}) SELECT {columns} FROM {table}")  # noqa: S608
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE {table}_v3 RENAME TO {table}")
        else:
            db.execute(create)
    for index in _INDEXES:
        db.execute(index)


def iso(value: datetime | None) -> str | None:
    """Fixed-width UTC text, so string order is time order."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # value.isoformat(timespec="microseconds"), a third cheaper (four of these a send)
    return _ISO % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


_ISO = "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00"


class Writer(threading.Thread):
    """Owns the connection; runs queued calls in grouped transactions."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        super().__init__(name=f"mimgw-sqlite:{path}", daemon=True)
        self.path = path
        self.busy_timeout = busy_timeout
        self.calls: queue.SimpleQueue[Call | _Checkpoint | _Recover | None] = queue.SimpleQueue()
        self.opened = threading.Event()
        self.restarting = False
        """True while a checkpoint waits for the WAL to start over: no inline writes."""
        self.rewinds = 0
        """Times a checkpoint copied the whole WAL back and it started over (the inline
        connection counts its commits from the last one)."""
        self.open_error: ConfigurationError | LedgerError | None = None

    def _connect(self) -> sqlite3.Connection:
        """The writer's connection, schema created or upgraded. Another process opening
        the same new file at the same moment holds it for an instant: SQLite does not
        wait for that lock when switching to WAL, so a busy file is tried again for up
        to ``busy_timeout`` seconds."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.005
        while True:
            try:
                return self._open()
            except sqlite3.OperationalError as exc:
                if not busy(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
        try:
            return self._prepare(db)
        except BaseException:
            db.close()
            raise

    def _prepare(self, db: sqlite3.Connection) -> sqlite3.Connection:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        db.execute("BEGIN IMMEDIATE")  # whoever opens a new or old file first lays it out
        try:
            found = _version(db)
            if found is not None and found > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"ledger.path: {self.path} has schema version {found}; this mimgw "
                    f"knows up to {SCHEMA_VERSION} (upgrade mimgw)"
                )
            if found != SCHEMA_VERSION:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS mimgw_meta "
                    "(name TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )
                _create(db)
                db.execute(
                    "INSERT OR REPLACE INTO mimgw_meta (name, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                if found is not None:
                    log.info("SQLite ledger %s upgraded from version %d", self.path, found)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return db

    def run(self) -> None:
        try:
            db = self._connect()
        except (sqlite3.Error, OSError, ConfigurationError) as exc:
            self.open_error = open_error(self.path, exc)
            self.opened.set()
            self._fail_all(self.open_error)
            return
        self._recover(db)
        self.opened.set()
        try:
            while True:
                group: list[Call] = []
                checkpoint = recover = stop = False
                item = self.calls.get()
                while True:
                    if item is None:
                        stop = True
                        break
                    if isinstance(item, _Checkpoint):
                        checkpoint = True
                    elif isinstance(item, _Recover):
                        recover = True
                    else:
                        group.append(item)
                    if len(group) >= 512:
                        break
                    try:
                        item = self.calls.get_nowait()
                    except queue.Empty:
                        break
                if recover:  # before the calls queued after it
                    self._recover(db)
                if group:
                    self._run_group(db, group)
                if checkpoint and not stop:
                    self._checkpoint(db)
                if stop:
                    return
        finally:
            db.close()

    def recover_orphans(self) -> None:
        """Ask for the journals of ended processes to be applied before the next calls."""
        self.calls.put(_RECOVER)

    def _recover(self, db: sqlite3.Connection) -> None:
        if self.path in ("", ":memory:"):
            return
        from mimgw.ledger._sqlite_journal import recover  # it writes through our rows

        try:
            recover(db, self.path)
        except Exception as exc:  # never stops the writer; tried again later
            log.warning("SQLite ledger: journal recovery failed: %s", exc)

    def checkpoint(self) -> None:
        """Ask for a passive checkpoint (the inline connection makes none itself)."""
        self.calls.put(_CHECKPOINT)

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        try:
            busy, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames > WAL_FRAMES_LIMIT:
                # commits keep coming, so the WAL never gets to start over: hold them off
                # until it can (inline ones, which would win every race for the lock,
                # come to this thread meanwhile); a reader of another process may hold
                # it up, so only briefly
                self.restarting = True
                try:
                    busy, frames, done = self._briefly(db, "PRAGMA wal_checkpoint(RESTART)")
                    self._rewind(db, busy, frames, done)
                finally:
                    self.restarting = False
            else:
                self._rewind(db, busy, frames, done)
        except sqlite3.Error as exc:  # the next one, or SQLite's own, will do it
            log.debug("SQLite ledger: checkpoint failed: %s", exc)

    def _rewind(self, db: sqlite3.Connection, busy: int, frames: int, done: int) -> None:
        """After a checkpoint that copied everything back, the next commit starts the
        WAL over and syncs its header: make it this one, here, not an inline one on the
        event loop (skipped when the lock is taken)."""
        if busy or frames != done:
            return
        if frames > 0:  # raises when the lock is taken: not started over
            now = iso(datetime.now(UTC))
            self._briefly(
                db,
                "INSERT OR REPLACE INTO mimgw_meta (name, value) VALUES ('checkpoint', ?)",
                (now,),
                wait_ms=0,
            )
        self.rewinds += 1

    def _briefly(
        self, db: sqlite3.Connection, sql: str, args: tuple[object, ...] = (), *, wait_ms: int = 250
    ) -> Any:
        """``sql``'s first row, waiting at most ``wait_ms`` for a lock."""
        db.execute(f"PRAGMA busy_timeout = {wait_ms}")
        try:
            return db.execute(sql, args).fetchone()
        finally:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    def _run_group(self, db: sqlite3.Connection, group: list[Call]) -> None:
        results: list[tuple[Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for fn, _ in group:
                db.execute("SAVEPOINT one")
                try:
                    results.append((fn(db), None))
                    db.execute("RELEASE one")
                except Exception as exc:
                    db.execute("ROLLBACK TO one")
                    db.execute("RELEASE one")
                    failure: BaseException = exc
                    if isinstance(exc, sqlite3.Error):
                        failure = LedgerError(f"SQLite ledger failed: {exc}")
                    results.append((None, failure))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            failed = LedgerError(f"SQLite ledger failed: {exc}")
            for _, done in group:
                done(None, failed)
            return
        for (_, done), (value, error) in zip(group, results, strict=True):
            done(value, error)

    def _fail_all(self, exc: BaseException) -> None:
        while (item := self.calls.get()) is not None:  # until closed
            if not isinstance(item, _Checkpoint | _Recover):
                item[1](None, exc)


def open_error(path: str, exc: BaseException) -> ConfigurationError | LedgerError:
    """A file that cannot be a ledger is a configuration problem; one another connection
    kept locked for all of ``busy_timeout`` is a storage error, as a write's would be
    (the next call tries to open it again)."""
    if isinstance(exc, ConfigurationError):
        return exc
    if isinstance(exc, sqlite3.OperationalError) and busy(exc):
        return LedgerError(f"SQLite ledger {path!r} is locked by another connection: {exc}")
    return ConfigurationError(f"ledger.path: cannot open SQLite ledger {path!r}: {exc}")


def busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says another connection holds the lock."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )
