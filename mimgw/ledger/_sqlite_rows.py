"""The SQLite ledger's reads and writes of single rows, on a given connection.

Each function runs inside whatever transaction its caller holds: the writer thread's
group transaction (one savepoint per call) or the inline connection's own (see
:mod:`mimgw.ledger._sqlite_inline`). Functions marked *one statement* are atomic by
themselves and may also run in autocommit mode.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from mimgw.ledger._json_rows import dump_entry, dump_intent, load_entry, load_intent
from mimgw.ledger._sqlite_writer import iso
from mimgw.ledger.entry import LedgerEntry, LedgerError
from mimgw.ledger.intent import Intent, IntentState
from mimgw.models import Message, Receipt

__all__ = [
    "INSERT_INTENT_IF_NEW",
    "EntryRow",
    "IntentRow",
    "begin_intent",
    "entries",
    "entry_row",
    "finish_intent",
    "insert_intent",
    "intent_row",
    "load_entry",
    "load_intent",
    "put_entry",
    "read_entry",
    "read_intent",
    "submit_entry",
    "write_entry",
]

IntentRow = tuple[str, str | None, str, str | None, str]
EntryRow = tuple[str, str, str | None, str | None, int, str | None, str]

_INSERT_INTENT = (
    "INSERT INTO mimgw_intents (id, key, state, created_at, data) VALUES (?, ?, ?, ?, ?)"
)
INSERT_INTENT_IF_NEW = _INSERT_INTENT.replace("INSERT", "INSERT OR IGNORE")
_WRITE_ENTRY = (
    "INSERT OR REPLACE INTO mimgw_ledger "
    "(provider, message_id, reference, due_at, settled, created_at, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_NEW_ENTRY = _WRITE_ENTRY.replace("OR REPLACE", "OR IGNORE")


def read_entry(db: sqlite3.Connection, provider: str, message_id: str) -> LedgerEntry | None:
    """One statement."""
    row = db.execute(
        "SELECT data FROM mimgw_ledger WHERE provider = ? AND message_id = ?",
        (provider, message_id),
    ).fetchone()
    return None if row is None else load_entry(row[0])


def read_intent(db: sqlite3.Connection, ref: str) -> Intent | None:
    """One statement: the intent with this id, else the one holding this key."""
    row = db.execute(
        "SELECT data FROM mimgw_intents WHERE id = ? OR key = ? ORDER BY id = ? DESC LIMIT 1",
        (ref, ref, ref),
    ).fetchone()
    return None if row is None else load_intent(row[0])


def entries(db: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> list[LedgerEntry]:
    """One statement."""
    return [load_entry(row[0]) for row in db.execute(sql, args).fetchall()]


def entry_row(entry: LedgerEntry) -> EntryRow:
    return (
        entry.provider,
        entry.message_id,
        entry.reference,
        iso(entry.next_attempt_at),
        int(entry.settled),
        iso(entry.created_at),
        dump_entry(entry).decode(),
    )


def write_entry(db: sqlite3.Connection, entry: LedgerEntry) -> None:
    """One statement."""
    db.execute(_WRITE_ENTRY, entry_row(entry))


def intent_row(intent: Intent) -> IntentRow:
    return (
        intent.id,
        intent.key,
        intent.state,  # a str: stored as its value (``.value`` is a Python-level property)
        iso(intent.created_at),
        dump_intent(intent).decode(),
    )


def insert_intent(db: sqlite3.Connection, intent: Intent) -> bool:
    """One statement: write a new intent; False when its key (or id) is taken, and then
    nothing was written and :func:`begin_intent` decides."""
    try:
        db.execute(_INSERT_INTENT, intent_row(intent))
    except sqlite3.IntegrityError:
        return False
    return True


def begin_intent(db: sqlite3.Connection, intent: Intent) -> Intent:
    """Needs a transaction: :meth:`Ledger.begin`."""
    if intent.key is not None:
        row = db.execute("SELECT data FROM mimgw_intents WHERE key = ?", (intent.key,)).fetchone()
        if row is not None:
            held = load_intent(row[0])
            if held.state is not IntentState.NOT_SENT:
                return held
            # provably never sent: the key is free; the old intent stays as history
            db.execute("UPDATE mimgw_intents SET key = NULL WHERE id = ?", (held.id,))
    db.execute(_INSERT_INTENT, intent_row(intent))
    return intent


def finish_intent(
    db: sqlite3.Connection,
    intent: Intent,
    attempt: int,
    message: Message | None,
    now: datetime,
) -> LedgerEntry | None:
    """Needs a transaction: :meth:`Ledger.finish`."""
    updated = db.execute(
        "UPDATE mimgw_intents SET state = ?, data = ? WHERE id = ?",
        (intent.state, dump_intent(intent).decode(), intent.id),
    )
    if updated.rowcount == 0:  # never begun here; a key another intent holds stays its
        db.execute(INSERT_INTENT_IF_NEW, intent_row(intent))
    receipt = intent.receipt
    if intent.state is IntentState.ACCEPTED and receipt is not None and receipt.message_id:
        return submit_entry(db, receipt, attempt, message, now)
    return None


def submit_entry(
    db: sqlite3.Connection,
    receipt: Receipt,
    attempt: int,
    message: Message | None,
    now: datetime,
) -> LedgerEntry:
    """Needs a transaction: :meth:`Ledger.record_submit`."""
    entry = LedgerEntry.from_submit(receipt, attempt=attempt, message=message, now=now)
    return put_entry(db, entry, entry_row(entry))


def put_entry(db: sqlite3.Connection, entry: LedgerEntry, row: EntryRow) -> LedgerEntry:
    """Needs a transaction: a new submit entry (``row`` its row), merged into the one a
    report (or an earlier submit under the same id) left; the entry stored is returned."""
    if db.execute(_NEW_ENTRY, row).rowcount:
        return entry
    old = read_entry(db, entry.provider, entry.message_id)
    if old is None:  # pragma: no cover - the row that was just there
        raise LedgerError(f"SQLite ledger: entry {entry.message_id} vanished")
    merged = old.absorb_submit(entry)
    if merged is not old:
        write_entry(db, merged)
    return merged
