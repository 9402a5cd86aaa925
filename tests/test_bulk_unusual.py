"""Bulk sends the other tests do not try: odd campaigns end to end on the simulator.

Repeated recipients and keys, bad items inside batches, Bangla and segment limits,
scheduled and pinned-sender messages, odd sources and concurrency values. Invariants
(tests/bulk_support.py): one outcome per input, paired with it; nothing sent twice
(counted at the simulator); everything a gateway took is in the ledger.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bulk_support import (
    BATCH,
    IMI,
    V3,
    V4,
    check_ledger_holds_all_taken,
    check_pairing,
    gw_for,
    number,
    taken,
    wire,
)

from mimgw import (
    AllProvidersFailedError,
    ConfigurationError,
    ErrorKind,
    InvalidMessageError,
    Message,
    MimgwError,
    OutcomeUnknownError,
    ProviderError,
    Receipt,
)
from mimgw.ledger import Intent, MemoryLedger
from mimgw.simulator import Simulator
from mimgw.text import analyse_text

# -- bad items in the middle of a batch ---------------------------------------------------


def mixed_items() -> list[tuple[Any, str]]:
    """(item, what becomes of it)."""
    later = datetime.now(UTC) + timedelta(hours=1)
    return [
        ((number(1), "shared"), "v4"), (("02-9876543", "landline"), "invalid"),
        (("01112345678", "retired prefix"), "invalid"), (("0181500000", "short"), "invalid"),
        (("not a number", "x"), "invalid"), ((number(2), ""), "invalid"),
        ((number(3), " \n "), "invalid"), ({"to": number(4), "text": "shared"}, "v4"),
        ({"to": number(5), "text": "x", "bogus": 1}, "invalid"), ((number(6), "shared"), "v4"),
        (None, "invalid"), ((number(7), "three", "items"), "invalid"), ((number(8), 42), "invalid"),
        (("+447400123456", "abroad"), "abroad"),
        ({"to": number(9), "text": "later", "send_at": later}, "scheduled"),
        (Message(to=number(10), text="shared", sender="UNREG"), "unregistered sender"),
        ([number(11), "a list pair"], "v4"), (Message(to=number(12), text="ঢাকা " * 40), "v4"),
    ]  # fmt: skip


@BATCH
@pytest.mark.parametrize("keys", [(V4, IMI), (V4,)], ids=["v4+imi", "v4"])
async def test_bad_items_are_their_own_errors_and_the_rest_is_sent(
    sim: Simulator, keys: tuple[str, ...], batch: bool
) -> None:
    gw = gw_for(sim, *keys)
    cases = mixed_items()
    items = [item for item, _ in cases]
    result = await gw.send_bulk(items, batch=batch)
    check_pairing(sim, result, items)
    backup = len(keys) > 1
    for (item, fate), message, outcome in zip(cases, result.messages, result.outcomes, strict=True):
        if fate == "invalid":
            assert isinstance(outcome, InvalidMessageError) and message is item, (item, outcome)
            continue
        assert isinstance(message, Message)
        if fate == "scheduled":  # no gateway here schedules: the first one's refusal
            assert isinstance(outcome, ProviderError) and outcome.kind is ErrorKind.UNSUPPORTED
        elif fate == "v4" or backup:
            assert isinstance(outcome, Receipt), (item, outcome)
            assert outcome.provider == (V4 if fate == "v4" else IMI)
        elif fate == "abroad":  # v4 serves BD only
            assert isinstance(outcome, InvalidMessageError), outcome
        else:
            assert isinstance(outcome, AllProvidersFailedError), outcome
            assert [a.kind for a in outcome.attempts] == [ErrorKind.SENDER_REJECTED]
        assert taken(sim, message.to) == isinstance(outcome, Receipt)
    assert taken(sim) == len(result.receipts) == (7 if backup else 5)


@pytest.mark.parametrize(
    "poison", ["x" * (153 * 10 + 1), "win big at the casino"], ids=["11-segments", "blocked"]
)
@BATCH
async def test_one_refused_text_does_not_sink_the_rest_of_its_batch(
    sim: Simulator, poison: str, batch: bool
) -> None:
    sim.mimsms_v4.blocked_words = {"casino"}
    gw = gw_for(sim, V4)
    messages = [Message(to=number(i), text=poison if i == 3 else f"hello {i}") for i in range(6)]
    result = await gw.send_bulk(messages, batch=batch)
    check_pairing(sim, result, messages)
    bad = result[3]
    assert isinstance(bad, ProviderError) and bad.kind is ErrorKind.CONTENT_REJECTED
    assert not bad.may_have_been_sent and taken(sim, number(3)) == 0
    assert [isinstance(o, Receipt) for o in result.outcomes] == [True] * 3 + [False] + [True] * 2


async def test_a_same_text_batch_refused_for_its_text_is_refused_for_all_in_one_request(
    sim: Simulator,
) -> None:
    sim.mimsms_v4.blocked_words = {"casino"}
    gw = gw_for(sim, V4)
    messages = [Message(to=number(i), text="win big at the casino") for i in range(6)]
    result = await gw.send_bulk(messages)
    check_pairing(sim, result, messages)
    kinds = [o.kind for o in result.outcomes if isinstance(o, ProviderError)]
    assert kinds == [ErrorKind.CONTENT_REJECTED] * 6 and taken(sim) == 0
    assert sim.mimsms_v4.requests == 1  # one OneToMany, not a single per recipient after it


async def test_a_same_text_batch_refused_for_its_parameters_is_not_split(sim: Simulator) -> None:
    gw = gw_for(sim, V4)
    sim.mimsms_v4.force("213", times=1)  # "parameters missing or mismatched": all of them
    messages = [Message(to=number(i), text="same") for i in range(4)]
    result = await gw.send_bulk(messages)
    check_pairing(sim, result, messages)
    kinds = [o.kind for o in result.outcomes if isinstance(o, ProviderError)]
    assert kinds == [ErrorKind.REQUEST_REJECTED] * 4 and taken(sim) == 0
    assert sim.mimsms_v4.requests == 1


async def test_a_batch_refused_for_one_number_is_sent_again_as_singles(sim: Simulator) -> None:
    gw = gw_for(sim, V4)
    sim.mimsms_v4.force("206", times=1)  # the batch request: "mobile number refused"
    messages = [Message(to=number(i), text="same") for i in range(4)]
    result = await gw.send_bulk(messages)
    check_pairing(sim, result, messages)
    assert result.ok and taken(sim) == 4
    assert sim.mimsms_v4.requests == 1 + 4


async def test_an_imiconnect_array_refused_whole_is_not_sent_again_item_by_item(
    sim: Simulator,
) -> None:
    # IMIconnect answers every item itself: a refusal of the whole array is the request's
    body = '{"code": "4001", "description": "invalid request"}'
    headers = {"content-type": "application/json"}
    sim.fail(IMI, "status", times=1, status=200, body=body, headers=headers)
    gw = gw_for(sim, IMI)
    messages = [Message(to=number(i), text=f"i {i}") for i in range(5)]
    result = await gw.send_bulk(messages)
    check_pairing(sim, result, messages)
    kinds = [o.kind for o in result.outcomes if isinstance(o, ProviderError)]
    assert kinds == [ErrorKind.REQUEST_REJECTED] * 5
    assert taken(sim) == 0 and sim.imiconnect.requests == 0  # nothing after the refusal


# -- text: Bangla, GSM, segment limits ------------------------------------------------------

BN = "ক"
TEXTS = [
    "a" * 160, "a" * 161, "a" * 306, "a" * 307, "a" * 159 + "€", "a" * 158 + "€",
    BN * 70, BN * 71, BN * 134, BN * 135, "আপনার কোড 4711", "50% off & more + free #1 ?a=b;c",
    "two\nlines\r\n", "emoji 😀", "  padded  ", "x" * 1530, "€" * 80, "€" * 81,
]  # fmt: skip


@BATCH
@pytest.mark.parametrize("key", [V4, IMI, "v4-query"])
async def test_repeated_recipients_number_forms_and_texts_reach_the_gateway_intact(
    sim: Simulator, key: str, batch: bool
) -> None:
    gw = gw_for(sim, key)
    # each text three times (one-to-many groups, DSMS rows beside other texts), shuffled
    messages = [
        Message(to=number(100 * j + i), text=t) for i, t in enumerate(TEXTS) for j in range(3)
    ]
    random.Random(7).shuffle(messages)
    # one recipient five times, written five ways, with repeated and different texts
    forms = ["01815000999", "+8801815000999", "008801815000999", "01815-000 999", "8801815000999"]
    messages[10:10] = [Message(to=f, text=t) for f, t in zip(forms, "aabac", strict=True)]
    result = await gw.send_bulk(messages, batch=batch)
    assert result.ok, result.errors
    check_pairing(sim, result, messages)
    copies = Counter((m.to, m.text) for m in messages)
    for message, receipt in result.items():
        info = analyse_text(message.text)
        assert isinstance(receipt, Receipt)
        assert (receipt.segments, receipt.encoding) == (info.segments, info.encoding)
        assert taken(sim, message.to, message.text) == copies[message.to, message.text]
    assert [taken(sim, wire(999), t) for t in (None, "a", "b", "c")] == [5, 3, 1, 1]
    if key != IMI:  # v4 charges each recipient per segment
        charged = Decimal("500.00") - sim.mimsms_v4.balance
        assert charged == Decimal("0.25") * sum(analyse_text(m.text).segments for m in messages)


# -- idempotency keys: repeated in a campaign, campaigns run twice --------------------------


@BATCH
@pytest.mark.parametrize("keys", [(V4,), (IMI, V4)], ids=["v4", "imi+v4"])
async def test_a_keyed_campaign_run_twice_sends_each_key_once(
    sim: Simulator, keys: tuple[str, ...], batch: bool
) -> None:
    gw = gw_for(sim, *keys)
    messages = [
        Message(to=number(i), text="promo" if i % 2 else f"hi {i}", idempotency_key=f"c1:{i}")
        for i in range(140)
    ]
    first = await gw.send_bulk(messages, batch=batch)
    assert first.ok, first.errors
    check_pairing(sim, first, messages)
    again = await gw.send_bulk(reversed(messages), batch=not batch, concurrency=3)
    assert list(again.outcomes) == list(reversed(first.outcomes))
    assert [taken(sim, m.to, m.text) for m in messages] == [1] * 140 and taken(sim) == 140


@BATCH
async def test_a_key_repeated_in_a_campaign_answers_every_copy_with_one_receipt(
    sim: Simulator, batch: bool
) -> None:
    sim.fail(V4, "delay", times=None, seconds=0.02)  # the first copy is still in flight
    gw = gw_for(sim, V4)
    # copies in the same window (v4 batches hold 100) and in later windows
    order = [i % 120 for i in range(150)] + [1, 2]
    messages = [Message(to=number(i), text=f"order {i}", idempotency_key=f"o:{i}") for i in order]
    result = await gw.send_bulk(messages, batch=batch)
    assert result.ok, {type(e).__name__ for e in result.errors}
    ids: dict[str, set[str]] = {}
    for message, receipt in result.items():
        assert isinstance(receipt, Receipt) and receipt.to == message.to
        ids.setdefault(message.to, set()).add(receipt.message_id)
    assert [len(v) for v in ids.values()] == [1] * 120
    assert [taken(sim, number(i)) for i in range(120)] == [1] * 120


class RoundTripLedger(MemoryLedger):
    """Every write, a batch of intents too, is one round trip (as a database server's:
    PostgresLedger writes ``begin_many`` in one transaction)."""

    async def begin(self, intent: Intent) -> Intent:
        await asyncio.sleep(0)
        return await MemoryLedger.begin(self, intent)

    async def begin_many(self, intents: Any) -> list[Intent]:
        await asyncio.sleep(0)
        return [await MemoryLedger.begin(self, i) for i in intents]


async def test_a_key_shared_by_a_batch_and_a_single_with_a_round_trip_ledger(
    sim: Simulator,
) -> None:
    gw = gw_for(sim, V4, ledger=RoundTripLedger())
    messages = [
        Message(to=number(i), text=f"t {i}", idempotency_key="k" if i in (0, 100) else None)
        for i in range(101)
    ]
    result = await gw.send_bulk(messages)  # 0-99: one batch; 100: a single
    assert isinstance(result[0], Receipt) and result[100] == result[0]
    assert (taken(sim, number(0)), taken(sim, number(100))) == (1, 0)


@BATCH
async def test_keys_after_failures_resend_only_what_provably_was_not_sent(
    sim: Simulator, batch: bool
) -> None:
    ledger = MemoryLedger()
    down, lost = (
        [Message(to=number(n + i), text=f"{n} {i}", idempotency_key=f"{n}:{i}") for i in range(5)]
        for n in (0, 10)
    )
    sim.fail(V4, "connect_error", times=None)
    failed = await gw_for(sim, V4, ledger=ledger).send_bulk(down, batch=batch)
    sim.faults.clear()
    sim.fail(V4, "read_timeout", times=None)
    unknown = await gw_for(sim, V4, ledger=ledger).send_bulk(lost, batch=batch)
    sim.faults.clear()
    assert [type(o) for o in failed.outcomes + unknown.outcomes] == [
        AllProvidersFailedError
    ] * 5 + [OutcomeUnknownError] * 5
    again = await gw_for(sim, V4, ledger=ledger).send_bulk(
        down + lost, batch=batch
    )  # fresh breaker
    check_pairing(sim, again, down + lost)
    assert [type(o) for o in again.outcomes] == [Receipt] * 5 + [OutcomeUnknownError] * 5
    assert [taken(sim, m.to, m.text) for m in down + lost] == [1] * 10


# -- scheduled messages, senders, categories ------------------------------------------------


@BATCH
async def test_schedules_senders_and_categories_are_kept_per_recipient(
    sim: Simulator, batch: bool
) -> None:
    gw = gw_for(sim, V4, IMI, V3)  # v4 and IMIconnect cannot schedule; v3 can
    at = datetime.now(UTC) + timedelta(hours=2)
    messages = [
        Message(to=number(1), text="sale", sender="MIMGWDEMO"),
        Message(to=number(2), text="sale"),
        Message(to=number(3), text="sale", category="promotional"),
        Message(to=number(4), text="sale", category="promotional"),
        Message(to=number(5), text="sale", sender="UNREG"),
        Message(to=number(6), text="sale", sender="UNREG"),
        Message(to=number(7), text="personal 7", category="promotional"),
        Message(to=number(8), text="sale", send_at=at),
        Message(to=number(9), text="later 9", send_at=at),
        Message(to=number(10), text="now 10"),
    ]
    result = await gw.send_bulk(messages, batch=batch)
    assert result.ok, result.errors
    check_pairing(sim, result, messages)
    v4 = {m.number: (m.sender, m.transaction_type, m.campaign_id) for m in sim.mimsms_v4.messages}
    promo, plain = ("MIMGWDEMO", "P", "SIMCAMP01"), ("MIMGWDEMO", "T", None)
    assert v4 == {wire(i): promo if i in (3, 4, 7) else plain for i in (1, 2, 3, 4, 7, 10)}
    # v4 refuses the pinned sender (208): IMIconnect sends it with that same sender
    assert {m.msisdn: m.senderid for m in sim.imiconnect.messages.values()} == {
        wire(5): "UNREG",
        wire(6): "UNREG",
    }
    scheduled = {m.to: m.due for m in sim.mimsms_v3.messages.values()}
    assert sorted(scheduled) == [wire(8), wire(9)]
    assert min(scheduled.values()) >= sim.clock.time() + 7000


# -- sources and concurrency ----------------------------------------------------------------


def source_of(kind: str, items: list[Any]) -> Any:
    def gen() -> Iterator[Any]:
        yield from items

    async def agen() -> AsyncIterator[Any]:
        for item in items:
            await asyncio.sleep(0)
            yield item

    return {"list": items, "gen": gen(), "agen": agen(), "map": map(tuple, items)}[kind]


@BATCH
@pytest.mark.parametrize("kind", ["list", "gen", "agen", "map"])
@pytest.mark.parametrize("concurrency", [1, 10**6])
async def test_every_kind_of_source_and_concurrency(
    sim: Simulator, kind: str, concurrency: int, batch: bool
) -> None:
    gw = gw_for(sim, V4, IMI)
    pairs = [(number(i), "same" if i % 3 else f"own {i}") for i in range(130)]
    result = await gw.send_bulk(source_of(kind, pairs), concurrency=concurrency, batch=batch)
    assert result.ok, result.errors
    assert [(m.to, m.text) for m in result.messages] == [
        (wire(i), t) for i, (_, t) in enumerate(pairs)
    ]
    check_pairing(sim, result, [None] * 130)
    assert [taken(sim, t, x) for t, x in pairs] == [1] * 130
    for empty in ("list", "gen", "agen"):
        assert len(await gw.send_bulk(source_of(empty, []), concurrency=concurrency)) == 0
        assert [x async for x in gw.stream_bulk(source_of(empty, []), batch=batch)] == []


async def test_a_source_both_plain_and_async_is_read_asynchronously(sim: Simulator) -> None:
    pairs = [(number(i), f"both {i}") for i in range(12)]

    class Both:
        def __iter__(self) -> Iterator[tuple[str, str]]:
            raise AssertionError("read as a plain iterable")

        async def __aiter__(self) -> AsyncIterator[tuple[str, str]]:
            for pair in pairs:
                yield pair

    result = await gw_for(sim, V4).send_bulk(Both())
    assert result.ok and [(m.to, m.text) for m in result.messages] == [
        (wire(i), t) for i, (_, t) in enumerate(pairs)
    ]


@pytest.mark.parametrize(
    ("source", "concurrency", "error"),
    [
        ("pairs", 0, ConfigurationError),
        ("pairs", -1, ConfigurationError),
        ("one", None, InvalidMessageError),  # a single message, not an iterable of them
        ("pairs", math.nan, ConfigurationError),
        ("pairs", "4", ConfigurationError),
        ("pairs", True, ConfigurationError),
        ("pairs", 2.5, ConfigurationError),
        (None, None, InvalidMessageError),
        (5, None, InvalidMessageError),
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_sent(
    sim: Simulator, source: Any, concurrency: Any, error: type[MimgwError]
) -> None:
    pairs = [(number(1), "x"), (number(2), "x")]
    source = {"pairs": pairs, "one": Message(to=number(1), text="x")}.get(source, source)
    with pytest.raises(error):
        await gw_for(sim, V4).send_bulk(source, concurrency=concurrency)
    assert taken(sim) == 0


@BATCH
@pytest.mark.parametrize("kind", ["gen", "agen", "agen-cancelled"])
async def test_a_source_that_raises_midway_has_what_it_gave_sent_then_its_error_raised(
    sim: Simulator, kind: str, batch: bool
) -> None:
    gw = gw_for(sim, V4)
    messages = [Message(to=number(i), text=f"m {i}" if i % 2 else "shared") for i in range(260)]
    boom = ValueError("the CSV broke at row 231")

    def gen() -> Iterator[Message]:
        yield from messages[:230]
        raise boom

    async def agen() -> AsyncIterator[Message]:
        for m in messages[:230]:
            yield m
        if kind == "agen-cancelled":  # the task feeding this source was cancelled
            producer = asyncio.get_running_loop().create_future()
            producer.cancel()
            await producer
        raise boom

    seen: list[tuple[Any, Any]] = []

    async def consume() -> None:
        async for pair in gw.stream_bulk(
            gen() if kind == "gen" else agen(), concurrency=4, batch=batch
        ):
            seen.append(pair)

    try:
        await asyncio.wait_for(consume(), 10)  # hang guard
    except TimeoutError:
        raise
    except asyncio.CancelledError:  # the source's own cancellation, passed on
        assert kind == "agen-cancelled"
    except Exception as exc:  # the source's own error, as it raised it
        assert exc is boom  # noqa: PT017
    else:
        pytest.fail("the source's error was swallowed")
    await check_ledger_holds_all_taken(sim, gw, messages)
    # every message the source gave was sent and reported before its error was raised
    assert [m for m, _ in sorted(seen, key=lambda p: messages.index(p[0]))] == messages[:230]
    assert all(isinstance(o, Receipt) and taken(sim, m.to) == 1 for m, o in seen)
    assert not any(taken(sim, m.to) for m in messages[230:])
    assert (await gw.send_bulk(messages[230:], batch=batch)).ok  # the gateway still works
