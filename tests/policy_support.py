"""Shared by the bulk-under-policies tests (test_bulk_policies.py, test_bulk_breakers.py):
gateways on the simulator with small batches, and a wire tap counting what reaches it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from bulk_support import DINI, IMI, V4, check_pairing, taken

from mimgw import BulkResult, Message, Receipt
from mimgw.providers.base import Provider
from mimgw.simulator import SimRequest, SimResponse, Simulator

__all__ = [
    "METHOD",
    "ONE_TO_MANY",
    "V4_BALANCE",
    "V4_SINGLE",
    "Wire",
    "imi",
    "num",
    "once_each",
    "same",
    "v4",
    "v4_batches",
]

ONE_TO_MANY = ("/api/SmsSending/OneToMany", "/api/SmsSending/SendOneToMany")
V4_SINGLE = ("/api/SmsSending/SMS", "/api/SmsSending/Send")
V4_BALANCE = ("/api/SmsSending/Balance", "/api/SmsSending/balanceCheck")
METHOD = pytest.mark.parametrize("method", ["json", "query"])


def num(i: int) -> str:
    return f"01912{i:06d}"


def same(n: int, text: str = "same text", start: int = 0) -> list[Message]:
    return [Message(to=num(i), text=text) for i in range(start, start + n)]


def v4(sim: Simulator, size: int = 7, **kw: Any) -> Provider:
    provider = sim.provider(V4, **kw)
    setattr(provider, "batch_size", size)  # noqa: B010 - a ClassVar, set per instance
    return provider


def imi(sim: Simulator, size: int = 5) -> Provider:
    provider = sim.provider(IMI)
    setattr(provider, "max_batch", size)  # noqa: B010
    return provider


class Wire:
    """Every request that reaches the simulator's handlers: path, and the most in flight at
    once per gateway (each request held ``hold`` seconds)."""

    def __init__(self, sim: Simulator, hold: float = 0.0) -> None:
        self.paths: Counter[str] = Counter()
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        handle: Callable[[SimRequest], Awaitable[SimResponse]] = sim.handle

        async def counted(request: SimRequest) -> SimResponse:
            gateway = sim.gateway_for(request.path)
            key = gateway.key if gateway else "?"
            self.paths[request.path] += 1
            self.now[key] += 1
            self.peak[key] = max(self.peak[key], self.now[key])
            try:
                if hold:
                    import anyio

                    await anyio.sleep(hold)
                return await handle(request)
            finally:
                self.now[key] -= 1

        setattr(sim, "handle", counted)  # noqa: B010

    def count(self, paths: tuple[str, ...]) -> int:
        return sum(self.paths[p] for p in paths)


def v4_batches(sim: Simulator) -> list[int]:
    """Recipients per accepted v4 request, in order."""
    return list(Counter(m.trxn_id for m in sim.mimsms_v4.messages).values())


def once_each(sim: Simulator, result: BulkResult, messages: list[Message]) -> None:
    if any(r.provider == DINI for r in result.receipts):  # bulk_support reads no dinisoft ids
        assert list(result.messages) == messages
        for m, r in zip(messages, result.outcomes, strict=True):
            assert not isinstance(r, Receipt) or (r.to, r.reference) == (m.to, m.reference)
    else:
        check_pairing(sim, result, messages)
    assert result.ok, {str(e)[:80] for e in result.errors}
    assert [taken(sim, m.to, m.text) for m in messages] == [1] * len(messages)
