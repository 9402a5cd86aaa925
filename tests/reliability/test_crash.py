"""A process killed with SIGKILL mid-submit, then a new process on the same ledger.

The worker (tests/reliability/worker.py) sends three keyed messages to the MiMSMS v4
simulator served on loopback; the server holds each submit open, and the worker is
killed while they wait. The held requests then end without reaching the gateway, so
"nothing was sent" is the truth an operator would find on the portal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from helpers import V4, rich_sim
from loopback import serve
from worker import LedgerSpec, open_ledger

from mimgw import OutcomeUnknownError
from mimgw.gateway import Gateway
from mimgw.ledger import IntentState, LedgerError
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.retry import RetryPolicy
from mimgw.simulator import Simulator

WORKER = Path(__file__).with_name("worker.py")
TO = "01712345678"


def worker_config(sim: Simulator, url: str, spec: LedgerSpec, items: list[dict[str, str]]) -> str:
    provider = {k: v for k, v in sim.mimsms_v4.provider_kwargs().items() if k != "base_url"}
    return json.dumps({"url": url, "provider": provider, "ledger": spec, "messages": items})


def start_worker(config: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent), *sys.path])}
    return subprocess.Popen(  # noqa: S603 - our own script, our own JSON
        [sys.executable, str(WORKER), config],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def fresh_gateway(sim: Simulator, url: str, spec: LedgerSpec) -> Gateway:
    kwargs: dict[str, Any] = {**sim.mimsms_v4.provider_kwargs(), "base_url": url}
    return Gateway(
        [MimSmsV4(**kwargs)],
        ledger=open_ledger(spec),
        retry=RetryPolicy(attempts=1, deadline=None),
        breaker=None,
    )


async def test_sigkill_mid_submit_then_a_new_process_settles_by_hand(
    shared_spec: LedgerSpec,
) -> None:
    sim = rich_sim()
    items = [{"to": TO, "text": f"crash {k}", "key": f"crash-{k}"} for k in ("a", "b", "c")]
    with serve(sim) as (url, gate):
        gate.hold = True
        proc = start_worker(worker_config(sim, url, shared_spec, items))
        try:
            await anyio.to_thread.run_sync(gate.wait_arrived, 3)
        except TimeoutError:
            proc.kill()
            raise AssertionError(proc.communicate()[1][-2000:]) from None
        proc.send_signal(signal.SIGKILL)  # mid-submit: the requests are on the server
        assert proc.wait(10) == -signal.SIGKILL
        gate.release(drop=True)  # ... and never reach the gateway
        gate.hold = False
        assert sim.mimsms_v4.sent_count() == 0 and sim.mimsms_v4.requests == 0

        async with fresh_gateway(sim, url, shared_spec) as gw:
            open_ = await gw.ledger.unresolved()
            assert sorted(i.key or "" for i in open_) == ["crash-a", "crash-b", "crash-c"]
            assert all(i.state is IntentState.IN_FLIGHT for i in open_)
            assert {i.to for i in open_} == {"8801712345678"}

            # the same key again: unknown, nothing sent
            for item in items:
                with pytest.raises(OutcomeUnknownError, match="resolve"):
                    await gw.send(item["to"], item["text"], idempotency_key=item["key"])
            assert sim.mimsms_v4.requests == 0

            # the operator found no trace of "a": it may go out again, once
            settled = await gw.resolve("crash-a", sent=False, note="not on the portal")
            assert settled.state is IntentState.NOT_SENT and settled.resolved_by
            receipt = await gw.send(TO, "crash a", idempotency_key="crash-a")
            assert receipt.provider == V4
            assert await gw.send(TO, "crash a", idempotency_key="crash-a") == receipt
            assert sim.mimsms_v4.sent_count(TO, "crash a") == 1

            # "b" was on the portal under an id: the next send returns that receipt
            await gw.resolve("crash-b", sent=True, provider=V4, message_id="PORTAL-77")
            again = await gw.send(TO, "crash b", idempotency_key="crash-b")
            assert (again.provider, again.message_id) == (V4, "PORTAL-77")
            assert sim.mimsms_v4.sent_count(TO, "crash b") == 0
            assert await gw.ledger.get(V4, "PORTAL-77") is not None

            # only "c" is still open, and a settled one cannot be settled again
            assert [i.key for i in await gw.ledger.unresolved()] == ["crash-c"]
            with pytest.raises(LedgerError):
                await gw.resolve("crash-b", sent=False)
            with pytest.raises(OutcomeUnknownError):
                await gw.send(TO, "crash c", idempotency_key="crash-c")
        assert sim.mimsms_v4.sent_count() == 1


async def test_sigkill_after_the_gateway_took_it_is_unknown_not_lost(
    shared_spec: LedgerSpec,
) -> None:
    """The gateway processed the submit; the process died before reading the answer."""
    sim = rich_sim()
    items = [{"to": TO, "text": "took it", "key": "took-1"}]
    with serve(sim) as (url, gate):
        gate.hold = gate.after = True
        proc = start_worker(worker_config(sim, url, shared_spec, items))
        await anyio.to_thread.run_sync(gate.wait_arrived, 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        gate.release()
        gate.hold = False
        assert sim.mimsms_v4.sent_count(TO, "took it") == 1
        trxn = sim.mimsms_v4.messages[-1].trxn_id

        async with fresh_gateway(sim, url, shared_spec) as gw:
            [held] = await gw.ledger.unresolved()
            assert held.key == "took-1" and held.may_have_been_sent
            with pytest.raises(OutcomeUnknownError):
                await gw.send(TO, "took it", idempotency_key="took-1")
            await gw.resolve("took-1", sent=True, provider=V4, message_id=trxn)
            receipt = await gw.send(TO, "took it", idempotency_key="took-1")
            assert receipt.message_id == trxn
        assert sim.mimsms_v4.sent_count(TO, "took it") == 1
