"""PostgresLedger against a real PostgreSQL: several processes racing on one ledger,
batched writes, schema versions, errors. The shared contract is test_ledger_contract.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from mimgw import ConfigurationError, MimgwError, OutcomeUnknownError, Receipt, State
from mimgw.ledger import Intent, IntentState, LedgerError, PostgresLedger, _pg_schema
from mimgw.models import Message

pytestmark = pytest.mark.services

WORKER = Path(__file__).with_name("pg_race_worker.py")
PROCESSES = 4


def race(dsn: str, table: str, mode: str, n: int) -> list[list[str]]:
    """Run PROCESSES workers that start together; each returns what it won."""
    procs = [
        subprocess.Popen(  # noqa: S603 - our own worker script
            [sys.executable, str(WORKER), dsn, table, mode, str(seed), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in range(PROCESSES)
    ]
    for p in procs:  # every worker has its pool open and the schema checked
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line == b"ready\n", (line, p.stderr.read().decode()[-2000:] if p.stderr else "")
    for p in procs:  # then all go at once
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out))
    return results


async def rows(dsn: str, template: str, table: str) -> list[Any]:
    """Run ``template`` with ``{t}`` replaced by the test's table prefix."""
    sql = template.format(t=table)
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def intent(key: str | None) -> Intent:
    message = Message(to="01712345678", text="x", idempotency_key=key)
    return Intent.for_message(message, now=datetime.now(UTC))


@pytest.mark.parametrize("mode", ["begin", "begin_many"])
async def test_processes_racing_on_the_same_keys_each_key_won_once(
    pg_dsn: str, pg_table: str, mode: str
) -> None:
    n = 150
    await PostgresLedger(pg_dsn, table=pg_table).aclose()  # nothing opened yet: no tables
    results = race(pg_dsn, pg_table, mode, n)
    wins = Counter(k for won in results for k in won)
    assert sorted(wins) == sorted(f"k{i}" for i in range(n))
    assert set(wins.values()) == {1}, "a key was won twice"
    assert sum(1 for won in results if won) > 1, "no overlap: one process won everything"
    stored = await rows(pg_dsn, "SELECT key, count(*) FROM {t}_intents GROUP BY key", pg_table)
    assert len(stored) == n and all(r[1] == 1 for r in stored)


async def test_racing_takeovers_of_not_sent_keys_leave_one_holder(
    pg_dsn: str, pg_table: str
) -> None:
    n = 100
    led = PostgresLedger(pg_dsn, table=pg_table)
    old = await led.begin_many([intent(f"k{i}") for i in range(n)])
    done = datetime.now(UTC)
    await led.finish_many([(i.finished(IntentState.NOT_SENT, now=done), 1, None) for i in old])
    results = race(pg_dsn, pg_table, "begin", n)
    wins = Counter(k for won in results for k in won)
    assert len(wins) == n and set(wins.values()) == {1}
    for i in old[:10]:
        held = await led.intent(i.key or "")
        assert held is not None and held.id != i.id and held.state is IntentState.IN_FLIGHT
        history = await led.intent(i.id)
        assert history is not None and history.state is IntentState.NOT_SENT and history.key is None
    await led.aclose()


async def test_concurrent_claims_have_exactly_one_winner(pg_dsn: str, pg_table: str) -> None:
    n = 200
    led = PostgresLedger(pg_dsn, table=pg_table)
    for i in range(n):
        await led.record_submit(Receipt(provider="gw", message_id=f"k{i}", to="8801712345678"))
        await led.schedule("gw", f"k{i}", datetime(2025, 1, 1, tzinfo=UTC))
    assert len(await led.due(datetime(2025, 1, 2, tzinfo=UTC))) == n
    results = race(pg_dsn, pg_table, "settle", n)
    wins = Counter(k for won in results for k in won)
    assert len(wins) == n and set(wins.values()) == {1}
    assert sum(1 for won in results if won) > 1
    assert await led.due(datetime(2025, 1, 2, tzinfo=UTC)) == []
    await led.aclose()


async def test_concurrent_reports_never_move_a_message_back(pg_dsn: str, pg_table: str) -> None:
    n = 60
    led = PostgresLedger(pg_dsn, table=pg_table)
    for i in range(0, n, 2):  # half submitted first, half only ever reported
        await led.record_submit(Receipt(provider="gw", message_id=f"k{i}", to="8801712345678"))
    results = race(pg_dsn, pg_table, "report", n)
    assert not [w for won in results for w in won if w.startswith("BACKWARDS")]
    sent: dict[str, list[State]] = {}
    for won in results:
        for item in won:
            key, state = item.split("=")
            sent.setdefault(key, []).append(State(state))
    for i in range(n):
        key = f"k{i}"
        states = sent[key] + ([State.ACCEPTED] if i % 2 == 0 else [])
        entry = await led.get("gw", key)
        assert entry is not None
        assert entry.state.rank == max(s.rank for s in states), (key, states, entry.state)
        assert entry.submitted is (i % 2 == 0)
    await led.aclose()


class CountingConnection(asyncpg.Connection):  # type: ignore[misc]
    statements = 0

    async def _execute(self, *args: Any, **kwargs: Any) -> Any:
        CountingConnection.statements += 1
        return await super()._execute(*args, **kwargs)

    async def executemany(self, *args: Any, **kwargs: Any) -> Any:
        CountingConnection.statements += 1
        return await super().executemany(*args, **kwargs)


async def test_bulk_writes_are_a_few_statements_whatever_their_size(
    pg_dsn: str, pg_table: str
) -> None:
    pool = await asyncpg.create_pool(
        pg_dsn, min_size=1, max_size=2, connection_class=CountingConnection
    )
    led = PostgresLedger(pool=pool, table=pg_table)
    await led.get("warm", "up")
    n = 2000
    batch = [intent(f"k{i}") for i in range(n)]
    CountingConnection.statements = 0
    began = await led.begin_many(batch)
    assert [b.id for b in began] == [i.id for i in batch]
    assert CountingConnection.statements <= 2
    now = datetime.now(UTC)
    done = [
        (
            i.finished(
                IntentState.ACCEPTED,
                now=now,
                receipt=Receipt(provider="gw", message_id=f"m{n}", to=i.to, reference=i.reference),
            ),
            1,
            None,
        )
        for n, i in enumerate(batch)
    ]
    CountingConnection.statements = 0
    entries = await led.finish_many(done)
    assert CountingConnection.statements <= 4
    assert all(e is not None and e.submitted for e in entries)
    assert await led.unresolved() == []
    await led.aclose()
    assert not pool._closed  # a pool it was given is the caller's to close
    await pool.close()


async def test_a_newer_schema_is_refused_and_a_foreign_table_too(
    pg_dsn: str, pg_table: str
) -> None:
    led = PostgresLedger(pg_dsn, table=pg_table)
    await led.get("gw", "m")
    await led.aclose()
    await rows(pg_dsn, "UPDATE {t}_meta SET value = '99' WHERE name = 'schema_version'", pg_table)
    newer = PostgresLedger(pg_dsn, table=pg_table)
    with pytest.raises(ConfigurationError, match=r"schema version 99.*upgrade mimgw"):
        await newer.get("gw", "m")
    await newer.aclose()
    await rows(pg_dsn, "DROP TABLE {t}_meta", pg_table)
    foreign = PostgresLedger(pg_dsn, table=pg_table)
    with pytest.raises(ConfigurationError, match="no mimgw schema version"):
        await foreign.get("gw", "m")
    await foreign.aclose()


async def test_an_older_schema_is_upgraded_once_in_place(
    pg_dsn: str, pg_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = PostgresLedger(pg_dsn, table=pg_table)
    await old.record_submit(Receipt(provider="gw", message_id="m1", to="8801712345678"))
    await old.aclose()
    version = _pg_schema.SCHEMA_VERSION
    monkeypatch.setattr(_pg_schema, "SCHEMA_VERSION", version + 1)
    monkeypatch.setattr(
        _pg_schema, "UPGRADES", {version: ("ALTER TABLE {entries} ADD COLUMN note TEXT",)}
    )
    ledgers = [PostgresLedger(pg_dsn, table=pg_table) for _ in range(4)]
    found = await asyncio.gather(*(led.get("gw", "m1") for led in ledgers))  # all at once
    assert all(e is not None and e.state is State.ACCEPTED for e in found)
    meta = await rows(pg_dsn, "SELECT value FROM {t}_meta", pg_table)
    assert [r[0] for r in meta] == [str(version + 1)]
    cols = await rows(
        pg_dsn,
        "SELECT column_name FROM information_schema.columns WHERE table_name = '{t}'",
        pg_table,
    )
    assert "note" in {r[0] for r in cols}
    for led in ledgers:
        await led.aclose()


async def test_errors_are_mimgw_errors_without_the_password(pg_dsn: str, pg_table: str) -> None:
    secret = "s3cr3t-pw"
    with pytest.raises(ConfigurationError, match=r"ledger\.url"):
        PostgresLedger("mysql://u@h/db")
    with pytest.raises(ConfigurationError, match=r"ledger\.table"):
        PostgresLedger(pg_dsn, table="bad; drop table x")
    down = PostgresLedger(f"postgresql://postgres:{secret}@127.0.0.1:1/test", table=pg_table)
    assert secret not in repr(down)
    with pytest.raises(LedgerError) as caught:
        await down.get("gw", "m")
    assert secret not in str(caught.value) and "127.0.0.1" in str(caught.value)
    nodb = PostgresLedger(f"postgresql://postgres:{secret}@127.0.0.1:5432/no_such_db_x")
    with pytest.raises(ConfigurationError) as bad:
        await nodb.get("gw", "m")
    assert secret not in str(bad.value) and "no_such_db_x" in str(bad.value)
    led = PostgresLedger(pg_dsn, table=pg_table)
    await led.get("gw", "m")
    await rows(pg_dsn, "DROP TABLE {t}", pg_table)  # storage failing under a running ledger
    with pytest.raises(LedgerError, match="UndefinedTable"):
        await led.get("gw", "m")
    await led.aclose()
    with pytest.raises(LedgerError, match="closed"):
        await led.get("gw", "m")
    assert issubclass(LedgerError, MimgwError)


async def test_a_gateway_on_postgres_sends_a_key_once_and_redelivers(
    pg_dsn: str, pg_table: str
) -> None:
    from mimgw.retry import RedeliveryPolicy
    from mimgw.testing import FakeClock, FakeProvider, fake_gateway_for

    clock = FakeClock()
    fake = FakeProvider(name="primary")
    policy = RedeliveryPolicy(delays=(timedelta(seconds=60),))
    gateways = [
        fake_gateway_for(
            fake,
            clock=clock,
            redelivery=policy,
            ledger=PostgresLedger(pg_dsn, table=pg_table, clock=clock.now),
        )
        for _ in range(2)
    ]
    outcomes = await asyncio.gather(
        *(gw.send("01712345678", "code 1", idempotency_key="otp-1") for gw in gateways * 3),
        return_exceptions=True,
    )
    assert len(fake.submits) == 1
    sent = [o for o in outcomes if isinstance(o, Receipt)]
    assert sent and len({r.message_id for r in sent}) == 1
    # a send racing the one in flight is refused as unknown, never sent again
    assert all(isinstance(o, OutcomeUnknownError) for o in outcomes if o not in sent)
    again = await gateways[1].send("01712345678", "code 1", idempotency_key="otp-1")
    assert again.message_id == sent[0].message_id and len(fake.submits) == 1
    fake.report(sent[0].message_id, State.UNDELIVERABLE, permanent=False, retries_allowed=1)
    await gateways[0].fetch_reports()
    clock.advance(60)
    claims = await asyncio.gather(*(gw.redeliver_due() for gw in gateways))
    assert sum(len(c) for c in claims) == 1 and len(fake.submits) == 2
    history = await gateways[1].history(sent[0].reference)
    assert [e.attempt for e in history] == [1, 2]
    for gw in gateways:
        await gw.aclose()
