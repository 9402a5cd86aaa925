"""The memory ledger: compact records read back field for field, the cap, the footprint."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from mimgw import DeliveryReport, Message, Receipt, State
from mimgw.errors import ConfigurationError
from mimgw.ledger import Intent, IntentAttempt, IntentState, MemoryLedger
from mimgw.ledger._records import entry_record, intent_record, load_entry, load_intent
from mimgw.ledger.entry import LedgerEntry
from mimgw.models import trusted
from mimgw.taxonomy import ErrorKind

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def receipt(i: int, provider: str = "gw") -> Receipt:
    return Receipt(provider=provider, message_id=f"m{i}", to="8801712345678", reference=f"r{i}")


def same_as_validated(model: object) -> None:
    cls = type(model)
    twin = cls.model_validate(model.model_dump())  # type: ignore[attr-defined]
    assert twin == model
    assert list(twin.__dict__) == list(model.__dict__)
    assert repr(twin) == repr(model)


# -- records ---------------------------------------------------------------------------


def test_an_entry_record_reads_back_field_for_field() -> None:
    report = DeliveryReport(
        provider="gw", message_id="m1", state=State.UNDELIVERABLE, reason="no", permanent=False
    )
    entry = LedgerEntry(
        provider="gw",
        message_id="m1",
        reference="r1",
        to="8801712345678",
        state=State.UNDELIVERABLE,
        attempt=2,
        submitted=True,
        report=report,
        text="hello",
        sender="Shop",
        category="promotional",
        next_attempt_at=T0 + timedelta(minutes=5),
        settled=False,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=1),
    )
    again = load_entry(("gw", "m1"), entry_record(entry))
    assert again == entry
    same_as_validated(again)
    assert again.state is State.UNDELIVERABLE  # the enum, not its value


def test_an_intent_record_reads_back_field_for_field() -> None:
    message = Message(to="01712345678", text="hi", idempotency_key="k1")
    intent = Intent.for_message(message, now=T0).finished(
        IntentState.ACCEPTED,
        now=T0 + timedelta(seconds=2),
        receipt=Receipt(provider="gw", message_id="T1", to=message.to, raw="{}"),
        attempts=(
            IntentAttempt(provider="a", kind=ErrorKind.CONNECT_FAILED),
            IntentAttempt(provider="gw"),
        ),
    )
    again = load_intent(intent.id, intent_record(intent))
    assert again == intent
    same_as_validated(again)
    assert again.receipt is not None and again.receipt.state is State.ACCEPTED
    assert again.attempts[0].kind is ErrorKind.CONNECT_FAILED
    dropped = load_intent(intent.id, intent_record(intent, drop_key=True))
    assert dropped.key is None and dropped.model_copy(update={"key": "k1"}) == intent


def test_records_hold_no_object_the_garbage_collector_tracks() -> None:
    entry = LedgerEntry.from_submit(receipt(1), attempt=1, message=None, now=T0)
    record = entry_record(entry)
    message = Message(to="01712345678", text="hi")
    intent_rec = intent_record(Intent.for_message(message, now=T0))
    gc.collect()
    assert not gc.is_tracked(record)
    assert not gc.is_tracked(intent_rec)


def test_frozen_models_share_one_fields_set_and_copies_get_their_own() -> None:
    one = trusted(IntentAttempt, {"provider": "a", "kind": None, "may_have_been_sent": False})
    two = trusted(IntentAttempt, {"provider": "b", "kind": None, "may_have_been_sent": True})
    assert one.__pydantic_fields_set__ is two.__pydantic_fields_set__
    same_as_validated(one)
    copied = one.model_copy(update={"provider": "c"})
    assert copied.provider == "c" and one.provider == "a"
    assert copied.__pydantic_fields_set__ is not one.__pydantic_fields_set__
    with pytest.raises(ValueError, match="frozen"):
        one.provider = "x"  # type: ignore[misc]
    assert one.__pydantic_fields_set__ == {"provider", "kind", "may_have_been_sent"}

    class Loose(BaseModel):
        name: str

    with pytest.raises(TypeError, match="not frozen"):
        trusted(Loose, {"name": "x"})


def test_intents_for_many_messages_and_finished_at_once() -> None:
    messages = [Message(to=f"0171234567{i}", text="hi", idempotency_key=f"k{i}") for i in range(3)]
    intents = Intent.for_messages(messages, now=T0)
    assert len({i.id for i in intents}) == 3
    assert all(len(i.id) == 32 and int(i.id, 16) >= 0 for i in intents)
    for message, intent in zip(messages, intents, strict=True):
        assert intent == Intent.for_message(message, now=T0, id=intent.id)
        same_as_validated(intent)
        attempts = (IntentAttempt(provider="gw"),)
        done = Intent.finished_for(
            message,
            id=intent.id,
            created_at=T0,
            state=IntentState.UNKNOWN,
            now=T0 + timedelta(seconds=1),
            attempts=attempts,
            error="lost",
        )
        expected = intent.finished(
            IntentState.UNKNOWN, now=T0 + timedelta(seconds=1), attempts=attempts, error="lost"
        )
        assert done == expected
        same_as_validated(done)


# -- the cap ---------------------------------------------------------------------------


def test_the_cap_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="max_entries"):
        MemoryLedger(max_entries=0)
    assert MemoryLedger().max_entries == 100_000


async def test_past_the_cap_entries_that_need_nothing_more_go_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = MemoryLedger(max_entries=10)
    for i in range(10):
        await ledger.record_submit(receipt(i))
    # two are final (delivered), one is settled: these three go before any other
    await ledger.record_report(
        DeliveryReport(provider="gw", message_id="m7", state=State.DELIVERED)
    )
    await ledger.record_report(
        DeliveryReport(provider="gw", message_id="m8", state=State.DELIVERED)
    )
    await ledger.settle("gw", "m9")
    with caplog.at_level(logging.WARNING, logger="mimgw.ledger"):
        await ledger.record_submit(receipt(10))
    assert len(ledger) == 9  # down to the cap less a tenth
    for gone in ("m7", "m8"):
        assert await ledger.get("gw", gone) is None
    assert await ledger.get("gw", "m0") is not None  # still waiting for its report
    assert "still need attention" not in caplog.text
    # nothing final left to drop: the oldest of the rest go, with a warning
    for i in range(11, 14):
        with caplog.at_level(logging.WARNING, logger="mimgw.ledger"):
            await ledger.record_submit(receipt(i))
    assert len(ledger) <= 10
    assert await ledger.get("gw", "m0") is None
    assert await ledger.get("gw", "m13") is not None
    assert "still need attention" in caplog.text


async def test_at_the_cap_an_entry_that_turns_final_still_goes_first() -> None:
    # a trim that found nothing final does not look again until something is written
    # final: by a report, a settle, a restore or a batch's submit
    ledger = MemoryLedger(max_entries=10)
    for i in range(12):  # nothing final: trims drop the oldest (m0, m1)
        await ledger.record_submit(receipt(i))
    assert await ledger.get("gw", "m1") is None
    await ledger.record_report(
        DeliveryReport(provider="gw", message_id="m9", state=State.DELIVERED)
    )
    final = LedgerEntry.from_submit(receipt(90), attempt=1, message=None, now=T0)
    final = final.model_copy(update={"settled": True})
    await ledger.restore(final)
    for i in range(12, 14):
        await ledger.record_submit(receipt(i))  # past the cap again: three to go
    assert await ledger.get("gw", "m9") is None  # the final ones went first
    assert await ledger.get("gw", "m90") is None
    assert await ledger.get("gw", "m2") is None  # then the oldest open one
    assert await ledger.get("gw", "m3") is not None
    for i in range(14, 16):  # nothing final left: the oldest open ones go again
        await ledger.record_submit(receipt(i))
    assert await ledger.get("gw", "m3") is None
    assert await ledger.get("gw", "m15") is not None


async def test_dropping_idempotency_keys_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    ledger = MemoryLedger(max_entries=10)
    now = datetime.now(UTC)
    with caplog.at_level(logging.WARNING, logger="mimgw.ledger"):
        for i in range(10):  # accepted, keyed: nothing more to do, but the key is a promise
            begun = await ledger.begin(
                Intent.for_message(
                    Message(to="01712345678", text="x", idempotency_key=f"k{i}"), now=now
                )
            )
            await ledger.finish(begun.finished(IntentState.ACCEPTED, now=now, receipt=receipt(i)))
        assert "idempotency keys" not in caplog.text
        extra = Intent.for_message(
            Message(to="01712345678", text="x", idempotency_key="k10"), now=now
        )
        await ledger.begin(extra)
    assert await ledger.intent("k0") is None  # the oldest key is forgotten: said so
    assert caplog.text.count("dropping the oldest idempotency keys") == 1


async def test_a_final_entry_with_a_redelivery_due_is_kept_like_an_open_one() -> None:
    ledger = MemoryLedger(max_entries=3)
    for i in range(3):
        await ledger.record_submit(receipt(i))
        await ledger.record_report(
            DeliveryReport(provider="gw", message_id=f"m{i}", state=State.UNDELIVERABLE)
        )
    await ledger.schedule("gw", "m0", T0)  # due again: needs attention
    await ledger.record_submit(receipt(3))
    assert await ledger.get("gw", "m0") is not None
    assert await ledger.get("gw", "m1") is None
    assert [e.message_id for e in await ledger.due(T0)] == ["m0"]


async def test_no_cap_keeps_everything() -> None:
    ledger = MemoryLedger(max_entries=None)
    for i in range(50):
        await ledger.record_submit(receipt(i))
    assert len(ledger) == 50


async def test_intents_past_the_cap_keep_the_unresolved_and_free_dropped_keys() -> None:
    ledger = MemoryLedger(max_entries=4)
    messages = [Message(to="01712345678", text="hi", idempotency_key=f"k{i}") for i in range(6)]
    intents = [Intent.for_message(m, now=T0) for m in messages]
    for intent in intents[:4]:
        await ledger.begin(intent)
    # k0 and k1 settle (resolved); k2 and k3 stay in flight
    for intent in intents[:2]:
        await ledger.finish(intent.finished(IntentState.NOT_SENT, now=T0))
    for intent in intents[4:]:
        await ledger.begin(intent)
    assert await ledger.intent("k0") is None and await ledger.intent(intents[0].id) is None
    assert {i.key for i in await ledger.unresolved()} == {"k2", "k3", "k4", "k5"}
    # a dropped intent's key is free again
    fresh = Intent.for_message(messages[0], now=T0)
    assert (await ledger.begin(fresh)).id == fresh.id


async def test_keys_and_history_survive_the_records() -> None:
    ledger = MemoryLedger()
    message = Message(to="01712345678", text="hi", idempotency_key="k")
    first = Intent.for_message(message, now=T0)
    second = Intent.for_message(message, now=T0)
    assert await ledger.begin(first) == first
    assert await ledger.begin(second) == first  # the key is held: the holder comes back
    got = await ledger.intent("k")
    assert got == first and got is not None and got.state is IntentState.IN_FLIGHT
    # second never held the key: recorded as history without it
    await ledger.finish(second.finished(IntentState.NOT_SENT, now=T0))
    history = await ledger.intent(second.id)
    assert history is not None and history.key is None
    await ledger.finish(first.finished(IntentState.NOT_SENT, now=T0))
    third = Intent.for_message(message, now=T0)
    assert await ledger.begin(third) == third  # not sent: the key is free for a new send


# -- footprint -------------------------------------------------------------------------


async def test_an_entry_costs_a_few_hundred_bytes() -> None:
    receipts = [
        Receipt(
            provider="mimsms_v4", message_id=f"T{i:09d}", to=f"88017{i:08d}", reference=f"{i:032x}"
        )
        for i in range(5_000)
    ]
    ledger = MemoryLedger(max_entries=None)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for r in receipts:
            await ledger.record_submit(r)
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / len(receipts)
    finally:
        tracemalloc.stop()
    assert per_entry < 500, per_entry
