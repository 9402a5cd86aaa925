"""``send`` and ``send-bulk``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from mimgw.cli import enqueue
from mimgw.cli.bulk import (
    SETTLED,
    Outcome,
    OutcomeFile,
    Run,
    check_same_input,
    read_previous,
    read_rows,
)
from mimgw.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_gateway_options,
    open_gateway,
    positive_int,
    print_json,
    receipt_line,
)
from mimgw.models import Receipt


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser("send", help="send one message", description="Send one SMS.")
    add_gateway_options(send)
    send.add_argument("to", help="destination number (01XXXXXXXXX, 8801…, +8801…)")
    send.add_argument("text", help="message text (Bangla is fine)")
    send.add_argument("--sender", help="sender id for this message")
    send.add_argument("--reference", help="your correlation id (generated when absent)")
    send.add_argument("--idempotency-key", metavar="KEY", help="send at most once per key")
    send.add_argument("--promotional", action="store_true", help="send as a promotional message")
    send.add_argument("--json", action="store_true", help="print the receipt (or error) as JSON")
    send.set_defaults(handler=cmd_send)

    bulk = commands.add_parser(
        "send-bulk",
        help="send the messages of a CSV file",
        description="Send every row of a CSV file with columns to,text[,sender,reference]. "
        "Each row's outcome is written to the output file as it completes; running the "
        "same command again sends only the rows not yet recorded as accepted or unknown.",
    )
    add_gateway_options(bulk)
    bulk.add_argument("csv", type=Path, help="input CSV (UTF-8, header row required)")
    bulk.add_argument(
        "--output",
        "-o",
        type=Path,
        help="outcome CSV, one row per input row, also the record a re-run resumes from "
        "(default: INPUT.outcomes.csv next to the input)",
    )
    bulk.add_argument("--concurrency", type=positive_int, help="requests in flight at once")
    bulk.add_argument(
        "--no-batch",
        dest="batch",
        action="store_false",
        help="one request per row, even where the gateway takes many rows in one request",
    )
    bulk.add_argument(
        "--key-column",
        metavar="COLUMN",
        help="take each row's idempotency key from this column (default: derived from the "
        "input file's contents and the row's line)",
    )
    bulk.add_argument("--promotional", action="store_true", help="send as promotional messages")
    enqueue.add_options(bulk)
    bulk.set_defaults(handler=cmd_send_bulk)


async def cmd_send(args: argparse.Namespace, out: Console) -> int:
    async with AsyncExitStack() as stack:
        gateway = await open_gateway(args, stack)
        receipt = await gateway.send(
            args.to,
            args.text,
            sender=args.sender,
            reference=args.reference,
            category="promotional" if args.promotional else "transactional",
            idempotency_key=args.idempotency_key,
            provider=args.provider,
        )
    if args.json:
        print_json(receipt.model_dump(mode="json", exclude={"raw"}))
    else:
        out.print("[green]✓[/] " + receipt_line(receipt))
    return EXIT_OK


class RateColumn(ProgressColumn):
    """Messages per second over the run so far."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("– msg/s" if speed is None else f"{speed:,.1f} msg/s", style="cyan")


@contextmanager
def _interrupts(on_first: Callable[[], None]) -> Iterator[list[int]]:
    """First Ctrl-C calls ``on_first`` (stop taking rows, finish those in flight); the
    second cancels the run (rows still in flight are recorded as unknown)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    count = [0]

    def handler() -> None:
        count[0] += 1
        if count[0] == 1:
            on_first()
        elif task is not None:
            task.cancel()

    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
        yield count
        return
    try:
        yield count
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)


async def cmd_send_bulk(args: argparse.Namespace, out: Console) -> int:
    output: Path = args.output or args.csv.with_name(args.csv.name + ".outcomes.csv")
    rows = read_rows(args.csv, promotional=args.promotional, key_column=args.key_column)
    if not rows:
        out.print(f"{escape(str(args.csv))} has no rows to send")
        return EXIT_OK
    previous = read_previous(output)
    check_same_input(rows, previous, output)
    kept = {line: r for line, r in previous.items() if r.get("outcome") in SETTLED}
    pending = [row for row in rows if row.line not in kept]
    if kept:
        out.print(
            f"resuming from {escape(str(output))}: {len(kept)} row(s) already recorded as "
            f"accepted, unknown or queued are not sent again"
        )
    if args.enqueue:
        return await enqueue.enqueue_rows(args, out, rows, pending, kept, output)
    counts: Counter[str] = Counter()
    via: Counter[str] = Counter()
    segments = [0]
    failures: list[Outcome] = []
    started = time.perf_counter()
    interrupted = False
    async with AsyncExitStack() as stack:
        gateway = await open_gateway(args, stack)
        outcomes = OutcomeFile(output, (kept[line] for line in sorted(kept)))
        progress = Progress(
            TextColumn("[bold]sending"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failed]} failed"),
            console=out,
            transient=False,
            refresh_per_second=8,
        )
        bar = progress.add_task("send", total=len(pending), failed=0)

        def done(outcome: Outcome) -> None:
            outcomes.write(outcome)
            counts[outcome.status] += 1
            if isinstance(outcome.result, Receipt):
                via[outcome.result.provider] += 1
                segments[0] += outcome.result.segments
            if outcome.status != "accepted":
                failures.append(outcome)
            progress.update(bar, advance=1, failed=len(failures))

        run = Run(
            gateway=gateway,
            concurrency=args.concurrency or gateway.default_concurrency,
            provider=args.provider,
            done=done,
            batch=args.batch,
        )

        def stop() -> None:
            run.stop.set()
            out.print(
                f"[yellow]stopping[/]: finishing {len(run.in_flight)} message(s) in flight "
                "(Ctrl-C again to abandon them; they are then recorded as unknown)"
            )

        try:
            with progress, _interrupts(stop) as presses:
                await run.send(pending)
        except asyncio.CancelledError:
            if not presses[0]:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            interrupted = True
        finally:
            interrupted = interrupted or run.stop.is_set()
            outcomes.close(sort=not interrupted)
    elapsed = time.perf_counter() - started
    _summary(out, len(rows), kept, counts, via, segments[0], failures, elapsed, output)
    if interrupted:
        out.print(
            f"[yellow]interrupted[/]: run the same command again to send the "
            f"{len(rows) - len(outcomes.records)} row(s) not yet recorded"
        )
        return EXIT_INTERRUPTED
    settled_badly = sum(1 for r in kept.values() if r.get("outcome") == "unknown")
    return EXIT_OK if not failures and not settled_badly else EXIT_FAILED


def _summary(
    out: Console,
    rows: int,
    kept: dict[int, dict[str, str]],
    counts: Counter[str],
    via: Counter[str],
    segments: int,
    failures: list[Outcome],
    elapsed: float,
    output: Path,
) -> None:
    sent = sum(counts.values())
    table = Table(title="send-bulk summary", show_header=False, title_justify="left")
    table.add_row("rows", str(rows))
    if kept:
        table.add_row("recorded earlier", str(len(kept)))
    table.add_row("accepted", f"[green]{counts['accepted']}[/]")
    for status, colour in (("unknown", "yellow"), ("failed", "red")):
        table.add_row(status, f"[{colour}]{counts[status]}[/]" if counts[status] else "0")
    table.add_row("segments", str(segments))
    for name, count in sorted(via.items()):
        table.add_row(f"via {escape(name)}", str(count))
    table.add_row("time", f"{elapsed:.2f} s ({sent / elapsed if elapsed else 0:,.1f} rows/s)")
    out.print(table)
    for outcome in failures[:10]:
        record = outcome.record()
        out.print(
            f"[red]✗[/] line {record['line']} ({escape(str(record['to']))}): "
            f"[bold]{escape(str(record['error_kind']))}[/] {escape(str(record['error']))}"
        )
    if len(failures) > 10:
        out.print(f"… and {len(failures) - 10} more, see the outcome file")
    out.print(f"outcomes written to {escape(str(output))}")
