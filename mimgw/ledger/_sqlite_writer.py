"""The SQLite ledger's writer thread: owns the connection, runs queued calls in grouped
transactions (one savepoint each), and creates or upgrades the schema on first use."""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mimgw.errors import ConfigurationError
from mimgw.ledger.entry import LedgerError

__all__ = ["SCHEMA_VERSION", "Op", "Writer", "iso", "open_error"]

Op = Callable[[sqlite3.Connection], Any]

SCHEMA_VERSION = 2
"""1: entries only (mimgw 0.1). 2: adds ``mimgw_intents`` and ``mimgw_meta``; a file
of version 1 is upgraded in place when first opened."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mimgw_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mimgw_ledger (
    provider TEXT NOT NULL,
    message_id TEXT NOT NULL,
    reference TEXT,
    due_at TEXT,
    settled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (provider, message_id)
);
CREATE INDEX IF NOT EXISTS mimgw_ledger_message ON mimgw_ledger (message_id);
CREATE INDEX IF NOT EXISTS mimgw_ledger_reference ON mimgw_ledger (reference);
CREATE INDEX IF NOT EXISTS mimgw_ledger_due ON mimgw_ledger (due_at) WHERE settled = 0;
CREATE TABLE IF NOT EXISTS mimgw_intents (
    id TEXT PRIMARY KEY,
    key TEXT UNIQUE,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mimgw_intents_open ON mimgw_intents (created_at)
    WHERE state IN ('in_flight', 'unknown');
"""


def iso(value: datetime | None) -> str | None:
    """Fixed-width UTC text, so string order is time order."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class Writer(threading.Thread):
    """Owns the connection; runs queued calls in grouped transactions."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        super().__init__(name=f"mimgw-sqlite:{path}", daemon=True)
        self.path = path
        self.busy_timeout = busy_timeout
        self.calls: queue.SimpleQueue[tuple[Op, Callable[[Any, BaseException | None], None]] | None]
        self.calls = queue.SimpleQueue()
        self.opened = threading.Event()
        self.open_error: ConfigurationError | None = None

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute(
                "SELECT value FROM mimgw_meta WHERE name = 'schema_version'"
            ).fetchone()
            found = int(row[0]) if row else 1
            if found > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"ledger.path: {self.path} has schema version {found}; this mimgw "
                    f"knows up to {SCHEMA_VERSION} (upgrade mimgw)"
                )
            db.execute(
                "INSERT OR REPLACE INTO mimgw_meta (name, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
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
        self.opened.set()
        try:
            while True:
                first = self.calls.get()
                if first is None:
                    return
                group = [first]
                stop = False
                while len(group) < 512:
                    try:
                        nxt = self.calls.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    group.append(nxt)
                self._run_group(db, group)
                if stop:
                    return
        finally:
            db.close()

    def _run_group(
        self,
        db: sqlite3.Connection,
        group: list[tuple[Op, Callable[[Any, BaseException | None], None]]],
    ) -> None:
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
            item[1](None, exc)


def open_error(path: str, exc: BaseException) -> ConfigurationError:
    if isinstance(exc, ConfigurationError):
        return exc
    return ConfigurationError(f"ledger.path: cannot open SQLite ledger {path!r}: {exc}")
