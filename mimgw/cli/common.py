"""What every command shares: exit codes, error names, the gateway to use, output helpers."""

from __future__ import annotations

import argparse
import json
import re
import sys
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from rich.markup import escape

from mimgw.errors import AllProvidersFailedError, ProviderError
from mimgw.gateway import Gateway
from mimgw.models import DeliveryReport, Receipt
from mimgw.simulator import Simulator

SIMULATED_KINDS = ("mimsms_v4", "mimsms_v3", "mimsms_v3_json", "dinisoft", "imiconnect")
"""Every gateway the simulator emulates, in the order the demo and ``--simulator`` use."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_SIM_PORT = 8765


class CliError(Exception):
    """A failure already worded for the user (printed as one line, exit 1)."""

    name = "invalid_input"


class UsageError(Exception):
    """Wrong usage found by the argument parser (exit 2)."""

    def __init__(self, message: str, parser: argparse.ArgumentParser) -> None:
        super().__init__(message)
        self.parser = parser


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self)


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def port(value: str) -> int:
    number = positive_int(value)
    if number > 65535:
        raise argparse.ArgumentTypeError("must be at most 65535")
    return number


# -- error names ----------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_name(exc: BaseException) -> str:
    """The name the CLI prints for an error: the :class:`~mimgw.ErrorKind` value.

    A :class:`~mimgw.ProviderError` is named by its kind (``auth``, ``outcome_unknown``);
    :class:`~mimgw.AllProvidersFailedError` by the kind of its last attempt; any other
    error by its class without ``Error`` (``invalid_message``, ``configuration``).
    """
    if isinstance(exc, ProviderError):
        return exc.kind.value
    if isinstance(exc, AllProvidersFailedError) and exc.last is not None:
        return exc.last.kind.value
    if isinstance(exc, CliError):
        return exc.name
    name = type(exc).__name__
    return _snake(name.removesuffix("Error") or name)


def may_have_been_sent(exc: BaseException) -> bool:
    """True when the message behind ``exc`` may have reached a gateway."""
    flag = getattr(exc, "may_have_been_sent", None)
    if isinstance(flag, bool):
        return flag
    if isinstance(exc, AllProvidersFailedError):
        return any(a.may_have_been_sent for a in exc.attempts)
    return False


def error_data(exc: BaseException) -> dict[str, Any]:
    """An error as JSON-ready data: ``{"error": name, "detail": text, …}``."""
    data: dict[str, Any] = {"error": error_name(exc), "detail": str(exc)}
    if isinstance(exc, ProviderError):
        data.update(provider=exc.provider, code=exc.code)
    if isinstance(exc, AllProvidersFailedError):
        data["attempts"] = [
            {"provider": a.provider, "error": a.kind.value, "code": a.code, "detail": a.detail}
            for a in exc.attempts
        ]
    if isinstance(exc, ProviderError | AllProvidersFailedError):
        data["may_have_been_sent"] = may_have_been_sent(exc)
    return data


def print_json(data: Any) -> None:
    """One JSON document on stdout (unwrapped, so scripts can parse it)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str, indent=2) + "\n")
    sys.stdout.flush()


# -- the gateway -----------------------------------------------------------------------------


def add_gateway_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("gateway")
    group.add_argument("--config", type=Path, metavar="PATH", help="TOML configuration file")
    group.add_argument("--env-file", type=Path, metavar="PATH", help=".env file with MIMGW_ keys")
    group.add_argument("--provider", metavar="NAME", help="use only this configured provider")
    group.add_argument(
        "--simulator",
        action="store_true",
        help="use the built-in in-process simulator of every gateway (no credentials)",
    )


async def open_gateway(args: argparse.Namespace, stack: AsyncExitStack) -> Gateway:
    """The gateway the options ask for, opened inside ``stack``."""
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


# -- lines -----------------------------------------------------------------------------------


def receipt_line(receipt: Receipt) -> str:
    return (
        f"{escape(receipt.provider)} accepted [bold]{escape(receipt.message_id)}[/] "
        f"to {receipt.to} ({receipt.segments} {receipt.encoding} segment"
        f"{'s' if receipt.segments != 1 else ''}, {receipt.state.value})"
    )


def report_line(report: DeliveryReport) -> str:
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


def money(amount: Decimal, currency: str | None) -> str:
    return f"{amount:,.2f}" + (f" {currency}" if currency else "")


def error_line(exc: BaseException) -> str:
    return f"[red]error[/] [bold]{escape(error_name(exc))}[/]: {escape(str(exc))}"


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "SIMULATED_KINDS",
    "CliError",
    "Parser",
    "UsageError",
    "add_gateway_options",
    "error_data",
    "error_line",
    "error_name",
    "may_have_been_sent",
    "money",
    "open_gateway",
    "port",
    "positive_int",
    "print_json",
    "receipt_line",
    "report_line",
]
