"""``mimgw ledger unresolved|resolve``: the messages whose outcome nobody knows, settled by hand."""

from __future__ import annotations

import argparse
import re
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mimgw.cli.common import EXIT_OK, CliError, add_gateway_options, open_gateway, print_json

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h`` or ``1d``."""
    match = _DURATION.match(value.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration such as 90s, 15m, 2h or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2)])


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = commands.add_parser(
        "ledger",
        help="messages whose outcome is unknown, and settling them",
        description="Read and settle the write-ahead intents of a persistent ledger "
        "(configure one with MIMGW_LEDGER__…; the in-memory default forgets at exit).",
    )
    actions = ledger.add_subparsers(dest="action", metavar="ACTION", parser_class=type(ledger))
    actions.required = True

    unresolved = actions.add_parser(
        "unresolved", help="sends nobody knows the outcome of (in flight or unknown)"
    )
    add_gateway_options(unresolved)
    unresolved.add_argument(
        "--older-than", type=duration, metavar="AGE", help="only those at least this old (15m)"
    )
    unresolved.add_argument("--json", action="store_true", help="print JSON")
    unresolved.set_defaults(handler=cmd_unresolved)

    resolve = actions.add_parser(
        "resolve",
        help="settle one unknown send after checking the gateway's own records",
        description="Settle an unresolved send: --not-sent when the gateway has no trace "
        "of it (its idempotency key is then free to send again), --sent when it took it.",
    )
    add_gateway_options(resolve)
    resolve.add_argument("ref", help="the intent id or the idempotency key")
    outcome = resolve.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--sent", action="store_true", help="the gateway took it")
    outcome.add_argument("--not-sent", action="store_true", help="the gateway never got it")
    resolve.add_argument("--sent-via", metavar="PROVIDER", help="with --sent: which gateway")
    resolve.add_argument("--message-id", metavar="ID", help="with --sent: the gateway's id")
    resolve.add_argument("--note", help="who checked what (kept with the intent)")
    resolve.add_argument("--json", action="store_true", help="print JSON")
    resolve.set_defaults(handler=cmd_resolve)


def _intent_data(intent: Any) -> dict[str, Any]:
    data: dict[str, Any] = intent.model_dump(mode="json")
    return data


async def cmd_unresolved(args: argparse.Namespace, out: Console) -> int:
    async with AsyncExitStack() as stack:
        gateway = await open_gateway(args, stack)
        intents = await gateway.ledger.unresolved(older_than=args.older_than)
    if args.json:
        print_json([_intent_data(i) for i in intents])
        return EXIT_OK
    if not intents:
        out.print("no unresolved sends")
        return EXIT_OK
    table = Table(title=f"{len(intents)} unresolved send(s)", title_justify="left")
    for column in ("intent", "key", "to", "state", "since", "tried", "last error"):
        table.add_column(column, overflow="fold")
    for intent in intents:
        tried = ", ".join(
            f"{a.provider} ({a.kind.value if a.kind else 'accepted'})" for a in intent.attempts
        )
        table.add_row(
            escape(intent.id),
            escape(intent.key or ""),
            intent.to,
            intent.state.value,
            intent.created_at.isoformat(timespec="seconds"),
            escape(tried),
            escape(intent.error or ""),
        )
    out.print(table)
    out.print(
        "check each with the gateway (its portal or delivery reports), then "
        "[bold]mimgw ledger resolve ID --sent|--not-sent[/]"
    )
    return EXIT_OK


async def cmd_resolve(args: argparse.Namespace, out: Console) -> int:
    if (args.sent_via or args.message_id) and not args.sent:
        raise CliError("--sent-via and --message-id go with --sent")
    async with AsyncExitStack() as stack:
        gateway = await open_gateway(args, stack)
        resolve = getattr(gateway, "resolve", None) or gateway.ledger.resolve
        intent = await resolve(
            args.ref,
            sent=bool(args.sent),
            provider=args.sent_via,
            message_id=args.message_id,
            note=args.note,
        )
    if args.json:
        print_json(_intent_data(intent))
    else:
        out.print(f"[green]✓[/] intent {escape(intent.id)} is now {intent.state.value}")
    return EXIT_OK
