"""``mimgw simulate``: serve the gateway simulator over HTTP, and say how to point at it."""

from __future__ import annotations

import argparse
import sys
from typing import Any, get_args
from urllib.parse import urlsplit

from rich.console import Console

from mimgw.cli.common import DEFAULT_SIM_PORT, EXIT_OK, SIMULATED_KINDS, CliError, port
from mimgw.config import (
    DiniSoftSettings,
    IMIconnectSettings,
    MimSmsV3JsonSettings,
    MimSmsV3Settings,
    MimSmsV4Settings,
)
from mimgw.simulator import Simulator
from mimgw.simulator.served import ServedSimulator, serve_app

_SETTINGS = {
    get_args(cls.model_fields["kind"].annotation)[0]: cls
    for cls in (
        MimSmsV4Settings,
        MimSmsV3Settings,
        MimSmsV3JsonSettings,
        DiniSoftSettings,
        IMIconnectSettings,
    )
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="serve the gateway simulator over HTTP",
        description="Serve the emulation of every gateway on a local port and print the "
        "MIMGW_ settings (for a .env file) that point a Gateway at it. Ctrl-C stops.",
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    simulate.add_argument(
        "--port", type=port, default=DEFAULT_SIM_PORT, help=f"port ({DEFAULT_SIM_PORT})"
    )
    simulate.add_argument("--seed", type=int, default=0, help="seed of the simulated lifecycle")
    simulate.add_argument(
        "--push-url",
        metavar="URL",
        help="where the gateways that push (IMIconnect, MiMSMS v3) post delivery reports; "
        "{kind} is replaced by the gateway, e.g. "
        "http://127.0.0.1:8000/mimgw/webhooks/{kind}?token=…",
    )
    simulate.set_defaults(handler=cmd_simulate, sync=True)


def rebase(url: str, base_url: str) -> str:
    """``url`` with its scheme and host replaced by those of ``base_url``."""
    parts = urlsplit(url)
    return base_url + parts.path + (f"?{parts.query}" if parts.query else "")


def env_lines(sim: Simulator, base_url: str) -> list[str]:
    """``MIMGW_PROVIDERS__<NAME>__<FIELD>=value`` lines for every simulated gateway.

    Pasted into a ``.env`` file they make ``Gateway.from_settings()`` use all five
    simulated gateways, in priority order, at ``base_url``.
    """
    lines: list[str] = []
    for kind in SIMULATED_KINDS:
        fields = _SETTINGS[kind].model_fields
        prefix = f"MIMGW_PROVIDERS__{kind.upper()}__"
        lines.append(f"{prefix}KIND={kind}")
        for key, value in sim.gateways[kind].provider_kwargs().items():
            if key not in fields or key in ("name", "kind") or value is None:
                continue
            if not isinstance(value, str | int | float | bool):
                continue
            text = (
                rebase(value, base_url)
                if key.endswith("_url") and isinstance(value, str)
                else value
            )
            lines.append(f"{prefix}{key.upper()}={text}")
    return lines


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn until interrupted (a seam for tests)."""
    try:
        import uvicorn
    except ImportError:
        raise CliError('serving needs uvicorn: pip install "mimgw[cli]"') from None
    uvicorn.run(app, host=host, port=port, log_level="warning")


def build_app(seed: int, push_url: str | None) -> tuple[Simulator, ServedSimulator]:
    """The simulator and the ASGI app to serve (pushing reports to ``push_url`` if given)."""
    app = serve_app(push_url, seed=seed)
    return app.simulator, app


def cmd_simulate(args: argparse.Namespace, out: Console) -> int:
    """Serve the simulator; runs uvicorn in the main thread so Ctrl-C stops it cleanly."""
    sim, app = build_app(args.seed, args.push_url)
    host = f"[{args.host}]" if ":" in args.host else args.host
    base_url = f"http://{host}:{args.port}"
    # plain lines on stdout, no wrapping: they are meant to be pasted into a .env file
    text = [
        f"# mimgw simulator at {base_url} (simulator credentials, not real ones)",
        "# paste these lines into .env; Gateway.from_settings() then uses every simulated",
        "# gateway in this order (delete the ones you do not want). Ctrl-C stops.",
        *env_lines(sim, base_url),
    ]
    if args.push_url:
        text.insert(1, f"# delivery reports and inbound messages are pushed to {args.push_url}")
    sys.stdout.write("\n".join(text) + "\n")
    sys.stdout.flush()
    serve(app, args.host, args.port)
    return EXIT_OK
