"""The memory ledger's batch writes (``begin_batch``, ``finish_batch``): records written
without the models, exactly as ``begin_many`` and ``finish_many`` write them; and the
Gateway's batches use them only where they are equivalent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mimgw import DeliveryReport, Message, Receipt, State
from mimgw.ledger import Intent, IntentAttempt, IntentState, LedgerEntry, MemoryLedger
from mimgw.ledger._records import (
    entry_record,
    fresh_intent_record,
    intent_record,
    submit_record,
)
from mimgw.ledger.base import Finish
from mimgw.ledger.memory import BatchFinish
from mimgw.models import new_references
from mimgw.simulator import Simulator
from mimgw.taxonomy import ErrorKind
from mimgw.testing import fake_gateway_for

T0 = datetime(2026, 3, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=3)


def clock() -> datetime:
    return T0 + timedelta(seconds=7)


def test_a_fresh_intent_record_is_the_record_of_the_fresh_intent() -> None:
    for key in (None, "k1"):
        message = Message(to="01712345678", text="hi", idempotency_key=key)
        intent = Intent.for_message(message, now=T0, id="a" * 32)
        assert fresh_intent_record(message, T0) == intent_record(intent)


def test_a_submit_record_is_the_record_of_the_entry_built_from_the_receipt() -> None:
    message = Message(to="01712345678", text="hi", sender="ME", category="promotional")
    for state in (State.ACCEPTED, State.DELIVERED):
        got = Receipt(provider="gw", message_id="T1", to=message.to, state=state, reference="r")
        for kept in (None, message):
            entry = LedgerEntry.from_submit(got, attempt=2, message=kept, now=T0)
            assert submit_record(got, 2, kept, T0) == entry_record(entry)


def scenario() -> tuple[list[Message], list[BatchFinish]]:
    """Messages of one batch, how each ended, and what happened in the ledger first."""
    messages = [
        Message(to="01712345670", text="accepted"),
        Message(to="01712345671", text="not sent"),
        Message(to="01712345672", text="keyed, accepted", idempotency_key="k-new"),
        Message(to="01712345673", text="keyed, unknown", idempotency_key="k-unknown"),
        Message(to="01712345674", text="key held by another", idempotency_key="k-held"),
        Message(to="01712345675", text="key of a send not sent", idempotency_key="k-free"),
        Message(to="01712345676", text="a report beat the submit"),
        Message(to="01712345677", text="delivered at once, kept"),
        Message(to="01712345678", text="accepted without an id"),
    ]
    ids = new_references(len(messages))
    tried = (
        IntentAttempt(provider="a", kind=ErrorKind.CONNECT_FAILED),
        IntentAttempt(provider="gw"),
    )

    def got(i: int, state: State = State.ACCEPTED, message_id: str | None = None) -> Receipt:
        m = messages[i]
        mid = f"T{i}" if message_id is None else message_id
        return Receipt(provider="gw", message_id=mid, to=m.to, reference=m.reference, state=state)

    accepted, unknown, not_sent = IntentState.ACCEPTED, IntentState.UNKNOWN, IntentState.NOT_SENT
    rows: list[BatchFinish] = [
        (messages[0], ids[0], accepted, got(0), tried[1:], None, False),
        (messages[1], ids[1], not_sent, None, tried[:1], "refused", False),
        (messages[2], ids[2], accepted, got(2), tried, None, True),
        (messages[3], ids[3], unknown, None, tried[1:], "lost", False),
        (messages[4], ids[4], not_sent, None, (), "held", False),
        (messages[5], ids[5], accepted, got(5), tried[1:], None, False),
        (messages[6], ids[6], accepted, got(6), tried[1:], None, True),
        (messages[7], ids[7], accepted, got(7, State.DELIVERED), tried[1:], None, True),
        (messages[8], ids[8], accepted, got(8, message_id=""), tried[1:], None, False),
    ]
    return messages, rows


async def prepared(ledgers: Sequence[MemoryLedger], messages: Sequence[Message]) -> None:
    """Another send holds ``k-held``; ``k-free`` was held by a send that sent nothing; a
    final report for message 6 arrived before its submit."""
    held = Intent.for_message(messages[4], now=T0)
    free = Intent.for_message(messages[5], now=T0)
    for ledger in ledgers:
        await ledger.begin(held)
        await ledger.begin(free)
        await ledger.finish(free.finished(IntentState.NOT_SENT, now=T0))
        await ledger.record_report(
            DeliveryReport(provider="gw", message_id="T6", state=State.UNDELIVERABLE)
        )


async def test_batch_writes_leave_the_ledger_as_the_model_writes_do() -> None:
    messages, rows = scenario()
    ids = [row[1] for row in rows]
    models, direct = MemoryLedger(clock=clock), MemoryLedger(clock=clock)
    assert direct.batch_direct
    await prepared((models, direct), messages)

    intents = [Intent.for_message(m, now=T0, id=i) for m, i in zip(messages, ids, strict=True)]
    held_models = await models.begin_many(intents)
    held_direct = direct.begin_batch(messages, ids, T0)
    assert [None if h.id == i else h for h, i in zip(held_models, ids, strict=True)] == held_direct
    assert [h is None for h in held_direct] == [True] * 4 + [False] + [True] * 4
    assert models._intents == direct._intents and models._keys == direct._keys

    finished: list[Finish] = [
        (
            Intent.finished_for(
                m, id=i, created_at=T0, state=s, now=T1, receipt=r, attempts=a, error=e
            ),
            1,
            m if k else None,
        )
        for m, i, s, r, a, e, k in rows
    ]
    entries = await models.finish_many(finished)
    built = direct.finish_batch(rows, created_at=T0, now=T1)
    assert models._intents == direct._intents and models._keys == direct._keys
    assert models._entries == direct._entries
    assert len(direct._entries) == 5  # one per accepted recipient with an id (6: merged)
    # the entries left out are new and not final: nothing follows them up
    assert built == [e for e in entries if e is not None and e.message_id in ("T6", "T7")]
    follow_up = [e for e in entries if e is not None and e.state.final and not e.settled]
    assert [e.message_id for e in follow_up] == ["T6", "T7"]
    assert follow_up == [e for e in built if e.state.final and not e.settled]
    kept = await direct.get("gw", "T7")
    assert kept is not None and kept.text == "delivered at once, kept"
    # accepted without an id: no entry can hold its receipt, its intent stays
    no_id = await direct.intent(ids[8])
    assert no_id is not None and no_id.state is IntentState.ACCEPTED
    assert no_id.receipt is not None and no_id.receipt.message_id == ""


async def test_a_ledger_that_hooks_a_batch_write_is_not_written_around() -> None:
    class Counting(MemoryLedger):
        async def finish_many(self, items: Sequence[Finish]) -> list[LedgerEntry | None]:
            return await super().finish_many(items)

    class Hooked(MemoryLedger):
        async def begin(self, intent: Intent) -> Intent:
            return await super().begin(intent)

    assert MemoryLedger().batch_direct
    assert not Counting().batch_direct
    assert not Hooked().batch_direct


@pytest.mark.parametrize("hooked", [False, True])
async def test_a_batch_writes_every_recipient_either_way(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, hooked: bool
) -> None:
    calls: list[str] = []

    class Hooking(MemoryLedger):
        async def begin_many(self, intents: Sequence[Intent]) -> list[Intent]:
            calls.append("begin_many")
            return await super().begin_many(intents)

        async def finish_many(self, items: Sequence[Finish]) -> list[LedgerEntry | None]:
            calls.append("finish_many")
            return await super().finish_many(items)

    built: list[Any] = []
    for name in ("for_message", "finished_for"):
        original = getattr(Intent, name).__func__

        def counting(cls: type[Intent], /, *args: Any, _f: Any = original, **kw: Any) -> Intent:
            built.append(1)
            return _f(cls, *args, **kw)  # type: ignore[no-any-return]

        monkeypatch.setattr(Intent, name, classmethod(counting))
    ledger = Hooking() if hooked else MemoryLedger()
    gw = fake_gateway_for(sim.provider("mimsms_v4"), ledger=ledger)
    messages = [Message(to=f"01914{i:06d}", text=f"hi {i}") for i in range(150)]
    result = await gw.send_bulk(messages, concurrency=2)
    assert result.ok and len(sim.mimsms_v4.messages) == 150
    for message, outcome in result.items():
        assert isinstance(outcome, Receipt)
        entry = await ledger.get(outcome.provider, outcome.message_id)
        assert entry is not None and entry.to == message.to and entry.submitted
    assert not await ledger.unresolved()
    # the hooked ledger is called with the models; the plain one gets records only
    assert sorted(calls) == (["begin_many"] * 2 + ["finish_many"] * 2 if hooked else [])
    assert len(built) == (2 * 150 if hooked else 0)
