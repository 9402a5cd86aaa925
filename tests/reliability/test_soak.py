"""Fault soak: two gateways (MiMSMS v4 then DiniSoft) behind a network that fails at random.

Each request may be refused before the gateway (nothing sent), lose its answer after
the gateway acted (sent, answer lost), meet a proxy 5xx with or without a body (the
gateway may or may not have acted), a garbled 200, a 429, or a vendor refusal (auth,
out of credit, recipient rejected, DiniSoft code 1 — which does not fail over). The
checks in :func:`helpers.check_outcomes` compare every outcome and the ledger with
what the simulated gateways really took.

The fast subset runs in CI; ``nox -s soak`` (``MIMGW_SOAK=1``) runs the long one.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import (
    DINI,
    V4,
    Chaos,
    chaos_gateway,
    check_outcomes,
    make_ledger,
    message_for,
    rich_sim,
)

from mimgw import Message, MimgwError, OutcomeUnknownError, Receipt
from mimgw.ledger import IntentState
from mimgw.simulator import Simulator
from mimgw.testing import FakeClock

SOAK = os.environ.get("MIMGW_SOAK") == "1"


def sent_total(sim: Simulator) -> int:
    return sum(g.sent_count() for g in sim.gateways.values())


async def soak(
    tmp_path: Path, *, seed: int, size: int, on_unknown: Any, ledger_kind: str, stream: bool
) -> Counter[str]:
    sim = rich_sim(seed)
    clock = FakeClock()
    chaos = Chaos(sim, seed, clock=clock)
    # the bug of issue 9: the primary may have sent, then DiniSoft refuses with code 1
    for i in range(0, size, 17):
        text = f"rel-s{seed}-{i}"
        chaos.plans[(V4, text)] = ["reset_after" if i % 2 else "garbled_json"]
        chaos.plans[(DINI, text)] = ["dini_code_1"]
    ledger = make_ledger(ledger_kind, tmp_path, clock)
    gw, client = chaos_gateway(sim, chaos, clock, ledger, on_unknown=on_unknown)
    messages = [message_for(f"s{seed}", i, keyed=i % 2 == 0) for i in range(size)]
    singles = messages[::17]  # sent one by one, meanwhile: the planned bug cases above
    bulk = [m for i, m in enumerate(messages) if i % 17]
    pairs: list[tuple[Message, Receipt | MimgwError]] = []

    async def one(message: Message) -> None:
        try:
            pairs.append((message, await gw.send_message(message)))
        except MimgwError as exc:
            pairs.append((message, exc))

    async with anyio.create_task_group() as tg:
        for message in singles:
            tg.start_soon(one, message)
        if stream:
            # singles (batch=False): where on_unknown="failover" applies
            async for message, outcome in gw.stream_bulk(bulk, concurrency=32, batch=False):
                assert isinstance(message, Message)
                pairs.append((message, outcome))
        else:
            # native batches where the gateway has them (v4), singles elsewhere
            pairs.extend((await gw.send_bulk(bulk, concurrency=16)).items())
    assert sorted(m.text for m, _ in pairs) == sorted(m.text for m in messages)
    tally = await check_outcomes(sim, gw, pairs, failover=on_unknown == "failover")
    # the planned bug cases: v4 may have sent, then DiniSoft refused with code 1
    outcomes = {m.text: o for m, o in pairs}
    for message in singles:
        outcome = outcomes[message.text]
        if on_unknown == "failover" and sim.mimsms_v4.sent_count(text=message.text):
            why = [e for e in chaos.log if e[1] == message.text]
            assert isinstance(outcome, MimgwError), (outcome, why)
            assert outcome.may_have_been_sent, (repr(outcome), why)
            tally["planned_bug_case"] += why[-1] == (DINI, message.text, "dini_code_1")
    # the same keys again: accepted -> the stored receipt, unknown -> OutcomeUnknownError,
    # provably not sent -> sent again; nothing else reaches a gateway
    keyed = [m for m in messages if m.idempotency_key][:200]
    prior = {m.text: await gw.ledger.intent(m.idempotency_key or "") for m in keyed}
    before = sent_total(sim)
    again = await gw.send_bulk(keyed, concurrency=8)
    free = 0
    for message, outcome in again.items():
        held = prior[message.text]
        assert held is not None
        if held.state is IntentState.ACCEPTED:
            assert isinstance(outcome, Receipt) and outcome == held.receipt
        elif held.state is IntentState.UNKNOWN:
            assert isinstance(outcome, OutcomeUnknownError), repr(outcome)
        else:
            assert held.state is IntentState.NOT_SENT
            free += 1
    assert sent_total(sim) - before <= free * (2 if on_unknown == "failover" else 1)
    tally.update({f"fault:{k}": v for k, v in chaos.injected.items()})
    await gw.aclose()
    await client.aclose()
    await ledger.aclose()
    return tally


@pytest.mark.parametrize("on_unknown", ["raise", "failover"])
@pytest.mark.parametrize("ledger_kind", ["memory", "sqlite"])
async def test_fault_soak_fast(tmp_path: Path, on_unknown: str, ledger_kind: str) -> None:
    tally = await soak(
        tmp_path,
        seed=11 if on_unknown == "raise" else 12,
        size=800,
        on_unknown=on_unknown,
        ledger_kind=ledger_kind,
        stream=ledger_kind == "memory",
    )
    # the mix must really exercise every path the assertions are about
    assert tally["accepted"] > 300 and tally["maybe_sent"] > 20 and tally["not_sent"] > 20, tally
    assert tally["processed_unknown"] > 10
    if on_unknown == "failover":
        assert tally["planned_bug_case"] > 10, tally
        if ledger_kind == "memory":  # singles: duplicates by failover are possible
            assert tally["dup:2"] > 0, tally


@pytest.mark.soak
@pytest.mark.skipif(not SOAK, reason="long soak: run `nox -s soak` (MIMGW_SOAK=1)")
@pytest.mark.parametrize("seed", range(100, 103))
@pytest.mark.parametrize("on_unknown", ["raise", "failover"])
@pytest.mark.parametrize("ledger_kind", ["memory", "sqlite", "server"])
async def test_fault_soak_long(
    tmp_path: Path, seed: int, on_unknown: str, ledger_kind: str
) -> None:
    tally = await soak(
        tmp_path,
        seed=seed,
        size=5000,
        on_unknown=on_unknown,
        ledger_kind=ledger_kind,
        stream=seed % 2 == 0,
    )
    assert tally["accepted"] > 1500
