"""The SQLite ledger's file layout: files of older mimgw releases are upgraded in place
with every row kept and every lookup working; a newer or foreign layout is refused; the
queries use the indexes they were written for; new ids grow at one end of them."""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest

from mimgw.errors import ConfigurationError
from mimgw.ledger import Intent, IntentState, LedgerEntry, SqliteLedger
from mimgw.ledger._sqlite_writer import SCHEMA_VERSION, iso
from mimgw.ledger.entry import utcnow
from mimgw.models import DeliveryReport, Message, Receipt, new_reference, new_references
from mimgw.taxonomy import State

TO = "01712345678"

# the layouts earlier releases wrote (mimgw 0.1: entries only; then intents and meta)
V1 = """
CREATE TABLE mimgw_ledger (
    provider TEXT NOT NULL, message_id TEXT NOT NULL, reference TEXT, due_at TEXT,
    settled INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (provider, message_id)
);
CREATE INDEX mimgw_ledger_message ON mimgw_ledger (message_id);
CREATE INDEX mimgw_ledger_reference ON mimgw_ledger (reference);
CREATE INDEX mimgw_ledger_due ON mimgw_ledger (due_at) WHERE settled = 0;
"""
V2 = (
    V1
    + """
CREATE TABLE mimgw_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE mimgw_intents (
    id TEXT PRIMARY KEY, key TEXT UNIQUE, state TEXT NOT NULL, created_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX mimgw_intents_open ON mimgw_intents (created_at)
    WHERE state IN ('in_flight', 'unknown');
INSERT INTO mimgw_meta VALUES ('schema_version', '2');
"""
)


def entry(message_id: str, reference: str, *, due: bool = False) -> LedgerEntry:
    now = utcnow()
    receipt = Receipt(provider="gw", message_id=message_id, to=TO, reference=reference)
    made = LedgerEntry.from_submit(receipt, attempt=1, message=None, now=now)
    if due:
        report = DeliveryReport(provider="gw", message_id=message_id, state=State.UNDELIVERABLE)
        made, _ = made.merge_report(report, now=now)
        made = made.model_copy(update={"next_attempt_at": now - timedelta(minutes=1)})
    return made


def old_file(path: Path, layout: str) -> tuple[list[LedgerEntry], list[Intent]]:
    """A file as an earlier release left it: two entries (one due for redelivery), and
    with version 2 an open intent and a keyed accepted one."""
    entries = [entry("m1", "ref-1"), entry("m2", "ref-2", due=True)]
    now = utcnow()
    open_one = Intent.for_message(Message(to=TO, text="a"), now=now - timedelta(hours=1))
    keyed = Intent.for_message(Message(to=TO, text="b", idempotency_key="k1"), now=now)
    keyed = keyed.finished(
        IntentState.ACCEPTED,
        now=now,
        receipt=Receipt(provider="gw", message_id="m1", to=TO, reference="ref-1"),
    )
    with sqlite3.connect(path) as db:
        db.executescript(layout)
        for e in entries:
            db.execute(
                "INSERT INTO mimgw_ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    e.provider,
                    e.message_id,
                    e.reference,
                    iso(e.next_attempt_at),
                    int(e.settled),
                    iso(e.created_at),
                    e.model_dump_json(),
                ),
            )
        if layout is V2:
            for i in (open_one, keyed):
                db.execute(
                    "INSERT INTO mimgw_intents VALUES (?, ?, ?, ?, ?)",
                    (i.id, i.key, i.state.value, iso(i.created_at), i.model_dump_json()),
                )
    db.close()
    return entries, ([open_one, keyed] if layout is V2 else [])


def layout(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        found = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
        version = db.execute("SELECT value FROM mimgw_meta WHERE name = 'schema_version'")
        found["version"] = version.fetchone()[0]
    db.close()
    return found


@pytest.mark.parametrize("old", [V1, V2], ids=["version-1", "version-2"])
async def test_an_older_file_is_upgraded_in_place_and_keeps_every_row(
    tmp_path: Path, old: str
) -> None:
    path = tmp_path / "old.db"
    entries, intents = old_file(path, old)
    led = SqliteLedger(path)

    assert await led.get("gw", "m1") == entries[0]
    assert await led.find("m2") == [entries[1]]
    assert await led.by_reference("ref-1") == [entries[0]]
    assert [e.message_id for e in await led.due(utcnow())] == ["m2"]
    if intents:
        open_one, keyed = intents
        assert await led.intent(open_one.id) == open_one
        assert await led.intent("k1") == keyed
        assert await led.unresolved(older_than=timedelta(minutes=1)) == [open_one]
        # the key still holds after the upgrade: a second send with it gets the first
        again = Intent.for_message(Message(to=TO, text="b", idempotency_key="k1"), now=utcnow())
        assert await led.begin(again) == keyed
    await led.aclose()

    tables = layout(path)
    assert tables["version"] == str(SCHEMA_VERSION) == "3"
    assert "mimgw_ledger_message" not in tables  # the key (message_id, provider) serves it
    assert "WITHOUT ROWID" in tables["mimgw_intents"]
    assert "WHERE key IS NOT NULL" in tables["mimgw_intents_key"]
    assert not any(name.endswith("_v3") for name in tables)


async def test_an_upgraded_file_opens_again_without_changes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_file(path, V2)
    led = SqliteLedger(path)
    await led.get("gw", "m1")
    await led.aclose()
    before = layout(path)
    again = SqliteLedger(path)
    assert await again.get("gw", "m1") is not None
    await again.aclose()
    assert layout(path) == before


@pytest.mark.parametrize("version", ["4", "not a number"])
async def test_a_newer_or_foreign_layout_is_refused_and_left_alone(
    tmp_path: Path, version: str
) -> None:
    path = tmp_path / "new.db"
    old_file(path, V2.replace("'schema_version', '2'", f"'schema_version', '{version}'"))
    before = layout(path)
    led = SqliteLedger(path)
    with pytest.raises(ConfigurationError, match="schema version"):
        await led.get("gw", "m1")
    await led.aclose()
    assert layout(path) == before


async def test_unresolved_reads_the_open_intents_index_not_every_intent(
    tmp_path: Path,
) -> None:
    led = SqliteLedger(tmp_path / "l.db")
    assert await led.unresolved() == []
    await led.aclose()
    with sqlite3.connect(tmp_path / "l.db") as db:
        statement = (
            "SELECT data FROM mimgw_intents WHERE state IN ('in_flight', 'unknown') "
            "AND (? IS NULL OR created_at <= ?) ORDER BY created_at"
        )
        plan = " ".join(r[-1] for r in db.execute(f"EXPLAIN QUERY PLAN {statement}", (1, 1)))
    db.close()
    assert "mimgw_intents_open" in plan
    source = (Path(__file__).parents[1] / "mimgw" / "ledger" / "sqlite.py").read_text()
    assert statement.split(" AND ")[0] in source  # the statement the ledger runs


def test_new_ids_are_32_hex_digits_and_grow_with_time() -> None:
    first = new_reference()
    time.sleep(0.002)
    later = new_references(3)
    assert all(re.fullmatch(r"[0-9a-f]{32}", r) for r in [first, *later])
    assert len({first, *later}) == 4
    assert all(first < r for r in later)
    assert int(first[:12], 16) == pytest.approx(time.time() * 1000, abs=5000)
    intents = Intent.for_messages([Message(to=TO, text="x")] * 3, now=utcnow())
    assert len({i.id for i in intents}) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", i.id) for i in intents)
