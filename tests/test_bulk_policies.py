"""Native-batch bulk under the Gateway's policies, on the simulator: strategies, rate
limits and in-flight caps, retry then failover, ``on_unknown``; then the CLI's send-bulk
and the taskiq chunk task. Breakers and pins: test_bulk_breakers.py. Earlier sweeps
(test_bulk_unusual/faults/after.py) cover odd inputs and whole-batch faults.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from bulk_support import DINI, IMI, V4, check_ledger_holds_all_taken, taken
from policy_support import (
    METHOD,
    ONE_TO_MANY,
    V4_SINGLE,
    Wire,
    imi,
    num,
    once_each,
    same,
    v4,
    v4_batches,
)

from mimgw import (
    Message,
    OutcomeUnknownError,
    ProviderError,
)
from mimgw.gateway import Gateway
from mimgw.ledger import IntentState
from mimgw.limits import RateLimit
from mimgw.retry import RetryPolicy
from mimgw.simulator import Simulator
from mimgw.testing import FakeClock, fake_gateway_for

# -- strategies --------------------------------------------------------------------------------


@METHOD
async def test_round_robin_alternates_whole_batches_between_gateways(
    sim: Simulator, method: str
) -> None:
    gw = fake_gateway_for(v4(sim, method=method), imi(sim), strategy="round_robin")
    messages = same(60)
    result = await gw.send_bulk(messages, concurrency=1)
    once_each(sim, result, messages)
    assert v4_batches(sim) == [7] * 5 and sim.imiconnect.batch_sizes == [5] * 5
    by = [r.provider for r in result.receipts]
    assert by == ([V4] * 7 + [IMI] * 5) * 5  # window by window, in input order
    await check_ledger_holds_all_taken(sim, gw, messages)


async def test_round_robin_with_a_gateway_that_cannot_batch(sim: Simulator) -> None:
    gw = fake_gateway_for(v4(sim), sim.provider(DINI), strategy="round_robin")
    messages = same(40)
    result = await gw.send_bulk(messages, concurrency=1)
    once_each(sim, result, messages)
    # v4 windows are batches of 7, dinisoft's a single: five rounds of 7 + 1
    assert sim.dinisoft.sent_count() == 5 and v4_batches(sim) == [7] * 5


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_weighted_batches_respect_weights(sim: Simulator, seed: int) -> None:
    providers = (v4(sim), imi(sim))
    only_imi = fake_gateway_for(*providers, strategy="weighted", weights={IMI: 1, V4: 0})
    first = same(23)
    result = await only_imi.send_bulk(first, concurrency=3)
    once_each(sim, result, first)
    assert sim.mimsms_v4.sent_count() == 0 and sim.imiconnect.batch_sizes == [5, 5, 5, 5, 3]
    mixed = fake_gateway_for(
        v4(sim), imi(sim), strategy="weighted", weights={V4: 3, IMI: 1}, rng=random.Random(seed)
    )
    second = same(140, start=100)
    result = await mixed.send_bulk(second, concurrency=4)
    once_each(sim, result, second)
    per = Counter(r.provider for r in result.receipts)
    assert per[V4] == sum(v4_batches(sim)) and per[IMI] == sum(sim.imiconnect.batch_sizes) - 23
    assert per[V4] > per[IMI] > 0  # 3:1, drawn per window
    assert max(v4_batches(sim)) <= 7 and max(sim.imiconnect.batch_sizes) <= 5


# -- rate limits and in-flight caps ------------------------------------------------------------


@METHOD
async def test_a_batch_costs_one_token_of_the_rate_limit(sim: Simulator, method: str) -> None:
    clock = FakeClock()
    limit = RateLimit(rate=2, burst=1, sleep=clock.sleep, clock=clock.monotonic)
    gw = fake_gateway_for(v4(sim, method=method), imi(sim), clock=clock, limits={V4: limit})
    messages = same(49)
    result = await gw.send_bulk(messages, concurrency=4)
    once_each(sim, result, messages)
    assert v4_batches(sim) == [7] * 7
    # seven requests: six waits of half a second (per message it would be 24 s)
    assert clock.elapsed == pytest.approx(3.0)
    assert gw.health()[V4]["in_flight"] == 0


async def test_in_flight_caps_hold_per_gateway_during_a_batched_campaign(sim: Simulator) -> None:
    wire = Wire(sim, hold=0.01)
    limits = {V4: RateLimit(max_in_flight=2), IMI: RateLimit(max_in_flight=1)}
    gw = fake_gateway_for(v4(sim), imi(sim), strategy="round_robin", limits=limits)
    messages = same(96)
    result = await gw.send_bulk(messages, concurrency=8)
    once_each(sim, result, messages)
    assert wire.peak[V4] == 2 and wire.peak[IMI] == 1
    assert v4_batches(sim) == [7] * 8 and sim.imiconnect.batch_sizes == [5] * 8
    assert [h["in_flight"] for h in gw.health().values()] == [0, 0]


# -- retry, then failover ----------------------------------------------------------------------


@METHOD
@pytest.mark.parametrize("fault", ["429", "v4-500"])
async def test_a_batch_that_sent_nothing_is_retried_in_place_and_sent_once(
    sim: Simulator, method: str, fault: str
) -> None:
    clock = FakeClock()
    wire = Wire(sim)
    gw = fake_gateway_for(v4(sim, method=method), imi(sim), clock=clock)
    if fault == "429":
        sim.fail(V4, "status", times=2, status=429, headers={"Retry-After": "2"})
    else:
        sim.mimsms_v4.force("500", times=2)
    messages = same(14)
    result = await gw.send_bulk(messages, concurrency=1)
    once_each(sim, result, messages)
    assert sim.imiconnect.sent_count() == 0 and v4_batches(sim) == [7, 7]
    assert clock.sleeps == ([2.0, 2.0] if fault == "429" else [0.2, 0.4])
    # the forced 500s reached the gateway; the proxy's 429s did not
    assert wire.count(ONE_TO_MANY) == (2 if fault == "429" else 4)
    assert [len(await gw.history(m.reference)) for m in messages] == [1] * 14


@pytest.mark.parametrize(("retry_after", "sleeps"), [("60", []), ("10", [10.0, 10.0])])
async def test_retry_after_within_the_deadline_then_failover(
    sim: Simulator, retry_after: str, sleeps: list[float]
) -> None:
    clock = FakeClock()
    retry = RetryPolicy(jitter=False, deadline=30, sleep=clock.sleep, clock=clock.monotonic)
    gw = fake_gateway_for(v4(sim), imi(sim), clock=clock, retry=retry)
    sim.fail(V4, "status", times=3, status=429, headers={"Retry-After": retry_after})
    messages = same(7)
    result = await gw.send_bulk(messages, concurrency=1)
    once_each(sim, result, messages)
    assert clock.sleeps == sleeps
    assert sim.mimsms_v4.sent_count() == 0 and sim.imiconnect.batch_sizes == [5, 2]
    assert {r.provider for r in result.receipts} == {IMI}


# -- on_unknown ------------------------------------------------------------------------------


async def test_on_unknown_failover_resends_singles_but_never_a_batch(sim: Simulator) -> None:
    gw = fake_gateway_for(v4(sim), imi(sim), on_unknown="failover")
    sim.fail(V4, "read_timeout", times=2)
    singles = same(4)
    result = await gw.send_bulk(singles, concurrency=1, batch=False)
    assert [r.provider for r in result.receipts] == [IMI, IMI, V4, V4]
    assert [taken(sim, m.to) for m in singles] == [2, 2, 1, 1]  # opted in to duplicates
    sim.fail(V4, "read_timeout", times=1)
    batch = same(7, start=10)
    result = await gw.send_bulk(batch, concurrency=1)
    assert all(isinstance(e, OutcomeUnknownError) for e in result.outcomes)
    assert [taken(sim, m.to) for m in batch] == [1] * 7 and sim.imiconnect.sent_count() == 2


async def test_on_unknown_failover_applies_to_singles_on_the_batch_route(sim: Simulator) -> None:
    retry = RetryPolicy(attempts=1)
    providers = (imi(sim), v4(sim, method="query"), sim.provider(DINI))
    gw = fake_gateway_for(*providers, retry=retry, on_unknown="failover")
    sim.fail(IMI, "connect_error", times=1)  # the array moves whole to v4 (query)
    sim.fail(V4, "read_timeout", times=1)  # which sends personalised texts as singles
    messages = [Message(to=num(i), text=f"own {i}") for i in range(5)]
    result = await gw.send_bulk(messages, concurrency=1)
    # as a single sent on its own: the unknown one fails over to dinisoft
    assert result.ok and sim.dinisoft.sent_count() == 1


async def test_a_single_failed_over_after_an_unknown_outcome_stays_may_have_been_sent(
    sim: Simulator,
) -> None:
    retry = RetryPolicy(attempts=1)
    providers = (imi(sim), v4(sim, method="query"), sim.provider(DINI))
    gw = fake_gateway_for(*providers, retry=retry, on_unknown="failover")
    sim.fail(IMI, "connect_error", times=1)  # the array moves whole to v4 (query)
    sim.fail(V4, "read_timeout", times=1)  # the first single: v4 may have sent it
    sim.dinisoft.force(1)  # and dinisoft refuses it
    messages = [Message(to=num(i), text=f"own {i}", idempotency_key=f"u{i}") for i in range(5)]
    result = await gw.send_bulk(messages, concurrency=1)
    [error] = result.errors
    assert isinstance(error, ProviderError) and error.provider == DINI
    assert error.may_have_been_sent  # whatever dinisoft said, v4 may have sent it
    intent = await gw.ledger.intent("u0")
    assert intent is not None and intent.state is IntentState.UNKNOWN
    assert [a.may_have_been_sent for a in intent.attempts] == [False, True, False]


# -- the CLI's send-bulk (one process, --no-batch) ---------------------------------------------


def _cli_gateway(monkeypatch: pytest.MonkeyPatch, make: Callable[[], Gateway]) -> None:
    from mimgw.cli import send

    async def open_gateway(args: Any, stack: AsyncExitStack) -> Gateway:
        gateway = make()
        await stack.enter_async_context(gateway)
        return gateway

    monkeypatch.setattr(send, "open_gateway", open_gateway)


def _csv(path: Path, count: int) -> Path:
    rows = ["to,text,key"] + [f"{num(i)},CLI text,row-{i}" for i in range(count)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _outcomes(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _cli(*argv: object) -> int:
    from mimgw.cli import main

    return main([str(a) for a in argv])


def test_cli_send_bulk_under_a_breaker_then_resumed(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    retry = RetryPolicy(attempts=1)
    _cli_gateway(monkeypatch, lambda: fake_gateway_for(v4(sim), imi(sim), retry=retry))
    sim.mimsms_v4.balance = Decimal("2.50")  # ten singles, then the breaker opens
    sim.fail(IMI, "connect_error", times=3)  # three rows provably not sent anywhere
    source, out = _csv(tmp_path / "in.csv", 30), tmp_path / "out.csv"
    assert _cli("send-bulk", source, "--output", out, "--key-column", "key", "--no-batch") == 1
    rows = _outcomes(out)
    assert [int(r["line"]) for r in rows] == list(range(2, 32))  # each row once, in order
    assert Counter(r["outcome"] for r in rows) == {"accepted": 27, "failed": 3}
    assert [r["idempotency_key"] for r in rows] == [f"row-{i}" for i in range(30)]
    assert sim.mimsms_v4.sent_count() == 10 and sim.imiconnect.sent_count() == 17
    assert sim.mimsms_v4.requests == 11  # the refused eleventh, then nothing more
    assert _cli("send-bulk", source, "--output", out, "--key-column", "key", "--no-batch") == 0
    rows = _outcomes(out)
    assert len(rows) == 30 and {r["outcome"] for r in rows} == {"accepted"}
    assert [taken(sim, num(i)) for i in range(30)] == [1] * 30
    assert sim.imiconnect.batch_sizes == [1] * 20  # --no-batch: singles
    assert _cli("send-bulk", source, "--output", out, "--key-column", "key", "--no-batch") == 0
    assert taken(sim) == 30


def test_cli_send_bulk_has_no_json_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _csv(tmp_path / "in.csv", 2)
    assert _cli("send-bulk", source, "--simulator", "--json") == 2
    out = capsys.readouterr().out
    assert '"error": "usage"' in out and "--json" in out
    assert not (tmp_path / "in.csv.outcomes.csv").exists()


# -- taskiq: a chunk delivered twice -----------------------------------------------------------


@pytest.mark.parametrize("batch", [True, False], ids=["batches", "singles"])
async def test_a_chunk_task_delivered_twice_sends_nothing_twice(
    sim: Simulator, batch: bool
) -> None:
    from taskiq import InMemoryBroker

    from mimgw.taskiq import MimgwTasks, _campaign_payload

    wire = Wire(sim)
    gw = fake_gateway_for(v4(sim), imi(sim))
    tasks = MimgwTasks(
        InMemoryBroker(), gateway_factory=lambda: gw, redeliver_every=None, batch=batch
    )
    payloads = [_campaign_payload("c1", num(i), "chunk text", None) for i in range(20)]
    try:
        first = await (await tasks.send_chunk.kiq(payloads)).wait_result(timeout=10)
        again = await (await tasks.send_chunk.kiq(payloads)).wait_result(timeout=10)
    finally:
        await tasks.aclose()
    assert [o["state"] for o in first.return_value] == ["accepted"] * 20
    assert again.return_value == first.return_value  # answered from the ledger
    assert [taken(sim, num(i)) for i in range(20)] == [1] * 20
    # the second delivery sent nothing: one-to-many batches (of 7 here), or 20 singles
    if batch:
        assert v4_batches(sim) == [7, 7, 6]
        assert wire.count(ONE_TO_MANY) == 3 and wire.count(V4_SINGLE) == 0
    else:
        assert wire.count(V4_SINGLE) == 20 and wire.count(ONE_TO_MANY) == 0
