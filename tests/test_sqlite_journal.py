"""The SQLite ledger's journal: sends without an idempotency key are appended to a file of
the process's own and reach the tables in groups; every read of the same ledger sees
them at once, other connections soon after, and a killed process's journal is applied
by the next process that opens the ledger."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mimgw import State
from mimgw.ledger import Intent, IntentState, SqliteLedger, _sqlite_journal
from mimgw.ledger._json_rows import dump_entry, dump_intent
from mimgw.ledger._sqlite_writer import iso
from mimgw.ledger.entry import LedgerEntry, utcnow
from mimgw.models import DeliveryReport, Message, Receipt
from mimgw.testing import FakeProvider, fake_gateway_for

TO = "01712345678"


def intent(key: str | None = None) -> Intent:
    return Intent.for_message(Message(to=TO, text="hi", idempotency_key=key), now=utcnow())


def accepted(begun: Intent, message_id: str) -> Intent:
    receipt = Receipt(provider="gw", message_id=message_id, to=TO, reference=begun.reference)
    return begun.finished(IntentState.ACCEPTED, now=utcnow(), receipt=receipt)


async def opened(path: Path) -> SqliteLedger:
    """A ledger whose inline connection is open (the first calls go to the writer)."""
    led = SqliteLedger(path)
    assert await led.get("gw", "none") is None
    assert await led.get("gw", "none") is None
    return led


def seen(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """What another connection (another process) sees."""
    with sqlite3.connect(path) as other:
        return list(other.execute(sql, args).fetchall())


def intent_state(path: Path, intent_id: str) -> str | None:
    found = seen(path, "SELECT state FROM mimgw_intents WHERE id = ?", intent_id)
    return None if not found else str(found[0][0])


def journals(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}-mimgw-*.journal"))


@pytest.fixture
def slow_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop never applies the journal by itself during the test."""
    monkeypatch.setattr(_sqlite_journal, "FLUSH_DELAY", 3600.0)


async def test_lines_reach_the_tables_soon_and_this_ledger_sees_them_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    led = await opened(path)
    first = intent()
    await led.begin(first)
    assert intent_state(path, first.id) is None  # only in the journal so far
    (journal,) = journals(path)
    assert journal.stat().st_size > 0
    entry = await led.finish(accepted(first, "m1"))
    assert entry is not None and entry.submitted and entry.message_id == "m1"
    assert intent_state(path, first.id) is None

    await asyncio.sleep(_sqlite_journal.FLUSH_DELAY * 5)  # the loop turned: applied
    assert intent_state(path, first.id) == "accepted"
    assert seen(path, "SELECT message_id FROM mimgw_ledger") == [("m1",)]
    assert journal.stat().st_size == 0  # everything applied: the file starts over

    second = intent()
    await led.begin(second)
    held = await led.intent(second.id)  # a read applies the journal first
    assert held is not None and held.state is IntentState.IN_FLIGHT
    assert intent_state(path, second.id) == "in_flight"
    await led.aclose()
    assert journals(path) == []  # closed with nothing left: removed


async def test_a_loop_that_never_turns_still_commits_in_groups(
    tmp_path: Path, slow_flush: None
) -> None:
    path = tmp_path / "l.db"
    led = await opened(path)
    begun = [intent() for _ in range(_sqlite_journal.FLUSH_EVERY)]
    for one in begun[:-1]:
        await led.begin(one)
    assert seen(path, "SELECT count(*) FROM mimgw_intents") == [(0,)]
    await led.begin(begun[-1])  # the 64th line: applied at once, no await suspended
    assert seen(path, "SELECT count(*) FROM mimgw_intents") == [(len(begun),)]
    await led.aclose()


async def test_every_call_of_the_ledger_sees_what_the_journal_holds(
    tmp_path: Path, slow_flush: None
) -> None:
    led = await opened(tmp_path / "l.db")
    open_one, done = intent(), intent()
    await led.begin(open_one)
    await led.begin(done)
    await led.finish(accepted(done, "m2"))
    assert [i.id for i in await led.unresolved()] == [open_one.id]
    found = await led.get("gw", "m2")
    assert found is not None and found.submitted
    assert [e.message_id for e in await led.by_reference(done.reference)] == ["m2"]
    report = DeliveryReport(provider="gw", message_id="m2", state=State.DELIVERED)
    entry, changed = await led.record_report(report)
    assert changed and entry.state is State.DELIVERED and entry.submitted
    await led.aclose()


async def test_a_report_recorded_first_is_merged_and_its_follow_up_owed(
    tmp_path: Path,
) -> None:
    led = await opened(tmp_path / "l.db")
    first = intent()
    await led.begin(first)
    report = DeliveryReport(provider="gw", message_id="m3", state=State.DELIVERED)
    await led.record_report(report)  # the report beat the submit's answer
    entry = await led.finish(accepted(first, "m3"))
    assert entry is not None and entry.submitted  # as the submit alone makes it
    (late,) = await led._late_entries(apply=True)  # merged when applied: owed a follow-up
    assert late.submitted and late.state is State.DELIVERED and late.report == report
    assert await led._late_entries(apply=True) == []  # once
    stored = await led.get("gw", "m3")
    assert stored == late
    await led.aclose()


async def test_the_gateway_follows_up_an_entry_merged_after_its_send(
    tmp_path: Path, slow_flush: None
) -> None:
    path = tmp_path / "l.db"
    led, other = await opened(path), await opened(path)
    gw = fake_gateway_for(FakeProvider(name="primary"), ledger=led)
    receipt = await gw.send(TO, "hi")
    assert receipt.message_id is not None
    # another process records the report while the submit is still in the journal
    report = DeliveryReport(
        provider="primary", message_id=receipt.message_id, state=State.DELIVERED
    )
    await other.record_report(report)
    await gw.flush()  # what redeliver_due and aclose start with
    stored = await other.get("primary", receipt.message_id)
    assert stored is not None and stored.submitted and stored.state is State.DELIVERED
    assert stored.settled  # the follow-up the Gateway owed it
    await gw.aclose()
    await other.aclose()


async def test_a_report_another_process_records_before_the_journal_is_applied(
    tmp_path: Path, slow_flush: None
) -> None:
    path = tmp_path / "l.db"
    sender, receiver = await opened(path), await opened(path)
    first = intent()
    await sender.begin(first)
    await sender.finish(accepted(first, "m4"))  # in the sender's journal only
    report = DeliveryReport(provider="gw", message_id="m4", state=State.UNDELIVERABLE)
    entry, _ = await receiver.record_report(report)
    assert not entry.submitted
    await sender.aclose()  # applied: the submit merges into the report's entry
    final = await receiver.get("gw", "m4")
    assert final is not None and final.submitted and final.state is State.UNDELIVERABLE
    assert final.report == report
    await receiver.aclose()


async def test_a_live_process_journal_is_left_to_it(tmp_path: Path, slow_flush: None) -> None:
    path = tmp_path / "l.db"
    owner, other = await opened(path), await opened(path)
    first = intent()
    await owner.begin(first)
    assert await other.unresolved() == []  # not its journal to apply: its owner lives
    assert len(journals(path)) == 1
    await owner.intent(first.id)  # the owner applies it
    assert [i.id for i in await other.unresolved()] == [first.id]
    await owner.aclose()
    await other.aclose()


KILLED = """
import asyncio, os, signal, sys
from mimgw.ledger import Intent, IntentState, SqliteLedger
from mimgw.ledger.entry import utcnow
from mimgw.models import Message, Receipt

async def main(path):
    led = SqliteLedger(path)
    await led.get("gw", "none")
    await led.get("gw", "none")
    for i in range(3):
        begun = Intent.for_message(Message(to="01712345678", text=f"hi {i}"), now=utcnow())
        await led.begin(begun)
        if i < 2:
            receipt = Receipt(
                provider="gw", message_id=f"m{i}", to=begun.to, reference=begun.reference
            )
            await led.finish(begun.finished(IntentState.ACCEPTED, now=utcnow(), receipt=receipt))
    print(begun.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # before the loop could apply anything

asyncio.run(main(sys.argv[1]))
"""


def run_killed(path: Path) -> str:
    done = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, "-c", textwrap.dedent(KILLED), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    return done.stdout.strip()


async def test_a_killed_process_journal_is_applied_by_the_next_opener(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    in_flight = run_killed(path)
    assert len(journals(path)) == 1
    assert seen(path, "SELECT count(*) FROM mimgw_intents") == [(0,)]  # journal only

    led = SqliteLedger(path)
    for message_id in ("m0", "m1"):
        entry = await led.get("gw", message_id)
        assert entry is not None and entry.submitted  # nothing accepted was lost
    assert [i.id for i in await led.unresolved()] == [in_flight]  # found, as promised
    assert journals(path) == []
    assert seen(path, "SELECT state, count(*) FROM mimgw_intents GROUP BY state") == [
        ("accepted", 2),
        ("in_flight", 1),
    ]
    await led.aclose()


async def test_a_journal_applied_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    run_killed(path)
    (journal,) = journals(path)
    kept = journal.read_bytes()
    led = SqliteLedger(path)
    (unknown,) = await led.unresolved()
    await led.resolve(unknown.id, sent=False, note="checked")  # settled since
    report = DeliveryReport(provider="gw", message_id="m0", state=State.DELIVERED)
    await led.record_report(report)
    before = seen(path, "SELECT id, state, data FROM mimgw_intents ORDER BY id")
    entries = seen(path, "SELECT message_id, data FROM mimgw_ledger ORDER BY message_id")
    # a process killed after its commit but before cutting its journal back
    dead = tmp_path / f"{path.name}-mimgw-1-dead.journal"
    dead.write_bytes(kept)
    assert await led.unresolved() == []
    assert seen(path, "SELECT id, state, data FROM mimgw_intents ORDER BY id") == before
    assert seen(path, "SELECT message_id, data FROM mimgw_ledger ORDER BY message_id") == entries
    assert not dead.exists()
    await led.aclose()


async def test_a_cut_off_or_foreign_line_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "l.db"
    run_killed(path)
    (journal,) = journals(path)
    lines = journal.read_bytes().split(b"\n")
    journal.write_bytes(lines[0] + b"\nX\tnonsense\n" + lines[1][: len(lines[1]) // 2])
    with caplog.at_level(logging.WARNING, logger="mimgw.ledger"):
        led = SqliteLedger(path)
        assert len(await led.unresolved()) == 1  # the first line: the first intent
    assert "incomplete last line" in caplog.text and "a line ignored" in caplog.text
    await led.aclose()


async def test_a_failing_journal_sends_writes_to_the_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def full(self: _sqlite_journal.Journal, line: bytes, record: object) -> None:
        raise OSError(28, "No space left on device")

    path = tmp_path / "l.db"
    led = await opened(path)
    monkeypatch.setattr(_sqlite_journal.Journal, "_append", full)
    first = intent()
    with caplog.at_level(logging.WARNING, logger="mimgw.ledger"):
        await led.begin(first)
    assert intent_state(path, first.id) == "in_flight"  # committed before returning
    assert "No space left" in caplog.text
    await led.finish(accepted(first, "m5"))
    assert intent_state(path, first.id) == "accepted"
    await led.aclose()


async def test_sends_with_a_key_never_use_the_journal(tmp_path: Path, slow_flush: None) -> None:
    path = tmp_path / "l.db"
    led = await opened(path)
    keyed = intent("k-1")
    await led.begin(keyed)
    assert intent_state(path, keyed.id) == "in_flight"  # claimed where every writer sees it
    await led.finish(accepted(keyed, "m6"))
    assert intent_state(path, keyed.id) == "accepted"
    await led.aclose()


async def test_a_gateway_campaign_is_all_in_the_file_after_close(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    led = SqliteLedger(path)
    gw = fake_gateway_for(FakeProvider(name="primary"), ledger=led)
    results = await asyncio.gather(*(gw.send(TO, f"hi {i}") for i in range(300)))
    await gw.aclose()
    await led.aclose()
    assert journals(path) == []
    ids = {r.message_id for r in results}
    assert len(ids) == 300
    found = seen(path, "SELECT message_id FROM mimgw_ledger")
    assert {row[0] for row in found} == ids
    assert seen(path, "SELECT state, count(*) FROM mimgw_intents GROUP BY state") == [
        ("accepted", 300)
    ]


def test_journal_lines_are_plain_text(tmp_path: Path) -> None:
    """The file is plain text a person can read: one record a line, a begin as its five
    fields, an outcome as JSON documents."""
    path = tmp_path / "l.db"
    run_killed(path)
    (journal,) = journals(path)
    lines = journal.read_bytes().decode().splitlines()
    assert [line[0] for line in lines] == ["I", "F", "I", "F", "I"]
    for line in lines:
        kind, *parts = line.split("\t")
        if kind == "I":
            assert len(parts) == 5 and parts[2] == "8801712345678"
            continue
        for part in parts:
            if part:
                assert isinstance(json.loads(part), dict)
    assert os.stat(journal).st_mode & 0o077 == 0  # only its owner reads it


DHAKA = timezone(timedelta(hours=6))


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({}, b"I"),  # as the Gateway begins one
        ({"reference": "order\t42"}, b"B"),  # a field holding a separator
        ({"reference": "line\nbreak"}, b"B"),
        ({"reference": "বাংলা-৪২"}, b"I"),
        ({"key": "k-1"}, b"B"),  # never journaled by the ledger, but not lost if it were
        ({"error": "cancelled"}, b"B"),
        ({"state": IntentState.UNKNOWN}, b"B"),
        ({"created_at": datetime(2026, 12, 7, 14, 0, tzinfo=DHAKA)}, b"B"),
        ({"updated_at": datetime(2030, 1, 1, tzinfo=UTC)}, b"B"),
    ],
)
def test_a_begin_line_reads_back_as_the_same_intent(change: dict[str, object], kind: bytes) -> None:
    """A begin recovered from its line is the intent that was begun, field for field and
    as the tables store it; anything but a fresh in-flight intent is kept as JSON."""
    begun = intent().model_copy(update=change)
    line = _sqlite_journal._begin_line(begun)
    assert line.startswith(kind + b"\t") and line.endswith(b"\n") and line.count(b"\n") == 1
    back = _sqlite_journal._parse(line[:-1])
    assert back == begun
    assert isinstance(back, Intent) and back.model_dump_json() == begun.model_dump_json()


def test_a_journal_of_an_earlier_release_is_still_read() -> None:
    """Before the five-field begin every begin was its JSON (``B``)."""
    begun = intent()
    line = b"B\t%s\n" % begun.model_dump_json().encode()
    assert _sqlite_journal._parse(line[:-1]) == begun


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 12, 7, 8, 13, 39, 421406, tzinfo=UTC),
        datetime(2026, 12, 7, 8, 13, 39, tzinfo=UTC),  # no microseconds: still six digits
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 12, 7, 14, 0, 0, 5, tzinfo=DHAKA),
        datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc),  # noqa: UP017 - the same object
    ],
)
def test_stored_times_are_fixed_width_utc(at: datetime) -> None:
    assert iso(at) == at.astimezone(UTC).isoformat(timespec="microseconds")
    assert len(iso(at) or "") == 32


def test_stored_documents_are_the_models_json() -> None:
    begun = intent()
    done = accepted(begun, "m1")
    assert done.receipt is not None
    entry = LedgerEntry.from_submit(done.receipt, attempt=1, message=None, now=utcnow())
    assert dump_intent(done).decode() == done.model_dump_json()
    assert dump_entry(entry).decode() == entry.model_dump_json()
