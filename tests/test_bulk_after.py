"""After a batched campaign: its delivery reports, redeliveries, a crash, a capped ledger.

On the simulator: MiMSMS v4 batches (OneToMany, DSMS; recipient ids ``"<trxnId>/<number>"``;
reports are operator DLR rows read by ``parse_dlr``) and IMIconnect arrays (reports pushed
through the FastAPI router). Copies are counted at the simulator, states read from the ledger.
Workers sharing a SQLite or PostgreSQL ledger: tests/services/test_bulk_services.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from bulk_support import IMI, V3, V4, number, wire
from fastapi import FastAPI

from mimgw import Message, MessageNotFoundError, OutcomeUnknownError, Receipt, State
from mimgw.fastapi import lifespan, webhook_router
from mimgw.gateway import Gateway
from mimgw.gateway.batching import batch_parts, recipient_id
from mimgw.ledger import IntentState, MemoryLedger, SqliteLedger
from mimgw.models import DeliveryReport
from mimgw.providers.imiconnect import IMIconnect
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.retry import RedeliveryPolicy
from mimgw.simulator import SimRequest, SimResponse, Simulator
from mimgw.testing import FakeClock, fake_gateway_for

TOKEN = "after-campaign-webhook-token-0123456789"
POLICY = RedeliveryPolicy(delays=(timedelta(seconds=1),))
ABSENT = "Absent subscriber for SM"
_spec = importlib.util.spec_from_file_location(
    "reliability_loopback", Path(__file__).parent / "reliability" / "loopback.py"
)
assert _spec is not None and _spec.loader is not None
loopback = importlib.util.module_from_spec(_spec)  # its serve(): the simulator on 127.0.0.1
_spec.loader.exec_module(loopback)


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


def v4_of(gw: Gateway) -> MimSmsV4:
    provider = gw.providers[V4]
    assert isinstance(provider, MimSmsV4)
    return provider


async def states(gw: Gateway, receipts: tuple[Receipt, ...] | list[Receipt]) -> list[State | None]:
    entries = [await gw.ledger.get(r.provider, r.message_id) for r in receipts]
    return [None if e is None else e.state for e in entries]


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


# -- a process killed mid-campaign ------------------------------------------------------------

WORKER = """
import asyncio, json, sys
from mimgw import Message, Receipt
from mimgw.gateway import Gateway
from mimgw.ledger import SqliteLedger
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.retry import RetryPolicy

async def main(c):
    gw = Gateway([MimSmsV4(**c["provider"])], ledger=SqliteLedger(c["path"]),
                 retry=RetryPolicy(attempts=1, deadline=None), breaker=None)
    async with gw:
        messages = [Message(**m) for m in c["messages"]]
        async for message, outcome in gw.stream_bulk(messages, concurrency=1):
            print(message.idempotency_key, isinstance(outcome, Receipt), flush=True)

asyncio.run(main(json.loads(sys.argv[1])))
"""


class HoldingSim(Simulator):
    """Lets ``passes`` submits through; takes the next one and holds its answer until
    ``release`` is set."""

    def __init__(self, passes: int) -> None:
        super().__init__(seed=7)
        self.passes, self.held, self.release = passes, threading.Event(), threading.Event()

    async def handle(self, request: SimRequest) -> SimResponse:
        response = await super().handle(request)
        if "/api/SmsSending/" in request.path and "alance" not in request.path:
            if self.passes == 0:
                self.held.set()
                await asyncio.to_thread(self.release.wait)
            self.passes -= 1
        return response


def start_worker(config: dict[str, Any]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", WORKER, json.dumps(config, default=str)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)  # noqa: S603


async def test_a_batched_campaign_killed_midway_then_run_again(tmp_path: Path) -> None:
    sim = HoldingSim(passes=1)  # batch 1 answered, batch 2 taken but unanswered, 3 never sent
    path = str(tmp_path / "campaign.db")
    messages = [
        Message(to=number(i), text="flash sale", reference=f"c{i}", idempotency_key=f"c-{i}")
        for i in range(250)
    ]
    with loopback.serve(sim) as (url, _gate):
        provider = {**sim.mimsms_v4.provider_kwargs(), "base_url": url}
        dumped = [m.model_dump() for m in messages]
        proc = start_worker({"provider": provider, "path": path, "messages": dumped})
        try:
            assert await anyio.to_thread.run_sync(sim.held.wait, 60), "batch 2 never came"
            proc.send_signal(signal.SIGKILL)
            out, _ = proc.communicate(timeout=10)
        finally:
            proc.kill()
            sim.passes = 10**6
            sim.release.set()
        assert proc.returncode == -signal.SIGKILL
        assert out.split() == [w for i in range(100) for w in (f"c-{i}", "True")]
        assert sim.mimsms_v4.sent_count() == 200
        trxns = [m.trxn_id for m in sim.mimsms_v4.messages]

        async with Gateway([MimSmsV4(**provider)], ledger=SqliteLedger(path)) as gw:
            open_ = await gw.ledger.unresolved()
            assert sorted(i.reference for i in open_) == sorted(f"c{i}" for i in range(100, 200))
            assert {i.state for i in open_} == {IntentState.IN_FLIGHT}
            result = await gw.send_bulk(messages)
            kinds = [type(o) for o in result.outcomes]
            assert kinds == [Receipt] * 100 + [OutcomeUnknownError] * 100 + [Receipt] * 50
            assert [r.message_id.split("/")[0] for r in result.receipts[:100]] == trxns[:100]
            assert None not in await states(gw, result.receipts)  # every receipt has its entry
            assert [sim.mimsms_v4.sent_count(m.to) for m in messages] == [1] * 250
            assert len(await gw.ledger.unresolved()) == 100
            # the operator finds c-150 on the portal: its DLR row then reaches it
            derived = recipient_id(trxns[100], wire(150))
            await gw.resolve("c-150", sent=True, provider=V4, message_id=derived)
            v4_of(gw).parse_dlr(trxns[100], "Delivered", to=number(150))
            assert (await gw.status(derived)).state is State.DELIVERED
            again = await gw.send_bulk(messages[100:200])
            assert sum(isinstance(o, Receipt) for o in again.outcomes) == 1
            assert sim.mimsms_v4.sent_count() == 250


# -- a small memory ledger under a large campaign ---------------------------------------------


class SmallArrays(IMIconnect):
    max_batch = 50


async def test_a_campaign_larger_than_the_memory_ledger(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = MemoryLedger(max_entries=150)  # room for what is in flight, not for the campaign
    imi = SmallArrays(**sim.imiconnect.provider_kwargs(), client=sim.shared_client)
    gw = fake_gateway_for(imi, ledger=ledger)
    unknown = [Message(to=number(i), text="lost", idempotency_key=f"u{i}") for i in range(12)]
    sim.fail(IMI, "read_timeout")
    assert all(isinstance(o, OutcomeUnknownError) for o in (await gw.send_bulk(unknown)).outcomes)
    big = [Message(to=number(i), text="big", idempotency_key=f"b{i}") for i in range(100, 700)]
    with caplog.at_level(logging.WARNING, logger="mimgw.ledger"):
        result = await gw.send_bulk(big, concurrency=2)
    assert result.ok and len(ledger) <= 150
    assert any("entries still need attention" in r.getMessage() for r in caplog.records)
    assert sim.imiconnect.sent_count() == 612 and sim.imiconnect.batch_sizes == [12] + [50] * 12
    held = sorted(i.key or "" for i in await ledger.unresolved())
    assert held == sorted(m.idempotency_key or "" for m in unknown)  # kept longest
    again = await gw.send_bulk(unknown)  # still unknown: not sent again
    assert all(isinstance(o, OutcomeUnknownError) for o in again.outcomes)
    assert sim.imiconnect.sent_count() == 612
    # a report for a recipient the ledger let go is kept, as a report before its submit
    gone, kept = result.receipts[0], result.receipts[-1]
    assert await ledger.get(IMI, gone.message_id) is None
    for receipt in (gone, kept):
        payload = sim.imiconnect.report_payload(sim.imiconnect.messages[receipt.message_id])
        await gw.ingest_webhook(IMI, json.dumps(payload).encode(), {})
    entry = await ledger.get(IMI, gone.message_id)
    assert entry is not None and not entry.submitted and entry.state is State.DELIVERED
    assert (entry.to, entry.reference) == (gone.to, gone.reference)
    entry = await ledger.get(IMI, kept.message_id)
    assert entry is not None and entry.submitted and entry.state is State.DELIVERED


async def test_rows_for_let_go_v4_recipients_do_not_capture_the_rest(sim: Simulator) -> None:
    ledger = MemoryLedger(max_entries=40)
    gw = fake_gateway_for(sim.provider(V4), ledger=ledger)
    result = await gw.send_bulk([(number(i), "capped") for i in range(100)])
    kept = [r for r in result.receipts if await ledger.get(V4, r.message_id) is not None]
    assert result.ok and 0 < len(kept) < 100
    for receipt in result.receipts:  # oldest first: the ones let go come first
        v4_of(gw).parse_dlr(receipt.message_id.split("/")[0], "Delivered", to=receipt.to)
    await gw.flush()
    assert await states(gw, kept) == [State.DELIVERED] * len(kept)
