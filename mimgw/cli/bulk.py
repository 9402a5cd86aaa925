"""The machinery of ``send-bulk``: CSV rows in, one outcome row out per input row.

Each outcome is written (and flushed) as soon as it is known, so an interrupted run
leaves a valid CSV; a later run with the same output file sends only the rows it
does not record as ``accepted`` or ``unknown``. Every row carries an idempotency
key (derived from the input file and the row's line, or taken from a column), so a
Gateway with a persistent ledger never sends one row twice either.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import anyio

from mimgw.cli.common import CliError, error_name, may_have_been_sent
from mimgw.errors import InvalidMessageError, MimgwError
from mimgw.gateway import Gateway
from mimgw.ledger import IntentState
from mimgw.models import Message, Receipt

FIELDS: Final = (
    "line",
    "to",
    "reference",
    "outcome",
    "provider",
    "message_id",
    "state",
    "segments",
    "error_kind",
    "error",
    "idempotency_key",
)
"""Columns of the outcome file, one row per input row."""

SETTLED: Final = frozenset({"accepted", "unknown", "queued"})
"""Recorded outcomes a resumed run does not send (or queue) again; ``queued`` rows were
put on a taskiq queue by ``send-bulk --enqueue``."""

INTERRUPTED: Final = "interrupted while in flight: it may have been sent"


@dataclass
class Row:
    line: int
    """Line of the input file where the row starts (the header is line 1)."""
    cells: dict[str, str]
    message: Message | None = None
    error: InvalidMessageError | None = None
    key: str | None = None


@dataclass
class Outcome:
    """What became of one row: a receipt, an error, or ``None`` when interrupted in flight."""

    row: Row
    result: Receipt | MimgwError | None

    @property
    def status(self) -> str:
        if isinstance(self.result, Receipt):
            return "accepted"
        if self.result is None or may_have_been_sent(self.result):
            return "unknown"
        return "failed"

    def record(self) -> dict[str, object]:
        row, result = self.row, self.result
        record: dict[str, object] = {
            "line": row.line,
            "to": row.message.to if row.message else row.cells.get("to", ""),
            "reference": row.message.reference if row.message else row.cells.get("reference", ""),
            "outcome": self.status,
            "idempotency_key": row.key or "",
        }
        if isinstance(result, Receipt):
            record.update(
                provider=result.provider,
                message_id=result.message_id,
                state=result.state.value,
                segments=result.segments,
            )
        elif isinstance(result, MimgwError):
            record.update(
                provider=getattr(result, "provider", ""),
                error_kind=error_name(result),
                error=" ".join(str(result).split()),
            )
        else:
            record.update(error_kind="outcome_unknown", error=INTERRUPTED)
        return record


# -- input -------------------------------------------------------------------------------------


def file_key(path: Path) -> str:
    """A short digest of the file's bytes: the input's identity in derived keys."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def read_rows(path: Path, *, promotional: bool, key_column: str | None) -> list[Row]:
    """Every row of the input CSV, validated one by one (a bad row is that row's error)."""
    try:
        identity = file_key(path)
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(_rows(handle, path, identity, promotional, key_column))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"{path} is not a readable UTF-8 CSV file: {exc}") from None


def _rows(
    handle: IO[str], path: Path, identity: str, promotional: bool, key_column: str | None
) -> Iterator[Row]:
    reader = csv.DictReader(handle)
    columns = {(c or "").strip().lower() for c in reader.fieldnames or []}
    missing = {"to", "text"} - columns
    if missing:
        raise CliError(
            f"{path}: the header needs the columns to,text (missing: "
            f"{', '.join(sorted(missing))}); sender and reference are optional"
        )
    key_name = key_column.strip().lower() if key_column else None
    if key_name is not None and key_name not in columns:
        raise CliError(f"{path}: no column named {key_column!r} for --key-column")
    start = reader.line_num + 1
    for raw in reader:
        cells = {
            (k or "").strip().lower(): (v or "").strip()
            for k, v in raw.items()
            if isinstance(v, str)
        }
        row = Row(line=start, cells=cells)
        start = reader.line_num + 1
        row.key = cells.get(key_name, "") if key_name else f"csv-{identity}-{row.line}"
        try:
            if not row.key:
                raise InvalidMessageError(f"idempotency key: the {key_column!r} cell is empty")
            row.message = Message(
                to=cells.get("to", ""),
                text=cells.get("text", ""),
                sender=cells.get("sender") or None,
                reference=cells.get("reference") or None,
                category="promotional" if promotional else "transactional",
                idempotency_key=row.key,
            )
        except InvalidMessageError as exc:
            row.error = exc
        yield row


# -- output ------------------------------------------------------------------------------------


def read_previous(path: Path) -> dict[int, dict[str, str]]:
    """The rows an earlier run recorded in ``path`` (empty when there is no such file)."""
    if not path.exists():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not set(FIELDS) - {"idempotency_key"} <= set(reader.fieldnames or []):
                raise CliError(
                    f"{path} exists and is not a send-bulk outcome file: choose another --output"
                )
            records: dict[int, dict[str, str]] = {}
            for record in reader:
                line = (record.get("line") or "").strip()
                if line.isdigit() and record.get("outcome") in {*SETTLED, "failed"}:
                    records[int(line)] = {k: v or "" for k, v in record.items() if k}
            return records
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"{path} is not a readable outcome file: {exc}") from None


def check_same_input(rows: Iterable[Row], previous: dict[int, dict[str, str]], path: Path) -> None:
    """Refuse an outcome file that records other numbers than this input has."""
    for row in rows:
        record = previous.get(row.line)
        if record is None or record.get("outcome") not in SETTLED:
            continue
        to = row.message.to if row.message else row.cells.get("to", "")
        if record.get("to") != to:
            raise CliError(
                f"{path} records line {row.line} as sent to {record.get('to')!r}, but the "
                f"input has {to!r} there: it belongs to another input file (choose another "
                "--output, or delete it to send everything again)"
            )


class OutcomeFile:
    """The outcome CSV: rewritten atomically with what is kept, then appended row by row."""

    def __init__(self, path: Path, kept: Iterable[dict[str, str]]) -> None:
        self.path = path
        self.records: dict[int, dict[str, object]] = {int(r["line"]): dict(r) for r in kept}
        self._rewrite(self.records.values())
        try:
            self._handle: IO[str] | None = path.open("a", newline="", encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
        self._writer = csv.DictWriter(self._handle, fieldnames=FIELDS, extrasaction="ignore")

    def _rewrite(self, records: Iterable[dict[str, object]]) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            with temporary.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(records)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            raise CliError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def write(self, outcome: Outcome) -> None:
        record = outcome.record()
        self.records[outcome.row.line] = record
        if self._handle is not None:
            self._writer.writerow(record)
            self._handle.flush()

    def close(self, *, sort: bool) -> None:
        """Close the file; ``sort`` rewrites it in input order (after a complete run)."""
        if self._handle is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        if sort:
            self._rewrite(self.records[line] for line in sorted(self.records))


# -- sending -----------------------------------------------------------------------------------


@dataclass
class Run:
    """Send ``rows`` through ``gateway``, reporting each outcome to ``done`` as it completes.

    The rows go through :meth:`Gateway.stream_bulk`: rows a gateway can take in one
    request go as native batches (``batch=False``: one request per row), each row still
    with its own intent, ledger entry and idempotency key."""

    gateway: Gateway
    concurrency: int
    provider: str | None
    done: Callable[[Outcome], None]
    batch: bool = True
    stop: anyio.Event = field(default_factory=anyio.Event)
    in_flight: dict[int, Row] = field(default_factory=dict)
    """Rows handed to the gateway whose outcome is not known yet (by line)."""

    async def send(self, rows: Iterable[Row]) -> None:
        """Stops taking new rows once ``stop`` is set; rows still in flight when the run is
        cancelled are reported with no result (their outcome is unknown)."""
        taken: dict[int, Row] = {}  # id() of each message handed over -> its row

        def messages() -> Iterator[Message]:
            for row in rows:
                if self.stop.is_set():
                    return
                if row.message is None:
                    self.done(Outcome(row, row.error))
                    continue
                self.in_flight[row.line] = taken[id(row.message)] = row
                yield row.message

        stream = self.gateway.stream_bulk(
            messages(), concurrency=self.concurrency, provider=self.provider, batch=self.batch
        )
        try:
            async with contextlib.aclosing(stream):
                async for message, result in stream:
                    row = taken.pop(id(message))
                    del self.in_flight[row.line]
                    self.done(Outcome(row, result))
        finally:
            with anyio.CancelScope(shield=True):
                await self._abandon()

    async def _abandon(self) -> None:
        """The rows still in flight when the run was cancelled, as the ledger knows them
        (by their idempotency key): accepted with the receipt recorded; unknown when a
        request may have left; unrecorded, so that a re-run sends them, when no send of
        theirs began (no intent holds the key: a batch still waiting for its turn) or
        one provably sent nothing."""
        for row in list(self.in_flight.values()):
            key = row.message.idempotency_key if row.message is not None else None
            if key is None:  # every row has a key; without one nobody can tell
                self.done(Outcome(row, None))
                continue
            try:
                held = await self.gateway.ledger.intent(key)
            except MimgwError:  # the ledger cannot tell: unknown
                self.done(Outcome(row, None))
                continue
            if held is None or held.state is IntentState.NOT_SENT:
                continue
            accepted = held.state is IntentState.ACCEPTED
            self.done(Outcome(row, held.receipt if accepted else None))
        self.in_flight.clear()
