"""Both ledgers behind one interface: monotonic, de-duplicated, reports before submits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimgw import DeliveryReport, Message, Receipt, State
from mimgw.errors import ConfigurationError, MimgwError
from mimgw.ledger import Ledger, LedgerError, MemoryLedger, SqliteLedger

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def receipt(message_id: str = "m1", provider: str = "gw", reference: str = "ref") -> Receipt:
    return Receipt(
        provider=provider, message_id=message_id, to="8801712345678", reference=reference
    )


def report(
    state: State, message_id: str = "m1", provider: str = "gw", **kw: object
) -> DeliveryReport:
    return DeliveryReport(provider=provider, message_id=message_id, state=state, **kw)  # type: ignore[arg-type]


LedgerFactory = Callable[[], Ledger]


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    led: Ledger = MemoryLedger() if request.param == "memory" else SqliteLedger(tmp_path / "l.db")
    yield led
    await led.aclose()


async def test_submit_then_reports_move_forward_only(ledger: Ledger) -> None:
    entry = await ledger.record_submit(receipt())
    assert (entry.state, entry.attempt, entry.submitted) == (State.ACCEPTED, 1, True)
    entry, changed = await ledger.record_report(report(State.SENT))
    assert changed and entry.state is State.SENT
    entry, changed = await ledger.record_report(report(State.PENDING))
    assert not changed and entry.state is State.SENT
    entry, changed = await ledger.record_report(report(State.DELIVERED))
    assert changed and entry.state is State.DELIVERED
    entry, changed = await ledger.record_report(report(State.UNDELIVERABLE))
    assert not changed and entry.state is State.DELIVERED
    got = await ledger.get("gw", "m1")
    assert got is not None and got.as_report().state is State.DELIVERED
    assert got.as_report().reference == "ref"


async def test_duplicate_reports_are_ignored(ledger: Ledger) -> None:
    await ledger.record_submit(receipt())
    _first, changed = await ledger.record_report(report(State.SENT, reason="first"))
    assert changed
    again, changed = await ledger.record_report(report(State.SENT, reason="second"))
    assert not changed
    assert again.report is not None and again.report.reason == "first"


async def test_a_report_before_its_submit_is_kept_and_matched(ledger: Ledger) -> None:
    entry, changed = await ledger.record_report(report(State.DELIVERED, to="8801712345678"))
    assert changed and not entry.submitted and entry.reference is None
    entry = await ledger.record_submit(receipt())
    assert entry.submitted and entry.state is State.DELIVERED and entry.reference == "ref"
    assert [e.message_id for e in await ledger.by_reference("ref")] == ["m1"]


async def test_lookups_by_id_provider_and_reference(ledger: Ledger) -> None:
    await ledger.record_submit(receipt("same", provider="a", reference="r1"))
    await ledger.record_submit(receipt("same", provider="b", reference="r2"))
    await ledger.record_submit(receipt("other", provider="a", reference="r1"), attempt=2)
    assert {e.provider for e in await ledger.find("same")} == {"a", "b"}
    assert [e.provider for e in await ledger.find("same", provider="b")] == ["b"]
    assert [e.attempt for e in await ledger.by_reference("r1")] == [1, 2]
    assert await ledger.get("c", "same") is None
    assert await ledger.find("nope") == []


async def test_text_is_kept_only_when_given_and_erased_on_settle(ledger: Ledger) -> None:
    msg = Message(to="01712345678", text="secret code 1234", reference="ref")
    plain = await ledger.record_submit(receipt("m0"))
    assert plain.text is None and plain.message() is None
    kept = await ledger.record_submit(receipt(), message=msg)
    assert kept.text == "secret code 1234"
    again = kept.message()
    assert again is not None and (again.reference, again.to) == ("ref", "8801712345678")
    await ledger.settle("gw", "m1")
    settled = await ledger.get("gw", "m1")
    assert settled is not None and settled.settled and settled.text is None


async def test_scheduling_and_due(ledger: Ledger) -> None:
    for i in range(3):
        await ledger.record_submit(receipt(f"m{i}"))
    await ledger.schedule("gw", "m0", T0 + timedelta(seconds=30))
    await ledger.schedule("gw", "m1", T0 + timedelta(seconds=10))
    await ledger.schedule("gw", "m2", T0 + timedelta(seconds=10, microseconds=1))
    assert await ledger.due(T0) == []
    due = await ledger.due(T0 + timedelta(seconds=10))
    assert [e.message_id for e in due] == ["m1"]
    due = await ledger.due(T0 + timedelta(minutes=1))
    assert [e.message_id for e in due] == ["m1", "m2", "m0"]
    assert len(await ledger.due(T0 + timedelta(minutes=1), limit=2)) == 2
    await ledger.settle("gw", "m1")
    await ledger.schedule("gw", "m2", None)
    await ledger.schedule("gw", "m1", T0)  # settled entries are not rescheduled
    assert [e.message_id for e in await ledger.due(T0 + timedelta(minutes=1))] == ["m0"]


STATES = [State.UNKNOWN, State.ACCEPTED, State.PENDING, State.SENT, State.DELIVERED]
FAILED = [State.UNDELIVERABLE, State.EXPIRED, State.REJECTED]


def expected_state(states: list[State]) -> State:
    current = State.ACCEPTED
    for s in states:
        current = current.advance(s)
    return current


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.data(),
    states=st.lists(st.sampled_from(STATES + FAILED), min_size=1, max_size=8),
    submit_at=st.integers(min_value=0, max_value=8),
)
async def test_ledger_is_monotonic_under_shuffled_and_repeated_reports(
    data: st.DataObject, states: list[State], submit_at: int, tmp_path: Path
) -> None:
    order = data.draw(st.permutations(states + states[:2]))
    for make in (MemoryLedger, lambda: SqliteLedger(":memory:")):
        led: Ledger = make()
        seen: list[State] = []
        previous = State.UNKNOWN
        for i, state in enumerate(order):
            if i == min(submit_at, len(order) - 1):
                await led.record_submit(receipt())
            entry, _ = await led.record_report(report(state))
            seen.append(state)
            # never backwards; a final state never changes
            assert entry.state.rank >= previous.rank
            if previous.final:
                assert entry.state is previous
            previous = entry.state
        final = await led.get("gw", "m1")
        assert final is not None and final.submitted
        assert final.state is expected_state(seen)
        await led.aclose()


async def test_sqlite_ledger_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "ledger.db"
    first = SqliteLedger(path)
    await first.record_submit(receipt())
    await first.record_report(report(State.DELIVERED))
    await first.aclose()
    second = SqliteLedger(path)
    entry = await second.get("gw", "m1")
    assert entry is not None and entry.state is State.DELIVERED
    await second.aclose()


async def test_sqlite_errors_are_mimgw_errors(tmp_path: Path) -> None:
    led = SqliteLedger(tmp_path / "x.db")
    await led.aclose()
    with pytest.raises(LedgerError):
        await led.get("gw", "m1")
    assert issubclass(LedgerError, MimgwError)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    lazy = SqliteLedger(blocker / "ledger.db")  # nothing touches the disk yet
    with pytest.raises(ConfigurationError, match=r"ledger\.path"):  # opened on first use
        await lazy.get("gw", "m1")
    await lazy.aclose()
