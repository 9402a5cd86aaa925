"""Native-batch bulk under circuit breakers, on the simulator: a breaker opening
mid-campaign (lack of credit, then the balance probe; a key rotated), a half-open breaker
at concurrency above one, and pinned gateways."""

from __future__ import annotations

from decimal import Decimal

import pytest
from bulk_support import DINI, IMI, V4, taken
from policy_support import ONE_TO_MANY, V4_BALANCE, Wire, imi, once_each, same, v4, v4_batches

from mimgw import AuthenticationError, ConfigurationError, ProviderError, Receipt
from mimgw.breaker import BreakerPolicy, CircuitOpenError
from mimgw.simulator import Simulator
from mimgw.testing import FakeClock, fake_gateway_for

# -- breakers ----------------------------------------------------------------------------------


async def test_balance_running_out_mid_campaign_then_the_balance_probe(sim: Simulator) -> None:
    clock = FakeClock()
    breaker = BreakerPolicy(probe_balance=True, clock=clock.monotonic)
    wire = Wire(sim)
    gw = fake_gateway_for(v4(sim), imi(sim), clock=clock, breaker=breaker)
    sim.mimsms_v4.balance = Decimal("5.25")  # three batches of seven at 0.25
    first = same(70)
    result = await gw.send_bulk(first, concurrency=1)
    once_each(sim, result, first)
    assert v4_batches(sim) == [7, 7, 7] and sim.imiconnect.sent_count() == 49
    assert wire.count(ONE_TO_MANY) == 4  # the refused fourth, then nothing more
    health = gw.health()[V4]
    assert (health["state"], health["opened_because"], health["times_opened"]) == (
        "open",
        "insufficient_balance",
        1,
    )
    assert health["in_flight"] == 0 and health["reopens_in"] == pytest.approx(600)
    clock.advance(601)  # still dry: the probe reads 0 and the batch moves on, unsent
    second = same(14, start=200)
    once_each(sim, await gw.send_bulk(second, concurrency=1), second)
    assert wire.count(V4_BALANCE) == 1 and wire.count(ONE_TO_MANY) == 4
    assert gw.health()[V4]["state"] == "open" and sim.imiconnect.sent_count() == 63
    sim.mimsms_v4.balance = Decimal("100")
    clock.advance(601)
    third = same(14, start=300)
    result = await gw.send_bulk(third, concurrency=1)
    once_each(sim, result, third)
    assert {r.provider for r in result.receipts} == {V4} and v4_batches(sim)[3:] == [7, 7]
    assert wire.count(V4_BALANCE) == 2 and gw.health()[V4]["state"] == "closed"


async def test_auth_failure_mid_stream_moves_the_remaining_batches(sim: Simulator) -> None:
    gw = fake_gateway_for(v4(sim), imi(sim))
    messages = same(35)
    seen: list[str] = []
    async for _, outcome in gw.stream_bulk(messages, concurrency=1):
        assert isinstance(outcome, Receipt)
        seen.append(outcome.provider)
        if len(seen) == 7:
            sim.mimsms_v4.api_key = "rotated"
    assert seen == [V4] * 7 + [IMI] * 28
    assert [taken(sim, m.to) for m in messages] == [1] * 35
    health = gw.health()[V4]
    assert (health["opened_because"], health["times_opened"]) == ("auth", 1)
    assert health["last_error"] == "auth"


async def test_a_half_open_breaker_lets_one_batch_through_at_any_concurrency(
    sim: Simulator,
) -> None:
    """Four batches start at once against a gateway whose cool-down has passed: one is
    the probe, the other three go to the next gateway without waiting for it."""
    clock = FakeClock()
    wire = Wire(sim, hold=0.05)  # the probe is still under way when the others ask
    gw = fake_gateway_for(
        v4(sim), imi(sim, size=7), clock=clock, breaker=BreakerPolicy(clock=clock.monotonic)
    )
    key, sim.mimsms_v4.api_key = sim.mimsms_v4.api_key, "rotated"
    first = same(7)
    once_each(sim, await gw.send_bulk(first), first)
    assert gw.health()[V4]["state"] == "open"
    sim.mimsms_v4.api_key = key
    clock.advance(gw.health()[V4]["reopens_in"] + 1)
    second = same(28, start=100)
    result = await gw.send_bulk(second, concurrency=4)
    once_each(sim, result, second)
    assert wire.count(ONE_TO_MANY) == 2 and wire.peak[V4] == 1  # the refused one, the probe
    assert v4_batches(sim) == [7]
    assert [r.provider for r in result.receipts].count(V4) == 7
    assert gw.health()[V4]["state"] == "closed"
    third = same(14, start=200)  # closed again: batches go to v4 as before
    once_each(sim, await gw.send_bulk(third, concurrency=2), third)
    assert v4_batches(sim) == [7, 7, 7]


# -- pins --------------------------------------------------------------------------------------


async def test_pins_with_batching(sim: Simulator) -> None:
    gw = fake_gateway_for(v4(sim), imi(sim), sim.provider(DINI))
    to_imi = same(12)
    once_each(sim, await gw.send_bulk(to_imi, provider=IMI), to_imi)
    assert sim.imiconnect.batch_sizes == [5, 5, 2] and sim.mimsms_v4.sent_count() == 0
    to_dini = same(9, start=50)  # cannot batch: singles, only there
    result = await gw.send_bulk(to_dini, provider=DINI, concurrency=3)
    once_each(sim, result, to_dini)
    assert {r.provider for r in result.receipts} == {DINI} and sim.dinisoft.sent_count() == 9
    assert sim.imiconnect.batch_sizes == [5, 5, 2]
    with pytest.raises(ConfigurationError, match="nope"):
        await gw.send_bulk(same(3, start=90), provider="nope")
    with pytest.raises(ConfigurationError, match="nope"):
        await anext(gw.stream_bulk(same(3, start=90), provider="nope"))
    assert taken(sim) == 21


async def test_a_pinned_gateway_whose_breaker_opens_does_not_fail_over(sim: Simulator) -> None:
    wire = Wire(sim)
    gw = fake_gateway_for(v4(sim), imi(sim))
    sim.mimsms_v4.api_key = "rotated"
    result = await gw.send_bulk(same(21), provider=V4, concurrency=1)
    kinds = [type(e) for e in result.outcomes]
    assert kinds == [AuthenticationError] * 7 + [CircuitOpenError] * 14
    assert wire.count(ONE_TO_MANY) == 1 and taken(sim) == 0
    assert [isinstance(e, ProviderError) and not e.may_have_been_sent for e in result.errors] == [
        True
    ] * 21
