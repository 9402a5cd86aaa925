"""Odd bulk campaigns under faults, on the simulator: whole-batch failures with a second
gateway there, consumers that stop or are cancelled midway, random mixes. The same
invariants as test_bulk_unusual.py (tests/bulk_support.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from bulk_support import (
    BATCH,
    DINI,
    IMI,
    V4,
    check_ledger_holds_all_taken,
    check_pairing,
    gw_for,
    number,
    taken,
)

from mimgw import (
    BulkResult,
    InvalidMessageError,
    Message,
    OutcomeUnknownError,
    Receipt,
)
from mimgw.ledger import Intent, IntentState, MemoryLedger
from mimgw.simulator import Simulator

# -- a whole batch fails, a second gateway is there -----------------------------------------

FAULTS: dict[str, Callable[[Simulator, str], object]] = {
    "down": lambda s, g: s.fail(g, "connect_error", times=None),
    "429": lambda s, g: s.fail(g, "status", times=None, status=429, headers={"Retry-After": "1"}),
    "unavailable": lambda s, g: s.mimsms_v4.force("500", times=10_000),
    "no-balance": lambda s, g: setattr(s.mimsms_v4, "balance", Decimal("0.10")),
    "auth": lambda s, g: setattr(s.mimsms_v4, "api_key", "rotated"),
}


FAILOVER_CASES = [
    *(((V4, IMI), fault) for fault in FAULTS),
    *(((first, V4), fault) for first in (IMI, DINI) for fault in ("down", "429")),
]


@BATCH
@pytest.mark.parametrize(("order", "fault"), FAILOVER_CASES)
async def test_a_batch_that_provably_sent_nothing_fails_over_whole(
    sim: Simulator, order: tuple[str, str], fault: str, batch: bool
) -> None:
    first, second = order
    gw = gw_for(sim, *order)
    FAULTS[fault](sim, first)  # after the providers took the simulator's credentials
    messages = [Message(to=number(i), text="same" if i % 2 else f"own {i}") for i in range(150)]
    result = await gw.send_bulk(messages, concurrency=3, batch=batch)
    assert result.ok, {str(e)[:80] for e in result.errors}
    check_pairing(sim, result, messages)
    assert {r.provider for r in result.receipts} == {second}
    assert sim.gateways[first].sent_count() == 0
    for message in messages:
        assert taken(sim, message.to, message.text) == 1
        assert len(await gw.history(message.reference)) == 1
    if second == IMI:  # re-planned as arrays there
        assert (max(sim.imiconnect.batch_sizes) > 1) == batch


@pytest.mark.parametrize("fault", ["read_timeout", "reset_after_send", "bare-502", "html-503"])
@pytest.mark.parametrize(
    ("batch", "on_unknown"), [(True, "raise"), (True, "failover"), (False, "raise")]
)
async def test_a_batch_of_unknown_outcome_is_unknown_for_all_and_never_resent(
    sim: Simulator, fault: str, batch: bool, on_unknown: str
) -> None:
    if fault in ("bare-502", "html-503"):
        status, body = (502, "") if fault == "bare-502" else (503, "<html>busy</html>")
        sim.fail(V4, "status", times=2, status=status, body=body)
    else:
        sim.fail(V4, fault, times=2)  # type: ignore[arg-type]
    gw = gw_for(sim, V4, IMI, on_unknown=on_unknown)
    messages = [Message(to=number(i), text="same" if i < 100 else f"own {i}") for i in range(200)]
    result = await gw.send_bulk(messages, concurrency=1, batch=batch)
    check_pairing(sim, result, messages)
    unknown = [m for m, o in result.items() if not isinstance(o, Receipt)]
    assert len(unknown) == (200 if batch else 2)  # both batches / the first two singles
    assert all(isinstance(e, OutcomeUnknownError) and e.may_have_been_sent for e in result.errors)
    assert not any(sim.imiconnect.sent_count(m.to) for m in unknown)  # never re-sent anywhere
    reached = fault in ("read_timeout", "reset_after_send")  # the gateway took it, then lost
    lost = {m.reference for m in unknown}
    assert [taken(sim, m.to) for m in messages] == [
        int(reached or m.reference not in lost) for m in messages
    ]
    states = {i.reference: i.state for i in await gw.ledger.unresolved()}
    assert states == dict.fromkeys(lost, IntentState.UNKNOWN)
    await check_ledger_holds_all_taken(sim, gw, messages)


# -- the consumer stops or is cancelled midway -------------------------------------------------


@BATCH
@pytest.mark.parametrize("how", ["stream", "send_bulk"])
async def test_cancelling_a_campaign_midway_then_running_it_again(
    sim: Simulator, how: str, batch: bool
) -> None:
    sim.fail(V4, "delay", times=None, seconds=0.005)
    gw = gw_for(sim, V4)
    messages = [Message(to=number(i), text=f"c {i}", idempotency_key=f"c{i}") for i in range(400)]

    async def consume() -> None:
        if how == "send_bulk":
            await gw.send_bulk(messages, concurrency=2, batch=batch)
            return
        async for _ in gw.stream_bulk(messages, concurrency=2, batch=batch):
            pass

    task = asyncio.ensure_future(consume())
    for _ in range(10_000):
        if taken(sim) >= (100 if batch else 10) or task.done():
            break
        await asyncio.sleep(0.001)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert 0 < taken(sim) < 400
    await check_ledger_holds_all_taken(sim, gw, messages)
    unknown = {i.reference for i in await gw.ledger.unresolved()}
    sim.faults.clear()
    again = await gw.send_bulk(messages, batch=batch)
    check_pairing(sim, again, messages)
    for message, outcome in again.items():  # sent before or now, or unknown: never twice
        if message.reference in unknown:
            assert isinstance(outcome, OutcomeUnknownError) and taken(sim, message.to) <= 1
        else:
            assert isinstance(outcome, Receipt) and taken(sim, message.to) == 1, outcome


class SlowIntentsLedger(MemoryLedger):
    """``begin_many`` waits for ``release`` (a database round trip that takes a while)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def begin_many(self, intents: Any) -> list[Intent]:
        self.entered.set()
        await self.release.wait()
        return await super().begin_many(intents)


async def test_a_batch_cancelled_while_its_intents_are_written_leaves_none_in_flight(
    sim: Simulator,
) -> None:
    ledger = SlowIntentsLedger()
    gw = gw_for(sim, V4, ledger=ledger)
    messages = [Message(to=number(i), text=f"c {i}", idempotency_key=f"c{i}") for i in range(5)]
    task = asyncio.ensure_future(gw.send_bulk(messages))
    await ledger.entered.wait()
    task.cancel()
    await asyncio.sleep(0)
    ledger.release.set()  # the write completes (it is shielded), then the cancellation
    with pytest.raises(asyncio.CancelledError):
        await task
    assert taken(sim) == 0
    states = {(await gw.ledger.intent(m.idempotency_key or "")).state for m in messages}  # type: ignore[union-attr]
    assert states == {IntentState.NOT_SENT}  # provably never sent: the keys are free again
    assert (await gw.send_bulk(messages)).ok and taken(sim) == 5


async def test_closing_a_stream_early_waits_for_the_sends_under_way(sim: Simulator) -> None:
    sim.fail(V4, "delay", times=1, seconds=0)
    sim.fail(V4, "delay", times=None, seconds=0.05)
    gw = gw_for(sim, V4)
    messages = [Message(to=number(i), text=f"s {i}") for i in range(40)]
    stream = gw.stream_bulk(messages, concurrency=4, batch=False)  # closable: aclosing
    async with contextlib.aclosing(stream):
        async for _ in stream:
            break
    in_flight = gw.health()[V4]["in_flight"]
    open_ = [i.state for i in await gw.ledger.unresolved() if i.state is IntentState.IN_FLIGHT]
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if others:  # tidy up before asserting (a bound, not a timing assertion)
        await asyncio.wait(others, timeout=5)
    assert (in_flight, open_) == (0, [])
    await check_ledger_holds_all_taken(sim, gw, messages)


# -- pairing under a random mix --------------------------------------------------------------


@BATCH
@pytest.mark.parametrize("seed", range(4))
async def test_a_random_campaign_pairs_every_outcome_with_its_own_message(
    sim: Simulator, seed: int, batch: bool
) -> None:
    rng = random.Random(seed)
    if rng.random() < 0.5:
        sim.fail(V4, "connect_error", times=rng.randint(1, 6))
    sim.mimsms_v4.force("500", times=rng.randint(0, 4))
    sim.imiconnect.force("5002", times=rng.randint(0, 3))  # a refusal of one array item
    sim.mimsms_v4.blocked_words = {"casino"}
    gw = gw_for(sim, *rng.choice([(V4, IMI), (IMI, V4)]))
    items: list[Any] = []
    for i in range(rng.randint(150, 260)):
        text = rng.choice(["same", "আবার", f"own {i}", f"casino {i}", "x" * 300])
        to = rng.choice([number(i), f"+88{number(i)}", number(rng.randint(0, 20)), "+447400123456"])
        items.append(rng.choice([Message(to=to, text=text)] * 6 + [(to, ""), ("02-555", text)]))
    pairs = [p async for p in gw.stream_bulk(items, concurrency=rng.choice([1, 2, 7]), batch=batch)]
    index = {id(item): n for n, item in enumerate(items)}
    assert sorted(index[id(m)] for m, _ in pairs) == list(range(len(items)))
    ordered = sorted(pairs, key=lambda p: index[id(p[0])])
    result = BulkResult(
        messages=tuple(m for m, _ in ordered), outcomes=tuple(o for _, o in ordered)
    )
    check_pairing(sim, result, items)
    for message, outcome in result.items():
        if not isinstance(message, Message):
            assert isinstance(outcome, InvalidMessageError)
        elif "casino" in message.text and isinstance(outcome, Receipt):
            assert outcome.provider == IMI  # v4 refuses it (205): only IMIconnect takes it
    for to, text in {(m.to, m.text) for m in result.messages if isinstance(m, Message)}:
        receipts = [
            o for m, o in result.items() if isinstance(o, Receipt) and (m.to, m.text) == (to, text)
        ]
        assert taken(sim, to, text) == len(receipts), (to, text)
