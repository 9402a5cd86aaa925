"""Entries and intents as the JSON a file or database ledger stores (SQLite and PostgreSQL
keep each as one JSON document), and read back from it; a row that no longer validates
is a :class:`~mimgw.ledger.LedgerError`, never a pydantic error."""

from __future__ import annotations

from pydantic import ValidationError

from mimgw.ledger.entry import LedgerEntry, LedgerError
from mimgw.ledger.intent import Intent

__all__ = ["dump_entry", "dump_intent", "load_entry", "load_intent"]

_ENTRY = LedgerEntry.__pydantic_serializer__
_INTENT = Intent.__pydantic_serializer__


def dump_entry(entry: LedgerEntry) -> bytes:
    """``entry.model_dump_json()``, encoded, without the wrapper's keyword handling (a
    send writes two or three of these)."""
    return _ENTRY.to_json(entry)


def dump_intent(intent: Intent) -> bytes:
    """``intent.model_dump_json()``, encoded (see :func:`dump_entry`)."""
    return _INTENT.to_json(intent)


def load_entry(data: str | bytes) -> LedgerEntry:
    try:
        return LedgerEntry.model_validate_json(data)
    except ValidationError as exc:
        raise LedgerError(f"corrupt ledger row: {exc.error_count()} errors") from None


def load_intent(data: str | bytes) -> Intent:
    try:
        return Intent.model_validate_json(data)
    except ValidationError as exc:
        raise LedgerError(f"corrupt intent row: {exc.error_count()} errors") from None
