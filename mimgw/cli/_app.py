"""The parser and the runner behind :func:`mimgw.cli.main` (imports rich)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from mimgw import __version__
from mimgw.cli import demo, info, ledger, send, simulate
from mimgw.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    Parser,
    UsageError,
    error_data,
    error_line,
    print_json,
)
from mimgw.errors import MimgwError

MODULES = (send, info, simulate, demo, ledger)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mimgw",
        description="Send SMS through Bangladeshi gateways (MiMSMS, DiniSoft, IMIconnect).",
    )
    parser.add_argument("--version", action="version", version=f"mimgw {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what the library does (debug level)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for module in MODULES:
        module.register(commands)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in arguments
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:
        if wants_json:
            print_json({"error": "usage", "detail": str(exc)})
        else:
            exc.parser.print_usage(sys.stderr)
            sys.stderr.write(f"{exc.parser.prog}: error: {exc}\n")
        return EXIT_USAGE
    json_output = bool(getattr(args, "json", False))
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
        if getattr(args, "sync", False):  # simulate: uvicorn runs its own event loop
            code: int = args.handler(args, out)
        else:
            code = asyncio.run(args.handler(args, out))
        return code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        return EXIT_INTERRUPTED
    except (MimgwError, CliError) as exc:
        if json_output:
            print_json(error_data(exc))
        else:
            err.print(error_line(exc))
        return EXIT_FAILED
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if json_output:
            print_json({"error": "unexpected", "detail": type(exc).__name__})
        elif args.debug:
            err.print_exception()
        else:
            err.print(
                f"[red]unexpected error[/] [bold]{escape(type(exc).__name__)}[/] "
                "(run with --debug for the traceback)"
            )
        return EXIT_FAILED
    finally:
        library_log.removeHandler(log_handler)
        library_log.setLevel(previous_level)
