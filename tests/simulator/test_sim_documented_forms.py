"""The simulators serve the documented request forms only and answer the documented bodies,
so a client that deviates fails here; and they count what they took, per message."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from mimgw import Gateway, Message, MimgwError, State
from mimgw.simulator import Simulator
from mimgw.simulator.mimsms_v4 import DEMO_API_KEY, DEMO_SENDER, DEMO_USERNAME

V3J = "http://api.mimsms.com/sms/1/text/single"
V4 = "https://api.mimsms.com/api/SmsSending"
NUMBER = "8801613537347"


def basic(sim: Simulator) -> dict[str, str]:
    g = sim.mimsms_v3_json
    token = base64.b64encode(f"{g.username}:{g.password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


# -- MiMSMS v3 JSON ---------------------------------------------------------------------------


async def test_v3_json_submit_answers_the_documented_body(sim: Simulator) -> None:
    async with sim.client() as client:
        response = await client.post(
            V3J, headers=basic(sim), json={"from": "InfoSMS", "to": NUMBER, "text": "hi"}
        )
    assert response.status_code == 200
    [message] = response.json()["messages"]
    assert list(message) == ["to", "status", "smsCount", "messageId"]
    assert message["to"] == NUMBER and message["smsCount"] == 1
    assert message["status"] == {
        "id": 0,
        "groupId": 0,
        "groupName": "ACCEPTED",
        "name": "MESSAGE_ACCEPTED",
        "description": "Message accepted",
    }
    assert "bulkId" not in response.json()


@pytest.mark.parametrize(
    "to", [[NUMBER], [NUMBER, "8801712345678"], 8801613537347, None, ""], ids=str
)
async def test_v3_json_refuses_anything_but_one_string_to(sim: Simulator, to: object) -> None:
    async with sim.client() as client:
        response = await client.post(
            V3J, headers=basic(sim), json={"from": "InfoSMS", "to": to, "text": "hi"}
        )
    assert response.status_code == 400
    assert sim.mimsms_v3_json.messages == {} and sim.mimsms_v3_json.sent_count() == 0


async def test_v3_json_submit_needs_a_content_type(sim: Simulator) -> None:
    headers = {"Authorization": basic(sim)["Authorization"]}
    body = json.dumps({"from": "InfoSMS", "to": NUMBER, "text": "hi"}).encode()
    async with sim.client() as client:
        response = await client.post(V3J, headers=headers, content=body)
    assert response.status_code == 400


async def test_v3_json_rejections_carry_the_tables_description_and_action(sim: Simulator) -> None:
    sim.mimsms_v3_json.force(17)
    async with sim.client() as client:
        response = await client.post(
            V3J, headers=basic(sim), json={"from": "InfoSMS", "to": NUMBER, "text": "hi"}
        )
    [message] = response.json()["messages"]
    assert message["status"] == {
        "id": 17,
        "groupId": 5,
        "groupName": "REJECTED",
        "name": "REJECTED_PREPAID_PACKAGE_EXPIRED",
        "description": "Prepaid package expired",
        "action": "Top-Up your account to extend the validity period",
    }
    assert "messageId" not in message


async def test_v3_json_provider_receipt_matches_the_document(sim: Simulator) -> None:
    async with sim.provider("mimsms_v3_json") as sms:
        receipt = await sms.send(NUMBER, "hello")
    assert receipt.state is State.ACCEPTED


# -- MiMSMS v4 --------------------------------------------------------------------------------


def v4_body(**extra: str) -> dict[str, str]:
    return {
        "UserName": DEMO_USERNAME,
        "Apikey": DEMO_API_KEY,
        "MobileNumber": NUMBER,
        "CampaignId": "null",
        "SenderName": DEMO_SENDER,
        "TransactionType": "T",
        "Message": "hi",
    } | extra


@pytest.mark.parametrize("path", ["/SMS", "/OneToMany"])
async def test_v4_json_success_is_the_vendors_spelling(sim: Simulator, path: str) -> None:
    async with sim.client() as client:
        response = await client.post(f"{V4}{path}", json=v4_body())
    body = response.json()
    assert list(body) == ["statusCode", "status", "trxnId", "responseResult"]
    assert (body["statusCode"], body["status"]) == ("200", "Success")
    assert body["responseResult"] == "SMS Send Successfuly"


async def test_v4_get_answers_keep_each_examples_bytes(sim: Simulator) -> None:
    query = v4_body()
    async with sim.client() as client:
        single = (await client.get(f"{V4}/Send", params=query)).json()
        many = (await client.get(f"{V4}/SendOneToMany", params=query)).json()
    assert list(single) == ["statusCode", "status", "responseResult", "trxnId"]
    assert single["responseResult"] == "SMS Send Successfuly"
    assert many["responseResult"] == "SMS Send successfully"  # that example's spelling


async def test_v4_json_needs_the_json_content_type(sim: Simulator) -> None:
    async with sim.client() as client:
        response = await client.post(f"{V4}/SMS", content=json.dumps(v4_body()).encode())
    assert response.json()["statusCode"] == "213"
    assert sim.mimsms_v4.sent_count() == 0


async def test_v4_provider_raw_keeps_the_vendors_text(sim: Simulator) -> None:
    async with sim.provider("mimsms_v4") as sms:
        receipt = await sms.send(NUMBER, "hello")
    assert "SMS Send Successfuly" in (receipt.raw or "")


# -- counting submissions ---------------------------------------------------------------------

KINDS = ["mimsms_v4", "mimsms_v3", "mimsms_v3_json", "dinisoft", "imiconnect"]


@pytest.mark.parametrize("kind", KINDS)
async def test_every_simulator_counts_each_message_it_took(sim: Simulator, kind: str) -> None:
    gateway = sim.gateways[kind]
    async with sim.provider(kind) as sms:
        await sms.send("01712345678", "code 1")
        await sms.send("+8801712345678", "code 2")
        await sms.send("01812345678", "code 1")
    assert gateway.sent_count("01712345678", "code 1") == 1
    assert gateway.sent_count("8801712345678") == 2
    assert gateway.sent_count(text="code 1") == 2
    assert gateway.sent_count() == 3
    assert gateway.submissions[("8801812345678", "code 1")] == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_refused_and_faulted_submits_do_not_count(sim: Simulator, kind: str) -> None:
    gateway = sim.gateways[kind]
    sim.fail(kind, "connect_error")
    sim.fail(kind, "status", status=503)
    sim.fail(kind, "read_timeout")  # processed, answer lost: it counts
    async with sim.provider(kind) as sms:
        for _ in range(3):
            with pytest.raises(MimgwError):  # every fault surfaces as a typed error
                await sms.send("01712345678", "once")
    assert gateway.sent_count("01712345678", "once") == 1


async def test_imiconnect_counts_by_the_callers_reference(sim: Simulator) -> None:
    async with sim.provider("imiconnect") as sms:
        await sms.send("01712345678", "hi", reference="order-17")
    assert sim.imiconnect.sent_count(reference="order-17") == 1
    assert sim.imiconnect.sent_count(reference="order-18") == 0


async def test_a_bulk_send_through_a_gateway_is_sent_exactly_once(sim: Simulator) -> None:
    numbers = [f"0171234560{i}" for i in range(6)]
    async with Gateway([sim.provider("mimsms_v3_json")]) as gateway:
        result = await gateway.send_bulk([Message(to=n, text="sale") for n in numbers])
    assert result.ok
    assert all(sim.mimsms_v3_json.sent_count(n, "sale") == 1 for n in numbers)


async def test_counts_reach_the_gateway_over_http(sim: Simulator) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim)) as client:
        await client.get(
            "https://dinisoft.sim.invalid:7790/sendtext",
            params={
                "apikey": sim.dinisoft.api_key,
                "secretkey": sim.dinisoft.secret_key,
                "callerID": "X",
                "toUser": NUMBER,
                "messageContent": "m",
            },
        )
    assert sim.dinisoft.sent_count(NUMBER, "m") == 1
