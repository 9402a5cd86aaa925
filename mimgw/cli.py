"""The ``mimgw`` command line: send, bulk-send, balances, statuses, the simulator and a demo.

Needs the ``cli`` extra: ``pip install "mimgw[cli]"``. Exit codes: 0 success, 1 a
failure (printed as one red line naming the error kind), 2 wrong usage.
"""

from __future__ import annotations

try:
    from rich import box
    from rich.console import Console
    from rich.logging import RichHandler
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'the mimgw command line needs rich and uvicorn: pip install "mimgw[cli]"'
    ) from _exc

import argparse
import asyncio
import csv
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from mimgw import __version__
from mimgw.errors import InvalidMessageError, MimgwError, ProviderError
from mimgw.gateway import Gateway
from mimgw.models import Balance, DeliveryReport, InboundMessage, Message, Receipt
from mimgw.providers import PROVIDER_CLASSES, Provider
from mimgw.simulator import Simulator

__all__ = ["main"]

SIMULATED_KINDS = ("mimsms_v4", "mimsms_v3", "mimsms_v3_json", "dinisoft", "imiconnect")
"""Every gateway the simulator emulates, in the order the demo and ``--simulator`` use."""

DEFAULT_SIM_PORT = 8765
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CliError(Exception):
    """A failure already worded for the user (printed as one line, exit 1)."""


# -- argument parsing ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _port(value: str) -> int:
    number = _positive_int(value)
    if number > 65535:
        raise argparse.ArgumentTypeError("must be at most 65535")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mimgw",
        description="Send SMS through Bangladeshi gateways (MiMSMS, DiniSoft, IMIconnect).",
    )
    parser.add_argument("--version", action="version", version=f"mimgw {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what the library does (debug level)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    gateway_options = _Parser(add_help=False)
    group = gateway_options.add_argument_group("gateway")
    group.add_argument("--config", type=Path, metavar="PATH", help="TOML configuration file")
    group.add_argument("--env-file", type=Path, metavar="PATH", help=".env file with MIMGW_ keys")
    group.add_argument("--provider", metavar="NAME", help="use only this configured provider")
    group.add_argument(
        "--simulator",
        action="store_true",
        help="use the built-in in-process simulator of every gateway (no credentials)",
    )

    send = commands.add_parser(
        "send", parents=[gateway_options], help="send one message", description="Send one SMS."
    )
    send.add_argument("to", help="destination number (01XXXXXXXXX, 8801…, +8801…)")
    send.add_argument("text", help="message text (Bangla is fine)")
    send.add_argument("--sender", help="sender id for this message")
    send.add_argument("--reference", help="your correlation id (generated when absent)")
    send.add_argument("--promotional", action="store_true", help="send as a promotional message")
    send.add_argument("--json", action="store_true", help="print the receipt as JSON")

    bulk = commands.add_parser(
        "send-bulk",
        parents=[gateway_options],
        help="send the messages of a CSV file",
        description="Send every row of a CSV file with columns to,text[,sender,reference].",
    )
    bulk.add_argument("csv", type=Path, help="input CSV (UTF-8, header row required)")
    bulk.add_argument("--output", "-o", type=Path, help="write one outcome per row to this CSV")
    bulk.add_argument("--concurrency", type=_positive_int, help="requests in flight at once")
    bulk.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=200,
        help="messages handed to the gateway per step of the progress bar (default 200)",
    )
    bulk.add_argument("--promotional", action="store_true", help="send as promotional messages")

    balance = commands.add_parser(
        "balance", parents=[gateway_options], help="show account balances"
    )
    balance.add_argument("--json", action="store_true", help="print JSON")

    status = commands.add_parser(
        "status", parents=[gateway_options], help="delivery status of one message"
    )
    status.add_argument("message_id", help="the gateway's message id from the receipt")
    status.add_argument("--json", action="store_true", help="print the report as JSON")

    commands.add_parser("providers", help="what every supported gateway can do")

    simulate = commands.add_parser(
        "simulate",
        help="serve the gateway simulator over HTTP",
        description="Serve the emulation of every gateway on a local port (Ctrl-C stops).",
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    simulate.add_argument(
        "--port", type=_port, default=DEFAULT_SIM_PORT, help=f"port ({DEFAULT_SIM_PORT})"
    )
    simulate.add_argument("--seed", type=int, default=0, help="seed of the simulated lifecycle")

    commands.add_parser(
        "demo",
        help="the whole flow against the built-in simulator",
        description="Send, bulk-send, read reports and fail over, against the in-process "
        "simulator: no credentials, no network.",
    )
    return parser


# -- entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = Console(highlight=False, soft_wrap=False)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    log_handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    log_handler.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    library_log = logging.getLogger("mimgw")
    previous_level = library_log.level
    library_log.addHandler(log_handler)
    if args.verbose:
        library_log.setLevel(logging.DEBUG)
    try:
        if args.command == "simulate":  # uvicorn runs its own event loop
            return cmd_simulate(args, out)
        return asyncio.run(_COMMANDS[args.command](args, out))
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        return EXIT_INTERRUPTED
    except MimgwError as exc:
        err.print(f"[red]error[/] [bold]{_kind(exc)}[/]: {escape(str(exc))}")
        return EXIT_FAILED
    except CliError as exc:
        err.print(f"[red]error[/]: {escape(str(exc))}")
        return EXIT_FAILED
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if args.debug:
            err.print_exception()
        else:
            err.print(
                f"[red]unexpected error[/] [bold]{type(exc).__name__}[/] "
                "(run with --debug for the traceback)"
            )
        return EXIT_FAILED
    finally:
        library_log.removeHandler(log_handler)
        library_log.setLevel(previous_level)


def _kind(exc: MimgwError) -> str:
    if isinstance(exc, ProviderError):
        return exc.kind.value
    return type(exc).__name__


# -- gateway commands -------------------------------------------------------------------------


async def _open_gateway(args: argparse.Namespace, stack: AsyncExitStack) -> Gateway:
    if args.simulator:
        if args.config or args.env_file:
            raise CliError("--simulator cannot be combined with --config or --env-file")
        sim = Simulator()
        stack.push_async_callback(sim.aclose)
        gateway = Gateway([sim.provider(kind) for kind in SIMULATED_KINDS])
    else:
        if args.config is not None and not args.config.is_file():
            raise CliError(f"configuration file not found: {args.config}")
        if args.env_file is not None and not args.env_file.is_file():
            raise CliError(f".env file not found: {args.env_file}")
        gateway = Gateway.from_settings(toml=args.config, env_file=args.env_file)
    await stack.enter_async_context(gateway)
    if args.provider is not None and args.provider not in gateway.providers:
        names = ", ".join(gateway.providers) or "none"
        raise CliError(f"no provider named {args.provider!r} (configured: {names})")
    return gateway


async def cmd_send(args: argparse.Namespace, out: Console) -> int:
    async with AsyncExitStack() as stack:
        gateway = await _open_gateway(args, stack)
        receipt = await gateway.send(
            args.to,
            args.text,
            sender=args.sender,
            reference=args.reference,
            category="promotional" if args.promotional else "transactional",
            provider=args.provider,
        )
    if args.json:
        out.print_json(receipt.model_dump_json(exclude={"raw"}))
    else:
        out.print("[green]✓[/] " + _receipt_line(receipt))
    return EXIT_OK


def _receipt_line(receipt: Receipt) -> str:
    return (
        f"{escape(receipt.provider)} accepted [bold]{escape(receipt.message_id)}[/] "
        f"to {receipt.to} ({receipt.segments} {receipt.encoding} segment"
        f"{'s' if receipt.segments != 1 else ''}, {receipt.state.value})"
    )


@dataclass
class _Row:
    line: int
    message: Message | None = None
    error: MimgwError | None = None
    raw: dict[str, str] = field(default_factory=dict)
    outcome: Receipt | MimgwError | None = None


def _read_csv(path: Path, promotional: bool) -> list[_Row]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = {(c or "").strip().lower() for c in reader.fieldnames or []}
            missing = {"to", "text"} - columns
            if missing:
                raise CliError(
                    f"{path}: the header needs the columns to,text (missing: "
                    f"{', '.join(sorted(missing))}); sender and reference are optional"
                )
            rows = []
            for raw in reader:
                cells = {
                    (k or "").strip().lower(): (v or "").strip()
                    for k, v in raw.items()
                    if isinstance(v, str)
                }
                row = _Row(line=reader.line_num, raw=cells)
                try:
                    row.message = Message(
                        to=cells.get("to", ""),
                        text=cells.get("text", ""),
                        sender=cells.get("sender") or None,
                        reference=cells.get("reference") or None,
                        category="promotional" if promotional else "transactional",
                    )
                except InvalidMessageError as exc:
                    row.error = exc
                    row.outcome = exc
                rows.append(row)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"{path} is not a readable UTF-8 CSV file: {exc}") from None
    if not rows:
        raise CliError(f"{path} has no rows to send")
    return rows


async def cmd_send_bulk(args: argparse.Namespace, out: Console) -> int:
    rows = _read_csv(args.csv, args.promotional)
    pending = [r for r in rows if r.message is not None]
    started = time.perf_counter()
    async with AsyncExitStack() as stack:
        gateway = await _open_gateway(args, stack)
        with Progress(
            TextColumn("[bold]sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            console=out,
            transient=False,
        ) as progress:
            task = progress.add_task("send", total=len(rows), failed=len(rows) - len(pending))
            progress.advance(task, len(rows) - len(pending))
            for start in range(0, len(pending), args.chunk_size):
                chunk = pending[start : start + args.chunk_size]
                result = await gateway.send_bulk(
                    [r.message for r in chunk if r.message is not None],
                    concurrency=args.concurrency,
                    provider=args.provider,
                )
                for row, outcome in zip(chunk, result.outcomes, strict=True):
                    row.outcome = outcome
                failed = sum(1 for r in rows if isinstance(r.outcome, MimgwError))
                progress.update(task, advance=len(chunk), failed=failed)
    elapsed = time.perf_counter() - started

    accepted = [r for r in rows if isinstance(r.outcome, Receipt)]
    failed_rows = [r for r in rows if isinstance(r.outcome, MimgwError)]
    summary = Table(title="send-bulk summary", show_header=False, title_justify="left")
    summary.add_row("rows", str(len(rows)))
    summary.add_row("accepted", f"[green]{len(accepted)}[/]")
    summary.add_row("failed", f"[red]{len(failed_rows)}[/]" if failed_rows else "0")
    summary.add_row(
        "segments", str(sum(r.outcome.segments for r in rows if isinstance(r.outcome, Receipt)))
    )
    by_provider: dict[str, int] = {}
    for row in accepted:
        assert isinstance(row.outcome, Receipt)
        by_provider[row.outcome.provider] = by_provider.get(row.outcome.provider, 0) + 1
    for name, count in sorted(by_provider.items()):
        summary.add_row(f"via {escape(name)}", str(count))
    summary.add_row("time", f"{elapsed:.2f} s")
    out.print(summary)
    for row in failed_rows[:10]:
        assert isinstance(row.outcome, MimgwError)
        out.print(
            f"[red]✗[/] line {row.line} ({escape(row.raw.get('to', ''))}): "
            f"[bold]{_kind(row.outcome)}[/] {escape(str(row.outcome))}"
        )
    if len(failed_rows) > 10:
        out.print(f"… and {len(failed_rows) - 10} more failures")
    if args.output is not None:
        _write_outcomes(args.output, rows)
        out.print(f"outcomes written to {escape(str(args.output))}")
    return EXIT_OK if not failed_rows else EXIT_FAILED


def _write_outcomes(path: Path, rows: list[_Row]) -> None:
    fields = [
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
    ]
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for row in rows:
                outcome = row.outcome
                record: dict[str, object] = {
                    "line": row.line,
                    "to": row.message.to if row.message else row.raw.get("to", ""),
                    "reference": row.message.reference if row.message else "",
                }
                if isinstance(outcome, Receipt):
                    record.update(
                        outcome="accepted",
                        provider=outcome.provider,
                        message_id=outcome.message_id,
                        state=outcome.state.value,
                        segments=outcome.segments,
                    )
                elif isinstance(outcome, MimgwError):
                    record.update(
                        outcome="failed",
                        provider=getattr(outcome, "provider", ""),
                        error_kind=_kind(outcome),
                        error=str(outcome),
                    )
                writer.writerow(record)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


async def cmd_balance(args: argparse.Namespace, out: Console) -> int:
    async with AsyncExitStack() as stack:
        gateway = await _open_gateway(args, stack)
        results: dict[str, Balance | MimgwError]
        if args.provider is not None:
            results = {args.provider: await gateway.balance(provider=args.provider)}
        else:
            results = dict(await gateway.balances())
    if args.json:
        out.print_json(
            data={
                name: (
                    {"amount": str(r.amount), "currency": r.currency}
                    if isinstance(r, Balance)
                    else {"error": _kind(r), "detail": str(r)}
                )
                for name, r in results.items()
            }
        )
        return EXIT_OK
    table = Table(title="balances", title_justify="left")
    table.add_column("provider")
    table.add_column("balance", justify="right")
    table.add_column("note")
    hard_failures = 0
    for name, result in results.items():
        if isinstance(result, Balance):
            table.add_row(escape(name), _money(result.amount, result.currency), "")
        elif isinstance(result, ProviderError) and result.kind.value == "unsupported":
            table.add_row(escape(name), "[dim]–[/]", "[dim]no balance endpoint[/]")
        else:
            hard_failures += 1
            table.add_row(escape(name), "[red]error[/]", f"[red]{escape(_kind(result))}[/]")
    out.print(table)
    return EXIT_FAILED if hard_failures else EXIT_OK


def _money(amount: Decimal, currency: str | None) -> str:
    return f"{amount:,.2f}" + (f" {currency}" if currency else "")


async def cmd_status(args: argparse.Namespace, out: Console) -> int:
    async with AsyncExitStack() as stack:
        gateway = await _open_gateway(args, stack)
        report = await gateway.status(args.message_id, provider=args.provider)
    if args.json:
        out.print_json(report.model_dump_json(exclude={"raw"}))
    else:
        out.print(_report_line(report))
    return EXIT_OK


def _report_line(report: DeliveryReport) -> str:
    colour = "green" if report.state.value == "delivered" else "red" if report.failed else "yellow"
    parts = [
        f"{escape(report.provider)} [bold]{escape(report.message_id)}[/]: "
        f"[{colour}]{report.state.value}[/]"
    ]
    if report.reason:
        parts.append(f"({escape(report.reason)})")
    if report.provider_status:
        parts.append(f"[dim]gateway status {escape(report.provider_status)}[/]")
    if report.retries_allowed:
        parts.append(f"[dim]retries allowed: {report.retries_allowed}[/]")
    return " ".join(parts)


# -- providers, simulate -------------------------------------------------------------------


def provider_classes() -> list[type[Provider]]:
    """Every provider class of mimgw, in the order the documentation lists them."""
    return list(PROVIDER_CLASSES.values())


_CAPABILITY_ROWS = (
    ("send", "send"),
    ("batch", "batch"),
    ("max_batch", "batch max"),
    ("balance", "balance"),
    ("status", "status pull"),
    ("reports", "reports pull"),
    ("webhook", "webhook push"),
    ("schedule", "scheduling"),
    ("promotional", "promotional"),
    ("parse_dlr", "parse_dlr"),
)


async def cmd_providers(args: argparse.Namespace, out: Console) -> int:
    classes = provider_classes()
    if not classes:
        raise CliError("no provider backends are installed")
    table = Table(
        title="gateway capabilities", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("", no_wrap=True)
    for cls in classes:
        table.add_column(cls.kind, justify="center", no_wrap=True)
    caps = [cls.capabilities.as_dict() for cls in classes]
    for key, label in _CAPABILITY_ROWS:
        table.add_row(label, *(_cell(c.get(key)) for c in caps))
    out.print(table)
    for cls in classes:
        if cls.capabilities.notes:
            out.print(f"[bold]{cls.kind}[/]: {escape(cls.capabilities.notes)}")
    return EXIT_OK


def _cell(value: object) -> str:
    if value is True:
        return "[green]yes[/]"
    if value is False:
        return "[dim]no[/]"
    if value is None:
        return "[dim]–[/]"
    return str(value)


def _rebase(url: str, base_url: str) -> str:
    """``url`` with its scheme and host replaced by those of ``base_url``."""
    parts = urlsplit(url)
    return base_url + parts.path + (f"?{parts.query}" if parts.query else "")


def _serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn until interrupted (a seam for tests)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")


def cmd_simulate(args: argparse.Namespace, out: Console) -> int:
    """Serve the simulator; runs uvicorn in the main thread so Ctrl-C stops it cleanly."""
    sim = Simulator(seed=args.seed)
    host = f"[{args.host}]" if ":" in args.host else args.host
    base_url = f"http://{host}:{args.port}"
    table = Table(title=f"simulated gateways at {base_url}", title_justify="left")
    table.add_column("gateway")
    table.add_column("provider settings (simulator credentials, not real ones)", overflow="fold")
    for kind in SIMULATED_KINDS:
        gateway = sim.gateways[kind]
        settings = []
        for key, value in gateway.provider_kwargs().items():
            if key.endswith("_url") and isinstance(value, str):
                settings.append(f"{key}={_rebase(value, base_url)}")
            elif key not in ("client", "name") and isinstance(value, str | int | float):
                settings.append(f"{key}={value}")
        table.add_row(kind, escape(", ".join(settings)))
    out.print(table)
    out.print(
        "Point a provider's [bold]base_url[/] at the address above, e.g. "
        f'[bold]MimSmsV4(..., base_url="{base_url}")[/]. Ctrl-C stops.'
    )
    _serve(sim, args.host, args.port)
    return EXIT_OK


# -- demo --------------------------------------------------------------------------------------


@dataclass
class _Demo:
    out: Console
    sim: Simulator
    failures: list[str] = field(default_factory=list)
    stack: AsyncExitStack | None = None
    _providers: dict[str, Provider] = field(default_factory=dict)

    async def provider(self, kind: str) -> Provider:
        """The simulated provider of ``kind``, opened once for the whole demo."""
        if kind not in self._providers:
            provider = self.sim.provider(kind)
            if self.stack is not None:
                await self.stack.enter_async_context(provider)
            self._providers[kind] = provider
        return self._providers[kind]

    async def section(self, title: str, body: Callable[[], Awaitable[None]]) -> None:
        self.out.rule(f"[bold]{escape(title)}")
        try:
            await body()
        except Exception as exc:  # one backend's problem must not hide the others
            detail = f"{_kind(exc)}: {exc}" if isinstance(exc, MimgwError) else type(exc).__name__
            self.out.print(f"[red]✗ {escape(title)} failed: {escape(detail)}[/]")
            self.failures.append(title)

    def ok(self, text: str) -> None:
        self.out.print(f"[green]✓[/] {text}")

    def info(self, text: str) -> None:
        self.out.print(f"  {text}")


DEMO_NUMBERS = ("01712345678", "+8801812345679", "8801912345670", "01512-345671")
BANGLA = "আপনার যাচাই কোড 4711"


async def cmd_demo(args: argparse.Namespace, out: Console) -> int:
    started = time.perf_counter()
    sim = Simulator(seed=7)
    demo = _Demo(out=out, sim=sim)
    out.print(
        "[bold]mimgw demo[/]: every gateway emulated in-process (no credentials, no network)\n"
    )
    receipts: dict[str, Receipt] = {}
    try:
        async with AsyncExitStack() as stack:
            demo.stack = stack
            for kind in SIMULATED_KINDS:
                await demo.section(f"{kind}: send", _demo_send(demo, kind, receipts))
            await demo.section("mimsms_v4: bulk", _demo_v4_bulk(demo))
            await demo.section("mimsms_v4: DLR classification", _demo_parse_dlr(demo))
            await demo.section(
                "mimsms_v3_json: delivery reports (read once)", _demo_v3_reports(demo, receipts)
            )
            await demo.section("dinisoft: delivery status", _demo_dinisoft(demo, receipts))
            await demo.section("imiconnect: delivery report pushed", _demo_imiconnect(demo))
            await demo.section("gateway: failover", _demo_failover(demo))
    finally:
        await sim.aclose()
    elapsed = time.perf_counter() - started
    out.rule()
    if demo.failures:
        out.print(
            f"[red]demo finished with {len(demo.failures)} failed section(s)[/]: "
            f"{escape(', '.join(demo.failures))}"
        )
        return EXIT_FAILED
    out.print(f"[green]demo complete[/] in {elapsed:.2f} s")
    return EXIT_OK


def _demo_send(
    demo: _Demo, kind: str, receipts: dict[str, Receipt]
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        provider = await demo.provider(kind)
        before = await provider.balance() if provider.capabilities.balance else None
        english = await provider.send(DEMO_NUMBERS[0], "Your order 1042 has shipped.")
        demo.ok(_receipt_line(english))
        bangla = await provider.send(DEMO_NUMBERS[1], BANGLA)
        demo.ok(_receipt_line(bangla))
        receipts[provider.kind] = english
        if before is not None:
            after = await provider.balance()
            demo.info(
                f"balance {_money(before.amount, before.currency)} → "
                f"{_money(after.amount, after.currency)}"
            )
        else:
            demo.info("[dim]no balance endpoint on this gateway[/]")

    return run


def _demo_v4_bulk(demo: _Demo) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        provider = await demo.provider("mimsms_v4")
        same = [Message(to=n, text="Flash sale: 20% off today only") for n in DEMO_NUMBERS]
        result = await provider.send_bulk(same)
        demo.ok(f"one-to-many: {len(result.receipts)}/{len(same)} accepted")
        if not result.ok:
            raise CliError(f"{len(result.errors)} one-to-many message(s) failed")
        names = ("Rahim", "Karim", "Nusrat", "Farhana")
        personal = [
            Message(to=n, text=f"প্রিয় {name}, your parcel arrives tomorrow.")
            for n, name in zip(DEMO_NUMBERS, names, strict=True)
        ]
        result = await provider.send_bulk(personal)
        demo.ok(f"personalised: {len(result.receipts)}/{len(personal)} accepted")
        for message, outcome in result.items():
            line = (
                _receipt_line(outcome)
                if isinstance(outcome, Receipt)
                else f"[red]{escape(str(outcome))}[/]"
            )
            demo.info(f"{message.to}: {line}")
        if not result.ok:
            raise CliError(f"{len(result.errors)} personalised message(s) failed")

    return run


def _demo_parse_dlr(demo: _Demo) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        provider = await demo.provider("mimsms_v4")
        parse_dlr = getattr(provider, "parse_dlr", None)
        if parse_dlr is None:
            raise CliError("this provider offers no parse_dlr")
        rows = [
            ("Delivered", None),
            ("Absent subscriber for SM", None),
            ("Barred subscriber", None),
            ("SMS Failed", "Network failure in SMSC Link"),
        ]
        table = Table(show_edge=False)
        for column in ("gateway status", "state", "permanent", "retries allowed"):
            table.add_column(column)
        for status, description in rows:
            report = parse_dlr("demo-1", status, description)
            assert isinstance(report, DeliveryReport)
            table.add_row(
                escape(status + (f" ({description})" if description else "")),
                report.state.value,
                str(report.permanent),
                str(report.retries_allowed),
            )
        demo.out.print(table)

    return run


def _demo_v3_reports(demo: _Demo, receipts: dict[str, Receipt]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        provider = await demo.provider("mimsms_v3_json")
        if "mimsms_v3_json" not in receipts:
            await provider.send(DEMO_NUMBERS[0], "Reports demo")
        demo.sim.clock.advance(120)
        first = await provider.fetch_reports()
        demo.ok(f"first pull: {len(first)} report(s)")
        for report in first:
            demo.info(_report_line(report))
        second = await provider.fetch_reports()
        demo.ok(f"second pull: {len(second)} report(s) — the gateway hands each report out once")
        if not first:
            raise CliError("no reports came back from the first pull")

    return run


def _demo_dinisoft(demo: _Demo, receipts: dict[str, Receipt]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        provider = await demo.provider("dinisoft")
        receipt = receipts.get("dinisoft") or await provider.send(DEMO_NUMBERS[0], "Status demo")
        demo.sim.clock.advance(120)
        report = await provider.status(receipt.message_id)
        demo.ok(_report_line(report))

    return run


def _demo_imiconnect(demo: _Demo) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        provider = await demo.provider("imiconnect")
        gateway = Gateway([provider])
        receipt = await gateway.send(DEMO_NUMBERS[3], "Push demo: your table is ready")
        demo.ok(_receipt_line(receipt))
        received: list[DeliveryReport | InboundMessage] = []

        async def receiver(request: httpx.Request) -> httpx.Response:
            # what mimgw.fastapi's webhook route does, minus the web framework
            items = await gateway.ingest_webhook(provider.name, request.content, request.headers)
            received.extend(items)
            return httpx.Response(200, json={"received": len(items)})

        imi = demo.sim.imiconnect
        async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as pushes:
            imi.push_client = pushes
            imi.notify_url = "https://your-service.invalid/mimgw/webhooks/imiconnect"
            demo.sim.clock.advance(60)
            await imi.push_reports()
            await imi.generate_mo(receipt.to, "STOP")
        for item in received:
            if isinstance(item, DeliveryReport):
                demo.ok("pushed " + _report_line(item))
            else:
                demo.ok(f"inbound from {item.sender}: {escape(item.text)!r}")
        if not any(isinstance(i, DeliveryReport) for i in received):
            raise CliError("no delivery report was pushed")
        report = await gateway.status(receipt.message_id, provider=provider.name)
        demo.info(f"the ledger answers status(): {_report_line(report)}")

    return run


def _demo_failover(demo: _Demo) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        sim = demo.sim
        primary, backup = sim.provider("mimsms_v4"), sim.provider("dinisoft")
        async with Gateway([primary, backup]) as gateway:
            sim.mimsms_v4.force("216")
            demo.info("mimsms_v4 is forced out of credit (code 216)")
            receipt = await gateway.send(DEMO_NUMBERS[2], "Your OTP is 9052")
            if receipt.provider != backup.name:
                raise CliError(f"expected failover to {backup.name}, went to {receipt.provider}")
            demo.ok("failed over → " + _receipt_line(receipt))
            report = await gateway.status(receipt.message_id)
            demo.info(f"ledger: {_report_line(report)}")

    return run


_COMMANDS: dict[str, Callable[[argparse.Namespace, Console], Coroutine[Any, Any, int]]] = {
    "send": cmd_send,
    "send-bulk": cmd_send_bulk,
    "balance": cmd_balance,
    "status": cmd_status,
    "providers": cmd_providers,
    "demo": cmd_demo,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
