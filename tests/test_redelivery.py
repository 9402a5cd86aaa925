"""Redelivery from the gateways' DLR tables: how often, when, and never for permanent failures."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from mimgw import ErrorKind, MimgwError, Receipt, State
from mimgw.gateway import Gateway
from mimgw.ledger import MemoryLedger, SqliteLedger
from mimgw.retry import RedeliveryPolicy
from mimgw.simulator import Simulator
from mimgw.testing import FakeClock, FakeProvider, fake_gateway_for

TO = "01712345678"
POLICY = RedeliveryPolicy(delays=(timedelta(seconds=60), timedelta(seconds=300)))


def single(**kwargs: object) -> tuple[Gateway, FakeProvider, FakeClock]:
    clock = FakeClock()
    fake = FakeProvider(name="primary")
    options: dict[str, object] = {"redelivery": POLICY}
    options.update(kwargs)
    return fake_gateway_for(fake, clock=clock, **options), fake, clock  # type: ignore[arg-type]


def make_ledger(kind: str, clock: FakeClock) -> MemoryLedger | SqliteLedger:
    if kind == "memory":
        return MemoryLedger(clock=clock.now)
    return SqliteLedger(":memory:", clock=clock.now)


async def fail_latest(gw: Gateway, fake: FakeProvider, **kwargs: object) -> None:
    fake.report(fake.receipts[-1].message_id, State.UNDELIVERABLE, **kwargs)  # type: ignore[arg-type]
    await gw.fetch_reports()


@pytest.mark.parametrize("ledger_kind", ["memory", "sqlite"])
async def test_resends_as_often_as_the_report_allows_with_backoff(ledger_kind: str) -> None:
    clock = FakeClock()
    ledger = make_ledger(ledger_kind, clock)
    fake = FakeProvider(name="primary")
    gw = fake_gateway_for(fake, clock=clock, redelivery=POLICY, ledger=ledger)
    first = await gw.send(TO, "your code is 4711", reference="ref-1")
    outcomes: list[Receipt | MimgwError] = []
    for expected_wait in (60, 300, 300, 300):
        await fail_latest(gw, fake, permanent=False, retries_allowed=3)
        clock.advance(expected_wait - 1)
        assert await gw.redeliver_due() == []
        clock.advance(1)
        outcomes.extend(await gw.redeliver_due())
    assert len(outcomes) == 3  # three redeliveries, the fourth failure is final
    assert all(isinstance(o, Receipt) and o.reference == "ref-1" for o in outcomes)
    assert len(fake.submits) == 4
    history = await gw.history("ref-1")
    assert [e.attempt for e in history] == [1, 2, 3, 4]
    assert history[0].message_id == first.message_id
    assert len({e.message_id for e in history}) == 4
    assert all(e.settled and e.text is None for e in history)  # text erased at finality
    await gw.aclose()


async def test_a_permanent_failure_is_never_resent() -> None:
    gw, fake, clock = single()
    await gw.send(TO, "x", reference="r")
    await fail_latest(gw, fake, permanent=True, retries_allowed=3)
    clock.advance(3600)
    assert await gw.redeliver_due() == []
    [entry] = await gw.history("r")
    assert entry.settled and entry.text is None


async def test_delivered_messages_lose_their_text_and_nothing_is_resent() -> None:
    gw, fake, _clock = single()
    receipt = await gw.send(TO, "secret", reference="r")
    entry = await gw.ledger.get("primary", receipt.message_id)
    assert entry is not None and entry.text == "secret"
    fake.report(receipt.message_id, State.DELIVERED)
    await gw.status(receipt.message_id)
    entry = await gw.ledger.get("primary", receipt.message_id)
    assert entry is not None and entry.text is None and entry.settled


async def test_without_a_redelivery_policy_no_text_is_stored_and_nothing_resent() -> None:
    gw, fake, clock = single(redelivery=None)
    receipt = await gw.send(TO, "secret")
    entry = await gw.ledger.get("primary", receipt.message_id)
    assert entry is not None and entry.text is None
    await fail_latest(gw, fake, permanent=False, retries_allowed=3)
    clock.advance(3600)
    assert await gw.redeliver_due() == []


async def test_max_redeliveries_caps_every_table() -> None:
    capped = RedeliveryPolicy(delays=(timedelta(0),), max_redeliveries=1)
    gw, fake, _ = single(redelivery=capped)
    await gw.send(TO, "x", reference="r")
    await fail_latest(gw, fake, permanent=False, retries_allowed=3)
    assert len(await gw.redeliver_due()) == 1
    await fail_latest(gw, fake, permanent=False, retries_allowed=3)
    assert await gw.redeliver_due() == []


async def test_a_failed_resubmission_is_reported_and_not_repeated() -> None:
    gw, fake, clock = single()
    await gw.send(TO, "x", reference="r")
    await fail_latest(gw, fake, permanent=False, retries_allowed=3)
    fake.fail(ErrorKind.RECIPIENT_REJECTED)
    clock.advance(60)
    [outcome] = await gw.redeliver_due()
    assert isinstance(outcome, MimgwError)
    clock.advance(3600)
    assert await gw.redeliver_due() == []


async def test_route_target_uses_normal_routing() -> None:
    clock = FakeClock()
    primary, backup = FakeProvider(name="primary"), FakeProvider(name="backup")
    policy = RedeliveryPolicy(delays=(timedelta(0),), target="route")
    gw = fake_gateway_for(primary, backup, clock=clock, redelivery=policy)
    await gw.send(TO, "x", reference="r", provider="backup")
    backup.report(backup.receipts[-1].message_id, State.EXPIRED, permanent=False, retries_allowed=1)
    await gw.fetch_reports()
    [outcome] = await gw.redeliver_due()
    assert isinstance(outcome, Receipt) and outcome.provider == "primary"


async def test_a_failure_report_that_beats_its_submit_still_schedules() -> None:
    gw, fake, clock = single()
    early = Receipt(provider="primary", message_id="fast-1", to="8801712345678", reference="r")
    fake.script(early)
    body = FakeProvider.webhook_body(
        [
            {
                "message_id": "fast-1",
                "state": "undeliverable",
                "permanent": False,
                "retries_allowed": 2,
            }
        ]
    )
    await gw.ingest_webhook("primary", body, {})
    await gw.send(TO, "x", reference="r")
    clock.advance(60)
    [outcome] = await gw.redeliver_due()
    assert isinstance(outcome, Receipt) and outcome.reference == "r"


async def test_redelivery_loop_runs_in_the_background_and_stops_cleanly() -> None:
    fake = FakeProvider(name="primary")
    gw = Gateway([fake], redelivery=RedeliveryPolicy(delays=(timedelta(0),)))
    await gw.send(TO, "x", reference="r")
    fake.report(
        fake.receipts[-1].message_id, State.UNDELIVERABLE, permanent=False, retries_allowed=1
    )
    async with gw.redelivery_loop(0.005, pull_reports=True):
        for _ in range(400):  # the loop ticks every 5 ms; give it up to 2 s
            if len(fake.submits) >= 2:
                break
            await anyio.sleep(0.005)
    assert [e.attempt for e in await gw.history("r")] == [1, 2]


# -- the gateways' own tables, through the simulator ------------------------------------------


def v4_gateway(sim: Simulator, clock: FakeClock) -> Gateway:
    pytest.importorskip("mimgw.providers.mimsms_v4")
    policy = RedeliveryPolicy(delays=(timedelta(seconds=1),))
    return fake_gateway_for(sim.provider("mimsms_v4"), clock=clock, redelivery=policy)


@pytest.mark.parametrize(
    ("row", "expected"), [("Absent subscriber for SM", 3), ("Barred subscriber", 0)]
)
async def test_v4_dlr_rows_set_the_number_of_redeliveries(
    sim: Simulator, row: str, expected: int
) -> None:
    clock = FakeClock()
    gw = v4_gateway(sim, clock)
    v4 = gw.providers["mimsms_v4"]
    receipt = await gw.send(TO, "hello", reference="ref-v4")
    resent: list[Receipt | MimgwError] = []
    latest = receipt.message_id
    for _ in range(6):
        v4.parse_dlr(latest, row)  # type: ignore[attr-defined]
        await gw.flush()  # parse_dlr is plain: its report is recorded on the next flush
        clock.advance(1)
        outcomes = await gw.redeliver_due()
        if not outcomes:
            break
        resent.extend(outcomes)
        assert isinstance(outcomes[0], Receipt)
        latest = outcomes[0].message_id
    assert len(resent) == expected
    assert sim.mimsms_v4.requests == 1 + expected
    await gw.aclose()


async def test_v3_gsm_error_that_is_not_permanent_is_redelivered(sim: Simulator) -> None:
    pytest.importorskip("mimgw.providers.mimsms_v3_json")
    from mimgw.providers._v3_codes import DEFAULT_RETRIES

    clock = FakeClock()
    policy = RedeliveryPolicy(delays=(timedelta(seconds=1),))
    gw = fake_gateway_for(sim.provider("mimsms_v3_json"), clock=clock, redelivery=policy)
    sim.mimsms_v3_json.set_outcome("8801712345678", 9, 27)  # absent subscriber: not permanent
    receipt = await gw.send(TO, "hello", reference="ref-v3")
    latest, resent = receipt.message_id, 0
    for _ in range(DEFAULT_RETRIES + 2):
        sim.clock.advance(24 * 3600)
        report = await gw.status(latest)
        assert report.state is State.UNDELIVERABLE and report.permanent is False
        clock.advance(1)
        outcomes = await gw.redeliver_due()
        if not outcomes:
            break
        assert isinstance(outcomes[0], Receipt)
        latest, resent = outcomes[0].message_id, resent + 1
    assert resent == DEFAULT_RETRIES
    await gw.aclose()


@pytest.mark.parametrize("ledger_kind", ["memory", "sqlite"])
async def test_a_resend_that_sent_nothing_stays_due_and_does_not_count(ledger_kind: str) -> None:
    clock = FakeClock()
    ledger = make_ledger(ledger_kind, clock)
    fake = FakeProvider(name="primary")
    gw = fake_gateway_for(fake, clock=clock, redelivery=POLICY, ledger=ledger)
    await gw.send(TO, "code 4711", reference="r")
    await fail_latest(gw, fake, permanent=False, retries_allowed=1)
    clock.advance(60)
    fake.fail(ErrorKind.CONNECT_FAILED, times=3)  # the gateway is down for every retry
    [outcome] = await gw.redeliver_due()
    assert isinstance(outcome, MimgwError)
    [entry] = await gw.history("r")
    assert not entry.settled and entry.text == "code 4711" and entry.next_attempt_at is not None
    assert await gw.redeliver_due() == []  # not before the backoff
    clock.advance(60)
    [receipt] = await gw.redeliver_due()  # back up: the one allowed redelivery happens
    assert isinstance(receipt, Receipt) and receipt.reference == "r"
    assert [e.attempt for e in await gw.history("r")] == [1, 2]
    await fail_latest(gw, fake, permanent=False, retries_allowed=1)
    clock.advance(3600)
    assert await gw.redeliver_due() == []  # the allowance is spent
    await gw.aclose()


async def test_a_resend_refused_for_good_is_not_retried() -> None:
    gw, fake, clock = single()
    await gw.send(TO, "x", reference="r")
    await fail_latest(gw, fake, permanent=False, retries_allowed=3)
    clock.advance(60)
    fake.fail(ErrorKind.AUTH)
    [outcome] = await gw.redeliver_due()
    assert isinstance(outcome, MimgwError)
    clock.advance(3600)
    assert await gw.redeliver_due() == []
    [entry] = await gw.history("r")
    assert entry.settled and entry.text is None
