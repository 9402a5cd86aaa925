"""IMIconnect end to end through the in-process simulator, with pushed notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mimgw import (
    DeliveryReport,
    ErrorKind,
    InboundMessage,
    Message,
    MimgwError,
    ProviderError,
    Receipt,
    State,
)
from mimgw.providers.imiconnect import IMIconnect
from mimgw.simulator import Simulator


class Receiver:
    """A tiny ASGI app standing in for our webhook endpoint: it parses what it gets."""

    def __init__(self, provider: IMIconnect) -> None:
        self.provider = provider
        self.items: list[DeliveryReport | InboundMessage] = []
        self.refuse = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        status = 503
        if not self.refuse:
            try:
                self.items.extend(self.provider.parse_webhook(body, {}))
                status = 204
            except MimgwError:
                status = 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Simulator, IMIconnect, Receiver]]:
    sim = Simulator(seed=7)
    provider = sim.provider("imiconnect")
    assert isinstance(provider, IMIconnect)
    receiver = Receiver(provider)
    sim.imiconnect.notify_url = "http://our-service.test/webhooks/imiconnect"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver)) as push:
        sim.imiconnect.push_client = push
        yield sim, provider, receiver
    await provider.aclose()
    await sim.aclose()


async def test_send_then_pushed_delivery_report(
    setup: tuple[Simulator, IMIconnect, Receiver],
) -> None:
    sim, sms, receiver = setup
    receipt = await sms.send("01712345678", "Hi $(name)", reference="order-9")
    stored = sim.imiconnect.messages[receipt.message_id]
    assert (stored.text, stored.senderid, stored.correlationid) == (
        "Hi $(name)",
        "SIMIMI",
        "order-9",
    )
    assert await sim.imiconnect.push_reports() == 0  # not due yet
    sim.clock.advance(sim.imiconnect.deliver_after)
    assert await sim.imiconnect.push_reports() == 1
    assert await sim.imiconnect.push_reports() == 0  # pushed once
    [report] = receiver.items
    assert isinstance(report, DeliveryReport)
    assert (report.message_id, report.reference, report.state) == (
        receipt.message_id,
        "order-9",
        State.DELIVERED,
    )
    assert report.to == "8801712345678" and report.done_at is not None


async def test_failed_outcome_and_refused_push_is_retried(
    setup: tuple[Simulator, IMIconnect, Receiver],
) -> None:
    sim, sms, receiver = setup
    sim.imiconnect.outcomes["8801712345670"] = "Failed"
    await sms.send("01712345670", "x")
    sim.clock.advance(5)
    receiver.refuse = True
    assert await sim.imiconnect.push_reports() == 0
    receiver.refuse = False
    assert await sim.imiconnect.push_reports() == 1
    assert [i.state for i in receiver.items if isinstance(i, DeliveryReport)] == [
        State.UNDELIVERABLE
    ]


async def test_bulk_over_the_batch_limit(setup: tuple[Simulator, IMIconnect, Receiver]) -> None:
    sim, sms, _ = setup
    messages = [Message(to=f"0171{i:07d}", text=f"n{i}") for i in range(1500)]
    sim.imiconnect.force("4001")  # the first destination is refused
    result = await sms.send_bulk(messages, concurrency=1)
    assert sorted(sim.imiconnect.batch_sizes) == [500, 1000]
    assert len(result.receipts) == 1499
    first = result[0]
    assert isinstance(first, ProviderError) and first.code == "4001"
    for message, outcome in list(result.items())[1:]:
        assert isinstance(outcome, Receipt)
        assert sim.imiconnect.messages[outcome.message_id].msisdn == message.to
        assert outcome.reference == message.reference


async def test_wrong_key_and_template(setup: tuple[Simulator, IMIconnect, Receiver]) -> None:
    sim, sms, _ = setup
    async with sim.imiconnect.provider(service_key="not-the-key") as wrong:
        with pytest.raises(ProviderError) as info:
            await wrong.send("01712345678", "x")
        assert info.value.kind is ErrorKind.AUTH
    receipt = await sms.send_template("01712345678", "12")
    assert sim.imiconnect.messages[receipt.message_id].template == "12"


async def test_notify_url_in_the_request_wins(
    setup: tuple[Simulator, IMIconnect, Receiver],
) -> None:
    sim, _, receiver = setup
    sim.imiconnect.notify_url = None
    async with sim.imiconnect.provider(
        notify_url="http://elsewhere.test/dr", notify_data="cb-1"
    ) as sms:
        await sms.send("01712345678", "x")
    sim.clock.advance(5)
    assert await sim.imiconnect.push_reports() == 1
    [report] = receiver.items
    assert report.raw is not None and "cb-1" in report.raw


async def test_generate_inbound_message(setup: tuple[Simulator, IMIconnect, Receiver]) -> None:
    sim, sms, receiver = setup
    seen: list[object] = []
    sms.add_listener(seen.append)
    response = await sim.imiconnect.generate_mo("01812345678", "STOP", recipient="26969")
    assert response.status_code == 204
    [inbound] = receiver.items
    assert isinstance(inbound, InboundMessage)
    assert (inbound.sender, inbound.recipient, inbound.text) == ("8801812345678", "26969", "STOP")
    assert inbound.received_at is not None
    assert seen == [inbound]


async def test_transport_faults_on_a_batch() -> None:
    sim = Simulator()
    sim.fail("imiconnect", "reset_after_send")
    async with sim.provider("imiconnect") as sms:
        result = await sms.send_bulk([Message(to="01712345678", text="x")] * 3)
    assert all(isinstance(e, ProviderError) and e.kind is ErrorKind.OUTCOME_UNKNOWN for e in result)
    assert len(sim.imiconnect.messages) == 3  # the gateway did take them
    await sim.aclose()
