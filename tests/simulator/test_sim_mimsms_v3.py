"""Both legacy MiMSMS v3 backends end to end against their simulators."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from mimgw import (
    AuthenticationError,
    ConfigurationError,
    ConnectFailedError,
    DeliveryReport,
    InsufficientBalanceError,
    Message,
    OutcomeUnknownError,
    ProviderUnavailableError,
    RecipientRejectedError,
    State,
)
from mimgw.providers._v3_codes import DEFAULT_RETRIES
from mimgw.providers.mimsms_v3 import MimSmsV3
from mimgw.providers.mimsms_v3_json import MimSmsV3Json
from mimgw.simulator import Simulator

A, B = "01712345678", "01812345679"


@pytest.fixture
async def plain(sim: Simulator) -> MimSmsV3:
    provider = sim.mimsms_v3.provider()
    yield provider
    await sim.aclose()


@pytest.fixture
async def js(sim: Simulator) -> MimSmsV3Json:
    provider = sim.mimsms_v3_json.provider()
    yield provider
    await sim.aclose()


def test_provider_kwargs_and_registry(sim: Simulator) -> None:
    for key in ("mimsms_v3", "mimsms_v3_json"):
        kwargs = sim.gateways[key].provider_kwargs()
        assert kwargs["base_url"] == "http://api.mimsms.com"
        assert {"username", "password", "sender"} <= kwargs.keys()
        assert sim.provider(key).kind == key


# -- plain query API ------------------------------------------------------------------------


async def test_plain_lifecycle_and_read_once_reports(sim: Simulator, plain: MimSmsV3) -> None:
    heard: list[object] = []
    plain.add_listener(heard.append)
    gsm = await plain.send(A, "hello")
    long_bn = await plain.send(B, "আমার সোনার বাংলা " * 6)
    assert (gsm.segments, long_bn.segments, long_bn.encoding) == (1, 2, "ucs2")
    assert sim.mimsms_v3.credits == Decimal("250.00") - 3 * sim.mimsms_v3.price
    assert (await plain.balance()).amount == sim.mimsms_v3.credits
    assert (await plain.status(gsm.message_id)).state is State.UNKNOWN  # not final yet
    sim.clock.advance(sim.mimsms_v3.final_after)
    first = await plain.fetch_reports()
    assert sorted(r.message_id for r in first) == sorted([gsm.message_id, long_bn.message_id])
    assert all(r.state is State.DELIVERED and r.done_at is not None for r in first)
    assert await plain.fetch_reports() == []
    assert (await plain.status(gsm.message_id)).state is State.UNKNOWN  # already read
    delivered = [r for r in heard if isinstance(r, DeliveryReport) and r.state is State.DELIVERED]
    assert len(delivered) == 2


async def test_plain_binary_unicode_is_accepted(sim: Simulator) -> None:
    async with sim.mimsms_v3.provider(binary_unicode=True) as provider:
        receipt = await provider.send(A, "বাংলা")
    assert sim.mimsms_v3.messages[receipt.message_id].text == "বাংলা"


async def test_plain_outcome_per_number(sim: Simulator, plain: MimSmsV3) -> None:
    sim.mimsms_v3.set_outcome("8801812345679", "NOT_SENT")
    receipt = await plain.send(B, "hi")
    sim.clock.advance(5)
    report = await plain.status(receipt.message_id)
    assert (report.state, report.permanent, report.retries_allowed) == (
        State.REJECTED,
        False,
        DEFAULT_RETRIES,
    )
    with pytest.raises(ConfigurationError, match="unknown"):
        sim.mimsms_v3.set_outcome(A, "MAYBE")


async def test_plain_schedule_follows_the_sim_clock(sim: Simulator, plain: MimSmsV3) -> None:
    receipt = await plain.send(A, "later", send_at=sim.clock.now() + timedelta(hours=1))
    sim.clock.advance(10)
    assert await plain.fetch_reports() == []
    sim.clock.advance(3600)
    assert [r.message_id for r in await plain.fetch_reports()] == [receipt.message_id]


async def test_plain_forced_codes_and_empty_account(sim: Simulator, plain: MimSmsV3) -> None:
    sim.mimsms_v3.force(-13)
    with pytest.raises(RecipientRejectedError):
        await plain.send(A, "x")
    sim.mimsms_v3.credits = Decimal("0.10")
    with pytest.raises(InsufficientBalanceError):
        await plain.send(A, "x")
    assert sim.mimsms_v3.messages == {}


async def test_plain_wrong_password_everywhere(sim: Simulator) -> None:
    async with sim.mimsms_v3.provider(password="not-it") as provider:
        with pytest.raises(AuthenticationError):
            await provider.send(A, "x")
        with pytest.raises(AuthenticationError):
            await provider.balance()
        with pytest.raises(AuthenticationError) as info:
            await provider.fetch_reports()
    assert info.value.code == "5"
    assert "not-it" not in str(info.value)


async def test_plain_transport_faults(sim: Simulator, plain: MimSmsV3) -> None:
    sim.fail("mimsms_v3", "read_timeout")
    with pytest.raises(OutcomeUnknownError):
        await plain.send(A, "x")
    assert len(sim.mimsms_v3.messages) == 1  # it was processed; the answer got lost
    sim.fail("mimsms_v3", "connect_error")
    with pytest.raises(ConnectFailedError):
        await plain.send(A, "x")
    sim.fail("mimsms_v3", "status", status=502, path="/api/command")
    with pytest.raises(ProviderUnavailableError):
        await plain.balance()


# -- JSON API -------------------------------------------------------------------------------


async def test_json_lifecycle_logs_and_read_once_reports(sim: Simulator, js: MimSmsV3Json) -> None:
    heard: list[object] = []
    js.add_listener(heard.append)
    receipt = await js.send(A, "hello")
    assert receipt.state is State.ACCEPTED  # the documented MESSAGE_ACCEPTED answer
    assert (await js.status(receipt.message_id)).state is State.PENDING
    sim.clock.advance(sim.mimsms_v3_json.operator_after)
    assert (await js.status(receipt.message_id)).state is State.SENT
    assert await js.fetch_reports() == []
    sim.clock.advance(sim.mimsms_v3_json.final_after)
    [report] = await js.reports(message_id=receipt.message_id)
    assert (report.state, report.to, report.provider_status) == (
        State.DELIVERED,
        "8801712345678",
        "DELIVERED_TO_HANDSET",
    )
    assert report.done_at is not None
    assert await js.fetch_reports() == []  # read once
    assert (await js.status(receipt.message_id)).state is State.DELIVERED  # logs repeat
    assert (await js.status(receipt.message_id)).state is State.DELIVERED
    states = [r.state for r in heard if isinstance(r, DeliveryReport)]
    assert states.count(State.DELIVERED) == 3


async def test_json_gsm_errors_flow_into_reports(sim: Simulator, js: MimSmsV3Json) -> None:
    sim.mimsms_v3_json.set_outcome("8801712345678", 9, 6)  # absent subscriber: temporary
    sim.mimsms_v3_json.set_outcome("8801812345679", 4, 1)  # unknown subscriber: permanent
    first, second = await js.send(A, "a"), await js.send(B, "b")
    sim.clock.advance(5)
    by_id = {r.message_id: r for r in await js.fetch_reports()}
    assert (by_id[first.message_id].reason, by_id[first.message_id].retries_allowed) == (
        "EC_ABSENT_SUBSCRIBER_SM",
        DEFAULT_RETRIES,
    )
    assert by_id[second.message_id].state is State.UNDELIVERABLE
    assert (by_id[second.message_id].permanent, by_id[second.message_id].retries_allowed) == (
        True,
        0,
    )


async def test_json_bulk_sends_one_documented_single_per_message(
    sim: Simulator, js: MimSmsV3Json
) -> None:
    numbers = [f"0171234560{i}" for i in range(5)]
    before = sim.mimsms_v3_json.requests
    result = await js.send_bulk(
        [Message(to=n, text="same") for n in numbers[:5]] + [Message(to=B, text="other")]
    )
    assert result.ok and len(result) == 6
    assert sim.mimsms_v3_json.requests - before == 6
    assert all(sim.mimsms_v3_json.sent_count(n, "same") == 1 for n in numbers)
    assert sim.mimsms_v3_json.sent_count(B) == 1
    bulk_ids = {sim.mimsms_v3_json.messages[r.message_id].bulk_id for r in result.receipts}
    assert len(bulk_ids) == 6 and None not in bulk_ids  # every request is its own bulk


async def test_json_logs_filters(sim: Simulator, js: MimSmsV3Json) -> None:
    since = sim.clock.now()
    one = await js.send(A, "one")
    two = await js.send(B, "two", sender="OTHER")
    sim.clock.advance(5)
    three = await js.send(A, "three")
    assert [r.message_id for r in await js.logs()] == [
        three.message_id,
        two.message_id,
        one.message_id,
    ]
    assert [r.message_id for r in await js.logs(to=B)] == [two.message_id]
    assert [r.message_id for r in await js.logs(sender="OTHER")] == [two.message_id]
    assert len(await js.logs(message_id=[one.message_id, three.message_id])) == 2
    assert [r.message_id for r in await js.logs(general_status="PENDING")] == [three.message_id]
    assert len(await js.logs(sent_since=since, sent_until=since + timedelta(seconds=2))) == 2
    assert len(await js.logs(limit=1)) == 1
    assert len(await js.logs(mcc="470", mnc="02")) == 1  # Robi prefix 018
    sim.clock.advance(49 * 3600)
    assert await js.logs() == []


async def test_json_forced_status_credits_and_auth(sim: Simulator, js: MimSmsV3Json) -> None:
    sim.mimsms_v3_json.force(12)
    with pytest.raises(InsufficientBalanceError):
        await js.send(A, "x")
    sim.mimsms_v3_json.credits = Decimal(0)
    with pytest.raises(InsufficientBalanceError) as info:
        await js.send(A, "x")
    assert info.value.code == "12"
    async with sim.mimsms_v3_json.provider(password="wrong-one") as other:
        with pytest.raises(AuthenticationError):
            await other.send(A, "x")
        with pytest.raises(AuthenticationError):
            await other.fetch_reports()


async def test_json_notify_body_parses_as_a_webhook(sim: Simulator, js: MimSmsV3Json) -> None:
    receipt = await js.send(A, "push me")
    sim.clock.advance(5)
    [report] = js.parse_webhook(sim.mimsms_v3_json.notify_body(receipt.message_id))
    assert isinstance(report, DeliveryReport)
    assert (report.message_id, report.state) == (receipt.message_id, State.DELIVERED)
