"""Entries and intents read back from the JSON a file or database ledger stored (SQLite and
PostgreSQL keep each as one JSON document); a row that no longer validates is a
:class:`~mimgw.ledger.LedgerError`, never a pydantic error."""

from __future__ import annotations

from pydantic import ValidationError

from mimgw.ledger.entry import LedgerEntry, LedgerError
from mimgw.ledger.intent import Intent

__all__ = ["load_entry", "load_intent"]


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
