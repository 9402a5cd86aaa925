"""A batched campaign killed midway and run again; a campaign larger than the memory
ledger; recipients the ledger let go. On the simulator (see tests/test_bulk_after.py for
reports and redelivery after a campaign)."""

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
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from bulk_support import IMI, V4, number, states, v4_of, wire

from mimgw import Message, OutcomeUnknownError, Receipt, State
from mimgw.gateway import Gateway
from mimgw.gateway.batching import recipient_id
from mimgw.ledger import IntentState, MemoryLedger, SqliteLedger
from mimgw.providers.imiconnect import IMIconnect
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.simulator import SimRequest, SimResponse, Simulator
from mimgw.testing import fake_gateway_for

_spec = importlib.util.spec_from_file_location(
    "reliability_loopback", Path(__file__).parent / "reliability" / "loopback.py"
)
assert _spec is not None and _spec.loader is not None
loopback = importlib.util.module_from_spec(_spec)  # its serve(): the simulator on 127.0.0.1
_spec.loader.exec_module(loopback)


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
