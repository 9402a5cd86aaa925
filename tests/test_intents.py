"""Write-ahead intents, idempotency keys and the truth of ``may_have_been_sent``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from mimgw import AllProvidersFailedError, ErrorKind, Message, ProviderError
from mimgw.errors import OutcomeUnknownError
from mimgw.ledger import IntentState, Ledger, LedgerError, MemoryLedger, SqliteLedger
from mimgw.ledger.entry import utcnow
from mimgw.ledger.intent import Intent
from mimgw.models import Receipt
from mimgw.testing import FakeClock, FakeProvider, fake_gateway_for


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    led: Ledger = MemoryLedger() if request.param == "memory" else SqliteLedger(tmp_path / "l.db")
    yield led
    await led.aclose()


async def test_every_send_leaves_an_intent_with_its_answer(ledger: Ledger) -> None:
    primary = FakeProvider(name="primary")
    gw = fake_gateway_for(primary, ledger=ledger)
    receipt = await gw.send("01712345678", "hi", idempotency_key="order-1")
    held = await ledger.intent("order-1")
    assert held is not None and held.state is IntentState.ACCEPTED
    assert held.receipt == receipt and held.reference == receipt.reference
    assert await ledger.unresolved() == []
    entry = await ledger.get("primary", receipt.message_id)
    assert entry is not None and entry.submitted


async def test_an_accepted_send_without_a_gateway_id_keeps_its_intent(ledger: Ledger) -> None:
    # no entry can hold its receipt (entries are keyed by the gateway's id): the intent
    # is the only record that the gateway took it
    now = utcnow()
    intent = Intent.for_message(Message(to="01712345678", text="hi"), now=now)
    await ledger.begin(intent)
    receipt = Receipt(provider="gw", message_id="", to=intent.to, reference=intent.reference)
    done = intent.finished(IntentState.ACCEPTED, now=now, receipt=receipt, attempts=())
    assert await ledger.finish(done) is None
    held = await ledger.intent(intent.id)
    assert held is not None and held.state is IntentState.ACCEPTED and held.receipt == receipt
    # with an id, its entry holds the receipt
    other = Intent.for_message(Message(to="01712345678", text="hi"), now=now)
    await ledger.begin(other)
    got = receipt.model_copy(update={"message_id": "T1", "reference": other.reference})
    entry = await ledger.finish(other.finished(IntentState.ACCEPTED, now=now, receipt=got))
    assert entry is not None and entry.message_id == "T1"


async def test_an_accepted_key_answers_from_the_ledger_and_sends_nothing(ledger: Ledger) -> None:
    primary = FakeProvider(name="primary")
    gw = fake_gateway_for(primary, ledger=ledger)
    first = await gw.send("01712345678", "hi", idempotency_key="k")
    again = await gw.send("01712345678", "hi", idempotency_key="k")
    assert again == first and len(primary.submits) == 1
    await gw.send("01712345678", "hi")  # no key: nothing deduplicated
    await gw.send("01712345678", "hi")
    assert len(primary.submits) == 3


async def test_an_unknown_key_is_never_sent_again_until_resolved(ledger: Ledger) -> None:
    primary = FakeProvider(name="primary").fail(ErrorKind.OUTCOME_UNKNOWN)
    gw = fake_gateway_for(primary, ledger=ledger)
    with pytest.raises(OutcomeUnknownError):
        await gw.send("01712345678", "hi", idempotency_key="k")
    [open_intent] = await ledger.unresolved()
    assert open_intent.state is IntentState.UNKNOWN and open_intent.key == "k"
    with pytest.raises(OutcomeUnknownError, match="not sent again"):
        await gw.send("01712345678", "hi", idempotency_key="k")
    assert len(primary.submits) == 1
    resolved = await gw.resolve("k", sent=False, note="not in the portal")
    assert resolved.state is IntentState.NOT_SENT and resolved.resolved_by
    await gw.send("01712345678", "hi", idempotency_key="k")
    assert len(primary.submits) == 2
    with pytest.raises(LedgerError):
        await gw.resolve("k", sent=True)  # already accepted: nothing to resolve


async def test_resolving_as_sent_returns_that_receipt_for_the_key(ledger: Ledger) -> None:
    primary = FakeProvider(name="primary").fail(ErrorKind.OUTCOME_UNKNOWN)
    gw = fake_gateway_for(primary, ledger=ledger)
    with pytest.raises(OutcomeUnknownError):
        await gw.send("01712345678", "hi", idempotency_key="k")
    await gw.resolve("k", sent=True, provider="primary", message_id="P-9")
    receipt = await gw.send("01712345678", "hi", idempotency_key="k")
    assert (receipt.provider, receipt.message_id) == ("primary", "P-9")
    assert len(primary.submits) == 1
    assert (await gw.status("P-9")).message_id == "P-9"


async def test_a_key_that_provably_sent_nothing_is_sent_again(ledger: Ledger) -> None:
    primary = FakeProvider(name="primary").fail(ErrorKind.RECIPIENT_REJECTED)
    gw = fake_gateway_for(primary, ledger=ledger)
    with pytest.raises(ProviderError) as caught:
        await gw.send("01712345678", "hi", idempotency_key="k")
    assert not caught.value.may_have_been_sent
    assert (await ledger.intent("k")).state is IntentState.NOT_SENT  # type: ignore[union-attr]
    await gw.send("01712345678", "hi", idempotency_key="k")
    assert len(primary.submits) == 2


async def test_the_same_key_in_flight_twice_in_one_process_sends_once() -> None:
    primary = FakeProvider(name="primary", delay=0.05)
    gw = fake_gateway_for(primary, ledger=MemoryLedger())
    results = []

    async def one() -> None:
        results.append(await gw.send("01712345678", "hi", idempotency_key="k"))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    assert len(primary.submits) == 1 and len({r.message_id for r in results}) == 1


async def test_a_refusal_after_a_maybe_sent_attempt_still_says_maybe_sent() -> None:
    # the primary may have sent (answer lost); the backup refuses outright: the caller
    # must not be told "nothing was sent"
    primary = FakeProvider(name="primary").fail(ErrorKind.OUTCOME_UNKNOWN)
    backup = FakeProvider(name="backup").fail(ErrorKind.RECIPIENT_REJECTED)
    ledger = MemoryLedger()
    gw = fake_gateway_for(primary, backup, ledger=ledger, on_unknown="failover")
    with pytest.raises(ProviderError) as caught:
        await gw.send("01712345678", "hi")
    assert caught.value.kind is ErrorKind.RECIPIENT_REJECTED
    assert caught.value.may_have_been_sent
    [intent] = await ledger.unresolved()
    assert intent.state is IntentState.UNKNOWN
    assert [(a.provider, a.kind, a.may_have_been_sent) for a in intent.attempts] == [
        ("primary", ErrorKind.OUTCOME_UNKNOWN, True),
        ("backup", ErrorKind.RECIPIENT_REJECTED, False),
    ]


async def test_all_failed_says_maybe_sent_when_any_attempt_may_have() -> None:
    primary = FakeProvider(name="primary").fail(ErrorKind.OUTCOME_UNKNOWN)
    backup = FakeProvider(name="backup").fail(ErrorKind.AUTH)
    gw = fake_gateway_for(primary, backup, on_unknown="failover")
    with pytest.raises(AllProvidersFailedError) as caught:
        await gw.send("01712345678", "hi")
    assert caught.value.may_have_been_sent
    backup.fail(ErrorKind.AUTH)
    primary.fail(ErrorKind.CONNECT_FAILED, times=5)
    with pytest.raises(AllProvidersFailedError) as unsent:
        await gw.send("01712345678", "hi")
    assert not unsent.value.may_have_been_sent


@pytest.mark.parametrize("how", ["task_cancel", "wait_for", "anyio_scope"])
async def test_native_cancellation_after_acceptance_still_records(how: str, tmp_path: Path) -> None:
    class SlowLedger(SqliteLedger):
        async def finish(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.4)  # the caller is cancelled while this runs
            return await super().finish(*args, **kwargs)

    primary = FakeProvider(name="primary")
    ledger = SlowLedger(tmp_path / "l.db")
    gw = fake_gateway_for(primary, ledger=ledger)

    async def send() -> None:
        await gw.send("01712345678", "hi", idempotency_key="k")

    async def cancel_when_accepted(task: asyncio.Task[None]) -> None:
        while not primary.receipts:  # noqa: ASYNC110 - polling a fake's record
            await asyncio.sleep(0)
        task.cancel()

    if how == "task_cancel":
        task = asyncio.ensure_future(send())
        await cancel_when_accepted(task)
        with pytest.raises(asyncio.CancelledError):
            await task
    elif how == "wait_for":
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(send(), timeout=0.2)
    else:
        with anyio.move_on_after(0.2):  # deferred by the shield: the send may even return
            await send()
    held = await ledger.intent("k")
    assert held is not None and held.state is IntentState.ACCEPTED
    assert await ledger.get("primary", primary.receipts[0].message_id) is not None
    await ledger.aclose()


async def test_cancelled_while_paced_before_any_request_is_not_sent() -> None:
    from mimgw.limits import RateLimit

    clock = FakeClock()
    primary = FakeProvider(name="primary")
    ledger = MemoryLedger()
    gw = fake_gateway_for(primary, clock=clock, ledger=ledger, limits=RateLimit(max_in_flight=1))
    gate = gw._limiters["primary"]
    async with gate.slot():  # the only slot is taken: the send waits before any request
        with anyio.move_on_after(0.01):
            await gw.send("01712345678", "hi", idempotency_key="k")
    held = await ledger.intent("k")
    assert held is not None and held.state is IntentState.NOT_SENT
    assert primary.submits == []


def test_message_rejects_a_blank_key() -> None:
    from mimgw import InvalidMessageError

    with pytest.raises(InvalidMessageError):
        Message(to="01712345678", text="hi", idempotency_key=" ")


FORKING = """
import os
from mimgw.ledger.intent import Intent, process_token
from mimgw.ledger.entry import utcnow
from mimgw.models import Message
message = Message(to="01712345678", text="hi")
parent = Intent.for_message(message, now=utcnow()).owner
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, Intent.for_message(message, now=utcnow()).owner.encode())
    os._exit(0)
os.close(write)
child = os.fdopen(read).read()
os.waitpid(pid, 0)
print(os.getpid(), pid, parent, child, process_token())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_writes_intents_under_its_own_token() -> None:
    # prefork servers and job-queue workers fork after importing mimgw: each child is
    # its own writer of a shared ledger (run in a fresh, single-threaded interpreter)
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", FORKING], capture_output=True, text=True, check=True, timeout=60
    )
    me, child_pid, parent, child, after = done.stdout.split()
    assert parent.startswith(f"{me}-") and child.startswith(f"{child_pid}-")
    assert child != parent and after == parent  # the parent keeps its own
