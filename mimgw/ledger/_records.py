"""The memory ledger's compact records.

An entry or an intent is stored as a plain tuple of its field values and built as a
model only when read: a record is a fraction of a model's size (no ``__dict__``, no
fields set), and a tuple of plain values is not even tracked by the garbage collector.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mimgw.ledger.entry import LedgerEntry
from mimgw.ledger.intent import Intent, IntentAttempt, IntentState, process_token
from mimgw.models import Message, Receipt, trusted
from mimgw.taxonomy import ErrorKind, State

__all__ = [
    "EntryRecord",
    "IntentRecord",
    "entry_done",
    "entry_due",
    "entry_record",
    "entry_reference",
    "fresh_intent_record",
    "intent_done",
    "intent_key",
    "intent_record",
    "intent_state",
    "intent_values_record",
    "load_entry",
    "load_intent",
    "submit_record",
]

# -- ledger entries: keyed by (provider, message_id); the record holds the rest ---------
# Enums are kept as their values: a tuple of strings, numbers, datetimes and None is
# untracked by the garbage collector, so a full ledger costs its collections nothing.

ENTRY_FIELDS = tuple(LedgerEntry.__pydantic_fields__)
EntryRecord = tuple[Any, ...]
_E = {name: i for i, name in enumerate(ENTRY_FIELDS[2:])}
_E_REFERENCE, _E_STATE = _E["reference"], _E["state"]
_E_NEXT, _E_SETTLED = _E["next_attempt_at"], _E["settled"]
_STATES = {s.value: s for s in State}
_INTENT_STATES = {s.value: s for s in IntentState}
_KINDS = {k.value: k for k in ErrorKind}
# an enum's ``.value`` is a Python-level property: a dict lookup is several times cheaper
_STATE_VALUES: dict[State, str] = {s: s.value for s in State}
_INTENT_STATE_VALUES: dict[IntentState, str] = {s: s.value for s in IntentState}
_FINAL_VALUES = frozenset(s.value for s in State if s.final)
_IN_FLIGHT = IntentState.IN_FLIGHT.value


def entry_record(entry: LedgerEntry) -> EntryRecord:
    """The record of ``entry`` (without its key)."""
    d = entry.__dict__
    return (
        d["reference"],
        d["to"],
        _STATE_VALUES[d["state"]],
        d["attempt"],
        d["submitted"],
        d["report"],
        d["text"],
        d["sender"],
        d["category"],
        d["next_attempt_at"],
        d["settled"],
        d["created_at"],
        d["updated_at"],
    )


def submit_record(
    receipt: Receipt, attempt: int, message: Message | None, now: datetime
) -> EntryRecord:
    """The record of ``LedgerEntry.from_submit(receipt, attempt=attempt, message=message,
    now=now)``, without building the entry."""
    d = receipt.__dict__
    m = None if message is None else message.__dict__
    return (
        d["reference"],
        d["to"],
        _STATE_VALUES[d["state"]],
        attempt,
        True,
        None,
        None if m is None else m["text"],
        None if m is None else m["sender"],
        "transactional" if m is None else m["category"],
        None,
        False,
        now,
        now,
    )


def load_entry(key: tuple[str, str], record: EntryRecord) -> LedgerEntry:
    values = dict(zip(ENTRY_FIELDS, (*key, *record), strict=True))
    values["state"] = _STATES[record[_E_STATE]]
    return trusted(LedgerEntry, values)


def entry_reference(record: EntryRecord) -> str | None:
    reference: str | None = record[_E_REFERENCE]
    return reference


def entry_due(record: EntryRecord, now: datetime) -> bool:
    """Unsettled, with a redelivery due at ``now``."""
    at: datetime | None = record[_E_NEXT]
    return not record[_E_SETTLED] and at is not None and at <= now


def entry_done(record: EntryRecord) -> bool:
    """Needs nothing more: settled, or final with no redelivery due."""
    final = record[_E_STATE] in _FINAL_VALUES
    return bool(record[_E_SETTLED]) or (final and record[_E_NEXT] is None)


# -- intents: keyed by id; a receipt and attempts are kept as records of their own -------

INTENT_FIELDS = tuple(Intent.__pydantic_fields__)
RECEIPT_FIELDS = tuple(Receipt.__pydantic_fields__)
IntentRecord = tuple[Any, ...]
_I = {name: i for i, name in enumerate(INTENT_FIELDS[1:])}
_I_KEY, _I_STATE = _I["key"], _I["state"]
_I_RECEIPT, _I_ATTEMPTS = _I["receipt"], _I["attempts"]
_R_STATE = RECEIPT_FIELDS.index("state")


def intent_record(intent: Intent, *, drop_key: bool = False) -> IntentRecord:
    """The record of ``intent`` (without its id); ``drop_key``: stored without its key."""
    d = intent.__dict__
    return intent_values_record(
        None if drop_key else d["key"],
        d["reference"],
        d["to"],
        d["state"],
        d["receipt"],
        d["attempts"],
        d["error"],
        d["resolved_by"],
        d["owner"],
        d["created_at"],
        d["updated_at"],
    )


def intent_values_record(
    key: str | None,
    reference: str,
    to: str,
    state: IntentState,
    receipt: Receipt | None,
    attempts: tuple[IntentAttempt, ...],
    error: str | None,
    resolved_by: str | None,
    owner: str,
    created_at: datetime,
    updated_at: datetime,
) -> IntentRecord:
    """The record of an intent with these field values (its id aside), without the intent."""
    return (
        key,
        reference,
        to,
        _INTENT_STATE_VALUES[state],
        None if receipt is None else _receipt_record(receipt),
        tuple(_attempt_record(a) for a in attempts) if attempts else (),
        error,
        resolved_by,
        owner,
        created_at,
        updated_at,
    )


def fresh_intent_record(message: Message, now: datetime) -> IntentRecord:
    """The record of ``Intent.for_message(message, now=now)`` (its id aside), without
    building the intent."""
    m = message.__dict__
    key, reference, to = m["idempotency_key"], m["reference"], m["to"]
    return (key, reference, to, _IN_FLIGHT, None, (), None, None, process_token(), now, now)


def _attempt_record(attempt: IntentAttempt) -> tuple[Any, ...]:
    d = attempt.__dict__
    kind: ErrorKind | None = d["kind"]
    return (d["provider"], None if kind is None else kind.value, d["may_have_been_sent"])


def _receipt_record(receipt: Receipt) -> tuple[Any, ...]:
    d = receipt.__dict__
    return tuple(_STATE_VALUES[d[f]] if f == "state" else d[f] for f in RECEIPT_FIELDS)


def load_intent(intent_id: str, record: IntentRecord) -> Intent:
    values = dict(zip(INTENT_FIELDS, (intent_id, *record), strict=True))
    values["state"] = _INTENT_STATES[record[_I_STATE]]
    receipt = record[_I_RECEIPT]
    if receipt is not None:
        fields = dict(zip(RECEIPT_FIELDS, receipt, strict=True))
        fields["state"] = _STATES[receipt[_R_STATE]]
        values["receipt"] = trusted(Receipt, fields)
    values["attempts"] = tuple(
        trusted(
            IntentAttempt,
            {"provider": p, "kind": None if k is None else _KINDS[k], "may_have_been_sent": m},
        )
        for p, k, m in record[_I_ATTEMPTS]
    )
    return trusted(Intent, values)


def intent_key(record: IntentRecord) -> str | None:
    key: str | None = record[_I_KEY]
    return key


def intent_state(record: IntentRecord) -> IntentState:
    return _INTENT_STATES[record[_I_STATE]]


def intent_done(record: IntentRecord) -> bool:
    return intent_state(record).resolved


def _check(model: str, found: tuple[str, ...], *expected: str) -> None:
    """The records above list every field in declaration order: a model that gains a
    field must be taught here first."""
    if found != expected:  # pragma: no cover - a guard for whoever changes the models
        raise TypeError(f"mimgw.ledger._records: {model} changed; update its record")


_check(
    "LedgerEntry",
    ENTRY_FIELDS,
    *("provider", "message_id", "reference", "to", "state", "attempt", "submitted"),
    *("report", "text", "sender", "category", "next_attempt_at", "settled"),
    *("created_at", "updated_at"),
)
_check(
    "Intent",
    INTENT_FIELDS,
    *("id", "key", "reference", "to", "state", "receipt", "attempts", "error"),
    *("resolved_by", "owner", "created_at", "updated_at"),
)
