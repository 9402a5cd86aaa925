"""Native batches in Gateway.send_bulk: wire bodies, per-recipient ledger, failover, keys."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest
import respx

from mimgw import ErrorKind, Message, MimgwError, OutcomeUnknownError, ProviderError, Receipt
from mimgw.errors import AllProvidersFailedError
from mimgw.gateway.batching import batch_parts, recipient_id
from mimgw.ledger import IntentState, MemoryLedger
from mimgw.providers.imiconnect import IMIconnect
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.simulator import Simulator
from mimgw.taxonomy import State
from mimgw.testing import fake_gateway_for

V4, IMI, DINI = "mimsms_v4", "imiconnect", "dinisoft"
BASE = "https://api.mimsms.com/api/SmsSending"
IMI_URL = "https://api.imiconnect.io/resources/v1/messaging"
OK = {"statusCode": "200", "status": "Success", "trxnId": "TRXB1", "responseResult": "sent"}


def number(i: int) -> str:
    return f"01712{i:06d}"


def e164(i: int) -> str:
    return f"8801712{i:06d}"


def v4(**kwargs: Any) -> MimSmsV4:
    return MimSmsV4(username="u@x.example", api_key="k-123456", sender="Shop", **kwargs)


def body(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


# -- wire checks ---------------------------------------------------------------------------------


@respx.mock
async def test_same_text_goes_one_to_many_and_each_recipient_gets_its_own_entry() -> None:
    route = respx.post(f"{BASE}/OneToMany").respond(json=OK)
    gw = fake_gateway_for(v4())
    result = await gw.send_bulk([(number(i), "sale today") for i in range(3)])
    assert route.call_count == 1
    assert body(route) == {
        "UserName": "u@x.example",
        "Apikey": "k-123456",
        "MobileNumber": ",".join(e164(i) for i in range(3)),
        "CampaignId": "null",
        "SenderName": "Shop",
        "TransactionType": "T",
        "Message": "sale today",
    }
    ids = [r.message_id for r in result.receipts]
    assert ids == [recipient_id("TRXB1", e164(i)) for i in range(3)]
    assert batch_parts(ids[0]) == ("TRXB1", e164(0))
    for receipt in result.receipts:
        entry = await gw.ledger.get(V4, receipt.message_id)
        assert entry is not None and entry.to == receipt.to


@respx.mock
async def test_personalised_texts_go_dsms_and_promotional_ones_as_singles() -> None:
    dsms = respx.post(f"{BASE}/DSMS").respond(json=OK)
    single = respx.post(f"{BASE}/SMS").respond(json={**OK, "trxnId": "ONE"})
    gw = fake_gateway_for(v4(campaign_id="C1"))
    messages = [Message(to=number(i), text=f"hi {i}") for i in range(3)]
    messages.append(Message(to=number(9), text="promo", category="promotional"))
    result = await gw.send_bulk(messages)
    assert result.ok and dsms.call_count == 1 and single.call_count == 1
    assert body(dsms) == {
        "UserName": "u@x.example",
        "Apikey": "k-123456",
        "SenderName": "Shop",
        "TransactionType": "D",
        "SmsData": [{"MobNumber": e164(i), "Message": f"hi {i}"} for i in range(3)],
    }
    assert result.receipts[-1].message_id == "ONE"  # singles keep the gateway's id


@respx.mock
async def test_batch_false_sends_singles() -> None:
    single = respx.post(f"{BASE}/SMS").respond(json=OK)
    gw = fake_gateway_for(v4())
    result = await gw.send_bulk([(number(i), "same") for i in range(3)], batch=False)
    assert result.ok and single.call_count == 3


@respx.mock
async def test_a_number_twice_never_shares_a_request() -> None:
    route = respx.post(f"{BASE}/OneToMany").respond(json=OK)
    respx.post(f"{BASE}/SMS").respond(json={**OK, "trxnId": "S"})
    gw = fake_gateway_for(v4())
    result = await gw.send_bulk([(number(1), "x"), (number(1), "x"), (number(2), "x")])
    assert result.ok
    for call in route.calls:
        numbers = json.loads(call.request.content)["MobileNumber"].split(",")
        assert len(numbers) == len(set(numbers))
    assert len({r.message_id for r in result.receipts}) == 3


@respx.mock
async def test_imiconnect_arrays_keep_each_transid() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        objects = json.loads(request.content)
        items = [
            {
                "code": "1001",
                "description": "Queued",
                "transid": f"t-{i}",
                "correlationid": o["correlationid"],
            }
            for i, o in enumerate(objects)
        ]
        return httpx.Response(200, json={"response": items})

    route = respx.post(IMI_URL).mock(side_effect=answer)
    gw = fake_gateway_for(IMIconnect(service_key="svc-key", sender="SHOP"))
    messages = [Message(to=number(i), text=f"hello {i}") for i in range(4)]
    result = await gw.send_bulk(messages)
    assert route.call_count == 1
    sent = body(route)
    assert isinstance(sent, list) and len(sent) == 4
    assert [o["destination"][0]["msisdn"] for o in sent] == [[e164(i)] for i in range(4)]
    assert [o["channels"]["sms"]["text"] for o in sent] == [m.text for m in messages]
    assert [r.message_id for r in result.receipts] == [f"t-{i}" for i in range(4)]
    assert route.calls[0].request.headers["key"] == "svc-key"


# -- simulator end to end -----------------------------------------------------------------------


async def test_simulator_counts_each_recipient_once_and_reports_match(sim: Simulator) -> None:
    gw = fake_gateway_for(sim.provider(V4))
    messages = [Message(to=number(i), text="same" if i % 2 else f"own {i}") for i in range(250)]
    result = await gw.send_bulk(messages, concurrency=4)
    assert result.ok
    assert all(sim.mimsms_v4.sent_count(m.to) == 1 for m in messages)
    assert len(sim.mimsms_v4.messages) == 250
    trxn = Counter(m.trxn_id for m in sim.mimsms_v4.messages)
    assert len(trxn) < 10  # batches, not singles
    # a DLR row names the trxnId and the number: it lands on that recipient's entry
    provider = gw.providers[V4]
    assert isinstance(provider, MimSmsV4)
    first = sim.mimsms_v4.messages[0]
    provider.parse_dlr(first.trxn_id, "Delivered", to=first.number)
    await gw.flush()
    entry = await gw.ledger.get(V4, recipient_id(first.trxn_id, first.number))
    assert entry is not None and entry.state is State.DELIVERED


async def test_async_source_is_batched_too(sim: Simulator) -> None:
    gw = fake_gateway_for(sim.provider(V4))

    async def source() -> Any:
        for i in range(30):
            yield (number(i), "async same")

    result = await gw.send_bulk(source())
    assert result.ok and len(result) == 30
    assert len({m.trxn_id for m in sim.mimsms_v4.messages}) == 1


# -- failover, unknown, keys ----------------------------------------------------------------------


async def test_a_batch_that_sent_nothing_fails_over_whole(sim: Simulator) -> None:
    gw = fake_gateway_for(sim.provider(V4), sim.provider(DINI))
    sim.fail(V4, "connect_error", times=None)
    messages = [Message(to=number(i), text="fo") for i in range(5)]
    result = await gw.send_bulk(messages)
    assert result.ok
    assert {r.provider for r in result.receipts} == {DINI}
    assert not sim.mimsms_v4.messages
    assert all(sim.dinisoft.sent_count(m.to) == 1 for m in messages)


async def test_a_batch_of_unknown_outcome_is_unknown_for_every_recipient(sim: Simulator) -> None:
    ledger = MemoryLedger()
    gw = fake_gateway_for(
        sim.provider(V4), sim.provider(DINI), ledger=ledger, on_unknown="failover"
    )
    sim.fail(V4, "read_timeout")
    messages = [Message(to=number(i), text="lost") for i in range(4)]
    result = await gw.send_bulk(messages)
    assert all(isinstance(o, ProviderError) and o.may_have_been_sent for o in result.outcomes)
    assert not sim.dinisoft.messages  # never re-sent elsewhere
    unresolved = await ledger.unresolved()
    assert sorted(i.to for i in unresolved) == sorted(m.to for m in messages)
    assert {i.state for i in unresolved} == {IntentState.UNKNOWN}


async def test_a_rejected_batch_is_each_recipients_error_and_not_sent(sim: Simulator) -> None:
    ledger = MemoryLedger()
    gw = fake_gateway_for(sim.provider(V4, sender="Unregistered"), ledger=ledger)
    result = await gw.send_bulk([(number(i), "r") for i in range(3)])
    for outcome in result.outcomes:  # as for a single on the only gateway
        assert isinstance(outcome, AllProvidersFailedError) and not outcome.may_have_been_sent
        assert outcome.last is not None and outcome.last.kind is ErrorKind.SENDER_REJECTED
    assert await ledger.unresolved() == []


async def test_idempotency_keys_in_batches(sim: Simulator) -> None:
    gw = fake_gateway_for(sim.provider(V4))
    first = [Message(to=number(i), text="k", idempotency_key=f"k{i}") for i in range(3)]
    done = await gw.send_bulk(first)
    assert done.ok
    again = [Message(to=number(i), text="k", idempotency_key=f"k{i}") for i in range(5)]
    result = await gw.send_bulk(again)
    assert result.ok
    assert [r.message_id for r in result.receipts[:3]] == [r.message_id for r in done.receipts]
    assert all(sim.mimsms_v4.sent_count(number(i)) == 1 for i in range(5))


async def test_an_unknown_key_is_not_sent_again_from_a_batch(sim: Simulator) -> None:
    gw = fake_gateway_for(sim.provider(V4))
    sim.fail(V4, "read_timeout")
    with pytest.raises(MimgwError):
        await gw.send(number(1), "k", idempotency_key="lost")
    result = await gw.send_bulk(
        [
            Message(to=number(1), text="k", idempotency_key="lost"),
            (number(2), "k"),
            (number(3), "k"),
        ]
    )
    assert isinstance(result[0], OutcomeUnknownError)
    assert isinstance(result[1], Receipt) and isinstance(result[2], Receipt)
    assert sim.mimsms_v4.sent_count(number(1)) <= 1


async def test_a_mix_of_batchable_and_single_messages(sim: Simulator) -> None:
    gw = fake_gateway_for(sim.provider(V4, campaign_id=None), sim.provider(DINI))
    messages: list[Any] = [(number(i), "mix") for i in range(4)]
    messages.append(Message(to=number(8), text="alone", category="promotional"))  # no campaign
    messages.append("not a message")
    messages.append(Message(to=number(9), text="dup", idempotency_key="same"))
    messages.append(Message(to=number(10), text="dup", idempotency_key="same"))
    result = await gw.send_bulk(messages)
    assert [type(o).__name__ for o in result.outcomes[:4]] == ["Receipt"] * 4
    assert isinstance(result[4], Receipt) and result[4].provider == DINI  # v4 refused it
    assert isinstance(result[5], MimgwError)
    assert isinstance(result[6], Receipt) and result[7] == result[6]  # replayed, sent once
    dup = [sim.mimsms_v4.sent_count(text="dup"), sim.dinisoft.sent_count(text="dup")]
    assert sum(dup) == 1  # one key, one send (whichever of the two ran first)


async def test_pinned_batch_failure_does_not_fail_over(sim: Simulator) -> None:
    gw = fake_gateway_for(sim.provider(V4), sim.provider(DINI))
    sim.fail(V4, "connect_error", times=None)
    result = await gw.send_bulk([(number(i), "pin") for i in range(3)], provider=V4)
    assert all(
        isinstance(o, ProviderError) and o.kind is ErrorKind.CONNECT_FAILED for o in result.outcomes
    )
    assert not sim.dinisoft.messages
    assert not any(isinstance(o, AllProvidersFailedError) for o in result.outcomes)


@respx.mock
async def test_messages_the_first_gateway_refuses_go_batched_to_the_next() -> None:
    """Foreign numbers in a campaign that lists MiMSMS v4 (Bangladesh only) first: v4
    takes the local ones in one request, IMIconnect the foreign ones in one array."""

    def answer(request: httpx.Request) -> httpx.Response:
        items = [
            {"code": "1001", "description": "Queued", "transid": f"t-{i}", "correlationid": o}
            for i, o in enumerate(o["correlationid"] for o in json.loads(request.content))
        ]
        return httpx.Response(200, json={"response": items})

    local = respx.post(f"{BASE}/OneToMany").respond(json=OK)
    imi = respx.post(IMI_URL).mock(side_effect=answer)
    gw = fake_gateway_for(v4(), IMIconnect(service_key="svc-key", sender="SHOP"))
    abroad = [f"+4474001234{i:02d}" for i in range(5)]
    messages = [(to, "sale") for to in abroad[:3]]
    messages += [(number(i), "sale") for i in range(4)] + [(to, "sale") for to in abroad[3:]]
    result = await gw.send_bulk(messages)
    assert result.ok
    assert local.call_count == 1 and imi.call_count == 1
    sent = body(imi)
    assert [o["destination"][0]["msisdn"][0] for o in sent] == [a.lstrip("+") for a in abroad]
    assert [r.provider for r in result.receipts] == [IMI] * 3 + [V4] * 4 + [IMI] * 2
    for receipt in result.receipts:  # each its own entry, in the order given
        assert await gw.ledger.get(receipt.provider, receipt.message_id) is not None
