"""The ledger: every send intent, submit and delivery report, so nothing is ever lost.

- :class:`Intent`: written before a submit leaves the process, updated with its answer;
  :meth:`Ledger.unresolved` lists those nobody knows the outcome of.
- :class:`LedgerEntry`: one per ``(provider, message_id)``; reports only move it
  forward (:meth:`State.advance`), a report that beats its submit is kept and merged.

Backends: :class:`MemoryLedger` (default, capped), :class:`SqliteLedger` (embedded
file, shared by processes) and ``PostgresLedger`` (extra ``postgres``; imported on
first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mimgw.ledger.base import Finish, Ledger
from mimgw.ledger.entry import LedgerEntry, LedgerError
from mimgw.ledger.intent import Intent, IntentAttempt, IntentState
from mimgw.ledger.memory import MemoryLedger
from mimgw.ledger.sqlite import SqliteLedger

if TYPE_CHECKING:
    from mimgw.ledger.postgres import PostgresLedger

__all__ = [
    "Finish",
    "Intent",
    "IntentAttempt",
    "IntentState",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "MemoryLedger",
    "PostgresLedger",
    "SqliteLedger",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresLedger":
        from mimgw.ledger.postgres import PostgresLedger

        return PostgresLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
