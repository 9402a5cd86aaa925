"""Cancellation at random points, by every kind there is: an anyio ``CancelScope``,
``Task.cancel()`` and ``asyncio.wait_for(..., timeout)``; on singles, ``send_bulk`` and
``stream_bulk``; with a ledger that yields to the loop on every write and with SQLite.

Whatever the point, as soon as the cancelled call has returned: every message a gateway
took is in the ledger (a receipt entry, or an intent ``UNKNOWN``/``ACCEPTED``, never
``NOT_SENT``), and nothing is recorded as accepted that no gateway took.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from helpers import DINI, V4, make_ledger, message_for, rich_sim, sent_by_text
from test_gateway_scenarios import ServerLikeLedger

from mimgw import Message, MimgwError
from mimgw.gateway import Gateway
from mimgw.ledger import Intent, IntentState, Ledger, LedgerEntry
from mimgw.models import Receipt
from mimgw.simulator import Simulator
from mimgw.testing import FakeClock, fake_gateway_for


class YieldingLedger(ServerLikeLedger):
    """Yields to the loop on every intent write too (a database client would)."""

    async def begin(self, intent: Intent) -> Intent:
        await anyio.lowlevel.checkpoint()
        return await super().begin(intent)

    async def finish(
        self, intent: Intent, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry | None:
        await anyio.lowlevel.checkpoint()
        result = await super().finish(intent, attempt=attempt, message=message)
        await anyio.lowlevel.checkpoint()
        return result


class Dawdling(httpx.AsyncBaseTransport):
    """The simulator, with a random number of loop turns before the gateway sees a
    request and after it acted (so a cancellation can land while the answer is on
    its way back); sometimes the primary is refused to force a failover."""

    def __init__(self, sim: Simulator, rng: random.Random) -> None:
        self.app = httpx.ASGITransport(app=sim)
        self.sim = sim
        self.rng = rng

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(self.rng.randint(0, 4)):
            await anyio.lowlevel.checkpoint()
        gw = self.sim.gateway_for(request.url.path)
        if gw is not None and gw.key == V4 and self.rng.random() < 0.2:
            raise httpx.ConnectError("refused", request=request)
        response = await self.app.handle_async_request(request)
        await response.aread()
        for _ in range(self.rng.randint(0, 4)):
            await anyio.lowlevel.checkpoint()
        return response


async def turns(n: int) -> None:
    for _ in range(n):
        await anyio.lowlevel.checkpoint()


async def cancel_by(how: str, work: Callable[[], Awaitable[Any]], rng: random.Random) -> None:
    """Run ``work`` and cancel it at a random point by ``how``."""
    at = rng.randint(0, 80)
    # loop turns pass in microseconds while a SQLite write waits for its thread: half
    # the cancellations wait real time instead, so they also land after the intent write
    pause = rng.uniform(0, 0.03) if rng.random() < 0.5 else None

    async def turns_or_pause(n: int) -> None:
        if pause is None:
            await turns(n)
        else:
            await asyncio.sleep(pause)

    if how == "scope":
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def canceller() -> None:
                    await turns_or_pause(at)
                    scope.cancel()

                tg.start_soon(canceller)
                await work()
                tg.cancel_scope.cancel()
    elif how == "task":
        task = asyncio.ensure_future(work())
        await turns_or_pause(at)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(work(), timeout=rng.uniform(0, 0.01))


async def check_ledger(sim: Simulator, gw: Gateway, messages: list[Message]) -> dict[str, int]:
    """The ledger against what the gateways took, right after the cancelled call."""
    at = sent_by_text(sim)
    open_refs = {i.reference: i for i in await gw.ledger.unresolved()}
    seen = {"taken": 0, "entry": 0, "unknown": 0}
    for message in messages:
        copies = at[V4][message.text] + at[DINI][message.text]
        history = await gw.ledger.by_reference(message.reference)
        intent = (
            await gw.ledger.intent(message.idempotency_key) if message.idempotency_key else None
        )
        assert len(history) <= copies, (message.text, history)  # no receipt nobody gave
        for entry in history:
            assert at[entry.provider][message.text] >= 1
        if intent is not None and intent.state is IntentState.ACCEPTED:
            assert copies >= 1 and history, intent
        if copies == 0:
            continue
        seen["taken"] += 1
        if history:
            seen["entry"] += 1
            if intent is not None:
                assert intent.state in (IntentState.ACCEPTED, IntentState.UNKNOWN), intent
            continue
        # taken and no receipt recorded: the ledger must say "unknown"
        held = open_refs.get(message.reference)
        assert held is not None, (message.text, copies, intent)
        assert held.state is IntentState.UNKNOWN, held
        if intent is not None:
            assert intent.state is IntentState.UNKNOWN, intent
        seen["unknown"] += 1
    return seen


def cancel_gateway(sim: Simulator, rng: random.Random, ledger: Ledger, **kw: Any) -> Gateway:
    client = httpx.AsyncClient(transport=Dawdling(sim, rng))
    clock = FakeClock()
    return fake_gateway_for(
        sim.provider(V4, client=client),
        sim.provider(DINI, client=client),
        clock=clock,
        ledger=ledger,
        breaker=None,
        **kw,
    )


async def run(gw: Gateway, target: str, messages: list[Message], rng: random.Random) -> None:
    outcomes: list[Receipt | MimgwError] = []
    if target == "single":
        try:
            outcomes.append(await gw.send_message(messages[0]))
        except MimgwError as exc:
            outcomes.append(exc)
    elif target == "send_bulk":
        result = await gw.send_bulk(messages, concurrency=rng.choice([1, 4, 16]))
        outcomes.extend(result.outcomes)
    else:
        async for _, outcome in gw.stream_bulk(messages, batch=rng.random() < 0.5):
            outcomes.append(outcome)
    assert len(outcomes) == len(messages)  # when not cancelled: one outcome each


@pytest.mark.parametrize("ledger_kind", ["server", "sqlite"])
@pytest.mark.parametrize("how", ["scope", "task", "wait_for"])
@pytest.mark.parametrize("target", ["single", "send_bulk", "stream_bulk"])
async def test_cancellation_never_loses_or_invents_a_ledger_row(
    tmp_path: Path, ledger_kind: str, how: str, target: str
) -> None:
    rng = random.Random(f"{ledger_kind}-{how}-{target}")
    sim = rich_sim()
    clock = FakeClock()
    ledger = YieldingLedger(clock) if ledger_kind == "server" else make_ledger("sqlite", tmp_path)
    gw = cancel_gateway(sim, rng, ledger, on_unknown=rng.choice(["raise", "failover"]))
    totals = {"taken": 0, "entry": 0, "unknown": 0}
    trials = 40 if target == "single" else 12
    trial = -1
    # on a loaded machine every cancellation of a short run may land before any submit:
    # keep going (bounded) until some landed during and after submits
    while (trial := trial + 1) < trials or (
        trial < trials * 4 and not (totals["taken"] and totals["entry"])
    ):
        size = 1 if target == "single" else rng.randint(2, 25)
        tag = f"c{trial}"
        messages = [message_for(tag, i, keyed=rng.random() < 0.5) for i in range(size)]
        work = functools.partial(run, gw, target, messages, rng)
        await cancel_by(how, work, rng)
        for key, value in (await check_ledger(sim, gw, messages)).items():
            totals[key] += value
    # the cancellations really landed before, during and after submits
    assert totals["taken"] > 0 and totals["entry"] > 0, totals
    assert sum(g.sent_count() for g in sim.gateways.values()) >= totals["taken"]
    await gw.aclose()
    await ledger.aclose()
