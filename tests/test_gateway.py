"""Gateway semantics on scripted fakes: retry, failover, pins, breakers, limits, ledger reads."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime

import anyio
import pytest

from mimgw import (
    AllProvidersFailedError,
    Capabilities,
    ConfigurationError,
    DeliveryReport,
    ErrorKind,
    InvalidMessageError,
    Message,
    MimgwError,
    OutcomeUnknownError,
    ProviderError,
    Receipt,
    State,
    UnsupportedOperationError,
)
from mimgw.breaker import BreakerPolicy, CircuitOpenError
from mimgw.errors import MessageNotFoundError
from mimgw.gateway import Gateway
from mimgw.limits import RateLimit
from mimgw.providers.base import TextLimits
from mimgw.retry import RetryPolicy
from mimgw.testing import FAKE_CAPABILITIES, FakeClock, FakeProvider, fake_gateway_for

TO = "01712345678"
FAILOVER_KINDS = {k for k in ErrorKind if k.failover}


def pair(**kwargs: object) -> tuple[Gateway, FakeProvider, FakeProvider, FakeClock]:
    clock = FakeClock()
    primary = FakeProvider(name="primary", sender="PRIMARY")
    backup = FakeProvider(name="backup", sender="BACKUP")
    return fake_gateway_for(primary, backup, clock=clock, **kwargs), primary, backup, clock  # type: ignore[arg-type]


# -- retry and failover ------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ErrorKind))
async def test_failover_happens_exactly_for_the_kinds_marked_so(kind: ErrorKind) -> None:
    gw, primary, backup, _ = pair()
    primary.fail(kind, times=3)
    if kind in FAILOVER_KINDS:
        receipt = await gw.send(TO, "hello", reference="ref-1")
        assert receipt.provider == "backup" and receipt.reference == "ref-1"
        assert backup.submits[0].reference == "ref-1"
    else:
        with pytest.raises(ProviderError) as caught:
            await gw.send(TO, "hello")
        assert caught.value.kind is kind and caught.value.provider == "primary"
        assert not isinstance(caught.value, AllProvidersFailedError)
        assert backup.submits == []
    expected_tries = 3 if kind.retryable else 1
    assert len(primary.submits) == expected_tries


async def test_transient_error_is_retried_on_the_same_gateway() -> None:
    gw, primary, backup, clock = pair()
    primary.fail(ErrorKind.PROVIDER_UNAVAILABLE, times=2)
    receipt = await gw.send(TO, "hello")
    assert receipt.provider == "primary" and len(primary.submits) == 3
    assert backup.submits == []
    assert clock.sleeps == [0.2, 0.4]


async def test_retry_after_is_obeyed() -> None:
    gw, primary, _, clock = pair()
    primary.fail(ErrorKind.RATE_LIMITED, retry_after=3.0)
    receipt = await gw.send(TO, "hello")
    assert receipt.provider == "primary"
    assert clock.sleeps == [3.0]


async def test_the_deadline_spans_every_gateway_tried() -> None:
    clock = FakeClock()
    primary, backup = FakeProvider(name="primary"), FakeProvider(name="backup")
    policy = RetryPolicy(
        attempts=5, jitter=False, deadline=10, sleep=clock.sleep, clock=clock.monotonic
    )
    gw = fake_gateway_for(primary, backup, clock=clock, retry=policy)
    primary.fail(ErrorKind.RATE_LIMITED, times=5, retry_after=4)
    backup.fail(ErrorKind.RATE_LIMITED, times=5, retry_after=4)
    with pytest.raises(AllProvidersFailedError):
        await gw.send(TO, "x")
    # primary: tries at 0 s, 4 s, 8 s (a wait to 12 s would pass the deadline);
    # backup still gets its first try at 8 s but no retry
    assert clock.sleeps == [4.0, 4.0]
    assert (len(primary.submits), len(backup.submits)) == (3, 1)


async def test_outcome_unknown_is_never_resent_and_never_fails_over_by_default() -> None:
    gw, primary, backup, _ = pair()
    primary.fail(ErrorKind.OUTCOME_UNKNOWN)
    with pytest.raises(OutcomeUnknownError):
        await gw.send(TO, "hello")
    assert len(primary.submits) == 1 and backup.submits == []


@pytest.mark.parametrize("kind", [ErrorKind.OUTCOME_UNKNOWN, ErrorKind.BAD_RESPONSE])
async def test_on_unknown_failover_moves_on_without_resending(kind: ErrorKind) -> None:
    gw, primary, _backup, _ = pair(on_unknown="failover")
    primary.fail(kind)
    receipt = await gw.send(TO, "hello")
    assert receipt.provider == "backup"
    assert len(primary.submits) == 1


async def test_unreadable_submit_answer_neither_retries_nor_fails_over_by_default() -> None:
    gw, primary, backup, _ = pair()
    primary.fail(ErrorKind.BAD_RESPONSE)
    with pytest.raises(ProviderError) as info:
        await gw.send(TO, "hello")
    assert info.value.kind is ErrorKind.BAD_RESPONSE
    assert len(primary.submits) == 1 and backup.submits == []


async def test_resend_unknown_opt_in_resubmits_with_the_same_reference() -> None:
    clock = FakeClock()
    primary = FakeProvider(name="primary").fail(ErrorKind.OUTCOME_UNKNOWN)
    policy = RetryPolicy(
        jitter=False, sleep=clock.sleep, clock=clock.monotonic, resend_unknown=True
    )
    gw = fake_gateway_for(primary, clock=clock, retry=policy)
    await gw.send(TO, "hello", reference="r")
    assert [o.reference for o in primary.submits] == ["r", "r"]


async def test_all_failed_carries_every_attempt_in_order() -> None:
    gw, primary, backup, _ = pair()
    primary.fail(ErrorKind.AUTH)
    backup.fail(ErrorKind.CONNECT_FAILED, times=3)
    with pytest.raises(AllProvidersFailedError) as caught:
        await gw.send(TO, "hello")
    attempts = caught.value.attempts
    assert [(a.provider, a.kind) for a in attempts] == [
        ("primary", ErrorKind.AUTH),
        ("backup", ErrorKind.CONNECT_FAILED),
    ]


async def test_each_gateway_uses_its_own_sender_unless_the_message_pins_one() -> None:
    gw, primary, backup, _ = pair()
    primary.fail(ErrorKind.SENDER_REJECTED, times=2)
    await gw.send(TO, "hello")
    assert [o.sender for o in primary.submits + backup.submits] == ["PRIMARY", "BACKUP"]
    await gw.send(TO, "hello", sender="MINE")
    assert [o.sender for o in primary.submits[1:] + backup.submits[1:]] == ["MINE", "MINE"]


async def test_a_gateway_that_cannot_take_the_message_is_skipped_without_a_request() -> None:
    clock = FakeClock()
    short = FakeProvider(name="short", limits=TextLimits(max_characters=10))
    no_schedule = FakeProvider(name="nosched", capabilities=Capabilities(balance=True))
    full = FakeProvider(name="full")
    gw = fake_gateway_for(short, no_schedule, full, clock=clock)
    receipt = await gw.send(TO, "a message longer than ten")
    assert receipt.provider == "nosched" and short.submits == []
    later = datetime(2030, 1, 1, tzinfo=UTC)
    receipt = await gw.send(TO, "a message longer than ten", send_at=later)
    assert receipt.provider == "full" and len(no_schedule.submits) == 1


async def test_when_no_gateway_can_take_it_the_invalid_message_error_is_raised() -> None:
    a = FakeProvider(name="a", limits=TextLimits(max_characters=5))
    b = FakeProvider(name="b", limits=TextLimits(max_characters=8))
    gw = fake_gateway_for(a, b)
    with pytest.raises(InvalidMessageError, match="at most 5"):
        await gw.send(TO, "far too long")
    with pytest.raises(InvalidMessageError):
        await gw.send("123", "x")


# -- pins ------------------------------------------------------------------------------


async def test_a_pinned_call_never_fails_over_and_raises_the_error_itself() -> None:
    gw, primary, backup, _ = pair()
    backup.fail(ErrorKind.CONNECT_FAILED, times=3)
    with pytest.raises(ProviderError) as caught:
        await gw.send(TO, "hello", provider="backup")
    assert caught.value.kind is ErrorKind.CONNECT_FAILED and primary.submits == []
    receipt = await gw.send(TO, "hello", provider="backup")
    assert receipt.provider == "backup"
    with pytest.raises(ConfigurationError, match="unknown provider 'nope'"):
        await gw.send(TO, "hello", provider="nope")


# -- strategies --------------------------------------------------------------------------


async def test_round_robin_rotates_the_first_gateway() -> None:
    gw, _, _, _ = pair(strategy="round_robin")
    firsts = [(await gw.send(TO, "x")).provider for _ in range(4)]
    assert firsts == ["primary", "backup", "primary", "backup"]


async def test_weighted_spreads_by_weight_and_still_fails_over() -> None:
    gw, _primary, _backup, _ = pair(
        strategy="weighted", weights={"primary": 3, "backup": 1}, rng=random.Random(7)
    )
    counts = Counter([(await gw.send(TO, "x")).provider for _ in range(400)])
    assert 240 < counts["primary"] < 360
    gw2, p2, b2, _ = pair(strategy="weighted", weights={"primary": 1, "backup": 0})
    b2.fail(ErrorKind.CONNECT_FAILED, times=99)
    assert [(await gw2.send(TO, "x")).provider for _ in range(5)] == ["primary"] * 5
    p2.fail(ErrorKind.AUTH)
    with pytest.raises(AllProvidersFailedError):
        await gw2.send(TO, "x")  # zero weight: last resort only
    assert len(b2.submits) == 3


def test_invalid_construction_is_a_configuration_error() -> None:
    a = FakeProvider(name="a")
    with pytest.raises(ConfigurationError, match="at least one"):
        Gateway([])
    with pytest.raises(ConfigurationError, match="two providers"):
        Gateway([a, FakeProvider(name="a")])
    with pytest.raises(ConfigurationError, match="weights"):
        Gateway([a], strategy="weighted", weights={"zzz": 1})
    with pytest.raises(ConfigurationError, match="strategy"):
        Gateway([a], strategy="fastest")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="differs"):
        Gateway({"x": a})


# -- breaker --------------------------------------------------------------------------------


async def test_breaker_opens_skips_the_gateway_half_opens_and_closes() -> None:
    clock = FakeClock()
    primary, backup = FakeProvider(name="primary"), FakeProvider(name="backup")
    gw = fake_gateway_for(
        primary,
        backup,
        clock=clock,
        breaker=BreakerPolicy(threshold=3, cooldown=60, clock=clock.monotonic),
    )
    primary.fail(ErrorKind.CONNECT_FAILED, times=3)
    assert (await gw.send(TO, "x")).provider == "backup"
    assert gw.health()["primary"]["state"] == "open"
    assert (await gw.send(TO, "x")).provider == "backup"
    assert len(primary.submits) == 3  # skipped while open
    clock.advance(60)
    assert gw.health()["primary"]["state"] == "half_open"
    assert (await gw.send(TO, "x")).provider == "primary"  # the probe
    assert gw.health()["primary"]["state"] == "closed"
    json.dumps(gw.health())


async def test_a_failed_probe_reopens_without_retrying() -> None:
    clock = FakeClock()
    primary, backup = FakeProvider(name="primary"), FakeProvider(name="backup")
    gw = fake_gateway_for(
        primary,
        backup,
        clock=clock,
        breaker=BreakerPolicy(threshold=1, cooldown=5, clock=clock.monotonic),
    )
    primary.fail(ErrorKind.CONNECT_FAILED, times=10)
    await gw.send(TO, "x")
    assert len(primary.submits) == 1  # the breaker opened: no more retries
    clock.advance(5)
    await gw.send(TO, "x")
    assert len(primary.submits) == 2
    assert gw.health()["primary"]["state"] == "open"


async def test_when_every_breaker_is_open_it_fails_fast() -> None:
    clock = FakeClock()
    primary, backup = FakeProvider(name="primary"), FakeProvider(name="backup")
    gw = fake_gateway_for(primary, backup, clock=clock)
    primary.fail(ErrorKind.AUTH)
    backup.fail(ErrorKind.INSUFFICIENT_BALANCE)
    with pytest.raises(AllProvidersFailedError):
        await gw.send(TO, "x")
    with pytest.raises(AllProvidersFailedError) as caught:
        await gw.send(TO, "x")
    assert all(isinstance(a, CircuitOpenError) for a in caught.value.attempts)
    assert [a.provider for a in caught.value.attempts] == ["primary", "backup"]
    assert (len(primary.submits), len(backup.submits)) == (1, 1)
    with pytest.raises(CircuitOpenError):
        await gw.send(TO, "x", provider="backup")


async def test_balance_probe_keeps_a_dry_gateway_closed_to_traffic() -> None:
    clock = FakeClock()
    primary, backup = FakeProvider(name="primary", balance=0), FakeProvider(name="backup")
    policy = BreakerPolicy(account_cooldown=10, probe_balance=True, clock=clock.monotonic)
    gw = fake_gateway_for(primary, backup, clock=clock, breaker=policy)
    primary.fail(ErrorKind.INSUFFICIENT_BALANCE)
    await gw.send(TO, "x")
    clock.advance(10)
    assert (await gw.send(TO, "x")).provider == "backup"
    assert len(primary.submits) == 1 and primary.calls["balance"] == 1
    assert gw.health()["primary"]["state"] == "open"
    primary.balance_amount = primary.balance_amount + 50
    clock.advance(10)
    assert (await gw.send(TO, "x")).provider == "primary"
    assert gw.health()["primary"]["state"] == "closed"


# -- limits and bulk --------------------------------------------------------------------------


async def test_rate_limit_paces_requests() -> None:
    clock = FakeClock()
    primary = FakeProvider(name="primary")
    limit = RateLimit(rate=2, burst=1, sleep=clock.sleep, clock=clock.monotonic)
    gw = fake_gateway_for(primary, clock=clock, limits=limit)
    for _ in range(3):
        await gw.send(TO, "x")
    assert clock.sleeps == [0.5, 0.5]


async def test_bulk_gives_each_message_exactly_one_outcome_within_in_flight_caps() -> None:
    primary = FakeProvider(name="primary", delay=0.002, limits=TextLimits(max_characters=20))
    backup = FakeProvider(name="backup", delay=0.002)
    gw = fake_gateway_for(primary, backup, limits={"primary": RateLimit(max_in_flight=2)})
    primary.fail(ErrorKind.CONNECT_FAILED, times=3)  # first message fails over
    primary.script(None, ErrorKind.RECIPIENT_REJECTED)
    messages = [Message(to=TO, text=f"message {i}") for i in range(12)]
    messages.append(Message(to=TO, text="x" * 30))  # too long for primary only
    result = await gw.send_bulk(messages, concurrency=6)
    assert len(result) == len(messages)
    assert [o.reference if isinstance(o, Receipt) else None for o in result.outcomes] == [
        m.reference if isinstance(o, Receipt) else None for m, o in result.items()
    ]
    errors = [o for o in result.outcomes if isinstance(o, MimgwError)]
    assert len(errors) == 1 and isinstance(errors[0], ProviderError)
    assert errors[0].kind is ErrorKind.RECIPIENT_REJECTED
    assert primary.peak_in_flight <= 2
    assert result[-1].provider == "backup"  # type: ignore[union-attr]
    entries = [await gw.ledger.get(r.provider, r.message_id) for r in result.receipts]
    assert all(e is not None for e in entries)
    with pytest.raises(ConfigurationError):
        await gw.send_bulk(messages, concurrency=0)
    bad = await gw.send_bulk(["nope", ("not a number", "hi")])  # type: ignore[list-item]
    assert [type(o) for o in bad] == [InvalidMessageError, InvalidMessageError]
    assert bad.messages == ("nope", ("not a number", "hi"))
    with pytest.raises(InvalidMessageError):  # a single message is not an iterable of them
        await gw.send_bulk(messages[0])  # type: ignore[arg-type]


# -- reads, ledger, webhooks ------------------------------------------------------------------


async def test_balance_prefers_the_first_gateway_that_tells_and_balances_lists_all() -> None:
    no_balance = FakeProvider(name="nobal", capabilities=Capabilities())
    rich = FakeProvider(name="rich", balance="42.5")
    gw = fake_gateway_for(no_balance, rich)
    assert (await gw.balance()).provider == "rich"
    rich.fail(ErrorKind.OUTCOME_UNKNOWN, operation="balance")  # reads retry even this
    assert (await gw.balance(provider="rich")).amount == 42.5
    all_ = await gw.balances()
    assert list(all_) == ["nobal", "rich"]
    assert isinstance(all_["nobal"], UnsupportedOperationError)
    with pytest.raises(UnsupportedOperationError):
        await fake_gateway_for(FakeProvider(capabilities=Capabilities())).balance()


async def test_status_pulls_records_and_answers_from_the_ledger_after_a_read_once() -> None:
    dini_like = FakeProvider(name="dini", read_once=True)
    gw = fake_gateway_for(dini_like)
    receipt = await gw.send(TO, "x", reference="ref-9")
    first = await gw.status(receipt.message_id)
    assert first.state is State.SENT and first.reference == "ref-9"
    dini_like.report(receipt.message_id, State.DELIVERED)
    assert (await gw.status(receipt.message_id)).state is State.DELIVERED
    again = await gw.status(receipt.message_id)  # the gateway would now say "already read"
    assert again.state is State.DELIVERED and dini_like.calls["status"] == 2


async def test_status_falls_back_to_the_ledger_when_the_pull_is_refused() -> None:
    gw, primary, _, _ = pair()
    receipt = await gw.send(TO, "x")
    primary.fail(ErrorKind.REQUEST_REJECTED, operation="status")
    assert (await gw.status(receipt.message_id)).state is State.ACCEPTED
    primary.fail(ErrorKind.AUTH, operation="status")
    with pytest.raises(ProviderError):
        await gw.status(receipt.message_id)


async def test_status_without_pull_capability_answers_from_pushed_reports() -> None:
    push_only = FakeProvider(name="push", capabilities=Capabilities(webhook=True))
    gw = fake_gateway_for(push_only)
    receipt = await gw.send(TO, "x")
    assert (await gw.status(receipt.message_id)).state is State.ACCEPTED
    body = FakeProvider.webhook_body(
        [{"message_id": receipt.message_id, "state": "delivered"}, {"sender": TO, "text": "hi"}]
    )
    items = await gw.ingest_webhook("push", body, {})
    assert len(items) == 2
    assert (await gw.status(receipt.message_id)).state is State.DELIVERED
    with pytest.raises(MessageNotFoundError):  # not in the ledger, no gateway can pull
        await gw.status("never-sent")
    with pytest.raises(InvalidMessageError):
        await gw.status("  ")


async def test_unknown_ids_are_asked_of_every_gateway_that_can_pull() -> None:
    gw, _primary, backup, _ = pair()
    backup.report("b-77", State.DELIVERED)
    report = await gw.status("b-77")
    assert report.provider == "backup" and report.state is State.DELIVERED
    with pytest.raises(MessageNotFoundError) as caught:  # every gateway said "no such id"
        await gw.status("nobody-knows")
    assert caught.value.message_id == "nobody-knows"


async def test_every_report_any_provider_parses_lands_in_the_ledger() -> None:
    gw, primary, _, _ = pair()
    receipt = await gw.send(TO, "x")
    seen: list[object] = []
    gw.add_listener(seen.append)
    primary.report(receipt.message_id, State.SENT)
    await primary.status(receipt.message_id)  # asked directly, not through the gateway
    primary.parse_webhook(FakeProvider.webhook_body([{"message_id": "early", "state": "pending"}]))
    await gw.flush()
    entry = await gw.ledger.get("primary", receipt.message_id)
    assert entry is not None and entry.state is State.SENT
    assert await gw.ledger.get("primary", "early") is not None
    assert len(seen) == 2
    pulled = await gw.fetch_reports()
    assert [r.message_id for r in pulled] == [receipt.message_id]


async def test_parse_webhook_is_plain_and_names_the_provider() -> None:
    gw, _, _, _ = pair()
    items = gw.parse_webhook(
        FakeProvider.webhook_body([{"message_id": "m", "state": "sent"}]), {}, provider="backup"
    )
    assert isinstance(items[0], DeliveryReport) and items[0].provider == "backup"
    with pytest.raises(ConfigurationError):
        gw.parse_webhook(b"[]", {}, provider="nope")
    with pytest.raises(ProviderError):
        await gw.ingest_webhook("backup", b"not json", {})


async def test_context_manager_closes_providers_and_exposes_them_in_order() -> None:
    gw, _primary, _backup, _ = pair()
    async with gw as opened:
        assert list(opened.providers) == ["primary", "backup"]
        assert opened.capabilities["primary"] == FAKE_CAPABILITIES
        assert "PRIMARY" not in repr(opened)
    assert gw.breaker("primary") is not None


async def test_concurrent_sends_all_get_receipts() -> None:
    gw, _primary, _backup, _ = pair()
    results: list[Receipt] = []

    async def one() -> None:
        results.append(await gw.send(TO, "x"))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
    assert len({r.message_id for r in results}) == 20


# -- against the simulator ----------------------------------------------------------------------


def sim_gateway(sim: object, clock: FakeClock, **kwargs: object) -> Gateway:
    from mimgw.simulator import Simulator

    assert isinstance(sim, Simulator)
    return fake_gateway_for(
        sim.provider("mimsms_v4"),
        sim.provider("dinisoft"),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_sim_read_timeout_reaches_the_gateway_once_and_never_fails_over(sim: object) -> None:
    pytest.importorskip("mimgw.providers.mimsms_v4")
    pytest.importorskip("mimgw.providers.dinisoft")
    from mimgw.simulator import Simulator

    assert isinstance(sim, Simulator)
    gw = sim_gateway(sim, FakeClock())
    sim.fail("mimsms_v4", "read_timeout")
    with pytest.raises(OutcomeUnknownError):
        await gw.send(TO, "hello")
    assert sim.mimsms_v4.requests == 1
    assert sim.dinisoft.requests == 0
    await gw.aclose()


async def test_sim_connect_errors_are_retried_then_fail_over(sim: object) -> None:
    pytest.importorskip("mimgw.providers.dinisoft")
    from mimgw.simulator import Simulator

    assert isinstance(sim, Simulator)
    clock = FakeClock()
    gw = sim_gateway(sim, clock)
    sim.fail("mimsms_v4", "connect_error", times=3)
    receipt = await gw.send(TO, "hello")
    assert receipt.provider == "dinisoft"
    assert (sim.mimsms_v4.requests, sim.dinisoft.requests) == (0, 1)
    assert len(clock.sleeps) == 2
    await gw.aclose()


async def test_sim_429_retry_after_is_obeyed(sim: object) -> None:
    pytest.importorskip("mimgw.providers.mimsms_v4")
    from mimgw.simulator import Simulator

    assert isinstance(sim, Simulator)
    clock = FakeClock()
    gw = sim_gateway(sim, clock)
    sim.fail("mimsms_v4", "status", status=429, headers={"Retry-After": "4"})
    receipt = await gw.send(TO, "hello")
    assert receipt.provider == "mimsms_v4"
    assert clock.sleeps == [4.0]
    assert sim.mimsms_v4.requests == 1
    await gw.aclose()


@pytest.mark.parametrize("code", ["208", "205", "206", "209", "221", "500", "213", "216", "210"])
async def test_sim_v4_codes_fail_over_per_the_taxonomy(sim: object, code: str) -> None:
    v4 = pytest.importorskip("mimgw.providers.mimsms_v4")
    from mimgw.simulator import Simulator

    assert isinstance(sim, Simulator)
    kind: ErrorKind = v4.ERRORS[code][0]
    gw = sim_gateway(sim, FakeClock())
    sim.mimsms_v4.force(code, times=3)
    if kind.failover:
        receipt = await gw.send(TO, "hello")
        assert receipt.provider == "dinisoft"
    else:
        with pytest.raises(ProviderError) as caught:
            await gw.send(TO, "hello")
        assert caught.value.kind is kind
        assert sim.dinisoft.requests == 0
    assert sim.mimsms_v4.requests == (3 if kind.retryable else 1)
    if kind is ErrorKind.INSUFFICIENT_BALANCE:
        assert gw.health()["mimsms_v4"]["state"] == "open"
    await gw.aclose()


async def test_sim_dinisoft_read_once_status_is_answered_from_the_ledger(sim: object) -> None:
    pytest.importorskip("mimgw.providers.dinisoft")
    from mimgw.simulator import Simulator

    assert isinstance(sim, Simulator)
    gw = sim_gateway(sim, FakeClock())
    receipt = await gw.send(TO, "hello", provider="dinisoft")
    sim.clock.advance(24 * 3600)
    first = await gw.status(receipt.message_id)
    assert first.state is State.DELIVERED
    before = sim.dinisoft.requests
    again = await gw.status(receipt.message_id)
    assert again.state is State.DELIVERED and again.reference == receipt.reference
    assert sim.dinisoft.requests == before  # final: answered from the ledger
    await gw.aclose()


async def test_a_scheduled_message_goes_to_a_gateway_that_can_schedule() -> None:
    from datetime import UTC, datetime, timedelta

    from mimgw.providers.base import Capabilities

    cannot = FakeProvider(name="now_only", capabilities=Capabilities(schedule=False))
    can = FakeProvider(name="scheduler")
    gw = fake_gateway_for(cannot, can)
    later = datetime.now(UTC) + timedelta(hours=2)
    receipt = await gw.send("01712345678", "tomorrow's offer", send_at=later)
    assert receipt.provider == "scheduler" and cannot.submits == []
    assert (await gw.send("01712345678", "now")).provider == "now_only"
    with pytest.raises(UnsupportedOperationError, match="cannot schedule"):
        await fake_gateway_for(FakeProvider(capabilities=Capabilities())).send(
            "01712345678", "x", send_at=later
        )


async def test_a_foreign_number_goes_to_a_gateway_that_serves_its_region() -> None:
    import httpx

    from mimgw.providers import MimSmsV3, MimSmsV4

    seen: list[str] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(
            200,
            text="<results><result><status>0</status><messageid>M1</messageid>"
            "<destination>447911123456</destination></result></results>",
        )

    client = httpx.AsyncClient(transport=httpx.MockTransport(gateway))
    v4 = MimSmsV4(username="u@example.com", api_key="k" * 12, sender="S", client=client)
    v3 = MimSmsV3(username="u", password="p", sender="S", client=client)
    assert MimSmsV4.regions == frozenset({"BD"}) and MimSmsV3.regions is None
    gw = fake_gateway_for(v4, v3)
    with pytest.raises(InvalidMessageError, match="serves BD"):
        await fake_gateway_for(v4).send("+44 7911 123456", "hello")
    receipt = await gw.send("+44 7911 123456", "hello")
    assert receipt.provider == v3.name and seen == [httpx.URL(v3.url("x")).host]
    await client.aclose()
