"""How much mimgw costs on top of a hand-written httpx call, measured in the same run.

Both sides talk to the same MiMSMS v4 emulation (the built-in simulator), either
in-process through ``httpx.ASGITransport`` or over loopback HTTP through a local
uvicorn server on 127.0.0.1. Results are ratios (mimgw / raw), so they carry over
between machines better than absolute times do.

    uv run python benchmarks/bench_overhead.py
    uv run python benchmarks/bench_overhead.py --transport uvicorn --json results.json

(a) single send: sequential sends, per-request latency (median and p95);
(b) bulk: N personalised messages, ``send_bulk`` vs the same work by hand;
(c) memory: tracemalloc peak while sending ``--memory-messages`` messages, per 10k.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import platform
import socket
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

import mimgw
from mimgw import Message
from mimgw.providers.base import Provider
from mimgw.simulator import Simulator

SEND_PATH = "/api/SmsSending/SMS"
DSMS_PATH = "/api/SmsSending/DSMS"
NUMBERS = [f"88017{i:08d}" for i in range(100_000)]


@dataclass
class Result:
    name: str
    unit: str
    mimgw: float
    raw: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.mimgw / self.raw if self.raw else float("nan")


@dataclass
class Report:
    transport: str
    python: str = field(default_factory=platform.python_version)
    machine: str = field(default_factory=platform.machine)
    mimgw_version: str = mimgw.__version__
    httpx_version: str = httpx.__version__
    results: list[Result] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["results"] = [{**asdict(r), "ratio": round(r.ratio, 3)} for r in self.results]
        return data


# -- the two clients --------------------------------------------------------------------------


class Raw:
    """What a careful hand-written client does: build the JSON, POST it, check the answer."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, creds: dict[str, Any]) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.creds = creds

    async def send(self, to: str, text: str) -> str:
        body = {
            "UserName": self.creds["username"],
            "Apikey": self.creds["api_key"],
            "MobileNumber": to,
            "CampaignId": "null",
            "SenderName": self.creds["sender"],
            "TransactionType": "T",
            "Message": text,
        }
        response = await self.client.post(self.base_url + SEND_PATH, json=body)
        return _trxn(response)

    async def send_dsms(self, items: list[tuple[str, str]]) -> str:
        body = {
            "UserName": self.creds["username"],
            "Apikey": self.creds["api_key"],
            "SenderName": self.creds["sender"],
            "TransactionType": "D",
            "SmsData": [{"MobNumber": to, "Message": text} for to, text in items],
        }
        response = await self.client.post(self.base_url + DSMS_PATH, json=body)
        return _trxn(response)

    async def send_many(self, items: list[tuple[str, str]], concurrency: int) -> list[str]:
        limiter = asyncio.Semaphore(concurrency)

        async def one(to: str, text: str) -> str:
            async with limiter:
                return await self.send(to, text)

        return list(await asyncio.gather(*(one(to, text) for to, text in items)))

    async def send_batches(self, items: list[tuple[str, str]], size: int) -> list[str]:
        return [await self.send_dsms(items[i : i + size]) for i in range(0, len(items), size)]


def _trxn(response: httpx.Response) -> str:
    data = response.json()
    if response.status_code != 200 or str(data.get("statusCode")) != "200":
        raise RuntimeError(f"raw send failed: {response.status_code} {response.text[:200]}")
    return str(data["trxnId"])


@dataclass
class Setup:
    sim: Simulator
    provider: Provider
    raw: Raw
    clients: list[httpx.AsyncClient]


@contextlib.asynccontextmanager
async def setup(sim: Simulator, transport: str, base_url: str | None) -> AsyncIterator[Setup]:
    gateway = sim.mimsms_v4
    kwargs = gateway.provider_kwargs()
    gateway.balance = Decimal(10**12)  # plenty of credit for every run
    if transport == "asgi":
        url = kwargs.get("base_url", "https://mimsms.sim.invalid")
        mimgw_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim))
        raw_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim))
    else:
        assert base_url is not None
        url = base_url
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        mimgw_client = httpx.AsyncClient(limits=limits)
        raw_client = httpx.AsyncClient(limits=limits)
    provider = sim.provider("mimsms_v4", base_url=url, client=mimgw_client)
    raw = Raw(raw_client, url, kwargs)
    try:
        yield Setup(sim, provider, raw, [mimgw_client, raw_client])
    finally:
        await provider.aclose()
        for client in (mimgw_client, raw_client):
            await client.aclose()


# -- uvicorn on loopback ------------------------------------------------------------------


@contextlib.contextmanager
def serve_loopback(app: Any) -> Iterator[str]:
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- measurements -----------------------------------------------------------------------------


async def _latencies(call: Callable[[int], Awaitable[object]], count: int) -> list[float]:
    times = []
    for i in range(count):
        started = time.perf_counter()
        await call(i)
        times.append(time.perf_counter() - started)
    return times


async def bench_single(s: Setup, count: int, rounds: int) -> list[Result]:
    text = "Your verification code is 4711"

    async def with_mimgw(i: int) -> object:
        return await s.provider.send(NUMBERS[i], text)

    async def with_raw(i: int) -> object:
        return await s.raw.send(NUMBERS[i], text)

    await _latencies(with_mimgw, min(200, count))  # warm up both paths
    await _latencies(with_raw, min(200, count))
    ours: list[float] = []
    theirs: list[float] = []
    per_round = max(1, count // rounds)
    for _ in range(rounds):  # interleaved so drift hits both sides alike
        theirs += await _latencies(with_raw, per_round)
        ours += await _latencies(with_mimgw, per_round)
    return [
        Result(
            "single send, median",
            "µs",
            _us(statistics.median(ours)),
            _us(statistics.median(theirs)),
        ),
        Result("single send, p95", "µs", _us(_p95(ours)), _us(_p95(theirs))),
    ]


async def bench_bulk(s: Setup, count: int, concurrency: int, rounds: int) -> list[Result]:
    items = [(NUMBERS[i], f"Dear customer {i}, your parcel ships today.") for i in range(count)]
    messages = [Message(to=to, text=text) for to, text in items]
    caps = s.provider.capabilities
    batch_size = caps.max_batch or 100

    async def timed(call: Callable[[], Awaitable[object]]) -> float:
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            await call()
            best = min(best, time.perf_counter() - started)
        return best

    async def with_mimgw() -> None:
        result = await s.provider.send_bulk(messages, concurrency=concurrency)
        if not result.ok:
            raise RuntimeError(f"mimgw bulk failed: {result.errors[:1]}")

    ours = await timed(with_mimgw)
    results = []
    singles = await timed(lambda: s.raw.send_many(items, concurrency))
    results.append(
        Result(
            f"bulk {count}, vs raw singles",
            "ms",
            ours * 1000,
            singles * 1000,
            f"raw: {count} POSTs, {concurrency} in flight",
        )
    )
    if caps.batch:
        batches = await timed(lambda: s.raw.send_batches(items, batch_size))
        results.append(
            Result(
                f"bulk {count}, vs raw DSMS",
                "ms",
                ours * 1000,
                batches * 1000,
                f"raw: DSMS requests of {batch_size}",
            )
        )
    return results


async def bench_memory(s: Setup, count: int, concurrency: int) -> list[Result]:
    per = 10_000 / count

    async def peak(call: Callable[[], Awaitable[object]]) -> float:
        gc.collect()
        tracemalloc.start()
        try:
            await call()
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return top

    async def with_mimgw() -> None:
        messages = [Message(to=NUMBERS[i], text=f"Notice {i}: bill due") for i in range(count)]
        await s.provider.send_bulk(messages, concurrency=concurrency)

    async def with_raw() -> None:
        items = [(NUMBERS[i], f"Notice {i}: bill due") for i in range(count)]
        if s.provider.capabilities.batch:
            await s.raw.send_batches(items, s.provider.capabilities.max_batch or 100)
        else:
            await s.raw.send_many(items, concurrency)

    raw = await peak(with_raw)
    ours = await peak(with_mimgw)
    return [
        Result(
            "memory peak per 10k messages",
            "MiB",
            ours * per / 2**20,
            raw * per / 2**20,
            "tracemalloc peak, simulator included on both sides",
        )
    ]


def _us(seconds: float) -> float:
    return seconds * 1e6


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


# -- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, sim: Simulator, base_url: str | None) -> Report:
    report = Report(transport=args.transport)
    async with setup(sim, args.transport, base_url) as s:
        report.results += await bench_single(s, args.requests, args.rounds)
        report.results += await bench_bulk(s, args.bulk, args.concurrency, args.rounds)
        report.results += await bench_memory(s, args.memory_messages, args.concurrency)
    return report


def print_report(report: Report) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text without the cli extra
        for r in report.results:
            print(f"{r.name:36} {r.mimgw:12.1f} {r.raw:12.1f} {r.unit:4} x{r.ratio:.2f}")
        return
    table = Table(title=f"mimgw overhead ({report.transport}, Python {report.python})")
    for column in ("measure", "mimgw", "raw httpx", "ratio", "note"):
        table.add_column(
            column, justify="right" if column in ("mimgw", "raw httpx", "ratio") else "left"
        )
    for r in report.results:
        table.add_row(
            r.name, f"{r.mimgw:,.1f} {r.unit}", f"{r.raw:,.1f} {r.unit}", f"{r.ratio:.2f}", r.note
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("asgi", "uvicorn"), default="asgi")
    parser.add_argument("--requests", type=int, default=2000, help="single sends per side")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--bulk", type=int, default=1000, help="messages in the bulk measure")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--memory-messages", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    for name in ("requests", "rounds", "bulk", "concurrency", "memory_messages"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    sim = Simulator(seed=0)
    if args.transport == "uvicorn":
        with serve_loopback(sim) as url:
            report = asyncio.run(run(args, sim, url))
    else:
        report = asyncio.run(run(args, sim, None))
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
