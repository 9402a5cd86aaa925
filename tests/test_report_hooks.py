"""Report callbacks (``Gateway.on_report``): told each report that moved a message's
state, after the ledger holds it; never a duplicate or a stale one; told again after
a flush interrupted between recording and telling."""

from __future__ import annotations

import asyncio

import pytest

from mimgw import DeliveryReport, State
from mimgw.ledger import LedgerEntry, LedgerError, MemoryLedger
from mimgw.testing import FakeProvider, fake_gateway_for

TO = "01712345678"


def rows(*states: tuple[str, str]) -> bytes:
    return FakeProvider.webhook_body([{"message_id": m, "state": s} for m, s in states])


async def test_only_reports_that_move_the_state_are_told() -> None:
    gw = fake_gateway_for(FakeProvider(name="gw"))
    told: list[tuple[str, State]] = []
    gw.on_report(lambda r: told.append((r.message_id, r.state)))
    receipt = await gw.send(TO, "hi")
    mid = receipt.message_id
    body = rows((mid, "sent"), (mid, "sent"), (mid, "delivered"), (mid, "pending"))
    await gw.ingest_webhook("gw", body)
    await gw.ingest_webhook("gw", rows((mid, "delivered"), ("early", "pending")))
    # a stale "pending" after "delivered" would undo a callback's own record of it
    assert told == [(mid, State.SENT), (mid, State.DELIVERED), ("early", State.PENDING)]
    entry = await gw.ledger.get("gw", mid)
    assert entry is not None and entry.state is State.DELIVERED


async def test_a_flush_cancelled_in_a_callback_tells_that_report_again() -> None:
    gw = fake_gateway_for(FakeProvider(name="gw"))
    started, release = asyncio.Event(), asyncio.Event()
    told: list[str] = []

    @gw.on_report
    async def slow(report: DeliveryReport) -> None:
        told.append(report.message_id)
        started.set()
        await release.wait()

    gw.parse_webhook(rows(("m-1", "delivered"), ("m-2", "sent")), provider="gw")
    flushing = asyncio.ensure_future(gw.flush())
    await started.wait()
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    assert told == ["m-1"]
    release.set()
    await gw.flush()  # m-1 is already in the ledger (unchanged now): it is told anyway
    assert told == ["m-1", "m-1", "m-2"]
    entry = await gw.ledger.get("gw", "m-1")
    assert entry is not None and entry.state is State.DELIVERED


class FailingOnce(MemoryLedger):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    async def record_report(self, report: DeliveryReport) -> tuple[LedgerEntry, bool]:
        if self.fail:
            self.fail = False
            raise LedgerError("database away")
        return await super().record_report(report)


async def test_a_report_the_ledger_refused_is_recorded_and_told_on_the_next_flush() -> None:
    ledger = FailingOnce()
    gw = fake_gateway_for(FakeProvider(name="gw"), ledger=ledger)
    told: list[str] = []
    gw.on_report(lambda r: told.append(r.message_id))
    await gw.ingest_webhook("gw", rows(("m-1", "delivered")))
    assert told == [] and await ledger.get("gw", "m-1") is None
    await gw.flush()
    assert told == ["m-1"] and await ledger.get("gw", "m-1") is not None
