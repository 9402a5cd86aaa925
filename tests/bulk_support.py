"""Shared by the bulk tests on the simulator (test_bulk_unusual.py, test_bulk_faults.py,
test_bulk_after.py, test_bulk_campaigns.py): gateways, copies counted at the simulator,
states read from the ledger, and the invariants every campaign must keep."""

from __future__ import annotations

from typing import Any

import pytest

from mimgw import (
    BulkResult,
    Message,
    MimgwError,
    Receipt,
    State,
)
from mimgw.gateway import Gateway
from mimgw.gateway.batching import batch_parts
from mimgw.ledger import IntentState
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.simulator import Simulator
from mimgw.testing import fake_gateway_for

V4, V3, IMI, DINI = "mimsms_v4", "mimsms_v3", "imiconnect", "dinisoft"
BATCH = pytest.mark.parametrize("batch", [True, False], ids=["batch", "singles"])


def number(i: int) -> str:
    return f"01815{i:06d}"


def wire(i: int) -> str:  # as the gateways see it
    return f"8801815{i:06d}"


def gw_for(sim: Simulator, *keys: str, **kwargs: Any) -> Gateway:
    providers = [
        sim.provider(V4, method="query") if k == "v4-query" else sim.provider(k) for k in keys
    ]
    return fake_gateway_for(*providers, **kwargs)


def taken(sim: Simulator, to: str | None = None, text: str | None = None) -> int:
    """How many times any simulated gateway took a message to ``to`` (with ``text``)."""
    return sum(g.sent_count(to, text) for g in sim.gateways.values())


def on_wire(sim: Simulator, receipt: Receipt) -> tuple[str, str]:
    """(number, text) the gateway stored under the receipt's id."""
    if receipt.provider == V4:
        trxn, num = batch_parts(receipt.message_id) or (receipt.message_id, None)
        rows = [m for m in sim.mimsms_v4.messages if m.trxn_id == trxn and num in (None, m.number)]
        assert len(rows) == 1, receipt
        return rows[0].number, rows[0].text
    if receipt.provider == IMI:
        imi = sim.imiconnect.messages[receipt.message_id]
        return imi.msisdn, imi.text or ""
    v3 = sim.mimsms_v3.messages[receipt.message_id]
    return v3.to, v3.text


def check_pairing(sim: Simulator, result: BulkResult, inputs: list[Any]) -> None:
    """One outcome per input, in order; a receipt is for its own message, on the wire too."""
    assert len(result) == len(result.messages) == len(inputs)
    assert len(result.receipts) + len(result.errors) == len(inputs)
    assert result.ok == (not result.errors)
    fresh: set[tuple[str, str]] = set()
    for item, message, outcome in zip(inputs, result.messages, result.outcomes, strict=True):
        assert isinstance(outcome, Receipt | MimgwError)
        if isinstance(item, Message):
            assert message is item
        if isinstance(outcome, Receipt):
            assert isinstance(message, Message) and outcome.to == message.to
            if message.idempotency_key is None:  # a key's replay is the first send's receipt
                assert outcome.reference == message.reference
                assert on_wire(sim, outcome) == (message.to, message.text)
                assert (outcome.provider, outcome.message_id) not in fresh
                fresh.add((outcome.provider, outcome.message_id))


async def check_ledger_holds_all_taken(
    sim: Simulator, gw: Gateway, messages: list[Message]
) -> None:
    """Every message (unique number) a gateway took is in the ledger; none went twice."""
    unresolved = await gw.ledger.unresolved()
    assert not [i for i in unresolved if i.state is IntentState.IN_FLIGHT]
    open_refs = {i.reference for i in unresolved}
    for m in messages:
        assert taken(sim, m.to) <= 1, m
        if taken(sim, m.to):
            assert await gw.history(m.reference) or m.reference in open_refs, m
    assert all(h["in_flight"] == 0 for h in gw.health().values())


def v4_of(gw: Gateway) -> MimSmsV4:
    provider = gw.providers[V4]
    assert isinstance(provider, MimSmsV4)
    return provider


async def states(gw: Gateway, receipts: tuple[Receipt, ...] | list[Receipt]) -> list[State | None]:
    entries = [await gw.ledger.get(r.provider, r.message_id) for r in receipts]
    return [None if e is None else e.state for e in entries]
