"""Adversarial end-to-end scenarios: the Gateway over the real providers and the simulator.

Every scenario checks the same promises from the outside: each message ends with
exactly one outcome, nothing reaches a gateway twice unless the caller asked for it
(counted at the simulator), and redeliveries follow the gateways' own DLR tables.
All waiting runs on a :class:`FakeClock`; nothing sleeps for real beyond a few ms.
"""

from __future__ import annotations

import copy
import json
import os
import random
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx

from mimgw import (
    AllProvidersFailedError,
    DeliveryReport,
    ErrorKind,
    Message,
    MimgwError,
    OutcomeUnknownError,
    ProviderError,
    Receipt,
    State,
)
from mimgw.breaker import BreakerPolicy
from mimgw.gateway import Gateway
from mimgw.ledger import Ledger, LedgerEntry, MemoryLedger, SqliteLedger
from mimgw.limits import RateLimit
from mimgw.models import Category
from mimgw.providers import DiniSoft
from mimgw.providers._v3_codes import DEFAULT_RETRIES
from mimgw.providers.mimsms_v4 import BALANCE_PATH, MimSmsV4
from mimgw.retry import RedeliveryPolicy, RetryPolicy
from mimgw.simulator import Simulator
from mimgw.testing import FakeClock, fake_gateway_for

V4, DINI, V3, V3J, IMI = "mimsms_v4", "dinisoft", "mimsms_v3", "mimsms_v3_json", "imiconnect"
TO = "01712345678"
REDELIVER_NOW = RedeliveryPolicy(delays=(timedelta(seconds=1),))


def number(i: int) -> str:
    return f"01712{i:06d}"


def e164(i: int) -> str:
    return f"8801712{i:06d}"


def fast_retry(clock: FakeClock, **kwargs: Any) -> RetryPolicy:
    return RetryPolicy(jitter=False, sleep=clock.sleep, clock=clock.monotonic, **kwargs)


def gateway(sim: Simulator, *keys: str, clock: FakeClock, **kwargs: Any) -> Gateway:
    providers = [sim.provider(k) if isinstance(k, str) else k for k in keys]
    return fake_gateway_for(*providers, clock=clock, **kwargs)


def texts_at(sim: Simulator) -> dict[str, Counter[str]]:
    """Every message text each simulated gateway accepted, counted."""
    return {
        V4: Counter(m.text for m in sim.mimsms_v4.messages),
        DINI: Counter(m.text for m in sim.dinisoft.messages.values()),
        V3: Counter(m.text for m in sim.mimsms_v3.messages.values()),
        V3J: Counter(m.text for m in sim.mimsms_v3_json.messages.values()),
        IMI: Counter(m.text or "" for m in sim.imiconnect.messages.values()),
    }


def senders_at(sim: Simulator) -> dict[str, str]:
    """Text -> sender id, for what v4 and DiniSoft accepted."""
    out = {m.text: m.sender for m in sim.mimsms_v4.messages}
    out.update({m.text: m.sender for m in sim.dinisoft.messages.values()})
    return out


def v4_of(gw: Gateway) -> MimSmsV4:
    provider = gw.providers[V4]
    assert isinstance(provider, MimSmsV4)
    return provider


class ServerLikeLedger(MemoryLedger):
    """A memory ledger that yields to the event loop on every write, like a database client,
    and can call a hook first (to cancel something at an exact point)."""

    def __init__(self, clock: FakeClock, hook: Callable[[str], None] | None = None) -> None:
        super().__init__(clock=clock.now)
        self.hook = hook
        self.writes: Counter[str] = Counter()

    async def record_submit(
        self, receipt: Receipt, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry:
        self.writes["submit"] += 1
        if self.hook is not None:
            self.hook("submit")
        await anyio.lowlevel.checkpoint()
        return await super().record_submit(receipt, attempt=attempt, message=message)

    async def record_report(self, report: DeliveryReport) -> tuple[LedgerEntry, bool]:
        self.writes["report"] += 1
        if self.hook is not None:
            self.hook("report")
        await anyio.lowlevel.checkpoint()
        return await super().record_report(report)


class Tracking(httpx.AsyncBaseTransport):
    """Wraps the simulator's transport; records concurrency and (fake) start times."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: FakeClock) -> None:
        self.inner = inner
        self.clock = clock
        self.in_flight = 0
        self.peak = 0
        self.started: list[tuple[float, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.started.append((self.clock.monotonic(), request.url.path))
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


# -- bulk under mixed failures ----------------------------------------------------------------


def _fault_plan(sim: Simulator, rng: random.Random) -> None:
    menu: list[tuple[str, dict[str, Any]]] = [
        (V4, {"action": "connect_error"}),
        (V4, {"action": "read_timeout"}),
        (V4, {"action": "reset_after_send"}),
        (V4, {"action": "status", "status": 429, "headers": {"Retry-After": "2"}}),
        (V4, {"action": "status", "status": 502}),  # bodiless 5xx: may have been sent
        (V4, {"action": "status", "status": 503, "body": "<html>busy</html>"}),
        (DINI, {"action": "connect_error"}),
        (DINI, {"action": "read_timeout"}),
        (DINI, {"action": "status", "status": 429}),
    ]
    for _ in range(rng.randint(6, 14)):
        key, fault = rng.choice(menu)
        sim.fail(key, times=rng.randint(1, 3), **fault)


@pytest.mark.parametrize("seed", range(6))
async def test_bulk_with_mixed_failures_gives_one_outcome_each_and_sends_nothing_twice(
    sim: Simulator, seed: int
) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    sim.mimsms_v4.blocked_words = {"casino"}
    gw = gateway(sim, V4, DINI, clock=clock, retry=fast_retry(clock, deadline=None))
    messages: list[Message] = []
    for i in range(30):
        kind = rng.choice(["ok", "ok", "ok", "blocked", "sender"])
        text = f"s{seed} m{i}" + (" casino" if kind == "blocked" else "")
        sender = "UNREG" if kind == "sender" else None
        messages.append(Message(to=number(i), text=text, sender=sender))
    _fault_plan(sim, rng)

    result = await gw.send_bulk(messages, concurrency=rng.choice([1, 4, 12]))

    assert list(result.messages) == messages and len(result) == len(messages)
    at = texts_at(sim)
    senders = senders_at(sim)
    unknown_and_stored = 0
    for message, outcome in result.items():
        copies = at[V4][message.text] + at[DINI][message.text]
        history = await gw.history(message.reference)
        if isinstance(outcome, Receipt):
            assert copies == 1 and at[outcome.provider][message.text] == 1
            assert outcome.reference == message.reference
            assert [(e.provider, e.message_id) for e in history] == [
                (outcome.provider, outcome.message_id)
            ]
            own = "MIMGWDEMO" if outcome.provider == V4 else "SIMDINI"
            assert senders[message.text] == (message.sender or own)
            if "casino" in message.text or message.sender == "UNREG":
                assert outcome.provider == DINI  # v4 refuses these
        else:
            assert history == []
            assert isinstance(outcome, ProviderError | AllProvidersFailedError)
            maybe_sent = isinstance(outcome, ProviderError) and outcome.may_have_been_sent
            if isinstance(outcome, AllProvidersFailedError):
                assert outcome.attempts and all(not a.may_have_been_sent for a in outcome.attempts)
                assert len({a.provider for a in outcome.attempts}) == len(outcome.attempts)
            assert copies <= (1 if maybe_sent else 0)
            unknown_and_stored += copies
    stored = sum(at[V4].values()) + sum(at[DINI].values())
    assert stored == len(result.receipts) + unknown_and_stored
    assert max([*at[V4].values(), *at[DINI].values()], default=1) == 1
    await gw.aclose()


async def test_pinned_bulk_never_touches_another_gateway(sim: Simulator) -> None:
    clock = FakeClock()
    gw = gateway(sim, V4, DINI, clock=clock)
    sim.fail(DINI, "connect_error", times=3)  # the first message fails on DiniSoft
    messages = [Message(to=number(i), text=f"pinned {i}") for i in range(6)]
    result = await gw.send_bulk(messages, concurrency=1, provider=DINI)
    assert isinstance(result[0], ProviderError) and result[0].kind is ErrorKind.CONNECT_FAILED
    assert all(isinstance(o, Receipt) and o.provider == DINI for o in result.outcomes[1:])
    assert sim.mimsms_v4.requests == 0 and len(sim.dinisoft.messages) == 5
    await gw.aclose()


# -- outcome unknown, failover, pinned senders -------------------------------------------------


@pytest.mark.parametrize("action", ["read_timeout", "reset_after_send"])
async def test_an_unknown_outcome_is_never_resent_nor_failed_over_by_default(
    sim: Simulator, action: Any
) -> None:
    clock = FakeClock()
    gw = gateway(sim, V4, DINI, clock=clock)
    sim.fail(V4, action)
    with pytest.raises(OutcomeUnknownError):
        await gw.send(TO, "maybe sent", reference="u-1")
    assert texts_at(sim)[V4]["maybe sent"] == 1  # the gateway took it; the answer was lost
    assert sim.dinisoft.requests == 0 and clock.sleeps == []
    assert await gw.history("u-1") == []
    await gw.aclose()


async def test_on_unknown_failover_and_resend_unknown_are_the_only_ways_to_a_duplicate(
    sim: Simulator,
) -> None:
    clock = FakeClock()
    failover = gateway(sim, V4, DINI, clock=clock, on_unknown="failover")
    sim.fail(V4, "read_timeout")
    receipt = await failover.send(TO, "dup by failover", reference="d-1")
    assert receipt.provider == DINI and receipt.reference == "d-1"
    at = texts_at(sim)
    assert (at[V4]["dup by failover"], at[DINI]["dup by failover"]) == (1, 1)

    resend = gateway(sim, V4, DINI, clock=clock, retry=fast_retry(clock, resend_unknown=True))
    sim.fail(V4, "read_timeout")
    receipt = await resend.send(TO, "dup by resend", reference="d-2")
    assert receipt.provider == V4 and texts_at(sim)[V4]["dup by resend"] == 2
    assert texts_at(sim)[DINI]["dup by resend"] == 0


async def test_failover_uses_each_gateways_own_sender_unless_the_message_pins_one(
    sim: Simulator,
) -> None:
    clock = FakeClock()
    unregistered = sim.provider(V4, sender="NOTREG")
    gw = gateway(sim, unregistered, DINI, clock=clock)
    assert (await gw.send(TO, "own sender")).provider == DINI
    assert senders_at(sim)["own sender"] == "SIMDINI"
    assert (await gw.send(TO, "pinned sender", sender="BRAND")).provider == DINI
    assert senders_at(sim)["pinned sender"] == "BRAND"
    receipt = await gw.send(TO, "registered pin", sender="MIMGWDEMO")
    assert receipt.provider == V4 and senders_at(sim)["registered pin"] == "MIMGWDEMO"
    assert sum(texts_at(sim)[V4].values()) == 1  # the 208s stored nothing


async def test_all_providers_failed_carries_every_attempt_with_its_error(sim: Simulator) -> None:
    clock = FakeClock()
    gw = gateway(sim, V4, sim.provider(DINI, api_key="wrong-key"), clock=clock)
    sim.fail(V4, "connect_error", times=3)
    with pytest.raises(AllProvidersFailedError) as caught:
        await gw.send(TO, "nowhere")
    attempts = caught.value.attempts
    assert [(a.provider, a.kind) for a in attempts] == [
        (V4, ErrorKind.CONNECT_FAILED),
        (DINI, ErrorKind.AUTH),
    ]
    assert all(str(a) in str(caught.value) for a in attempts)
    assert "wrong-key" not in str(caught.value)
    assert sum(texts_at(sim)[V4].values()) + sum(texts_at(sim)[DINI].values()) == 0


@pytest.mark.parametrize("strategy", ["priority", "round_robin", "weighted"])
async def test_every_strategy_routes_around_a_dead_gateway_and_its_breaker_opens(
    sim: Simulator, strategy: Any
) -> None:
    clock = FakeClock()
    gw = gateway(sim, V4, DINI, clock=clock, strategy=strategy, rng=random.Random(3))
    dead = sim.fail(V4, "connect_error", times=None)
    receipts = [await gw.send(number(i), f"{strategy} {i}") for i in range(12)]
    assert {r.provider for r in receipts} == {DINI}
    assert dead.hits == 5  # threshold consecutive failures, then skipped
    assert gw.health()[V4]["state"] == "open"
    assert sorted(texts_at(sim)[DINI].values()) == [1] * 12


async def test_retry_after_beyond_the_deadline_fails_over_without_waiting(sim: Simulator) -> None:
    clock = FakeClock()
    gw = gateway(sim, V4, DINI, clock=clock, retry=fast_retry(clock, deadline=30))
    sim.fail(V4, "status", status=429, headers={"Retry-After": "45"})
    assert (await gw.send(TO, "later")).provider == DINI
    assert clock.sleeps == []
    sim.fail(V4, "status", status=429, headers={"Retry-After": "3"})
    sim.fail(V4, "status", status=429, headers={"Retry-After": "3"})
    assert (await gw.send(TO, "soon")).provider == V4
    assert clock.sleeps == [3.0, 3.0]


async def test_reads_are_retried_freely_and_never_feed_the_breaker(sim: Simulator) -> None:
    clock = FakeClock()
    gw = gateway(sim, V4, DINI, clock=clock, breaker=BreakerPolicy(threshold=1))
    sim.fail(V4, "connect_error", path=BALANCE_PATH)
    sim.fail(V4, "read_timeout", path=BALANCE_PATH)
    balance = await gw.balance(provider=V4)
    assert balance.amount == sim.mimsms_v4.balance
    assert gw.health()[V4]["state"] == "closed" and gw.health()[V4]["failures"] == 0


# -- breaker with the balance probe ----------------------------------------------------------


def probing_gateway(sim: Simulator, clock: FakeClock) -> Gateway:
    policy = BreakerPolicy(account_cooldown=600, probe_balance=True, clock=clock.monotonic)
    return gateway(sim, V4, DINI, clock=clock, breaker=policy)


async def test_balance_probe_gates_a_dry_gateway_until_it_has_credit(sim: Simulator) -> None:
    clock = FakeClock()
    gw = probing_gateway(sim, clock)
    sim.mimsms_v4.force("216")
    assert (await gw.send(TO, "dry 1")).provider == DINI
    health = gw.health()[V4]
    assert (health["state"], health["opened_because"]) == ("open", "insufficient_balance")
    before = sim.mimsms_v4.requests
    assert (await gw.send(TO, "dry 2")).provider == DINI
    assert sim.mimsms_v4.requests == before  # skipped without a request
    clock.advance(600)
    sim.mimsms_v4.balance = sim.mimsms_v4.balance * 0
    assert (await gw.send(TO, "dry 3")).provider == DINI  # probe says 0: still closed to traffic
    assert sim.mimsms_v4.requests == before + 1 and gw.health()[V4]["state"] == "open"
    clock.advance(600)
    sim.mimsms_v4.balance += 100
    assert (await gw.send(TO, "wet")).provider == V4
    assert gw.health()[V4]["state"] == "closed"
    assert sum(texts_at(sim)[V4].values()) == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "read_timeout", "times": 3},
        {"action": "status", "status": 200, "body": "<html>maintenance</html>"},
    ],
)
async def test_a_balance_probe_that_gets_no_usable_answer_fails_over_instead_of_raising(
    sim: Simulator, fault: dict[str, Any]
) -> None:
    clock = FakeClock()
    gw = probing_gateway(sim, clock)
    sim.mimsms_v4.force("216")
    await gw.send(TO, "first")
    clock.advance(600)
    sim.fail(V4, path=BALANCE_PATH, **fault)
    # nothing was submitted to v4: the message must go on to the backup
    receipt = await gw.send(TO, "probe lost", reference="p-1")
    assert receipt.provider == DINI
    assert texts_at(sim)[V4]["probe lost"] == 0
    assert gw.health()[V4]["state"] == "open"


async def test_a_cancelled_balance_probe_does_not_wedge_the_breaker(sim: Simulator) -> None:
    clock = FakeClock()
    gw = probing_gateway(sim, clock)
    sim.mimsms_v4.force("216")
    await gw.send(TO, "first")
    clock.advance(600)
    sim.fail(V4, "delay", seconds=30, path=BALANCE_PATH)
    with anyio.move_on_after(0.02):
        await gw.send(TO, "cancelled")
    assert texts_at(sim)[V4]["cancelled"] == 0 and texts_at(sim)[DINI]["cancelled"] == 0
    receipt = await gw.send(TO, "after")  # the next call probes again and gets through
    assert receipt.provider == V4
    assert gw.health()[V4]["state"] == "closed"


# -- pacing -------------------------------------------------------------------------------------


async def test_in_flight_cap_holds_for_bulk_singles_and_reads_together(sim: Simulator) -> None:
    clock = FakeClock()
    tracking = Tracking(sim.transport(), clock)
    client = httpx.AsyncClient(transport=tracking)
    v4 = sim.provider(V4, client=client)
    gw = gateway(sim, v4, clock=clock, limits={V4: RateLimit(max_in_flight=3)})
    sim.fail(V4, "delay", times=None, seconds=0.002)
    messages = [Message(to=number(i), text=f"capped {i}") for i in range(18)]
    singles: list[Receipt] = []

    async def single(i: int) -> None:
        singles.append(await gw.send(number(100 + i), f"single {i}"))

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(single, i)
        tg.start_soon(gw.balance)
        result = await gw.send_bulk(messages, concurrency=12)
    assert result.ok and len(singles) == 4
    assert tracking.peak == 3  # saturated, never above the cap
    assert gw.health()[V4]["in_flight"] == 0
    assert sorted(texts_at(sim)[V4].values()) == [1] * 22
    await client.aclose()


async def test_rate_limit_paces_a_bulk_on_the_fake_clock(sim: Simulator) -> None:
    clock = FakeClock()
    tracking = Tracking(sim.transport(), clock)
    client = httpx.AsyncClient(transport=tracking)
    limit = RateLimit(rate=5, burst=2, sleep=clock.sleep, clock=clock.monotonic)
    gw = gateway(sim, sim.provider(V4, client=client), clock=clock, limits=limit)
    result = await gw.send_bulk(
        [Message(to=number(i), text=f"paced {i}") for i in range(12)],
        concurrency=6,
        batch=False,  # pacing of singles (a batch is one paced request)
    )
    assert result.ok
    starts = sorted(t for t, _ in tracking.started)
    for k, at in enumerate(starts, start=1):  # k requests by time `at` need k - burst refills
        assert at >= (k - 2) / 5 - 1e-9
    assert starts[-1] == pytest.approx(2.0)
    await client.aclose()


# -- cancellation ------------------------------------------------------------------------------


async def test_cancelling_a_bulk_mid_send_loses_and_duplicates_no_ledger_entry(
    sim: Simulator,
) -> None:
    clock = FakeClock()
    scope = anyio.CancelScope()
    submits = 0

    def cancel_on_third_submit(kind: str) -> None:
        nonlocal submits
        if kind == "submit":
            submits += 1
            if submits == 3:
                scope.cancel()  # while the gateway is recording a receipt it already has

    ledger = ServerLikeLedger(clock, cancel_on_third_submit)
    gw = gateway(sim, V4, clock=clock, ledger=ledger)
    sim.fail(V4, "delay", times=None, seconds=0)  # every request yields before reaching v4
    messages = [Message(to=number(i), text=f"cancel {i}") for i in range(20)]
    with scope:
        await gw.send_bulk(messages, concurrency=4, batch=False)
    assert scope.cancelled_caught
    sim.faults.clear()

    accepted = sim.mimsms_v4.messages
    assert 3 <= len(accepted) < len(messages)
    for sent in accepted:  # every message the gateway took is in the ledger, once
        entry = await gw.ledger.get(V4, sent.trxn_id)
        assert entry is not None and entry.submitted
    at = texts_at(sim)[V4]
    for message in messages:
        assert len(await gw.history(message.reference)) == at[message.text] <= 1
    assert gw.health()[V4]["in_flight"] == 0
    assert (await gw.send(TO, "still works")).provider == V4


async def test_cancelling_a_flush_keeps_every_pending_report(sim: Simulator) -> None:
    clock = FakeClock()
    scope = anyio.CancelScope()
    reports = 0

    def cancel_on_second_report(kind: str) -> None:
        nonlocal reports
        if kind == "report":
            reports += 1
            if reports == 2:
                scope.cancel()

    ledger = ServerLikeLedger(clock)
    gw = gateway(sim, V4, clock=clock, ledger=ledger)
    receipts = [await gw.send(number(i), f"flush {i}") for i in range(6)]
    for receipt in receipts:
        v4_of(gw).parse_dlr(receipt.message_id, "Delivered")
    ledger.hook = cancel_on_second_report
    with scope:
        await gw.flush()
    assert scope.cancelled_caught
    ledger.hook = None
    await gw.flush()
    for receipt in receipts:
        assert (await gw.status(receipt.message_id)).state is State.DELIVERED


# -- shuffled, repeated and early reports ------------------------------------------------------


def imi_report(payload: dict[str, Any], word: str) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    info = out["deliveryInfoNotification"]["deliveryInfo"]
    info["deliveryStatus"] = info["Description"] = word
    return out


async def test_shuffled_repeated_pushed_reports_settle_every_message_once(
    sim: Simulator,
) -> None:
    clock = FakeClock()
    gw = gateway(sim, IMI, clock=clock, redelivery=REDELIVER_NOW)
    messages = [Message(to=number(i), text=f"push {i}") for i in range(40)]
    result = await gw.send_bulk(messages, concurrency=8)
    assert result.ok
    finals = ["Delivered", "Failed", "Expired", "Rejected"]
    expected: dict[str, State] = {}
    pushes: list[dict[str, Any]] = []
    for i, receipt in enumerate(result.receipts):
        payload = sim.imiconnect.report_payload(sim.imiconnect.messages[receipt.message_id])
        final = finals[i % 4]
        expected[receipt.message_id] = {
            "Delivered": State.DELIVERED,
            "Failed": State.UNDELIVERABLE,
            "Expired": State.EXPIRED,
            "Rejected": State.REJECTED,
        }[final]
        for word in ["Queued", "Sent", final, "Queued", final, "Sent"]:
            pushes.append(imi_report(payload, word))
    rng = random.Random(11)
    rng.shuffle(pushes)
    while pushes:  # single payloads and arrays of several, as IMIconnect may send
        size = rng.randint(1, 5)
        chunk, pushes = pushes[:size], pushes[size:]
        body = json.dumps(chunk if size > 1 else chunk[0]).encode()
        await gw.ingest_webhook(IMI, body, {})
    before = sim.imiconnect.requests
    for message, receipt in zip(messages, result.receipts, strict=True):
        report = await gw.status(receipt.message_id)  # IMIconnect cannot pull: the ledger answers
        assert report.state is expected[receipt.message_id]
        assert report.reference == message.reference
        [entry] = await gw.history(message.reference)
        assert entry.settled and entry.text is None  # IMIconnect allows no redelivery
    assert sim.imiconnect.requests == before
    clock.advance(3600)
    assert await gw.redeliver_due() == []
    assert sorted(texts_at(sim)[IMI].values()) == [1] * 40


async def test_shuffled_v3_notifications_schedule_each_failed_message_exactly_once(
    sim: Simulator,
) -> None:
    clock = FakeClock()
    gw = gateway(sim, V3J, clock=clock, redelivery=REDELIVER_NOW)
    v3 = sim.mimsms_v3_json
    outcomes = [(5, 0), (9, 27), (9, 1), (15, 0), (6, 0)]  # delivered, retry, permanent, ...
    retrying = {1, 3}
    for i in range(20):
        v3.set_outcome(e164(i), *outcomes[i % 5])
    messages = [Message(to=number(i), text=f"v3 push {i}") for i in range(20)]
    receipts = [await gw.send_message(m) for m in messages]
    bodies: list[bytes] = []
    for _stage in range(3):  # pending, with the operator, final
        bodies += [v3.notify_body(r.message_id) for r in receipts] * 2
        sim.clock.advance(1.0)
    random.Random(5).shuffle(bodies)
    for body in bodies:
        await gw.ingest_webhook(V3J, body, {})
    clock.advance(1)
    resent = await gw.redeliver_due()
    assert len(resent) == sum(1 for i in range(20) if i % 5 in retrying)
    assert all(isinstance(r, Receipt) for r in resent)
    assert await gw.redeliver_due() == []
    for i, message in enumerate(messages):
        history = await gw.history(message.reference)
        assert len(history) == (2 if i % 5 in retrying else 1)
        assert history[0].settled and history[0].text is None
        assert texts_at(sim)[V3J][message.text] == len(history)


class EarlyReports(httpx.AsyncBaseTransport):
    """Delivers the gateway's push for a submit *before* the submit's answer arrives."""

    def __init__(self, sim: Simulator, push: Callable[[str], Any]) -> None:
        self.inner = sim.transport()
        self.push = push

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/sms/1/text/single":
            await response.aread()
            for item in response.json().get("messages", []):
                if "messageId" in item:
                    await self.push(item["messageId"])
        return response


async def test_reports_that_beat_their_submit_are_matched_and_drive_redelivery(
    sim: Simulator,
) -> None:
    clock = FakeClock()
    v3 = sim.mimsms_v3_json
    v3.final_after = 0.0  # final the moment it is accepted
    v3.set_outcome(e164(1), 9, 27)  # absent subscriber: not permanent
    holder: list[Gateway] = []

    async def push(message_id: str) -> None:
        await holder[0].ingest_webhook(V3J, v3.notify_body(message_id), {})

    client = httpx.AsyncClient(transport=EarlyReports(sim, push))
    gw = gateway(sim, sim.provider(V3J, client=client), clock=clock, redelivery=REDELIVER_NOW)
    holder.append(gw)
    receipt = await gw.send(number(1), "early bird", reference="early")
    entry = await gw.ledger.get(V3J, receipt.message_id)
    assert entry is not None and entry.submitted and entry.state is State.UNDELIVERABLE
    assert entry.next_attempt_at is not None and entry.text == "early bird"
    for _ in range(DEFAULT_RETRIES + 2):
        clock.advance(1)
        await gw.redeliver_due()
    history = await gw.history("early")
    assert [e.attempt for e in history] == list(range(1, DEFAULT_RETRIES + 2))
    assert all(e.settled and e.text is None for e in history)
    assert texts_at(sim)[V3J]["early bird"] == DEFAULT_RETRIES + 1
    await client.aclose()


# -- redelivery counts from the vendors' tables --------------------------------------------------

# The MiMSMS v4 operator DLR table: (status name, description, operator retry policy).
V4_DLR_ROWS = [
    ("Delivered", None, 0),
    ("Absent subscriber for SM", None, 3),
    ("Undelivered", None, 0),
    ("Subscriber Busy", None, 3),
    ("Unidentified subscriber", None, 0),
    ("Barred subscriber", None, 0),
    ("Illegal subscriber", None, 0),
    ("SMS Failed", "Sender ID Block by operators for Illegal SMS Traffic", 0),
    ("System failure", None, 3),
    ("SMS Failed", "Network failure in SMSC Link", 3),
    ("SMSC Timeout-abort", None, 3),
]


def make_ledger(kind: str, clock: FakeClock, tmp_path: Path) -> Ledger:
    if kind == "memory":
        return MemoryLedger(clock=clock.now)
    return SqliteLedger(tmp_path / "ledger.db", clock=clock.now)


@pytest.mark.parametrize("ledger_kind", ["memory", "sqlite"])
@pytest.mark.parametrize(("status", "description", "retries"), V4_DLR_ROWS)
async def test_v4_redeliveries_follow_the_operator_retry_policy(
    sim: Simulator,
    tmp_path: Path,
    ledger_kind: str,
    status: str,
    description: str | None,
    retries: int,
) -> None:
    clock = FakeClock()
    ledger = make_ledger(ledger_kind, clock, tmp_path)
    gw = gateway(sim, V4, clock=clock, redelivery=REDELIVER_NOW, ledger=ledger)
    latest = (await gw.send(TO, "dlr row", reference="row")).message_id
    for _ in range(retries + 3):
        report = v4_of(gw).parse_dlr(latest, status, description)
        assert report.retries_allowed == retries
        v4_of(gw).parse_dlr(latest, status, description)  # repeated: changes nothing
        await gw.flush()
        clock.advance(1)
        outcomes = await gw.redeliver_due()
        if not outcomes:
            continue
        [outcome] = outcomes
        assert isinstance(outcome, Receipt) and outcome.reference == "row"
        latest = outcome.message_id
    assert texts_at(sim)[V4]["dlr row"] == retries + 1
    history = await gw.history("row")
    assert [e.attempt for e in history] == list(range(1, retries + 2))
    assert all(e.settled and e.text is None for e in history)
    await gw.aclose()


# (status id, GSM error id, redeliveries) from the v3 status and GSM error tables:
# a failure is resent DEFAULT_RETRIES times unless the table marks it permanent.
V3_JSON_ROWS = [
    (5, 0, 0),  # DELIVERED_TO_HANDSET
    (9, 27, DEFAULT_RETRIES),  # EC_ABSENT_SUBSCRIBER, not permanent
    (9, 6, DEFAULT_RETRIES),  # EC_ABSENT_SUBSCRIBER_SM, not permanent
    (9, 34, DEFAULT_RETRIES),  # EC_SYSTEM_FAILURE, not permanent
    (9, 13, DEFAULT_RETRIES),  # EC_CALL_BARRED, not permanent in the table
    (9, 1, 0),  # EC_UNKNOWN_SUBSCRIBER, permanent
    (9, 9, 0),  # EC_ILLEGAL_SUBSCRIBER, permanent
    (9, 2049, 0),  # EC_IMSI_BLACKLISTED, permanent
    (15, 0, DEFAULT_RETRIES),  # EXPIRED_EXPIRED
    (14, 0, 0),  # REJECTED_DESTINATION
]


@pytest.mark.parametrize(("status_id", "error_id", "retries"), V3_JSON_ROWS)
async def test_v3_json_redeliveries_follow_the_gsm_permanent_flag(
    sim: Simulator, status_id: int, error_id: int, retries: int
) -> None:
    clock = FakeClock()
    gw = gateway(sim, V3J, clock=clock, redelivery=REDELIVER_NOW)
    sim.mimsms_v3_json.set_outcome(e164(7), status_id, error_id)
    await gw.send(number(7), "gsm row", reference="gsm")
    for _ in range(retries + 3):
        sim.clock.advance(60)
        pulled = await gw.fetch_reports()  # read once at the gateway, kept by the ledger
        pulled += await gw.fetch_reports()  # a second pull hands over nothing new
        assert len(pulled) <= 1
        clock.advance(1)
        await gw.redeliver_due()
    assert texts_at(sim)[V3J]["gsm row"] == retries + 1
    history = await gw.history("gsm")
    assert len(history) == retries + 1 and all(e.settled for e in history)


@pytest.mark.parametrize(
    ("word", "retries"),
    [
        ("DELIVERED", 0),
        ("UNDELIVERABLE", DEFAULT_RETRIES),
        ("EXPIRED", DEFAULT_RETRIES),
        ("REJECTED", 0),
    ],
)
async def test_v3_plain_redelivery_loop_resends_at_most_what_the_report_allows(
    sim: Simulator, word: str, retries: int
) -> None:
    plain = sim.mimsms_v3
    plain.final_after = plain.operator_after = 0.0
    plain.set_outcome(e164(9), word)
    gw = Gateway(
        [sim.provider(V3)], redelivery=RedeliveryPolicy(delays=(timedelta(0),)), now=FakeClock().now
    )
    await gw.send(number(9), "plain loop", reference="plain")
    async with gw.redelivery_loop(0.001, pull_reports=True):
        for _ in range(400):
            if texts_at(sim)[V3]["plain loop"] >= retries + 1:
                break
            await anyio.sleep(0.001)
        await anyio.sleep(0.02)  # more ticks: nothing more may be sent
    assert texts_at(sim)[V3]["plain loop"] == retries + 1
    assert [e.attempt for e in await gw.history("plain")] == list(range(1, retries + 2))


# -- SQLite across a restart -------------------------------------------------------------------


async def test_sqlite_ledger_carries_state_and_redelivery_across_a_reopen(
    sim: Simulator, tmp_path: Path
) -> None:
    clock = FakeClock()
    path = tmp_path / "var" / "sms.db"
    policy = RedeliveryPolicy(delays=(timedelta(minutes=5),))

    def open_gateway() -> Gateway:
        ledger = SqliteLedger(path, clock=clock.now)
        return gateway(sim, V4, clock=clock, ledger=ledger, redelivery=policy)

    gw = open_gateway()
    texts = {"ok": "code 1111", "busy": "code 2222", "barred": "code 3333"}
    ids = {k: (await gw.send(TO, t, reference=k)).message_id for k, t in texts.items()}
    v4_of(gw).parse_dlr(ids["ok"], "Delivered")
    v4_of(gw).parse_dlr(ids["busy"], "Subscriber Busy")
    v4_of(gw).parse_dlr(ids["barred"], "Barred subscriber")
    await gw.aclose()  # records what is pending, closes the ledger

    gw = open_gateway()  # a restart: new provider, new ledger object, same file
    before = sim.mimsms_v4.requests
    assert (await gw.status(ids["ok"])).state is State.DELIVERED
    assert (await gw.status(ids["busy"])).state is State.UNDELIVERABLE
    assert (await gw.status(ids["barred"])).state is State.UNDELIVERABLE
    assert sim.mimsms_v4.requests == before  # v4 cannot pull: every answer is the ledger's
    [busy] = await gw.history("busy")
    assert busy.text == "code 2222" and not busy.settled and busy.next_attempt_at is not None
    assert await gw.redeliver_due() == []  # not due yet
    clock.advance(timedelta(minutes=5))
    [resent] = await gw.redeliver_due()
    assert isinstance(resent, Receipt) and resent.reference == "busy"
    assert await gw.redeliver_due() == []
    v4_of(gw).parse_dlr(ids["busy"], "Subscriber Busy")  # a late duplicate of the old report
    clock.advance(timedelta(hours=1))
    assert await gw.redeliver_due() == []
    await gw.aclose()

    gw = open_gateway()
    assert [e.attempt for e in await gw.history("busy")] == [1, 2]
    assert texts_at(sim)[V4] == Counter({"code 1111": 1, "code 2222": 2, "code 3333": 1})
    await gw.aclose()
    with sqlite3.connect(path) as db:  # no text left behind for anything settled
        rows = [json.loads(d) for (d,) in db.execute("SELECT data FROM mimgw_ledger")]
    kept = {r["reference"]: r["text"] for r in rows if r["text"] is not None}
    assert kept == {"busy": "code 2222"}  # only the unsettled second attempt
    assert all(r["text"] is None for r in rows if r["settled"])


# -- the text is kept only while it may be needed -------------------------------------------------


@pytest.mark.parametrize("category", ["transactional", "promotional"])
async def test_redelivery_keeps_the_category_and_pinned_sender(
    sim: Simulator, category: Category
) -> None:
    clock = FakeClock()
    gw = gateway(sim, V4, clock=clock, redelivery=REDELIVER_NOW)
    receipt = await gw.send(TO, "resend me", sender="MIMGWDEMO", category=category, reference="c")
    v4_of(gw).parse_dlr(receipt.message_id, "System failure")
    await gw.flush()
    clock.advance(1)
    [outcome] = await gw.redeliver_due()
    assert isinstance(outcome, Receipt)
    kinds = [m.transaction_type for m in sim.mimsms_v4.messages]
    assert kinds == ["P", "P"] if category == "promotional" else kinds == ["T", "T"]
    assert [m.sender for m in sim.mimsms_v4.messages] == ["MIMGWDEMO", "MIMGWDEMO"]


async def test_two_workers_on_one_sqlite_ledger_redeliver_a_message_once(
    sim: Simulator, tmp_path: Path
) -> None:
    clock = FakeClock()
    path = tmp_path / "shared.db"
    workers = [
        gateway(
            sim,
            V4,
            clock=clock,
            redelivery=REDELIVER_NOW,
            ledger=SqliteLedger(path, clock=clock.now),
        )
        for _ in range(2)
    ]
    for i in range(5):
        receipt = await workers[0].send(number(i), f"shared {i}", reference=f"shared-{i}")
        v4_of(workers[0]).parse_dlr(receipt.message_id, "SMSC Timeout-abort")
    await workers[0].flush()
    clock.advance(1)
    outcomes: list[list[Receipt | MimgwError]] = []

    async def run(worker: Gateway) -> None:
        outcomes.append(await worker.redeliver_due())

    async with anyio.create_task_group() as tg:
        for worker in workers:
            tg.start_soon(run, worker)
    assert sum(len(o) for o in outcomes) == 5
    assert sorted(texts_at(sim)[V4].values()) == [2] * 5
    for worker in workers:  # what each wrote is in the file, not only in its journal
        await worker.flush()
    for i in range(5):
        assert [e.attempt for e in await workers[1].history(f"shared-{i}")] == [1, 2]
    for worker in workers:
        await worker.aclose()


async def test_the_redelivery_loop_keeps_resending_while_a_report_pull_fails(
    sim: Simulator,
) -> None:
    clock = FakeClock()
    policy = RedeliveryPolicy(delays=(timedelta(0),))
    gw = gateway(sim, V4, V3J, clock=clock, redelivery=policy)
    sim.fail(V3J, "status", times=None, status=503, path="/sms/1/reports")
    receipt = await gw.send(TO, "loop v4", reference="loop")
    v4_of(gw).parse_dlr(receipt.message_id, "System failure")
    async with gw.redelivery_loop(0.001, pull_reports=True):
        for _ in range(300):
            if texts_at(sim)[V4]["loop v4"] >= 2:
                break
            await anyio.sleep(0.001)
    assert texts_at(sim)[V4]["loop v4"] == 2
    assert [e.attempt for e in await gw.history("loop")] == [1, 2]


async def test_status_of_an_id_the_ledger_lost_is_asked_until_a_gateway_knows_it(
    sim: Simulator,
) -> None:
    clock = FakeClock()
    before = gateway(sim, V3, DINI, clock=clock)
    receipt = await before.send(TO, "which gateway?", provider=DINI)
    sim.clock.advance(3600)
    after = gateway(sim, V3, DINI, clock=clock)  # a restart with an empty memory ledger
    # v3 answers "no unread report" for any id; that must not hide DiniSoft's answer
    report = await after.status(receipt.message_id)
    assert (report.provider, report.state) == (DINI, State.DELIVERED)
    requests = (sim.mimsms_v3.requests, sim.dinisoft.requests)
    again = await after.status(receipt.message_id)  # final: from the ledger, asking nobody
    assert (again.provider, again.state) == (DINI, State.DELIVERED)
    assert (sim.mimsms_v3.requests, sim.dinisoft.requests) == requests


def test_misconfigured_pacing_and_weights_name_the_field(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator
) -> None:
    from mimgw.config import GatewaySettings
    from mimgw.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="limits: unknown provider"):
        Gateway([sim.provider(V4)], limits={"mimsms-v4": RateLimit(max_in_flight=1)})
    with pytest.raises(ConfigurationError, match=r"limits\.rate"):
        RateLimit(rate=float("inf"))
    monkeypatch.setenv("MIMGW_PROVIDERS__0__KIND", "dinisoft")
    monkeypatch.setenv("MIMGW_PROVIDERS__0__API_KEY", "k")
    monkeypatch.setenv("MIMGW_PROVIDERS__0__SECRET_KEY", "s")
    monkeypatch.setenv("MIMGW_PROVIDERS__0__SENDER", "X")
    monkeypatch.setenv("MIMGW_LIMITS__RATE", "inf")
    with pytest.raises(ConfigurationError, match=r"limits\.rate"):
        GatewaySettings.load(env_file=os.devnull)
    monkeypatch.delenv("MIMGW_LIMITS__RATE")
    monkeypatch.setenv("MIMGW_STRATEGY", "weighted")
    monkeypatch.setenv("MIMGW_PROVIDERS__0__WEIGHT", "0")
    with pytest.raises(ConfigurationError, match=r"providers\.weight"):
        Gateway.from_settings(GatewaySettings.load(env_file=os.devnull))


async def test_read_once_answers_are_kept_whoever_read_them(sim: Simulator) -> None:
    clock = FakeClock()
    gw = gateway(sim, V3, DINI, clock=clock)
    plain = await gw.send(number(1), "read once v3", provider=V3)
    dini = await gw.send(number(2), "read once dini", provider=DINI)
    sim.clock.advance(3600)
    [pulled] = await gw.fetch_reports(provider=V3)  # the v3 report is now gone at the gateway
    assert pulled.message_id == plain.message_id
    direct = await gw.providers[DINI].status(dini.message_id)  # read behind the gateway's back
    assert direct.state is State.DELIVERED
    requests = (sim.mimsms_v3.requests, sim.dinisoft.requests)
    assert (await gw.status(plain.message_id)).state is State.DELIVERED
    assert (await gw.status(dini.message_id)).state is State.DELIVERED
    assert (sim.mimsms_v3.requests, sim.dinisoft.requests) == requests
    assert await gw.fetch_reports(provider=V3) == []


async def test_receipts_without_an_id_are_returned_but_not_keyed_in_the_ledger() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        router.get(url__regex=r".*/sendtext.*").respond(json={"Status": "0", "Text": "Acceptd"})
        gw = Gateway([DiniSoft(api_key="dini-key-1", secret_key="dini-secret-1", sender="Shop")])
        async with gw:
            first = await gw.send("01712345678", "one", reference="a")
            second = await gw.send("01812345678", "two", reference="b")
            assert (first.message_id, second.message_id) == ("", "")
            assert (first.state, second.state) == (State.ACCEPTED, State.ACCEPTED)
            assert await gw.history("a") == [] and await gw.history("b") == []
            assert await gw.ledger.find("") == []
