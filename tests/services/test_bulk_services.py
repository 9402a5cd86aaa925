"""Batched campaigns on ledgers shared by several workers: SQLite files and the real
PostgresLedger (PostgreSQL on 127.0.0.1:5432; the ``postgres`` cases are marked
``services``). One intent and one entry per recipient, keys and redelivery claims held
across workers, each batch recipient's reports on its own row. Gateways: the simulator."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from mimgw import Message, MimgwError, OutcomeUnknownError, Receipt, State
from mimgw.gateway import Gateway
from mimgw.gateway.batching import batch_parts
from mimgw.ledger import IntentState, Ledger, LedgerError, MemoryLedger, SqliteLedger
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.retry import RedeliveryPolicy
from mimgw.simulator import Simulator
from mimgw.testing import FakeClock, fake_gateway_for

V4, IMI = "mimsms_v4", "imiconnect"
POLICY = RedeliveryPolicy(delays=(timedelta(seconds=1),))
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.services)]


def number(i: int) -> str:
    return f"01816{i:06d}"


def wire(i: int) -> str:
    return f"8801816{i:06d}"


@dataclass
class Shared:
    """One storage; :meth:`open` gives each worker a ledger object of its own on it."""

    kind: str
    open: Callable[[FakeClock], Ledger]
    tables: tuple[str, str] = ("", "")
    """Its entries and intents tables."""
    query: Callable[[str], Awaitable[int]] | None = None

    async def count(self, table: int, where: str = "") -> int:
        assert self.query is not None
        sql = f"SELECT count(*) FROM {self.tables[table]} {where}"  # noqa: S608 - ours
        return await self.query(sql)


@pytest.fixture(params=["memory", *BACKENDS])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Shared:
    if request.param == "memory":
        one = MemoryLedger()
        return Shared("memory", lambda clock: one)
    if request.param == "sqlite":
        path = tmp_path / "shared.db"

        async def on_file(sql: str) -> int:
            with sqlite3.connect(path) as db:
                return int(db.execute(sql).fetchone()[0])

        tables = ("mimgw_ledger", "mimgw_intents")
        return Shared("sqlite", lambda c: SqliteLedger(path, clock=c.now), tables, on_file)
    import asyncpg  # type: ignore[import-untyped]

    from mimgw.ledger import PostgresLedger

    dsn, table = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_table")

    async def on_server(sql: str) -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    opened = lambda c: PostgresLedger(dsn, table=table, clock=c.now)  # noqa: E731
    return Shared("postgres", opened, (table, f"{table}_intents"), on_server)


def worker(sim: Simulator, shared: Shared, clock: FakeClock, *keys: str) -> Gateway:
    providers = [sim.provider(k) for k in keys]
    return fake_gateway_for(*providers, clock=clock, ledger=shared.open(clock), redelivery=POLICY)


def v4_of(gw: Gateway) -> MimSmsV4:
    provider = gw.providers[V4]
    assert isinstance(provider, MimSmsV4)
    return provider


async def test_two_workers_run_one_keyed_campaign_at_once(sim: Simulator, shared: Shared) -> None:
    clock, n = FakeClock(), 240
    messages = [
        Message(to=number(i), text="same" if i % 3 else f"own {i}", idempotency_key=f"k{i}")
        for i in range(n)
    ]
    first, second = worker(sim, shared, clock, V4), worker(sim, shared, clock, IMI, V4)
    async with first, second:
        a, b = await asyncio.gather(
            first.send_bulk(messages, concurrency=3), second.send_bulk(messages, concurrency=2)
        )
        copies = [sum(g.sent_count(m.to) for g in sim.gateways.values()) for m in messages]
        assert copies == [1] * n
        for x, y in zip(a.outcomes, b.outcomes, strict=True):
            assert isinstance(x, Receipt) or isinstance(y, Receipt)
            assert isinstance(x, Receipt | OutcomeUnknownError)
            assert isinstance(y, Receipt | OutcomeUnknownError)
            assert not (isinstance(x, Receipt) and isinstance(y, Receipt)) or x == y
        assert len({m.trxn_id for m in sim.mimsms_v4.messages}) < n // 2  # batches, not singles
        third = await second.send_bulk(messages)  # answered from the ledger, nothing sent
        assert all(isinstance(o, Receipt) for o in third.outcomes)
        assert sum(g.sent_count() for g in sim.gateways.values()) == n
        assert await first.ledger.unresolved() == []
        for message, receipt in zip(messages, third.receipts, strict=True):
            intent = await first.ledger.intent(message.idempotency_key or "")
            assert intent is not None and intent.state is IntentState.ACCEPTED
            assert intent.receipt == receipt
            entry = await first.ledger.get(receipt.provider, receipt.message_id)
            assert entry is not None and entry.to == receipt.to
    if shared.query is not None:  # one row per recipient, one keyed intent per key
        assert await shared.count(0) == n
        assert await shared.count(1, "WHERE key IS NOT NULL") == n
        assert await shared.count(1, "WHERE key IS NOT NULL AND state = 'accepted'") == n


class Early(httpx.AsyncBaseTransport):
    """The simulator; IMIconnect's reports are pushed to ``gateway`` once the gateway took
    a request and before its answer comes back (a report beats its submit)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim, self.inner = sim, sim.transport()
        self.gateway: Gateway | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        if self.gateway is not None:
            for message in self.sim.imiconnect.messages.values():
                if not message.pushed:
                    message.pushed = True
                    payload = json.dumps(self.sim.imiconnect.report_payload(message))
                    await self.gateway.ingest_webhook(IMI, payload.encode(), {})
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )


async def test_batch_reports_land_on_each_recipients_row(sim: Simulator, shared: Shared) -> None:
    clock, transport = FakeClock(), Early(sim)
    ledger = shared.open(clock)
    imi = sim.provider(IMI, client=httpx.AsyncClient(transport=transport))
    gw = fake_gateway_for(sim.provider(V4), imi, clock=clock, ledger=ledger)
    rows = {0: "Delivered", 1: "Absent subscriber for SM", 2: "Illegal subscriber"}
    states = [State.DELIVERED, State.UNDELIVERABLE, State.REJECTED, State.ACCEPTED]
    sim.imiconnect.deliver_after = 0
    sim.imiconnect.outcomes[wire(11)] = "Failed"
    async with gw:
        result = await gw.send_bulk([(number(i), "shared sale") for i in range(4)])
        parts = [batch_parts(r.message_id) for r in result.receipts]
        assert len({p[0] for p in parts if p}) == 1 and all(parts)
        trxn = result.receipts[0].message_id.split("/")[0]
        for _ in range(2):  # twice, newest first, then a late contrary row
            for i, row in sorted(rows.items(), reverse=True):
                v4_of(gw).parse_dlr(trxn, row, to=number(i))
        v4_of(gw).parse_dlr(trxn, "Delivered", to=number(1))
        await gw.flush()
        for i, receipt in enumerate(result.receipts):
            entry = await gw.ledger.get(V4, receipt.message_id)
            assert entry is not None and (entry.state, entry.to) == (states[i], wire(i))
            assert (await gw.status(receipt.message_id)).state is states[i]
        assert await gw.ledger.get(V4, trxn) is None

        transport.gateway = gw  # IMIconnect's reports beat its answer
        pushed = await gw.send_bulk([(number(i), "early") for i in range(10, 13)], provider=IMI)
        transport.gateway = None
        assert pushed.ok and sim.imiconnect.batch_sizes == [3]
        for i, receipt in enumerate(pushed.receipts, 10):
            entry = await gw.ledger.get(IMI, receipt.message_id)
            assert entry is not None and entry.submitted and entry.settled
            state = State.UNDELIVERABLE if i == 11 else State.DELIVERED
            assert (entry.state, entry.to, entry.reference) == (state, wire(i), receipt.reference)
        assert await gw.ledger.unresolved() == []


async def test_three_workers_redeliver_batch_recipients_once(
    sim: Simulator, shared: Shared
) -> None:
    clock = FakeClock()
    async with worker(sim, shared, clock, V4) as sender:
        messages = [Message(to=number(i), text=f"code {i}", reference=f"p{i}") for i in range(60)]
        result = await sender.send_bulk(messages)  # personalised: one DSMS request
        assert result.ok and sim.mimsms_v4.requests == 1
        trxn = result.receipts[0].message_id.split("/")[0]
        for i in range(60):
            row = "System failure" if i % 3 == 0 else "Delivered"
            v4_of(sender).parse_dlr(trxn, row, to=number(i))
        await sender.flush()
    clock.advance(5)
    workers = [worker(sim, shared, clock, V4) for _ in range(3)]
    async with workers[0], workers[1], workers[2]:
        done: list[Any] = await asyncio.gather(*(w.redeliver_due() for w in workers))
        resent = [o for outcomes in done for o in outcomes]
        assert len(resent) == 20 and all(isinstance(o, Receipt) for o in resent)
        assert all(batch_parts(o.message_id) is None for o in resent)  # each alone
        assert [sim.mimsms_v4.sent_count(m.to, m.text) for m in messages] == [
            2 if i % 3 == 0 else 1 for i in range(60)
        ]
        history = await workers[1].history("p3")
        assert [(e.attempt, e.settled) for e in history] == [(1, True), (2, False)]
        assert history[1].text == "code 3"  # its own text, kept for the next redelivery
        assert await workers[2].redeliver_due() == []


def hold_fresh_file(path: Path) -> sqlite3.Connection:
    """Another worker in the middle of creating the same new ledger file."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE IF NOT EXISTS mimgw_meta (name TEXT PRIMARY KEY, value TEXT)")
    return other


async def test_a_worker_opening_a_fresh_sqlite_file_another_is_creating(
    sim: Simulator, tmp_path: Path
) -> None:
    other = hold_fresh_file(tmp_path / "fresh.db")
    ledger = SqliteLedger(tmp_path / "fresh.db", busy_timeout=0.2)
    async with fake_gateway_for(sim.provider(V4), ledger=ledger) as gw:
        messages = [Message(to=number(i), text="fresh", idempotency_key=f"f{i}") for i in range(5)]
        blocked = await gw.send_bulk(messages)  # held longer than busy_timeout: nothing sent
        assert all(isinstance(o, MimgwError) for o in blocked.outcomes)
        assert sim.mimsms_v4.sent_count() == 0
        other.execute("COMMIT")
        other.close()
        assert (await gw.send_bulk(messages)).ok  # the file is free: the campaign goes out
        assert (await gw.send_bulk(messages)).ok and sim.mimsms_v4.sent_count() == 5


async def test_a_ledger_file_locked_at_open_is_a_storage_error(
    sim: Simulator, tmp_path: Path
) -> None:
    other = hold_fresh_file(tmp_path / "fresh.db")
    ledger = SqliteLedger(tmp_path / "fresh.db", busy_timeout=0.2)
    try:
        async with fake_gateway_for(sim.provider(V4), ledger=ledger) as gw:
            blocked = await gw.send_bulk([(number(i), "fresh") for i in range(3)])
    finally:
        other.close()
    assert sim.mimsms_v4.sent_count() == 0
    assert [type(o) for o in blocked.outcomes] == [LedgerError] * 3
