"""Idempotency keys over every ledger backend (DESIGN.md section 9), counted at the
simulated gateways: accepted -> the stored receipt; in flight in this process -> wait for
it; provably not sent -> sent again; unknown -> OutcomeUnknownError; several processes
on one ledger -> once per key; no key -> no deduplication."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import anyio
import httpx
import pytest
from helpers import DINI, V4, rich_sim
from loopback import serve
from test_crash import start_worker, worker_config
from worker import LedgerSpec

from mimgw import AllProvidersFailedError, OutcomeUnknownError, Receipt
from mimgw.gateway import Gateway
from mimgw.ledger import Intent, IntentState, Ledger
from mimgw.simulator import Simulator
from mimgw.testing import FakeClock, fake_gateway_for

TO = "01712345678"


class Slow(httpx.AsyncBaseTransport):
    """The simulator, answering only when ``go`` is set (a send stays in flight)."""

    def __init__(self, sim: Simulator) -> None:
        self.app = sim.transport()
        self.go = anyio.Event()
        self.first = anyio.Event()
        self.started = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.started += 1
        self.first.set()
        await self.go.wait()
        return await self.app.handle_async_request(request)


def two_gateways(sim: Simulator, ledger: Ledger, **kw: object) -> Gateway:
    clock = FakeClock()
    return fake_gateway_for(sim.provider(V4), sim.provider(DINI), clock=clock, ledger=ledger, **kw)


def sent(sim: Simulator, text: str) -> int:
    return sim.mimsms_v4.sent_count(text=text) + sim.dinisoft.sent_count(text=text)


async def test_an_accepted_key_returns_the_stored_receipt_and_sends_nothing(
    ledger_factory: Callable[[], Ledger],
) -> None:
    sim = rich_sim()
    gw = two_gateways(sim, ledger_factory())
    first = await gw.send(TO, "once", idempotency_key="k-acc")
    requests = sim.mimsms_v4.requests
    again = await gw.send(TO, "once (text changed by a retried job)", idempotency_key="k-acc")
    assert again == first and sim.mimsms_v4.requests == requests
    assert sent(sim, "once") == 1
    # a second Gateway on the same storage (a restarted worker) knows it too
    other = two_gateways(sim, ledger_factory())
    assert await other.send(TO, "once", idempotency_key="k-acc") == first
    assert sent(sim, "once") == 1 and sim.mimsms_v4.requests == requests
    await gw.aclose()
    await other.aclose()


async def test_the_same_key_twice_at_once_in_one_process_sends_once(
    ledger_factory: Callable[[], Ledger],
) -> None:
    sim = rich_sim()
    slow = Slow(sim)
    client = httpx.AsyncClient(transport=slow)
    gw = fake_gateway_for(sim.provider(V4, client=client), ledger=ledger_factory())
    receipts: list[Receipt] = []

    async def send() -> None:
        receipts.append(await gw.send(TO, "racing", idempotency_key="k-race"))

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(send)
        with anyio.fail_after(10):
            await slow.first.wait()
        await anyio.sleep(0.3)  # time for the others to write intents, if they would
        assert slow.started == 1  # the others wait for the one in flight
        slow.go.set()
    assert len(receipts) == 8 and len(set(receipts)) == 1
    assert sim.mimsms_v4.sent_count(TO, "racing") == 1
    await gw.aclose()
    await client.aclose()


async def test_a_key_whose_attempts_provably_sent_nothing_is_sent_again(
    ledger_factory: Callable[[], Ledger],
) -> None:
    sim = rich_sim()
    gw = two_gateways(sim, ledger_factory())
    sim.fail(None, "connect_error", times=20)  # every attempt at both gateways refused
    with pytest.raises(AllProvidersFailedError) as caught:
        await gw.send(TO, "retry me", idempotency_key="k-free")
    assert not caught.value.may_have_been_sent
    held = await gw.ledger.intent("k-free")
    assert held is not None and held.state is IntentState.NOT_SENT
    assert await gw.ledger.unresolved() == []
    sim.faults.clear()
    receipt = await gw.send(TO, "retry me", idempotency_key="k-free")
    assert sent(sim, "retry me") == 1
    assert await gw.send(TO, "retry me", idempotency_key="k-free") == receipt
    assert sent(sim, "retry me") == 1
    await gw.aclose()


@pytest.mark.parametrize("on_unknown", ["raise", "failover"])
async def test_an_unknown_key_raises_and_sends_nothing(
    ledger_factory: Callable[[], Ledger], on_unknown: str
) -> None:
    sim = rich_sim()
    gw = two_gateways(sim, ledger_factory(), on_unknown=on_unknown)
    sim.fail(V4, "reset_after_send")
    if on_unknown == "failover":
        sim.dinisoft.force("1")  # the next gateway refuses: the v4 send is still unknown
    with pytest.raises(OutcomeUnknownError if on_unknown == "raise" else Exception) as caught:
        await gw.send(TO, "lost answer", idempotency_key="k-unk")
    assert getattr(caught.value, "may_have_been_sent", None) is True
    assert sim.mimsms_v4.sent_count(TO, "lost answer") == 1
    [held] = await gw.ledger.unresolved()
    assert held.key == "k-unk" and held.state is IntentState.UNKNOWN
    before = (sim.mimsms_v4.requests, sim.dinisoft.requests)
    for _ in range(3):
        with pytest.raises(OutcomeUnknownError):
            await gw.send(TO, "lost answer", idempotency_key="k-unk")
    assert (sim.mimsms_v4.requests, sim.dinisoft.requests) == before
    await gw.aclose()


async def test_without_a_key_nothing_is_deduplicated(
    ledger_factory: Callable[[], Ledger],
) -> None:
    sim = rich_sim()
    gw = two_gateways(sim, ledger_factory())
    first = await gw.send(TO, "twice", reference="same-ref")
    second = await gw.send(TO, "twice", reference="same-ref")
    assert first.message_id != second.message_id
    assert sim.mimsms_v4.sent_count(TO, "twice") == 2
    await gw.aclose()


async def test_unresolved_lists_every_open_intent_whatever_its_clock(
    ledger_factory: Callable[[], Ledger],
) -> None:
    """An intent stamped by a clock ahead of the ledger's (the Gateway's ``now``, another
    host) is open all the same; ``older_than`` alone narrows by age."""
    ledger = ledger_factory()
    ahead = FakeClock().now() + timedelta(days=3650)
    ahead_intent = Intent(
        id="ahead", key="k-ahead", reference="r", to="8801712345678",
        created_at=ahead, updated_at=ahead,
    )  # fmt: skip
    await ledger.begin(ahead_intent)
    assert [i.id for i in await ledger.unresolved()] == ["ahead"]
    assert await ledger.unresolved(older_than=timedelta(seconds=1)) == []
    await ledger.aclose()


async def test_processes_racing_the_same_keys_send_each_once(shared_spec: LedgerSpec) -> None:
    sim = rich_sim()
    keys = [f"shared-{i}" for i in range(12)]
    items = [{"to": TO, "text": f"race {k}", "key": k} for k in keys]
    with serve(sim) as (url, _gate):
        config = worker_config(sim, url, shared_spec, items)
        procs = [start_worker(config) for _ in range(3)]
        outputs = []
        for proc in procs:
            out, err = await anyio.to_thread.run_sync(proc.communicate)
            assert proc.returncode == 0, err[-2000:]
            outputs.append([json.loads(line) for line in out.splitlines()][1:])
    for key in keys:
        assert sim.mimsms_v4.sent_count(TO, f"race {key}") == 1, key
        results = [r for out in outputs for r in out if r["key"] == key]
        assert len(results) == 3
        ids = {r.get("message_id") for r in results if "message_id" in r}
        assert len(ids) == 1  # every process that got a receipt got the same one
        # a loser that found the winner still in flight is told "unknown", never sent
        assert all(r.get("error") in (None, "OutcomeUnknownError") for r in results)
