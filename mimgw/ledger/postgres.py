"""The PostgreSQL ledger: one truth for every worker, pod and queue consumer (extra ``postgres``).

Every write that depends on what is stored happens in one transaction under a row lock
(``SELECT … FOR UPDATE``), applying the same pure transitions as the other backends
(:meth:`LedgerEntry.merge_report`, :meth:`LedgerEntry.merge_submit`): a late report
never moves a message back, whichever worker records it, and two workers can never
both win a redelivery claim (:meth:`settle` is one ``UPDATE … WHERE NOT settled``).
Idempotency keys are a ``UNIQUE`` column; :meth:`begin` is ``INSERT … ON CONFLICT``.
Bulk writes (:meth:`begin_many`, :meth:`finish_many`) are one transaction of a few
array statements whatever their size. See ``docs/ledger.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import sniffio

from mimgw.errors import ConfigurationError
from mimgw.ledger import _pg_schema as schema
from mimgw.ledger._pg_sql import (
    Statements,
    columns,
    entry_row,
    intent_columns,
    json_time,
    load,
    load_intent,
)
from mimgw.ledger.base import Finish, Ledger
from mimgw.ledger.entry import LedgerEntry, LedgerError, utcnow
from mimgw.ledger.intent import Intent, IntentState
from mimgw.models import DeliveryReport, Message, Receipt

__all__ = ["PostgresLedger"]

T = TypeVar("T")
Key = tuple[str, str]
Step = Callable[[LedgerEntry | None], LedgerEntry]

_RETRY = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_OPEN = [IntentState.IN_FLIGHT.value, IntentState.UNKNOWN.value]
_ROUNDS = 8


class PostgresLedger(Ledger):
    """Entries and intents in PostgreSQL, shared by every process that uses the same tables.

    ``dsn`` is a ``postgresql://user:password@host:port/database`` URL (``None``: the
    ``PG*`` environment variables); ``pool`` an existing :class:`asyncpg.Pool` to use
    instead (it is not closed by :meth:`aclose`). The pool is opened and the tables are
    created (or upgraded) on first use. ``table`` names the entries table; intents and
    the schema version live in ``{table}_intents`` and ``{table}_meta``.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: Any = None,
        table: str = "mimgw_ledger",
        clock: Callable[[], datetime] = utcnow,
        max_connections: int = 10,
    ) -> None:
        if dsn is not None and pool is not None:
            raise ConfigurationError("ledger: give a DSN or a pool, not both")
        schema.check_dsn(dsn)
        self.tables = schema.Tables(table)
        self._dsn = dsn
        self._secrets = schema.dsn_secrets(dsn)
        self._pool: Any = pool
        self._owns_pool = pool is None
        self._max_connections = max_connections
        self._clock = clock
        self._ready = False
        self._closed = False
        self._lock: asyncio.Lock | None = None
        self._sql = Statements(self.tables)

    def __repr__(self) -> str:
        where = "pool" if not self._owns_pool else repr(schema.safe_dsn(self._dsn, self._secrets))
        return f"PostgresLedger({where}, table={self.tables.table!r})"

    # -- plumbing -------------------------------------------------------------------------

    async def _opened(self) -> Any:
        if self._closed:
            raise LedgerError("the PostgreSQL ledger is closed")
        if self._ready:
            return self._pool
        if sniffio.current_async_library() != "asyncio":
            raise ConfigurationError("ledger: PostgresLedger (asyncpg) runs on asyncio only")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._closed:
                raise LedgerError("the PostgreSQL ledger is closed")
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._max_connections
                    )
                except Exception as exc:
                    raise schema.open_error(exc, self._secrets) from None
            if not self._ready:
                with schema.guard(self._secrets):
                    async with self._pool.acquire() as conn:
                        await schema.ensure_schema(conn, self.tables)
                self._ready = True
        return self._pool

    async def _call(self, fn: Callable[[Any], Awaitable[T]], *, transaction: bool = False) -> T:
        """Run ``fn(connection)`` (in a transaction, retried after a deadlock)."""
        pool = await self._opened()
        with schema.guard(self._secrets):
            async with pool.acquire() as conn:
                if not transaction:
                    return await fn(conn)
                for attempt in range(_ROUNDS):
                    try:
                        async with conn.transaction():
                            return await fn(conn)
                    except _RETRY:
                        if attempt == _ROUNDS - 1:
                            raise
                        await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _merge(self, conn: Any, items: Sequence[tuple[Key, Step]]) -> list[LedgerEntry]:
        """Apply each step to its entry (in order) under row locks; returns each result.

        Rows that exist are locked and rewritten; missing ones are inserted, and an insert
        that loses a race to another writer is re-applied to the winner's row.
        """
        groups: dict[Key, list[int]] = {}
        for i, (key, _) in enumerate(items):
            groups.setdefault(key, []).append(i)
        results: list[LedgerEntry | None] = [None] * len(items)
        pending = sorted(groups)
        for _ in range(_ROUNDS):
            rows = await conn.fetch(self._sql.lock, *columns(pending))
            existing = {(e.provider, e.message_id): e for e in map(load, (r[0] for r in rows))}
            inserts: list[LedgerEntry] = []
            updates: list[LedgerEntry] = []
            for key in pending:
                start = current = existing.get(key)
                for i in groups[key]:
                    current = items[i][1](current)
                    results[i] = current
                assert current is not None
                if start is None:
                    inserts.append(current)
                elif current is not start:
                    updates.append(current)
            if updates:
                await conn.execute(self._sql.update, *columns([entry_row(e) for e in updates]))
            if not inserts:
                break
            won = await conn.fetch(self._sql.insert, *columns([entry_row(e) for e in inserts]))
            done = {(r[0], r[1]) for r in won}
            pending = [
                (e.provider, e.message_id)
                for e in inserts
                if (e.provider, e.message_id) not in done
            ]
            if not pending:
                break
        else:
            raise LedgerError("PostgreSQL ledger: too much contention on the same entries")
        return [r for r in results if r is not None]

    # -- intents ----------------------------------------------------------------------------

    async def _begin_one(self, conn: Any, intent: Intent) -> Intent:
        """``begin`` for an intent whose plain insert conflicted (its key is held)."""
        t = self.tables
        for _ in range(_ROUNDS):
            if intent.key is not None:
                row = await conn.fetchrow(
                    t.sql("SELECT data FROM {intents} WHERE key = $1 FOR UPDATE"), intent.key
                )
                if row is not None:
                    held = load_intent(row[0])
                    if held.state is not IntentState.NOT_SENT:
                        return held
                    # provably never sent: the key is free; the old intent stays as history
                    await conn.execute(
                        t.sql(
                            "UPDATE {intents} SET key = NULL, "
                            "data = data || '{{\"key\": null}}'::jsonb WHERE id = $1"
                        ),
                        held.id,
                    )
            if await conn.fetch(self._sql.intent_insert, *intent_columns([intent])):
                return intent
            same = await conn.fetchval(t.sql("SELECT data FROM {intents} WHERE id = $1"), intent.id)
            if same is not None:
                return load_intent(same)  # begun twice
        raise LedgerError("PostgreSQL ledger: too much contention on one idempotency key")

    async def begin(self, intent: Intent) -> Intent:
        return (await self.begin_many([intent]))[0]

    async def begin_many(self, intents: Sequence[Intent]) -> list[Intent]:
        if not intents:
            return []

        async def op(conn: Any) -> list[Intent]:
            won = {
                r[0] for r in await conn.fetch(self._sql.intent_insert, *intent_columns(intents))
            }
            out: list[Intent] = []
            for intent in intents:
                if intent.id in won:
                    won.discard(intent.id)  # the same id twice: the second one is "begun twice"
                    out.append(intent)
                else:
                    out.append(await self._begin_one(conn, intent))
            return out

        return await self._call(op, transaction=True)

    async def _finish_intents(self, conn: Any, intents: Sequence[Intent]) -> None:
        t = self.tables
        latest = {i.id: i for i in intents}  # the last update of an intent wins
        updated = await conn.fetch(
            t.sql(
                "UPDATE {intents} i SET state = u.s, data = CASE WHEN i.key IS NULL "
                "THEN u.j::jsonb || '{{\"key\": null}}'::jsonb ELSE u.j::jsonb END "
                "FROM unnest($1::text[], $2::text[], $3::text[]) AS u(i, s, j) "
                "WHERE i.id = u.i RETURNING i.id"
            ),
            list(latest),
            [i.state.value for i in latest.values()],
            [i.model_dump_json() for i in latest.values()],
        )
        found = {r[0] for r in updated}
        for intent in latest.values():
            if intent.id in found:
                continue
            if await conn.fetch(self._sql.intent_insert, *intent_columns([intent])):
                continue
            # another intent holds its key (this one never had it): keep it as history
            await conn.execute(
                t.sql(
                    "INSERT INTO {intents} (id, key, state, created_at, data) "
                    "VALUES ($1, NULL, $2, $3, $4::jsonb) ON CONFLICT (id) DO UPDATE "
                    "SET state = excluded.state, data = excluded.data"
                ),
                intent.id,
                intent.state.value,
                intent.created_at,
                intent.model_copy(update={"key": None}).model_dump_json(),
            )

    async def finish(
        self, intent: Intent, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry | None:
        return (await self.finish_many([(intent, attempt, message)]))[0]

    async def finish_many(self, items: Sequence[Finish]) -> list[LedgerEntry | None]:
        if not items:
            return []
        now = self._clock()
        submits: list[tuple[int, Key, Step]] = []
        for n, (intent, attempt, message) in enumerate(items):
            receipt = intent.receipt
            if intent.state is IntentState.ACCEPTED and receipt is not None and receipt.message_id:
                step = _submit_step(receipt, attempt, message, now)
                submits.append((n, (receipt.provider, receipt.message_id), step))

        async def op(conn: Any) -> list[LedgerEntry | None]:
            await self._finish_intents(conn, [i for i, _, _ in items])
            out: list[LedgerEntry | None] = [None] * len(items)
            if submits:
                merged = await self._merge(conn, [(k, s) for _, k, s in submits])
                for (n, _, _), entry in zip(submits, merged, strict=True):
                    out[n] = entry
            return out

        return await self._call(op, transaction=True)

    async def intent(self, ref: str) -> Intent | None:
        sql = self.tables.sql(
            "SELECT data FROM {intents} WHERE id = $1 OR key = $1 ORDER BY id = $1 DESC LIMIT 1"
        )
        data = await self._call(lambda conn: conn.fetchval(sql, ref))
        return None if data is None else load_intent(data)

    async def unresolved(self, older_than: timedelta | None = None) -> list[Intent]:
        # without older_than, every open intent: one stamped by a clock ahead of ours
        # (the Gateway's own ``now``, another host) is still unresolved
        limit = None if older_than is None else self._clock() - older_than
        sql = self.tables.sql(
            "SELECT data FROM {intents} WHERE state = ANY($1::text[]) "
            "AND ($2::timestamptz IS NULL OR created_at <= $2) ORDER BY created_at"
        )
        rows = await self._call(lambda conn: conn.fetch(sql, _OPEN, limit))
        return [load_intent(r[0]) for r in rows]

    # -- entries ----------------------------------------------------------------------------

    async def record_submit(
        self, receipt: Receipt, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry:
        step = _submit_step(receipt, attempt, message, self._clock())
        key = (receipt.provider, receipt.message_id)
        return (await self._call(lambda c: self._merge(c, [(key, step)]), transaction=True))[0]

    async def record_report(self, report: DeliveryReport) -> tuple[LedgerEntry, bool]:
        now = self._clock()
        before: list[LedgerEntry | None] = []

        def step(old: LedgerEntry | None) -> LedgerEntry:
            before.append(old)
            if old is None:
                return LedgerEntry.from_report(report, now=now)
            return old.merge_report(report, now=now)[0]

        key = (report.provider, report.message_id)
        [entry] = await self._call(lambda c: self._merge(c, [(key, step)]), transaction=True)
        return entry, entry is not before[-1]

    async def get(self, provider: str, message_id: str) -> LedgerEntry | None:
        data = await self._call(lambda conn: conn.fetchval(self._sql.entry, provider, message_id))
        return None if data is None else load(data)

    async def _select(self, sql: str, *args: Any) -> list[LedgerEntry]:
        rows = await self._call(lambda conn: conn.fetch(self.tables.sql(sql), *args))
        return [load(r[0]) for r in rows]

    async def find(self, message_id: str, *, provider: str | None = None) -> list[LedgerEntry]:
        if provider is not None:
            one = await self.get(provider, message_id)
            return [] if one is None else [one]
        return await self._select(
            "SELECT data FROM {entries} WHERE message_id = $1 ORDER BY created_at DESC",
            message_id,
        )

    async def by_reference(self, reference: str) -> list[LedgerEntry]:
        found = await self._select("SELECT data FROM {entries} WHERE reference = $1", reference)
        return sorted(found, key=lambda e: (e.attempt, e.created_at))

    async def schedule(self, provider: str, message_id: str, at: datetime | None) -> None:
        sql = self.tables.sql(
            "UPDATE {entries} SET due_at = $3, data = data || jsonb_build_object("
            "'next_attempt_at', $4::text, 'updated_at', $5::text) "
            "WHERE provider = $1 AND message_id = $2 AND NOT settled"
        )
        now = json_time(self._clock())
        await self._call(lambda c: c.execute(sql, provider, message_id, at, json_time(at), now))

    async def settle(self, provider: str, message_id: str) -> bool:
        sql = self.tables.sql(
            "UPDATE {entries} SET settled = true, due_at = NULL, data = data || "
            "jsonb_build_object('settled', true, 'text', NULL, 'next_attempt_at', NULL, "
            "'updated_at', $3::text) WHERE provider = $1 AND message_id = $2 AND NOT settled "
            "RETURNING 1"
        )
        now = json_time(self._clock())
        won = await self._call(lambda conn: conn.fetchval(sql, provider, message_id, now))
        return won is not None

    async def restore(self, entry: LedgerEntry) -> None:
        await self._call(lambda conn: conn.execute(self._sql.restore, *entry_row(entry)))

    async def due(self, now: datetime, *, limit: int | None = None) -> list[LedgerEntry]:
        # rows another worker is claiming right now are skipped, not waited for
        return await self._select(
            "SELECT data FROM {entries} WHERE NOT settled AND due_at IS NOT NULL "
            "AND due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
        )

    async def aclose(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None and self._owns_pool:
            with schema.guard(self._secrets):
                await pool.close()


def _submit_step(receipt: Receipt, attempt: int, message: Message | None, now: datetime) -> Step:
    def step(old: LedgerEntry | None) -> LedgerEntry:
        if old is None:
            return LedgerEntry.from_submit(receipt, attempt=attempt, message=message, now=now)
        return old.merge_submit(receipt, attempt=attempt, message=message, now=now)

    return step
