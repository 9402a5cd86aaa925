"""After a batched campaign: its delivery reports, redeliveries, a crash, a capped ledger.

On the simulator: MiMSMS v4 batches (OneToMany, DSMS; recipient ids ``"<trxnId>/<number>"``;
reports are operator DLR rows read by ``parse_dlr``) and IMIconnect arrays (reports pushed
through the FastAPI router). Copies are counted at the simulator, states read from the ledger.
Workers sharing a SQLite or PostgreSQL ledger: tests/services/test_bulk_services.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bulk_support import IMI, V3, V4, number, states, v4_of, wire
from fastapi import FastAPI

from mimgw import Message, MessageNotFoundError, Receipt, State
from mimgw.fastapi import lifespan, webhook_router
from mimgw.gateway import Gateway
from mimgw.gateway.batching import batch_parts
from mimgw.ledger import MemoryLedger, SqliteLedger
from mimgw.models import DeliveryReport
from mimgw.retry import RedeliveryPolicy
from mimgw.simulator import Simulator
from mimgw.testing import FakeClock, fake_gateway_for

TOKEN = "after-campaign-webhook-token-0123456789"
POLICY = RedeliveryPolicy(delays=(timedelta(seconds=1),))
ABSENT = "Absent subscriber for SM"


class Early(httpx.AsyncBaseTransport):
    """The simulator; ``before`` runs once the gateway took a request, before its answer
    reaches mimgw (a report that beats its submit)."""

    def __init__(self, sim: Simulator) -> None:
        self.inner = sim.transport()
        self.before: Callable[[Any], Awaitable[None]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        if self.before is not None:
            await self.before(json.loads(body))
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )


# -- MiMSMS v4: DLR rows for batch recipients ---------------------------------------------

ROWS = {  # recipient -> (row, description, state it leaves); 4 is never reported
    0: ("Delivered", None, State.DELIVERED),
    1: (ABSENT, None, State.UNDELIVERABLE),
    2: ("Barred subscriber", None, State.UNDELIVERABLE),
    3: ("SMS Failed", "network failure on the link", State.UNDELIVERABLE),
    5: ("Delivered", None, State.DELIVERED),
    6: ("Subscriber busy", None, State.UNDELIVERABLE),
    7: ("Illegal subscriber", None, State.REJECTED),
}
FORMS = (number, wire, lambda i: "+" + wire(i))


@pytest.mark.parametrize("ledger_kind", ["memory", "sqlite"])
async def test_v4_dlr_rows_land_on_each_batch_recipient(
    sim: Simulator, tmp_path: Path, ledger_kind: str
) -> None:
    clock = FakeClock()
    ledger = (
        SqliteLedger(tmp_path / "after.db", clock=clock.now) if ledger_kind == "sqlite" else None
    )
    async with fake_gateway_for(sim.provider(V4), clock=clock, ledger=ledger) as gw:
        told: list[DeliveryReport] = []
        gw.on_report(told.append)
        messages = [Message(to=number(i), text="sale", reference=f"s{i}") for i in range(5)]
        messages += [Message(to=number(i), text=f"hi {i}", reference=f"s{i}") for i in (5, 6, 7)]
        result = await gw.send_bulk(messages)
        ids = [batch_parts(r.message_id) for r in result.receipts]
        assert result.ok and all(ids) and len({p[0] for p in ids if p}) == 2  # OneToMany, DSMS
        for round_ in range(2):  # every row twice, newest recipient first, in varied forms
            for i, (row, description, _) in sorted(ROWS.items(), reverse=True):
                trxn = result.receipts[i].message_id.split("/")[0]
                v4_of(gw).parse_dlr(trxn, row, description, to=FORMS[(i + round_) % 3](i))
        trxn = result.receipts[0].message_id.split("/")[0]
        v4_of(gw).parse_dlr(trxn, ABSENT, to=number(0))  # late rows: a final state stays
        v4_of(gw).parse_dlr(trxn, "Delivered", to=number(1))
        await gw.flush()
        requests = sim.mimsms_v4.requests
        for i, (message, receipt) in enumerate(zip(messages, result.receipts, strict=True)):
            entry = await gw.ledger.get(V4, receipt.message_id)
            expected = ROWS[i][2] if i in ROWS else State.ACCEPTED
            assert entry is not None and (entry.state, entry.to) == (expected, wire(i))
            if i in ROWS:
                assert entry.report is not None and entry.report.provider_status == ROWS[i][0]
            report = await gw.status(receipt.message_id)
            assert (report.state, report.to, report.reference) == (expected, wire(i), f"s{i}")
            history = await gw.history(message.reference)
            assert [e.message_id for e in history] == [receipt.message_id]
        assert sim.mimsms_v4.requests == requests  # v4 cannot be asked: the ledger answers
        for trxn in {p[0] for p in ids if p}:
            assert await gw.ledger.get(V4, trxn) is None  # nothing under a bare batch id
            with pytest.raises(MessageNotFoundError):
                await gw.status(trxn)
        assert {r.message_id for r in told} == {result.receipts[i].message_id for i in ROWS}


@pytest.mark.parametrize("first", ["early", "numberless-late", "numberless-early"])
async def test_every_row_of_a_batch_reaches_its_own_recipient(sim: Simulator, first: str) -> None:
    clock, ledger = FakeClock(), MemoryLedger()
    dlr_worker = fake_gateway_for(sim.provider(V4), ledger=ledger)  # another worker's DLR feed

    async def report_first(answer: Any) -> None:  # rows for two recipients beat the submit
        if first == "numberless-early":
            v4_of(dlr_worker).parse_dlr(answer["trxnId"], "Delivered")
        v4_of(dlr_worker).parse_dlr(answer["trxnId"], "Delivered", to=number(0))
        v4_of(dlr_worker).parse_dlr(answer["trxnId"], ABSENT, to=number(1))
        await dlr_worker.flush()

    transport = Early(sim)
    if first != "numberless-late":
        transport.before = report_first
    provider = sim.provider(V4, client=httpx.AsyncClient(transport=transport))
    gw = fake_gateway_for(provider, clock=clock, ledger=ledger, redelivery=POLICY)
    result = await gw.send_bulk([(number(i), "rows") for i in range(3)])
    trxn = result.receipts[0].message_id.split("/")[0]
    if first == "numberless-late":
        v4_of(gw).parse_dlr(trxn, "Delivered")  # no recipient to pick: none gets it
    v4_of(gw).parse_dlr(trxn, ABSENT, to=number(1))
    v4_of(gw).parse_dlr(trxn, "Delivered", to=number(2))
    early = State.ACCEPTED if first == "numberless-late" else State.DELIVERED
    assert (await gw.status(result.receipts[0].message_id)).state is early
    assert await states(gw, result.receipts) == [early, State.UNDELIVERABLE, State.DELIVERED]
    clock.advance(5)  # recipient 1 alone is resent, once
    [resent] = await gw.redeliver_due()
    assert isinstance(resent, Receipt) and resent.to == wire(1)
    assert [sim.mimsms_v4.sent_count(number(i)) for i in range(3)] == [1, 2, 1]


async def test_a_batch_moved_to_a_gateway_that_pulls_has_its_reports_pulled(
    sim: Simulator,
) -> None:
    gw = fake_gateway_for(sim.provider(V4), sim.provider(V3))
    sim.mimsms_v4.force("216")  # no credit: the batch moves whole (v3 takes singles)
    sim.mimsms_v3.set_outcome(wire(1), "UNDELIV")
    result = await gw.send_bulk([(number(i), "moved") for i in range(4)])
    assert [r.provider for r in result.receipts] == [V3] * 4 and sim.mimsms_v4.sent_count() == 0
    requests = sim.mimsms_v3.requests
    assert (await gw.status(result.receipts[0].message_id)).state is State.ACCEPTED
    assert sim.mimsms_v3.requests == requests + 1  # not final yet: asked
    sim.clock.advance(3600)
    pulled = await gw.fetch_reports()
    assert sorted(r.message_id for r in pulled) == sorted(r.message_id for r in result.receipts)
    assert await gw.fetch_reports() == []  # handed out once, kept in the ledger
    requests = sim.mimsms_v3.requests
    expected = [State.DELIVERED, State.UNDELIVERABLE, State.DELIVERED, State.DELIVERED]
    assert [(await gw.status(r.message_id)).state for r in result.receipts] == expected
    assert sim.mimsms_v3.requests == requests  # final: answered from the ledger


# -- IMIconnect: reports pushed through the FastAPI router ---------------------------------


@asynccontextmanager
async def imi_service(sim: Simulator, gw: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """``gw`` behind the webhook router; the simulator pushes to it."""
    app, base = FastAPI(), "http://service.test"
    app.include_router(webhook_router(token=TOKEN))
    transport = httpx.ASGITransport(app=app)
    async with lifespan(gw)(app), httpx.AsyncClient(transport=transport, base_url=base) as push:
        sim.push_client = push
        sim.set_push_url(f"{base}/mimgw/webhooks/{{kind}}?token={TOKEN}")
        yield push


async def test_imiconnect_batch_reports_pushed_duplicated_late_and_early(sim: Simulator) -> None:
    clock, transport = FakeClock(), Early(sim)
    provider = sim.provider(IMI, client=httpx.AsyncClient(transport=transport))
    gw = fake_gateway_for(provider, clock=clock, redelivery=POLICY)
    words = ["Delivered", "Failed", "Expired", "Rejected", "Sent"]
    sim.imiconnect.outcomes.update({wire(i): word for i, word in enumerate(words)})
    sim.imiconnect.deliver_after = 0
    async with imi_service(sim, gw) as push:
        messages = [Message(to=number(i), text="same" if i % 2 else f"own {i}") for i in range(8)]
        result = await gw.send_bulk(messages)
        assert result.ok and sim.imiconnect.batch_sizes == [8]
        assert (await sim.push_all())[IMI] == 8
        expected = [State.DELIVERED, State.UNDELIVERABLE, State.EXPIRED, State.REJECTED]
        expected += [State.SENT] + [State.DELIVERED] * 3
        assert await states(gw, result.receipts) == expected
        entries = [await gw.ledger.get(IMI, r.message_id) for r in result.receipts]
        assert [(e.to, e.reference) for e in entries if e] == [
            (wire(i), m.reference) for i, m in enumerate(messages)
        ]
        # the same reports again, then stale ones, in one array body: nothing moves
        payloads = [sim.imiconnect.report_payload(m) for m in sim.imiconnect.messages.values()]
        stale = json.loads(json.dumps(payloads))
        for payload in stale:
            payload["deliveryInfoNotification"]["deliveryInfo"]["deliveryStatus"] = "Queued"
        answer = await push.post(f"/mimgw/webhooks/{IMI}?token={TOKEN}", json=payloads + stale)
        assert answer.status_code == 200 and answer.json()["reports"] == 16
        assert await states(gw, result.receipts) == expected
        clock.advance(3600)  # a failed IMIconnect report allows no retry
        assert await gw.redeliver_due() == [] and sim.imiconnect.sent_count() == 8

        async def push_first(_: Any) -> None:  # each report beats its submit
            assert await sim.imiconnect.push_reports() == 3

        transport.before = push_first
        again = await gw.send_bulk([(number(i), "early") for i in range(10, 13)])
        for receipt in again.receipts:
            entry = await gw.ledger.get(IMI, receipt.message_id)
            assert entry is not None and entry.submitted and entry.settled
            assert (entry.state, entry.reference) == (State.DELIVERED, receipt.reference)
        assert await gw.ledger.unresolved() == []


# -- redelivery of batch recipients ---------------------------------------------------------


def row_for(i: int, round_: int) -> str:
    """0, 5: delivered; 2: barred (no retry); 1, 6: absent every time (3 retries allowed);
    3: busy twice, then delivered; 4: never reported."""
    if i == 3:
        return "Subscriber busy" if round_ < 2 else "Delivered"
    return {0: "Delivered", 5: "Delivered", 2: "Barred subscriber"}.get(i, ABSENT)


async def test_failed_batch_recipients_are_redelivered_alone_as_often_as_allowed(
    sim: Simulator,
) -> None:
    clock = FakeClock()
    gw = fake_gateway_for(sim.provider(V4), clock=clock, redelivery=POLICY)
    messages = [Message(to=number(i), text="sale", reference=f"r{i}") for i in range(5)]
    messages += [Message(to=number(i), text=f"code {i}", reference=f"r{i}") for i in (5, 6)]
    result = await gw.send_bulk(messages)
    assert result.ok and sim.mimsms_v4.requests == 2  # OneToMany + DSMS
    latest = {i: r.message_id for i, r in enumerate(result.receipts) if i != 4}
    resends: list[int] = []
    for round_ in range(6):
        for i, message_id in latest.items():
            for _ in range(2):  # every row twice
                v4_of(gw).parse_dlr(message_id.split("/")[0], row_for(i, round_), to=wire(i))
        await gw.flush()
        clock.advance(2)
        before, latest = len(sim.mimsms_v4.messages), {}
        for outcome in await gw.redeliver_due():
            assert isinstance(outcome, Receipt) and batch_parts(outcome.message_id) is None
            latest[int((outcome.reference or "")[1:])] = outcome.message_id
        fresh = sim.mimsms_v4.messages[before:]
        assert len({m.trxn_id for m in fresh}) == len(fresh) == len(latest)  # one each
        resends += latest
    assert sorted(resends) == [1, 1, 1, 3, 3, 6, 6, 6]
    assert [sim.mimsms_v4.sent_count(m.to, m.text) for m in messages] == [1, 4, 1, 3, 1, 1, 4]
    assert sim.mimsms_v4.sent_count() == 15
    history = await gw.history("r6")
    assert [e.attempt for e in history] == [1, 2, 3, 4]
    assert history[0].message_id == result.receipts[6].message_id
    assert all(e.settled and e.text is None for e in history)
    assert (await gw.status(history[-1].message_id)).state is State.UNDELIVERABLE
