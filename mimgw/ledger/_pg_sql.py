"""The PostgreSQL ledger's statements and row conversions (see :mod:`mimgw.ledger.postgres`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from mimgw.ledger._json_rows import load_entry as load
from mimgw.ledger._json_rows import load_intent
from mimgw.ledger._pg_schema import Tables
from mimgw.ledger.entry import LedgerEntry
from mimgw.ledger.intent import Intent

__all__ = [
    "Statements",
    "columns",
    "entry_row",
    "intent_columns",
    "json_time",
    "load",
    "load_intent",
]


class Statements:
    """The SQL of one ledger, its table names filled in once."""

    def __init__(self, t: Tables) -> None:
        self.entry = t.sql("SELECT data FROM {entries} WHERE provider = $1 AND message_id = $2")
        self.lock = t.sql(
            "SELECT e.data FROM {entries} e JOIN unnest($1::text[], $2::text[]) AS k(p, m) "
            "ON e.provider = k.p AND e.message_id = k.m "
            "ORDER BY e.provider, e.message_id FOR UPDATE OF e"
        )
        self.insert = t.sql(
            "INSERT INTO {entries} ({cols}) "
            "SELECT u.p, u.m, u.r, u.s, u.d, u.x, u.c, u.j::jsonb FROM unnest($1::text[], "
            "$2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::boolean[], "
            "$7::timestamptz[], $8::text[]) AS u(p, m, r, s, d, x, c, j) "
            "ON CONFLICT DO NOTHING RETURNING provider, message_id"
        )
        self.update = t.sql(
            "UPDATE {entries} e SET reference = u.r, state = u.s, due_at = u.d, settled = u.x, "
            "data = u.j::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
            "$5::timestamptz[], $6::boolean[], $7::timestamptz[], $8::text[]) "
            "AS u(p, m, r, s, d, x, c, j) WHERE e.provider = u.p AND e.message_id = u.m"
        )
        self.restore = t.sql(
            "INSERT INTO {entries} ({cols}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) "
            "ON CONFLICT (provider, message_id) DO UPDATE SET reference = excluded.reference, "
            "state = excluded.state, due_at = excluded.due_at, settled = excluded.settled, "
            "created_at = excluded.created_at, data = excluded.data"
        )
        self.intent_insert = t.sql(
            "INSERT INTO {intents} (id, key, state, created_at, data) "
            "SELECT u.i, u.k, u.s, u.c, u.j::jsonb FROM unnest($1::text[], $2::text[], "
            "$3::text[], $4::timestamptz[], $5::text[]) AS u(i, k, s, c, j) "
            "ON CONFLICT DO NOTHING RETURNING id"
        )


_TIME = TypeAdapter(datetime)


def json_time(value: datetime | None) -> str | None:
    """A time as the entries' JSON holds it (pydantic's own rendering)."""
    return None if value is None else str(_TIME.dump_python(value, mode="json"))


def entry_row(e: LedgerEntry) -> tuple[Any, ...]:
    return (
        e.provider,
        e.message_id,
        e.reference,
        e.state.value,
        e.next_attempt_at,
        e.settled,
        e.created_at,
        e.model_dump_json(),
    )


def columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)]


def intent_columns(intents: Sequence[Intent]) -> list[list[Any]]:
    return [
        [i.id for i in intents],
        [i.key for i in intents],
        [i.state.value for i in intents],
        [i.created_at for i in intents],
        [i.model_dump_json() for i in intents],
    ]
