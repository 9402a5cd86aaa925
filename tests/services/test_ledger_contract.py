"""One ledger contract, three backends: memory, SQLite and PostgreSQL (real server).

The entry tests of ``tests/test_ledger.py`` run here against every backend (through the
``ledger`` fixture below), plus the write-ahead intent contract of DESIGN.md section 9.
Only the PostgreSQL cases need a service (marked ``services``).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mimgw import Message, Receipt, State
from mimgw.ledger import Intent, IntentState, Ledger, LedgerError, MemoryLedger, SqliteLedger
from mimgw.testing import FakeClock

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.services)]


def _entry_contract() -> object:
    """tests/test_ledger.py, loaded under its own name (its tests take a ``ledger``)."""
    name = "mimgw_entry_contract"
    if name not in sys.modules:
        path = Path(__file__).parents[1] / "test_ledger.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_contract = _entry_contract()
for _name in dir(_contract):
    _test = getattr(_contract, _name)
    if _name.startswith("test_") and "ledger" in getattr(_test, "__code__", _name).co_varnames:
        globals()[_name] = _test
del _name, _test


@pytest.fixture(params=BACKENDS)
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    clock = FakeClock()
    led: Ledger
    if request.param == "memory":
        led = MemoryLedger(clock=clock.now)
    elif request.param == "sqlite":
        led = SqliteLedger(tmp_path / "l.db", clock=clock.now)
    else:
        from mimgw.ledger import PostgresLedger

        dsn = request.getfixturevalue("pg_dsn")
        led = PostgresLedger(dsn, table=request.getfixturevalue("pg_table"), clock=clock.now)
    led.clock = clock  # type: ignore[attr-defined]
    yield led
    await led.aclose()


def intent(key: str | None = None, *, at: datetime | None = None) -> Intent:
    now = at or datetime.now(UTC)
    return Intent.for_message(
        Message(to="01712345678", text="code 4711", idempotency_key=key), now=now
    )


def accepted(i: Intent, message_id: str = "m1", provider: str = "gw") -> Intent:
    receipt = Receipt(provider=provider, message_id=message_id, to=i.to, reference=i.reference)
    return i.finished(IntentState.ACCEPTED, now=datetime.now(UTC), receipt=receipt)


async def test_a_key_is_held_by_one_intent(ledger: Ledger) -> None:
    first = intent("k1")
    assert (await ledger.begin(first)).id == first.id
    second = intent("k1")
    held = await ledger.begin(second)
    assert held.id == first.id and held.state is IntentState.IN_FLIGHT
    got = await ledger.intent("k1")
    assert got is not None and got.id == first.id
    by_id = await ledger.intent(first.id)
    assert by_id is not None and by_id.key == "k1"
    assert await ledger.intent("nobody") is None
    assert (await ledger.begin(intent(None))).key is None  # keyless intents never clash
    assert (await ledger.begin(intent(None))).key is None


async def test_a_not_sent_intent_gives_its_key_up(ledger: Ledger) -> None:
    first = await ledger.begin(intent("k"))
    await ledger.finish(first.finished(IntentState.NOT_SENT, now=datetime.now(UTC)))
    second = intent("k")
    assert (await ledger.begin(second)).id == second.id
    got = await ledger.intent("k")
    assert got is not None and got.id == second.id
    # an UNKNOWN one keeps it: it may have been sent
    await ledger.finish(second.finished(IntentState.UNKNOWN, now=datetime.now(UTC)))
    third = intent("k")
    held = await ledger.begin(third)
    assert held.id == second.id and held.state is IntentState.UNKNOWN


async def test_finish_records_the_submit_with_the_intent(ledger: Ledger) -> None:
    i = await ledger.begin(intent("k"))
    msg = Message(to=i.to, text="kept", reference=i.reference)
    entry = await ledger.finish(accepted(i), attempt=1, message=msg)
    assert entry is not None and entry.submitted and entry.text == "kept"
    assert entry.reference == i.reference
    got = await ledger.get("gw", "m1")
    assert got == entry
    held = await ledger.intent("k")
    assert held is not None and held.state is IntentState.ACCEPTED
    assert held.receipt is not None and held.receipt.message_id == "m1"
    unknown = i.finished(IntentState.UNKNOWN, now=datetime.now(UTC))
    assert await ledger.finish(unknown) is None


async def test_finish_never_steals_a_key_another_intent_holds(ledger: Ledger) -> None:
    holder = await ledger.begin(intent("k"))
    stranger = intent("k")  # never begun (its begin lost): finishing it keeps the holder
    await ledger.finish(stranger.finished(IntentState.NOT_SENT, now=datetime.now(UTC)))
    got = await ledger.intent("k")
    assert got is not None and got.id == holder.id


async def test_unresolved_lists_in_flight_and_unknown_oldest_first(ledger: Ledger) -> None:
    now = ledger.clock.now()  # type: ignore[attr-defined]
    old = await ledger.begin(intent("a", at=now - timedelta(seconds=600)))
    mid = await ledger.begin(intent("b", at=now - timedelta(seconds=300)))
    new = await ledger.begin(intent("c", at=now))
    done = await ledger.begin(intent("d", at=now - timedelta(seconds=900)))
    await ledger.finish(accepted(done, "m9"))
    await ledger.finish(mid.finished(IntentState.UNKNOWN, now=datetime.now(UTC)))
    assert [i.id for i in await ledger.unresolved()] == [old.id, mid.id, new.id]
    assert [i.id for i in await ledger.unresolved(timedelta(seconds=200))] == [old.id, mid.id]


async def test_batched_begin_and_finish(ledger: Ledger) -> None:
    batch = [intent(f"k{n % 50}") for n in range(60)]  # ten keys twice
    began = await ledger.begin_many(batch)
    assert [b.id for b in began[:50]] == [i.id for i in batch[:50]]
    assert [b.id for b in began[50:]] == [i.id for i in batch[:10]]
    finished = [(accepted(i, f"m{n}"), 1, None) for n, i in enumerate(batch[:50])]
    entries = await ledger.finish_many(finished)
    assert [e.message_id if e else None for e in entries] == [f"m{n}" for n in range(50)]
    assert await ledger.unresolved() == []
    assert await ledger.begin_many([]) == [] and await ledger.finish_many([]) == []


async def test_resolve_by_hand(ledger: Ledger) -> None:
    a = await ledger.begin(intent("a"))
    b = await ledger.begin(intent("b"))
    freed = await ledger.resolve("a", sent=False, note="no trace at the gateway")
    assert (
        freed.state is IntentState.NOT_SENT
        and freed.resolved_by == "operator: no trace at the gateway"
    )
    again = intent("a")
    assert (await ledger.begin(again)).id == again.id
    took = await ledger.resolve(b.id, sent=True, provider="gw", message_id="m7")
    assert took.state is IntentState.ACCEPTED
    entry = await ledger.get("gw", "m7")
    assert entry is not None and entry.reference == b.reference
    with pytest.raises(LedgerError):
        await ledger.resolve(b.id, sent=False)
    with pytest.raises(LedgerError):
        await ledger.resolve("nobody", sent=False)
    assert a.id != again.id


async def test_restore_undoes_a_claim(ledger: Ledger) -> None:
    await ledger.record_submit(Receipt(provider="gw", message_id="m1", to="8801712345678"))
    await ledger.schedule("gw", "m1", datetime(2025, 1, 1, tzinfo=UTC))
    before = await ledger.get("gw", "m1")
    assert before is not None
    assert await ledger.settle("gw", "m1") and not await ledger.settle("gw", "m1")
    await ledger.restore(before)
    assert await ledger.get("gw", "m1") == before
    [due] = await ledger.due(datetime(2025, 1, 2, tzinfo=UTC))
    assert due == before and due.state is State.ACCEPTED
