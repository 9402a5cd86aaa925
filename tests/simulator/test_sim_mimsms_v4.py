"""MiMSMS v4 end to end: the provider against the in-process simulator."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from mimgw import (
    AccessDeniedError,
    AuthenticationError,
    ConfigurationError,
    ConnectFailedError,
    ErrorKind,
    InsufficientBalanceError,
    Message,
    OutcomeUnknownError,
    ProviderError,
    Receipt,
    State,
)
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.simulator import Simulator
from mimgw.simulator.mimsms_v4 import (
    DEMO_API_KEY,
    DEMO_CAMPAIGN,
    DEMO_SENDER,
    DEMO_USERNAME,
    IP_BLACKLIST,
)


def v4(sim: Simulator, **overrides: object) -> MimSmsV4:
    provider = sim.provider("mimsms_v4", **overrides)
    assert isinstance(provider, MimSmsV4)
    return provider


def test_provider_kwargs_are_the_demo_account(sim: Simulator) -> None:
    assert sim.mimsms_v4.provider_kwargs() == {
        "username": DEMO_USERNAME,
        "api_key": DEMO_API_KEY,
        "sender": DEMO_SENDER,
        "campaign_id": DEMO_CAMPAIGN,
        "base_url": "https://api.mimsms.com",
    }


@pytest.mark.parametrize("method", ["json", "query"])
async def test_send_records_the_message_and_charges_per_segment(
    sim: Simulator, method: str
) -> None:
    gateway = sim.mimsms_v4
    before = gateway.balance
    async with v4(sim, method=method) as sms:
        receipt = await sms.send("01712-345678", "প্রিয় গ্রাহক, " * 6)
        assert receipt.segments == 2 and receipt.encoding == "ucs2"
        balance = await sms.balance()
    assert balance.amount == before - 2 * gateway.price_per_sms == gateway.balance
    [message] = gateway.messages
    assert (message.number, message.trxn_id, message.sender) == (
        "8801712345678",
        receipt.message_id,
        DEMO_SENDER,
    )
    assert (message.text, message.segments, message.transaction_type) == (
        "প্রিয় গ্রাহক, " * 6,
        2,
        "T",
    )


@pytest.mark.parametrize("method", ["json", "query"])
async def test_one_to_many_and_dsms(sim: Simulator, method: str) -> None:
    gateway = sim.mimsms_v4
    same = [Message(to=f"0181234567{i}", text="Branch closed today") for i in range(3)]
    personal = [Message(to=f"0191234567{i}", text=f"Hi {name}") for i, name in enumerate("AB")]
    async with v4(sim, method=method) as sms:
        result = await sms.send_bulk([*same, *personal])
    assert result.ok
    ids = [r.message_id for r in result.receipts]
    assert len(set(ids[:3])) == 1  # one one-to-many request
    if method == "json":
        assert ids[3] == ids[4] != ids[0]  # one DSMS request
        assert {m.transaction_type for m in gateway.messages[3:]} == {"D"}
    else:
        assert len(set(ids[3:])) == 2  # personalised texts go singly over GET
    assert [m.number for m in gateway.messages if m.trxn_id == ids[0]] == [
        "8801812345670",
        "8801812345671",
        "8801812345672",
    ]
    assert gateway.balance == Decimal("500.00") - 5 * gateway.price_per_sms


async def test_promotional_uses_the_campaign(sim: Simulator) -> None:
    async with v4(sim) as sms:
        await sms.send("01712345678", "Sale", category="promotional")
    assert sim.mimsms_v4.messages[-1].transaction_type == "P"
    assert sim.mimsms_v4.messages[-1].campaign_id == DEMO_CAMPAIGN
    sim.mimsms_v4.campaigns.clear()
    async with v4(sim) as sms:
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "Sale", category="promotional")
    assert (info.value.kind, info.value.code) == (ErrorKind.REQUEST_REJECTED, "210")


@pytest.mark.parametrize("method", ["json", "query"])
async def test_wrong_credentials(sim: Simulator, method: str) -> None:
    async with v4(sim, api_key="not-the-key", method=method) as sms:
        with pytest.raises(AuthenticationError) as info:
            await sms.send("01712345678", "hello")
        with pytest.raises(AuthenticationError):
            await sms.balance()
    assert info.value.code == "401"
    assert "not-the-key" not in (info.value.raw or "")
    assert not sim.mimsms_v4.messages


async def test_gateway_checks(sim: Simulator) -> None:
    gateway = sim.mimsms_v4
    gateway.blocked_words.add("casino")
    async with v4(sim) as sms:
        cases = [
            (sms.send("01712345678", "hi", sender="UNKNOWN"), "208"),
            (sms.send("01712345678", "Win at the CASINO"), "205"),
            (sms.send("01712345678", "x" * 153 * 11), "209"),
        ]
        for call, code in cases:
            with pytest.raises(ProviderError) as info:
                await call
            assert info.value.code == code
        gateway.balance = Decimal("0.10")
        with pytest.raises(InsufficientBalanceError):
            await sms.send("01712345678", "hello")
    assert not gateway.messages and gateway.balance == Decimal("0.10")


async def test_invalid_number_and_missing_fields(sim: Simulator) -> None:
    async with sim.client() as client:
        base = "https://api.mimsms.com/api/SmsSending"
        body = {
            "UserName": DEMO_USERNAME,
            "Apikey": DEMO_API_KEY,
            "MobileNumber": "12345",
            "CampaignId": "null",
            "SenderName": DEMO_SENDER,
            "TransactionType": "T",
            "Message": "hi",
        }
        bad_number = await client.post(f"{base}/SMS", json=body)
        missing = await client.post(f"{base}/SMS", json={**body, "Message": ""})
        not_json = await client.post(f"{base}/SMS", content=json.dumps(body))
        wrong_method = await client.get(f"{base}/SMS")
    assert bad_number.json() == {
        "statusCode": "206",
        "status": "Failed",
        "trxnId": bad_number.json()["trxnId"],
        "responseResult": "Invalid Mobile Number",
    }
    assert missing.json()["statusCode"] == "213"
    assert not_json.json()["statusCode"] == "213"
    assert wrong_method.status_code == 405


@pytest.mark.parametrize(
    ("code", "text", "error_kind"),
    [
        ("500", None, ErrorKind.PROVIDER_UNAVAILABLE),
        ("221", None, ErrorKind.PROVIDER_UNAVAILABLE),
        ("216", None, ErrorKind.INSUFFICIENT_BALANCE),
        ("401", None, ErrorKind.AUTH),
        ("401", IP_BLACKLIST, ErrorKind.ACCESS_DENIED),
    ],
)
async def test_forced_codes(
    sim: Simulator, code: str, text: str | None, error_kind: ErrorKind
) -> None:
    sim.mimsms_v4.force(code, text=text)
    async with v4(sim) as sms:
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "hello")
        assert (info.value.kind, info.value.code) == (error_kind, code)
        assert isinstance(await sms.send("01712345678", "hello"), Receipt)  # only once


async def test_forced_code_fails_a_whole_bulk_chunk(sim: Simulator) -> None:
    sim.mimsms_v4.force("216")
    messages = [Message(to=f"0171234567{i}", text="same") for i in range(3)]
    async with v4(sim) as sms:
        result = await sms.send_bulk(messages)
    assert [type(o) for o in result] == [InsufficientBalanceError] * 3


async def test_ip_blacklist(sim: Simulator) -> None:
    sim.mimsms_v4.ip_blacklisted = True
    async with v4(sim) as sms:
        with pytest.raises(AccessDeniedError):
            await sms.send("01712345678", "hello")
        with pytest.raises(AccessDeniedError):
            await sms.balance()


async def test_transport_faults(sim: Simulator) -> None:
    async with v4(sim) as sms:
        sim.fail("mimsms_v4", "connect_error")
        with pytest.raises(ConnectFailedError):
            await sms.send("01712345678", "hello")
        assert not sim.mimsms_v4.messages
        sim.fail("mimsms_v4", "read_timeout")
        with pytest.raises(OutcomeUnknownError):
            await sms.send("01712345678", "hello")
        assert len(sim.mimsms_v4.messages) == 1  # it was sent; only the answer was lost
        sim.fail("mimsms_v4", "status", status=502, body="<html>Bad Gateway</html>")
        with pytest.raises(OutcomeUnknownError) as info:
            await sms.send("01712345678", "hello")
        assert info.value.raw == "<html>Bad Gateway</html>"
        sim.fail("mimsms_v4", "reset_after_send", path="/api/SmsSending/Balance")
        with pytest.raises(ProviderError) as balance_info:
            await sms.balance()
        assert balance_info.value.kind is ErrorKind.PROVIDER_UNAVAILABLE


async def test_dlr_rows_for_sent_messages(sim: Simulator) -> None:
    gateway = sim.mimsms_v4
    gateway.outcomes["8801812345671"] = ("SMS Failed", "Network failure in SMSC link")
    messages = [Message(to=f"0181234567{i}", text="same") for i in range(2)]
    async with v4(sim) as sms:
        result = await sms.send_bulk(messages)
        trxn_id = result.receipts[0].message_id
        rows = gateway.dlr_for(trxn_id)
        reports = [sms.parse_dlr(trxn_id, r.status, r.description, to=r.number) for r in rows]
    assert [(r.to, r.state, r.retries_allowed) for r in reports] == [
        ("8801812345670", State.DELIVERED, 0),
        ("8801812345671", State.UNDELIVERABLE, 3),
    ]
    with pytest.raises(KeyError):
        gateway.dlr_for("NOPE")


def test_an_unknown_simulated_gateway_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown simulated gateway 'nope'"):
        Simulator().provider("nope")
