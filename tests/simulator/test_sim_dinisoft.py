"""DiniSoft end to end through the in-process simulator."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mimgw import ErrorKind, Message, ProviderError, Receipt, RequestRejectedError, State
from mimgw.providers.dinisoft import DiniSoft
from mimgw.simulator import Simulator


def dinisoft(sim: Simulator, **overrides: object) -> DiniSoft:
    provider = sim.provider("dinisoft", **overrides)
    assert isinstance(provider, DiniSoft)
    return provider


async def test_lifecycle_on_the_sim_clock_with_read_once_final() -> None:
    sim = Simulator(seed=3)
    async with dinisoft(sim) as sms:
        receipt = await sms.send("01712345678", "your parcel is out")
        assert (await sms.status(receipt.message_id)).state is State.PENDING
        sim.clock.advance(sim.dinisoft.pending_for)
        sent = await sms.status(receipt.message_id)
        assert sent.state is State.SENT and sent.done_at is not None
        sim.clock.advance(sim.dinisoft.sent_for)
        delivered = await sms.status(receipt.message_id)
        assert delivered.state is State.DELIVERED
        assert delivered.done_at is not None and delivered.done_at > sent.done_at
        requests = sim.dinisoft.requests
        assert await sms.status(receipt.message_id) == delivered
        assert sim.dinisoft.requests == requests  # answered from the kept final report
    # another process (a fresh provider) cannot read it again: the gateway answers 114
    async with dinisoft(sim) as other:
        with pytest.raises(RequestRejectedError) as info:
            await other.status(receipt.message_id)
        assert info.value.code == "114"
        with pytest.raises(RequestRejectedError):
            await other.status("424242")
    await sim.aclose()


async def test_pinned_outcomes() -> None:
    sim = Simulator()
    sim.dinisoft.outcomes["8801712345670"] = "REJECTD"
    sim.dinisoft.outcomes["8801712345671"] = "SENT"
    async with dinisoft(sim) as sms:
        failed = await sms.send("01712345670", "a")
        stuck = await sms.send("01712345671", "b")
        sim.clock.advance(3600)
        report = await sms.status(failed.message_id)
        assert (report.state, report.permanent, report.retries_allowed) == (State.REJECTED, True, 0)
        assert (await sms.status(stuck.message_id)).state is State.SENT
        assert (await sms.status(stuck.message_id)).state is State.SENT
    await sim.aclose()


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"api_key": "someone-else"}, "109"),
        ({"secret_key": "wrong-secret"}, "108"),
    ],
)
async def test_wrong_credentials(overrides: dict[str, object], code: str) -> None:
    sim = Simulator()
    async with dinisoft(sim, **overrides) as sms:
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "x")
        assert (info.value.kind, info.value.code) == (ErrorKind.AUTH, code)
        with pytest.raises(ProviderError) as status:
            await sms.status("1")
        assert status.value.kind is ErrorKind.AUTH
    await sim.aclose()


async def test_ip_allow_list_forced_codes_and_faults() -> None:
    sim = Simulator()
    async with dinisoft(sim) as sms:
        sim.dinisoft.allowed_ips = {"203.0.113.9"}
        with pytest.raises(ProviderError) as denied:
            await sms.send("01712345678", "x")
        assert (denied.value.kind, denied.value.code) == (ErrorKind.ACCESS_DENIED, "5400")
        sim.dinisoft.allowed_ips = None

        sim.dinisoft.force(101)
        with pytest.raises(ProviderError) as busy:
            await sms.send("01712345678", "x")
        assert busy.value.kind is ErrorKind.PROVIDER_UNAVAILABLE and busy.value.retryable

        receipt = await sms.send("01712345678", "x")
        sim.dinisoft.force_status(-42)
        with pytest.raises(ProviderError) as auth:
            await sms.status(receipt.message_id)
        assert (auth.value.kind, auth.value.code) == (ErrorKind.AUTH, "-42")

        sim.fail("dinisoft", "read_timeout", path="/sendtext")
        with pytest.raises(ProviderError) as lost:
            await sms.send("01712345678", "x")
        assert lost.value.kind is ErrorKind.OUTCOME_UNKNOWN
        assert len(sim.dinisoft.messages) == 2  # the lost answer's message was still taken
    await sim.aclose()


async def test_curly_quoted_bodies_are_understood() -> None:
    sim = Simulator()
    sim.dinisoft.curly_quotes = True
    async with dinisoft(sim) as sms:
        receipt = await sms.send("01712345678", "x")
        assert receipt.message_id in sim.dinisoft.messages
        sim.dinisoft.force(5400)
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "x")
        assert info.value.code == "5400"
    await sim.aclose()


async def test_balance_goes_down_and_the_page_gets_no_credentials() -> None:
    sim = Simulator()
    async with dinisoft(sim) as sms:
        before = await sms.balance()
        await sms.send("01712345678", "অ" * 80)  # two UCS-2 segments
        after = await sms.balance()
    assert before.amount - after.amount == sim.dinisoft.price_per_segment * 2
    assert after.amount == Decimal("99.500000")
    assert sim.dinisoft.balance_queries == ["client=simclient"] * 2
    async with dinisoft(sim, client_name="nobody") as stranger:
        with pytest.raises(ProviderError) as info:
            await stranger.balance()
        assert info.value.kind is ErrorKind.BAD_RESPONSE
        assert info.value.raw is not None and "log in" in info.value.raw
    await sim.aclose()


async def test_out_of_credit_is_a_request_failure_and_bulk_goes_one_by_one() -> None:
    sim = Simulator()
    sim.dinisoft.balance = sim.dinisoft.price_per_segment * 2
    messages = [Message(to=f"0171234567{i}", text="x") for i in range(3)]
    async with dinisoft(sim) as sms:
        result = await sms.send_bulk(messages, concurrency=1)
    assert [isinstance(o, Receipt) for o in result] == [True, True, False]
    error = result[2]
    assert isinstance(error, ProviderError) and error.code == "1"
    assert sim.dinisoft.requests == 3
    await sim.aclose()
