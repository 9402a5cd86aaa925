"""``balance``, ``status`` and ``providers``: what the gateways have and can do."""

from __future__ import annotations

import argparse
from contextlib import AsyncExitStack

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mimgw.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_gateway_options,
    error_data,
    error_name,
    money,
    open_gateway,
    print_json,
    report_line,
)
from mimgw.errors import MimgwError, ProviderError
from mimgw.models import Balance
from mimgw.providers import PROVIDER_CLASSES, Provider


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    balance = commands.add_parser("balance", help="show account balances")
    add_gateway_options(balance)
    balance.add_argument("--json", action="store_true", help="print JSON")
    balance.set_defaults(handler=cmd_balance)

    status = commands.add_parser("status", help="delivery status of one message")
    add_gateway_options(status)
    status.add_argument("message_id", help="the gateway's message id from the receipt")
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.set_defaults(handler=cmd_status)

    providers = commands.add_parser("providers", help="what every supported gateway can do")
    providers.add_argument("--json", action="store_true", help="print JSON")
    providers.set_defaults(handler=cmd_providers)


async def cmd_balance(args: argparse.Namespace, out: Console) -> int:
    async with AsyncExitStack() as stack:
        gateway = await open_gateway(args, stack)
        results: dict[str, Balance | MimgwError]
        if args.provider is not None:
            results = {args.provider: await gateway.balance(provider=args.provider)}
        else:
            results = dict(await gateway.balances())
    hard_failures = sum(
        1 for r in results.values() if isinstance(r, MimgwError) and not _unsupported(r)
    )
    if args.json:
        print_json(
            {
                name: (
                    {"amount": str(r.amount), "currency": r.currency}
                    if isinstance(r, Balance)
                    else error_data(r)
                )
                for name, r in results.items()
            }
        )
        return EXIT_FAILED if hard_failures else EXIT_OK
    table = Table(title="balances", title_justify="left")
    table.add_column("provider")
    table.add_column("balance", justify="right")
    table.add_column("note")
    for name, result in results.items():
        if isinstance(result, Balance):
            table.add_row(escape(name), money(result.amount, result.currency), "")
        elif _unsupported(result):
            table.add_row(escape(name), "[dim]–[/]", "[dim]no balance endpoint[/]")
        else:
            table.add_row(escape(name), "[red]error[/]", f"[red]{escape(error_name(result))}[/]")
    out.print(table)
    return EXIT_FAILED if hard_failures else EXIT_OK


def _unsupported(result: object) -> bool:
    return isinstance(result, ProviderError) and result.kind.value == "unsupported"


async def cmd_status(args: argparse.Namespace, out: Console) -> int:
    async with AsyncExitStack() as stack:
        gateway = await open_gateway(args, stack)
        report = await gateway.status(args.message_id, provider=args.provider)
    if args.json:
        print_json(report.model_dump(mode="json", exclude={"raw"}))
    else:
        out.print(report_line(report))
    return EXIT_OK


# -- providers -------------------------------------------------------------------------------


def provider_classes() -> list[type[Provider]]:
    """Every provider class of mimgw, in the order the documentation lists them."""
    return list(PROVIDER_CLASSES.values())


CAPABILITY_ROWS = (
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
"""(capability attribute, label) in the order the table and the docs show them."""


async def cmd_providers(args: argparse.Namespace, out: Console) -> int:
    classes = provider_classes()
    if not classes:
        raise CliError("no provider backends are installed")
    if args.json:
        print_json({cls.kind: cls.capabilities.as_dict() for cls in classes})
        return EXIT_OK
    table = Table(
        title="gateway capabilities", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("", no_wrap=True)
    for cls in classes:
        table.add_column(cls.kind, justify="center", no_wrap=True)
    caps = [cls.capabilities.as_dict() for cls in classes]
    for key, label in CAPABILITY_ROWS:
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
