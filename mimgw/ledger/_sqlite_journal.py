"""The SQLite ledger's journal: the intents and outcomes of sends without an idempotency
key, appended to a file of this process's own before they reach the tables.

A send records twice, its intent before the request and its outcome after; a SQLite
commit of either costs far more than the send's own Python (about 30 µs of system calls
each on a 2-core VM: WAL frames, locks), an append to a file one ``write(2)``. So a
send without a key writes one line here for each, and the lines reach the tables in
groups, one transaction for many sends.

- **Durable as a commit**: a line is in the operating system's cache once ``write``
  returns, as a WAL commit with ``synchronous=NORMAL`` is: a killed process keeps both;
  only a power loss can take back the last few of either.
- **When the tables get them**: before any other call of the same ledger reads or
  writes (in that call's own transaction, first), :data:`FLUSH_DELAY` after the first
  line not yet applied (if the event loop gets to run), and every :data:`FLUSH_EVERY`
  lines. Another process sees a send's records about ``FLUSH_DELAY`` later. The delay
  lets one sender at a time, whose every send waits on its gateway, commit once a send
  (its outcome with the next send's intent) instead of twice.
- **A process that ends without closing its ledger** leaves its journal behind, unlocked
  (each journal is held with ``flock(2)`` by the process writing it, and the kernel lets
  go when that process ends): the next process to open the ledger, and every
  ``unresolved()``, applies and removes it, so a killed process's in-flight sends are
  found as the write-ahead record promises.
- **Applying twice changes nothing** (a process killed between a commit and cutting its
  journal back): intents are inserted only where absent and finished only while in
  flight, a submit entry merges into an existing one as a repeated submit does.

Sends with an idempotency key never use it: the key must be claimed in the table, where
every writer of the file sees it at once. POSIX only (``flock``); elsewhere every write
goes to the tables directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from mimgw.ledger import _sqlite_rows as rows
from mimgw.ledger._json_rows import dump_intent
from mimgw.ledger._sqlite_writer import iso
from mimgw.ledger.entry import LedgerEntry, LedgerError
from mimgw.ledger.intent import Intent, IntentState, process_token

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no journal
    fcntl = None  # type: ignore[assignment]

__all__ = ["FLUSH_DELAY", "FLUSH_EVERY", "Journal", "Record", "apply", "recover"]

log = logging.getLogger("mimgw.ledger")

FLUSH_EVERY = 256
"""Lines after which the tables get them at once (a loop that never turns still commits
in groups of this size)."""

FLUSH_DELAY = 0.01
"""Seconds after the first line not yet applied when the event loop applies them."""

PENDING_LIMIT = 4096
"""Lines not yet in the tables past which new writes go to the tables directly (the
tables failing, e.g. a full disk: the calls then say so)."""

_SUFFIX = ".journal"
_NEW = ".new"

Finish = tuple[rows.IntentRow, LedgerEntry | None, rows.EntryRow | None]
"""An intent's outcome: its row, the submit entry it carries and that entry's row."""

Record = Intent | Finish
"""A line: an intent begun (its row is made only if the tables get it still in flight:
most are finished in the same group) or a :data:`Finish`."""


def _prefix(path: str) -> str:
    return f"{Path(path).name}-mimgw-"


class Journal:
    """The open journal of one ledger in this process; used only from the thread (and
    process) that opened it."""

    def __init__(self, path: str) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise OSError("no flock on this platform")
        token = process_token()
        name = f"{path}-mimgw-{token}-{os.urandom(3).hex()}{_SUFFIX}"
        # locked under a name recovery does not look at, then renamed: no other process
        # can take a new journal for an abandoned one in between
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(name + _NEW, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(name + _NEW, name)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name + _NEW)
            raise
        self.name = name
        self._fd: int | None = fd
        self.pid = os.getpid()
        self._token = token  # made again in a forked child: cheaper than getpid
        self.thread = threading.get_ident()
        self.pending: list[Record] = []
        self.seq = 0  # lines written so far; ``pending`` holds the last len(pending)
        self.broken = False  # a write failed: no more lines (those written are applied)

    def __repr__(self) -> str:
        return f"Journal({self.name!r}, pending={len(self.pending)})"

    def owned(self) -> bool:
        """Whether this is the thread (and process) the journal belongs to."""
        return threading.get_ident() == self.thread and process_token() is self._token

    def usable(self) -> bool:
        """Whether a line may be written here now."""
        return (
            self._fd is not None
            and not self.broken
            and len(self.pending) < PENDING_LIMIT
            and self.owned()
        )

    def begin(self, intent: Intent) -> None:
        self._append(_begin_line(intent), intent)

    def finish(self, intent: Intent, entry: LedgerEntry | None) -> None:
        row = rows.intent_row(intent)
        erow = None if entry is None else rows.entry_row(entry)
        data = b"" if erow is None else erow[6].encode()
        self._append(b"F\t%s\t%s\n" % (row[4].encode(), data), (row, entry, erow))

    def _append(self, line: bytes, record: Record) -> None:
        fd = self._fd
        if fd is None:
            raise OSError("the journal is closed")
        written = os.write(fd, line)
        if written != len(line):  # a full disk: the part written is ignored when read
            os.write(fd, b"\n")
            raise OSError(f"journal: {written} of {len(line)} bytes written")
        self.pending.append(record)
        self.seq += 1

    def snapshot(self) -> tuple[list[Record], int]:
        """The lines not yet in the tables, and the mark to pass to :meth:`applied`."""
        return list(self.pending), self.seq

    def applied(self, mark: int) -> None:
        """Everything written up to ``mark`` is committed to the tables; once nothing is
        left, the file starts over empty."""
        drop = len(self.pending) - (self.seq - mark)
        if drop <= 0:
            return
        del self.pending[:drop]
        if not self.pending and self._fd is not None and os.getpid() == self.pid:
            try:
                os.ftruncate(self._fd, 0)
            except OSError as exc:  # the lines stay: applying them again changes nothing
                log.debug("journal: cannot cut %s back: %s", self.name, exc)

    def close(self) -> None:
        """Closed; the file is removed when everything in it is in the tables."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if os.getpid() == self.pid and not self.pending:
            try:
                os.unlink(self.name)
            except OSError as exc:
                log.debug("journal: cannot remove %s: %s", self.name, exc)
        os.close(fd)


def _begin_line(intent: Intent) -> bytes:
    """``I`` and five fields for an intent as the Gateway begins one (in flight, nothing
    but its identity, no key: every other field follows from that), else ``B`` and its
    JSON: most of a send's lines are these, and a pydantic dump costs several times the
    text."""
    if (
        intent.state is IntentState.IN_FLIGHT
        and intent.key is None
        and intent.receipt is None
        and not intent.attempts
        and intent.error is None
        and intent.resolved_by is None
        and intent.created_at.tzinfo is UTC
        and intent.updated_at == intent.created_at
    ):
        text = "\t".join(
            (intent.id, intent.reference, intent.to, intent.owner, iso(intent.created_at) or "")
        )
        if text.count("\t") == 4 and "\n" not in text:  # no field holds a separator
            return b"I\t%s\n" % text.encode()
    return b"B\t%s\n" % dump_intent(intent)


def _begun(fields: bytes) -> Intent:
    """The intent of an ``I`` line (see :func:`_begin_line`)."""
    id, reference, to, owner, created = fields.decode().split("\t")
    at = datetime.fromisoformat(created)
    return Intent(id=id, reference=reference, to=to, owner=owner, created_at=at, updated_at=at)


def apply(db: sqlite3.Connection, records: Sequence[Record]) -> list[LedgerEntry]:
    """Write ``records`` to the tables, in order, inside the caller's transaction. An
    intent begun and finished in the same group is written once, finished. Returns the
    entries a submit merged into (a report got there first) that are now final: their
    follow-up is owed (:meth:`~mimgw.ledger.Ledger._late_entries`)."""
    finished = {record[0][0] for record in records if isinstance(record, tuple)}
    begun = set()
    late = []
    for record in records:
        if not isinstance(record, tuple):
            if record.id not in finished:
                db.execute(rows.INSERT_INTENT_IF_NEW, rows.intent_row(record))
            else:
                begun.add(record.id)
            continue
        row, entry, erow = record
        if _finish(db, row, begun_here=row[0] in begun) and entry is not None:
            stored = rows.put_entry(db, entry, erow or rows.entry_row(entry))
            if stored is not entry and stored.state.final and not stored.settled:
                late.append(stored)
    return late


def _finish(db: sqlite3.Connection, row: rows.IntentRow, *, begun_here: bool) -> bool:
    """The intent's outcome; False when it was written before (or settled since)."""
    if begun_here and db.execute(rows.INSERT_INTENT_IF_NEW, row).rowcount:
        return True
    updated = db.execute(
        "UPDATE mimgw_intents SET state = ?, data = ? WHERE id = ? AND state = 'in_flight'",
        (row[2], row[4], row[0]),
    )
    if updated.rowcount:
        return True
    return not begun_here and bool(db.execute(rows.INSERT_INTENT_IF_NEW, row).rowcount)


def _orphans(path: str) -> Iterator[str]:
    folder = Path(path).parent
    prefix = _prefix(path)
    try:
        names = [e.name for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        if name.endswith(_SUFFIX):
            yield str(folder / name)


def recover(db: sqlite3.Connection, path: str) -> int:
    """Apply and remove every journal of ``path`` whose process has ended (nobody holds
    its lock); one transaction each, on a connection outside any. Returns the lines
    applied."""
    if fcntl is None:  # pragma: no cover - Windows
        return 0
    done = 0
    for name in _orphans(path):
        try:
            fd = os.open(name, os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # removed meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its process is alive
                continue
            if os.fstat(fd).st_nlink == 0:  # recovered and removed by another process
                continue
            records = list(_read(fd, name))
            db.execute("BEGIN IMMEDIATE")
            try:
                apply(db, records)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            os.unlink(name)
            done += len(records)
            if records:
                log.info("SQLite ledger: %d records recovered from %s", len(records), name)
        except (OSError, sqlite3.Error) as exc:  # left for the next try
            log.warning("SQLite ledger: cannot recover %s: %s", name, exc)
        finally:
            os.close(fd)
    return done


def _read(fd: int, name: str) -> Iterator[Record]:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    lines = b"".join(chunks).split(b"\n")
    if lines[-1]:  # cut off by the end of its process: never returned to a caller
        log.warning("journal %s: an incomplete last line ignored", name)
    for line in lines[:-1]:
        try:
            yield _parse(line)
        except (LedgerError, ValueError) as exc:
            if line:
                log.warning("journal %s: a line ignored (%s)", name, exc)


def _parse(line: bytes) -> Record:
    kind, _, rest = line.partition(b"\t")
    if kind == b"I":
        return _begun(rest)
    if kind == b"B":
        return rows.load_intent(rest)
    if kind != b"F":
        raise ValueError(f"unknown record {kind[:8]!r}")
    data, _, entry = rest.partition(b"\t")
    intent = rows.load_intent(data)
    if intent.state is IntentState.IN_FLIGHT:
        raise ValueError("a finish still in flight")
    loaded = rows.load_entry(entry) if entry else None
    return rows.intent_row(intent), loaded, None
