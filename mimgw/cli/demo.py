"""``mimgw demo``: the whole flow against the in-process simulator (no credentials, no network)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mimgw.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    SIMULATED_KINDS,
    CliError,
    error_name,
    money,
    receipt_line,
    report_line,
)
from mimgw.errors import MimgwError
from mimgw.gateway import Gateway
from mimgw.models import DeliveryReport, InboundMessage, Message, Receipt
from mimgw.providers import Provider
from mimgw.simulator import Simulator


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="the whole flow against the built-in simulator",
        description="Send, bulk-send, read reports and fail over, against the in-process "
        "simulator: no credentials, no network.",
    )
    demo.set_defaults(handler=cmd_demo)


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
            detail = (
                f"{error_name(exc)}: {exc}" if isinstance(exc, MimgwError) else type(exc).__name__
            )
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
        demo.ok(receipt_line(english))
        bangla = await provider.send(DEMO_NUMBERS[1], BANGLA)
        demo.ok(receipt_line(bangla))
        receipts[provider.kind] = english
        if before is not None:
            after = await provider.balance()
            demo.info(
                f"balance {money(before.amount, before.currency)} → "
                f"{money(after.amount, after.currency)}"
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
                receipt_line(outcome)
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
            demo.info(report_line(report))
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
        demo.ok(report_line(report))

    return run


def _demo_imiconnect(demo: _Demo) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        provider = await demo.provider("imiconnect")
        gateway = Gateway([provider])
        receipt = await gateway.send(DEMO_NUMBERS[3], "Push demo: your table is ready")
        demo.ok(receipt_line(receipt))
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
                demo.ok("pushed " + report_line(item))
            else:
                demo.ok(f"inbound from {item.sender}: {escape(item.text)!r}")
        if not any(isinstance(i, DeliveryReport) for i in received):
            raise CliError("no delivery report was pushed")
        report = await gateway.status(receipt.message_id, provider=provider.name)
        demo.info(f"the ledger answers status(): {report_line(report)}")

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
            demo.ok("failed over → " + receipt_line(receipt))
            report = await gateway.status(receipt.message_id)
            demo.info(f"ledger: {report_line(report)}")

    return run
