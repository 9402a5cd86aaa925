"""Streaming native batches: what a campaign holds while it runs, and planning once."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from mimgw import Message, Receipt
from mimgw.gateway import batching
from mimgw.gateway.batch_route import Slot
from mimgw.ledger import Intent
from mimgw.providers.base import Outgoing
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.simulator import Simulator
from mimgw.testing import fake_gateway_for

V4 = "mimsms_v4"


def number(i: int) -> str:
    return f"01913{i:06d}"  # numbers no other test uses: leftovers of others do not count


def slots_alive() -> int:
    return sum(
        1 for o in gc.get_objects() if type(o) is Slot and o.message.to.startswith("8801913")
    )


async def test_a_streamed_campaign_holds_at_most_concurrency_batches(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples: list[tuple[int, int]] = []
    dynamic = MimSmsV4._dynamic

    async def sampled(self: MimSmsV4, items: list[Outgoing], **kwargs: Any) -> list[Receipt]:
        # the request is under way (the task has let the loop run): count the recipients
        # in flight, and the intents of this request's recipients still held (other
        # batches may be writing theirs)
        await asyncio.sleep(0)
        numbers = {o.to for o in items}
        held = [o for o in gc.get_objects() if type(o) is Intent and o.to in numbers]
        samples.append((slots_alive(), len(held)))
        return await dynamic(self, items, **kwargs)

    monkeypatch.setattr(MimSmsV4, "_dynamic", sampled)
    gc.collect()
    gw = fake_gateway_for(sim.provider(V4))
    size = MimSmsV4.batch_size
    concurrency = 3

    def source() -> object:
        for i in range(12 * size):
            yield (number(i), f"hello {i}")

    done = 0
    async for _message, outcome in gw.stream_bulk(source(), concurrency=concurrency):
        assert not isinstance(outcome, Exception), outcome
        done += 1
    assert done == 12 * size and len(samples) == 12
    # recipients in flight: those of the batches under way, never the campaign
    assert max(s for s, _ in samples) <= concurrency * size
    assert max(s for s, _ in samples) >= size
    # while its request is under way a recipient's intent is not held (only its id)
    assert [i for _, i in samples] == [0] * 12
    assert len(sim.mimsms_v4.messages) == 12 * size


async def test_a_window_is_planned_once_for_its_first_gateway(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    adapter = batching._ADAPTERS[V4]
    plan = adapter.plan

    def counting(provider: object, ready: list[object]) -> object:
        calls.append(len(ready))
        return plan(provider, ready)  # type: ignore[arg-type]

    monkeypatch.setattr(adapter, "plan", counting)
    gw = fake_gateway_for(sim.provider(V4))
    messages = [Message(to=number(i), text=f"hi {i}") for i in range(250)]
    result = await gw.send_bulk(messages, concurrency=4)
    assert result.ok
    assert calls == [100, 100, 50]  # one plan a window, none again before sending
    assert len({m.trxn_id for m in sim.mimsms_v4.messages}) == 3
