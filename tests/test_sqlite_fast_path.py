"""The SQLite ledger's inline connection: a write is done at once on the event loop's
thread, committed before it returns; when the file is locked it goes to the writer
thread and the loop runs on; checkpoints are the writer thread's. (Intents with an
idempotency key: those without one go through the journal first, see
tests/test_sqlite_journal.py.)"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import anyio.to_thread
import pytest

import mimgw._shield
import mimgw.gateway.sending
from mimgw.ledger import Intent, IntentState, SqliteLedger, _sqlite_inline, _sqlite_writer
from mimgw.ledger.entry import utcnow
from mimgw.models import Message, Receipt
from mimgw.testing import FakeProvider, fake_gateway_for

TO = "01712345678"


_keys = iter(range(10**9))


def intent(key: str | None = None) -> Intent:
    """A keyed intent (a new key each), written to the tables at once."""
    key = key if key is not None else f"k{next(_keys)}"
    return Intent.for_message(Message(to=TO, text="hi", idempotency_key=key), now=utcnow())


async def opened(path: Path) -> SqliteLedger:
    """A ledger whose writer thread has opened the file (the first call goes there)."""
    led = SqliteLedger(path)
    assert await led.get("gw", "none") is None
    return led


def state_seen_by_another_connection(path: Path, intent_id: str) -> str | None:
    with sqlite3.connect(path) as other:  # as another process would see it
        row = other.execute("SELECT state FROM mimgw_intents WHERE id = ?", (intent_id,))
        found = row.fetchone()
    return None if found is None else str(found[0])


async def test_an_inline_write_ends_without_suspending_and_is_committed(tmp_path: Path) -> None:
    led = await opened(tmp_path / "l.db")
    first = intent()
    steps = led.begin(first).__await__()
    with pytest.raises(StopIteration) as done:
        steps.send(None)  # one step: never suspended, so nothing could cancel it
    assert done.value.value == first
    assert state_seen_by_another_connection(tmp_path / "l.db", first.id) == "in_flight"

    receipt = Receipt(provider="gw", message_id="m1", to=TO, reference=first.reference)
    accepted = first.finished(IntentState.ACCEPTED, now=utcnow(), receipt=receipt)
    finishing = led.finish(accepted).__await__()
    with pytest.raises(StopIteration) as finished:
        finishing.send(None)
    entry = finished.value.value
    assert entry is not None and entry.submitted and entry.message_id == "m1"
    assert state_seen_by_another_connection(tmp_path / "l.db", first.id) == "accepted"
    await led.aclose()


async def test_a_locked_file_sends_writes_to_the_writer_and_the_loop_runs_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    led = await opened(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        waiting = asyncio.ensure_future(led.begin(first := intent()))
        for _ in range(10):  # the loop is not blocked while the write waits
            await asyncio.sleep(0.01)
        assert not waiting.done()
        assert await led.get("gw", "none") is None  # reads need no lock: still inline
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert await waiting == first
    assert state_seen_by_another_connection(path, first.id) == "in_flight"
    await led.aclose()


async def test_a_held_key_is_decided_in_a_transaction_inline(tmp_path: Path) -> None:
    led = await opened(tmp_path / "l.db")
    first, second = intent("k-1"), intent("k-1")
    assert await led.begin(first) == first
    assert (await led.begin(second)).id == first.id  # held: not written
    await led.finish(first.finished(IntentState.NOT_SENT, now=utcnow()))
    third = intent("k-1")
    assert await led.begin(third) == third  # provably never sent: the key moves on
    held = await led.intent("k-1")
    assert held is not None and held.id == third.id
    assert state_seen_by_another_connection(tmp_path / "l.db", second.id) is None
    await led.aclose()


async def test_another_thread_uses_the_writer_thread(tmp_path: Path) -> None:
    led = await opened(tmp_path / "l.db")
    await led.begin(intent())  # the inline connection now belongs to this thread
    other = intent()
    assert await anyio.to_thread.run_sync(lambda: asyncio.run(led.begin(other))) == other
    assert state_seen_by_another_connection(tmp_path / "l.db", other.id) == "in_flight"
    await led.aclose()


async def test_checkpoints_run_on_the_writer_thread_and_keep_the_wal_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite_inline, "CHECKPOINT_EVERY", 8)
    monkeypatch.setattr(_sqlite_inline, "COMMITS_LIMIT", 64)
    monkeypatch.setattr(_sqlite_writer, "WAL_FRAMES_LIMIT", 64)
    path = tmp_path / "l.db"
    led = await opened(path)
    for _ in range(3000):  # ~12,000 pages: 48 MB of WAL if nothing copied them back
        await led.begin(intent())
    await led.unresolved()  # queued behind the checkpoint requests: they have run
    assert (tmp_path / "l.db-wal").stat().st_size < 8 * 1024 * 1024
    with sqlite3.connect(path) as other:
        row = other.execute("SELECT value FROM mimgw_meta WHERE name = 'checkpoint'").fetchone()
    assert row is not None  # a complete checkpoint, and the WAL restarted by the writer
    await led.aclose()


async def test_checkpoints_that_fall_behind_hold_inline_writes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a disk whose fsyncs take 50 ms: the loop would commit on and on meanwhile
    slow = _sqlite_writer.Writer._checkpoint

    def checkpoint(self: _sqlite_writer.Writer, db: sqlite3.Connection) -> None:
        time.sleep(0.05)
        slow(self, db)

    monkeypatch.setattr(_sqlite_writer.Writer, "_checkpoint", checkpoint)
    monkeypatch.setattr(_sqlite_inline, "COMMITS_LIMIT", 32)
    path = tmp_path / "l.db"
    led = await opened(path)
    written = [intent() for _ in range(2000)]
    for one in written:
        await led.begin(one)
    await led.unresolved()
    # 32 commits of at most ~8 pages, a group of held-back ones, and the meta row
    assert (tmp_path / "l.db-wal").stat().st_size < 2 * 1024 * 1024
    with sqlite3.connect(path) as other:  # nothing held back was lost
        (count,) = other.execute("SELECT count(*) FROM mimgw_intents").fetchone()
    assert count == len(written)
    await led.aclose()


async def test_a_gateway_send_starts_no_task_for_an_inline_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = 0
    real = mimgw._shield.complete

    async def counting(*args: object, **kwargs: object) -> object:
        nonlocal tasks
        tasks += 1
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mimgw._shield, "complete", counting)
    monkeypatch.setattr(mimgw.gateway.sending, "complete", counting)
    led = await opened(tmp_path / "l.db")
    gw = fake_gateway_for(FakeProvider(name="primary"), ledger=led)
    receipt = await gw.send(TO, "hi", idempotency_key="k-1")
    assert tasks == 0
    assert await led.get("primary", receipt.message_id) is not None
    await led.aclose()


async def test_a_send_cancelled_while_its_intent_waits_for_the_lock_records_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    led = await opened(path)
    primary = FakeProvider(name="primary")
    gw = fake_gateway_for(primary, ledger=led)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        sending = asyncio.ensure_future(gw.send(TO, "hi", idempotency_key="k-cancel"))
        await asyncio.sleep(0.05)
        sending.cancel()
        await asyncio.sleep(0.05)
        assert not sending.done()  # the intent write goes on through the cancellation
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    with pytest.raises(asyncio.CancelledError):
        await sending
    held = await led.intent("k-cancel")
    assert held is not None and held.state is IntentState.NOT_SENT
    assert primary.submits == []
    await led.aclose()
