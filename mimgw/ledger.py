"""The ledger: every submit and every delivery report, so nothing read once is ever lost.

One entry per ``(provider, message_id)``. A report only moves the entry's state
forward (:meth:`State.advance`); a repeated or late report changes nothing. A report
that arrives before its submit is recorded is kept and merged when the submit comes.
Message text is kept only when redelivery may need it, and erased once the entry is
settled (final and not to be resent).

:class:`MemoryLedger` keeps entries in a dict; :class:`SqliteLedger` in an embedded
SQLite file. Both implement :class:`Ledger`, which a server database can implement too.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from mimgw.errors import ConfigurationError, MimgwError
from mimgw.models import Category, DeliveryReport, Message, Receipt
from mimgw.taxonomy import State

__all__ = ["Ledger", "LedgerEntry", "LedgerError", "MemoryLedger", "SqliteLedger"]

T = TypeVar("T")


class LedgerError(MimgwError):
    """The ledger's storage failed."""


def _now() -> datetime:
    return datetime.now(UTC)


class LedgerEntry(BaseModel):
    """What the ledger knows about one message at one gateway."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    message_id: str
    reference: str | None = None
    to: str | None = None
    state: State = State.UNKNOWN
    attempt: int = 1
    """1 for the first submit of a reference, 2 for its first redelivery, …"""
    submitted: bool = False
    """False while only a report (that beat its submit) is known."""
    report: DeliveryReport | None = None
    """The report that last moved the state."""
    text: str | None = None
    sender: str | None = None
    category: Category = "transactional"
    next_attempt_at: AwareDatetime | None = None
    """When a redelivery is due; None when none is scheduled."""
    settled: bool = False
    """Final and not to be resent; text erased."""
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @property
    def redeliveries(self) -> int:
        return self.attempt - 1

    @property
    def failed(self) -> bool:
        return self.state in (State.UNDELIVERABLE, State.EXPIRED, State.REJECTED)

    def as_report(self) -> DeliveryReport:
        """The entry as a delivery report (the last report, with the ledger's state)."""
        if self.report is not None:
            return self.report.model_copy(
                update={
                    "state": self.state,
                    "reference": self.report.reference or self.reference,
                    "to": self.report.to or self.to,
                }
            )
        return DeliveryReport(
            provider=self.provider,
            message_id=self.message_id,
            to=self.to,
            state=self.state,
            reference=self.reference,
        )

    def message(self) -> Message | None:
        """The message to resend, while its text is kept."""
        if self.text is None or self.to is None:
            return None
        return Message(
            to=self.to,
            text=self.text,
            sender=self.sender,
            reference=self.reference,
            category=self.category,
        )

    # -- pure transitions shared by every backend --------------------------------------

    @classmethod
    def from_submit(
        cls, receipt: Receipt, *, attempt: int, message: Message | None, now: datetime
    ) -> LedgerEntry:
        return cls(
            provider=receipt.provider,
            message_id=receipt.message_id,
            reference=receipt.reference,
            to=receipt.to,
            state=receipt.state,
            attempt=attempt,
            submitted=True,
            text=None if message is None else message.text,
            sender=None if message is None else message.sender,
            category="transactional" if message is None else message.category,
            created_at=now,
            updated_at=now,
        )

    def merge_submit(
        self, receipt: Receipt, *, attempt: int, message: Message | None, now: datetime
    ) -> LedgerEntry:
        """A submit for an entry that already exists (a report beat it, or a repeat)."""
        if self.submitted:
            return self
        fresh = LedgerEntry.from_submit(receipt, attempt=attempt, message=message, now=now)
        return fresh.model_copy(
            update={
                "state": receipt.state.advance(self.state),
                "report": self.report,
                "reference": receipt.reference or self.reference,
                "created_at": self.created_at,
            }
        )

    @classmethod
    def from_report(cls, report: DeliveryReport, *, now: datetime) -> LedgerEntry:
        return cls(
            provider=report.provider,
            message_id=report.message_id,
            reference=report.reference,
            to=report.to,
            state=report.state,
            report=report,
            created_at=now,
            updated_at=now,
        )

    def merge_report(self, report: DeliveryReport, *, now: datetime) -> tuple[LedgerEntry, bool]:
        """Apply ``report``; returns the entry and whether anything changed."""
        state = self.state.advance(report.state)
        if state == self.state and self.report is not None:
            return self, False
        if state == self.state and report.state != state:
            return self, False  # an older report on an entry without one: keep the state only
        update: dict[str, object] = {"state": state, "report": report, "updated_at": now}
        if self.reference is None and report.reference is not None:
            update["reference"] = report.reference
        if self.to is None and report.to is not None:
            update["to"] = report.to
        return self.model_copy(update=update), True


class Ledger(ABC):
    """Where submits and delivery reports are recorded. All methods are coroutines."""

    @abstractmethod
    async def record_submit(
        self, receipt: Receipt, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry:
        """Record a gateway's receipt. ``message`` is given only when its text must be kept."""

    @abstractmethod
    async def record_report(self, report: DeliveryReport) -> tuple[LedgerEntry, bool]:
        """Record a delivery report; returns the entry and whether the report changed it."""

    @abstractmethod
    async def get(self, provider: str, message_id: str) -> LedgerEntry | None: ...

    @abstractmethod
    async def find(self, message_id: str, *, provider: str | None = None) -> list[LedgerEntry]:
        """Entries with this gateway message id (newest first), optionally at one gateway."""

    @abstractmethod
    async def by_reference(self, reference: str) -> list[LedgerEntry]:
        """Every attempt made for a reference, oldest first."""

    @abstractmethod
    async def schedule(self, provider: str, message_id: str, at: datetime | None) -> None:
        """Set (or with ``None`` clear) when the entry's redelivery is due."""

    @abstractmethod
    async def settle(self, provider: str, message_id: str) -> bool:
        """Mark the entry as needing nothing more: erase its text, cancel any redelivery.

        Returns True when this call settled it, False when it was settled already or is
        unknown: the check and the write must be atomic, so that of several workers
        sharing a ledger exactly one wins the right to redeliver a message.
        """

    @abstractmethod
    async def restore(self, entry: LedgerEntry) -> None:
        """Write ``entry`` back as given: undoes a redelivery claim (:meth:`settle`) when
        the resend provably sent nothing, so the message stays due."""

    @abstractmethod
    async def due(self, now: datetime, *, limit: int | None = None) -> list[LedgerEntry]:
        """Unsettled entries whose redelivery is due at ``now``, earliest first."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release storage resources."""


def _settled(entry: LedgerEntry, now: datetime) -> LedgerEntry:
    return entry.model_copy(
        update={"settled": True, "text": None, "next_attempt_at": None, "updated_at": now}
    )


class MemoryLedger(Ledger):
    """Entries in process memory: the default; lost when the process ends."""

    def __init__(self, *, clock: Callable[[], datetime] = _now) -> None:
        self._entries: dict[tuple[str, str], LedgerEntry] = {}
        self._clock = clock

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
        return entry, changed

    async def get(self, provider: str, message_id: str) -> LedgerEntry | None:
        return self._entries.get((provider, message_id))

    async def find(self, message_id: str, *, provider: str | None = None) -> list[LedgerEntry]:
        found = [
            e
            for (p, m), e in self._entries.items()
            if m == message_id and (provider is None or p == provider)
        ]
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
        self._entries[key] = _settled(entry, self._clock())
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


def _iso(value: datetime | None) -> str | None:
    """Fixed-width UTC text, so string order is time order."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


_SCHEMA = """
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
"""


class SqliteLedger(Ledger):
    """Entries in an embedded SQLite file (``":memory:"`` for a private in-memory database).

    Calls run in a worker thread so the event loop never blocks on disk; one lock
    serialises them, which makes every read-modify-write atomic within the process.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], datetime] = _now) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock = threading.Lock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigurationError(f"ledger.path: cannot open SQLite ledger: {exc}") from exc

    def __repr__(self) -> str:
        return f"SqliteLedger(path={self.path!r})"

    # -- plumbing -------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                if self._db is None:
                    raise LedgerError("the SQLite ledger is closed")
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(self._db)
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise
                    self._db.execute("COMMIT")
                    return result
                except sqlite3.Error as exc:
                    raise LedgerError(f"SQLite ledger failed: {exc}") from exc

        return await anyio.to_thread.run_sync(locked)

    @staticmethod
    def _load(data: str) -> LedgerEntry:
        try:
            return LedgerEntry.model_validate_json(data)
        except ValidationError as exc:
            raise LedgerError(f"corrupt ledger row: {exc.error_count()} errors") from None

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
                _iso(entry.next_attempt_at),
                int(entry.settled),
                entry.created_at.isoformat(),
                entry.model_dump_json(),
            ),
        )

    def _rows(
        self, db: sqlite3.Connection, sql: str, args: tuple[object, ...]
    ) -> list[LedgerEntry]:
        return [self._load(row[0]) for row in db.execute(sql, args).fetchall()]

    # -- the interface --------------------------------------------------------------

    async def record_submit(
        self, receipt: Receipt, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry:
        now = self._clock()

        def op(db: sqlite3.Connection) -> LedgerEntry:
            old = self._read(db, receipt.provider, receipt.message_id)
            entry = (
                LedgerEntry.from_submit(receipt, attempt=attempt, message=message, now=now)
                if old is None
                else old.merge_submit(receipt, attempt=attempt, message=message, now=now)
            )
            if entry is not old:
                self._write(db, entry)
            return entry

        return await self._run(op)

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
            self._write(db, _settled(entry, now))
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
        args: tuple[object, ...] = (_iso(now),)
        if limit is not None:
            sql += " LIMIT ?"
            args = (*args, limit)
        return await self._run(lambda db: self._rows(db, sql, args))

    async def aclose(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
