"""Throughput of issue 13, side by side in one run against one loopback server.

    uv run python benchmarks/bench_throughput.py --json benchmarks/throughput.json \
        --svg docs/img/throughput.svg

- singles at c=1 and c=64: raw httpx, mimgw (``MimSmsV4.send``) over the same httpx
  transport, raw aiohttp, and mimgw on its default client (httpx-aiohttp if installed);
- CPU per ``Gateway.send`` over a mock transport vs a raw httpx call over the same one,
  with the memory and SQLite ledgers;
- bulk: ``Gateway.send_bulk`` batched vs singles, and raw DSMS batches of 100 (raw httpx
  and raw aiohttp);
- peak RSS of 100,000 messages streamed through ``stream_bulk`` with a SQLite ledger (a
  child process; compared with the same interpreter after ``import mimgw`` only);
- MemoryLedger bytes per entry (tracemalloc).

The server (benchmarks/v4_loopback.py) runs in its own process. The chart is a small
SVG written without any plotting library.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent


ROUNDS = 9
"""Interleaved rounds of the singles (httpcore's pool at 64 in flight swings between
rounds by 2x either way, for either side)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(HERE / "v4_loopback.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, f"http://127.0.0.1:{port}"


def v4_body(to: str, text: str) -> dict[str, str]:
    return {
        "UserName": "bench@example.com",
        "Apikey": "bench-key",
        "MobileNumber": to,
        "CampaignId": "null",
        "SenderName": "BENCH",
        "TransactionType": "T",
        "Message": text,
    }


def number(i: int) -> str:
    return f"88017{i % 100_000_000:08d}"


async def rate(n: int, conc: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Sends per second for ``n`` calls with ``conc`` in flight."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return n / (time.perf_counter() - start)


def provider(base: str, client: httpx.AsyncClient | None) -> Any:
    from mimgw.providers.mimsms_v4 import MimSmsV4

    return MimSmsV4(
        username="bench@example.com",
        api_key="bench-key",
        sender="BENCH",
        base_url=base,
        client=client,
    )


async def singles(base: str, n: int) -> dict[str, dict[str, float]]:
    """Each way at 1 and 64 in flight, the four ways interleaved in every round. A way's
    figure is its best round; a ratio is the median of the rounds' own ratios (both
    sides of a round ran back to back, under the same conditions)."""
    import aiohttp

    from mimgw.transport import DEFAULT_LIMITS, resolve_transport

    url = f"{base}/api/SmsSending/SMS"
    out: dict[str, dict[str, float]] = {}
    for conc in (1, 64):
        async with (
            httpx.AsyncClient(limits=DEFAULT_LIMITS) as client,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session,
            provider(base, None) as default_sms,
        ):
            sms = provider(base, client)

            async def raw_httpx(i: int, client: httpx.AsyncClient = client) -> None:
                r = await client.post(url, json=v4_body(number(i), "hi"))
                assert r.json()["statusCode"] == "200"

            async def mimgw_httpx(i: int, sms: Any = sms) -> None:
                await sms.send(f"017{i % 100_000_000:08d}", "hi")

            async def raw_aiohttp(i: int, session: aiohttp.ClientSession = session) -> None:
                async with session.post(url, json=v4_body(number(i), "hi")) as r:
                    assert (await r.json())["statusCode"] == "200"

            async def mimgw_default(i: int, sms: Any = default_sms) -> None:
                await sms.send(f"017{i % 100_000_000:08d}", "hi")

            ways: dict[str, Callable[[int], Awaitable[Any]]] = {
                "raw_httpx": raw_httpx,
                "mimgw_httpx": mimgw_httpx,
                "raw_aiohttp": raw_aiohttp,
                "mimgw_default": mimgw_default,
            }
            for one in ways.values():
                await rate(50, conc, one)
            rounds: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(ROUNDS):
                for name, one in ways.items():
                    rounds[name].append(await rate(n, conc, one))
        row: dict[str, float] = {name: max(values) for name, values in rounds.items()}
        row["httpx_time_ratio"] = statistics.median(
            r / m for r, m in zip(rounds["raw_httpx"], rounds["mimgw_httpx"], strict=True)
        )
        row["aiohttp_throughput_ratio"] = statistics.median(
            m / r for m, r in zip(rounds["mimgw_default"], rounds["raw_aiohttp"], strict=True)
        )
        row["transport"] = 1.0 if resolve_transport() == "aiohttp" else 0.0
        out[f"c{conc}"] = row
    return out


def mock_transport() -> httpx.MockTransport:
    """Answers every submit with a v4 success body carrying a new ``trxnId`` (as a real
    gateway does: every accepted message is a new ledger entry)."""
    ids = itertools.count(1)

    def answer(request: httpx.Request) -> httpx.Response:
        body = b'{"statusCode":"200","status":"Success","trxnId":"T%d","responseResult":"ok"}'
        return httpx.Response(
            200, content=body % next(ids), headers={"content-type": "application/json"}
        )

    return httpx.MockTransport(answer)


async def cpu_per_send(n: int, rounds: int = 5) -> dict[str, float]:
    """CPU per send over a mock transport, each way in interleaved rounds of ``n // rounds``
    sends: each way's best round, and each ratio as the median of the rounds' own (so a
    noisy neighbour slows no side alone)."""
    from mimgw import Gateway
    from mimgw.ledger.sqlite import SqliteLedger

    async with httpx.AsyncClient(transport=mock_transport()) as client:
        url = "http://mock/api/SmsSending/SMS"

        async def raw(i: int) -> None:
            r = await client.post(url, json=v4_body(number(i), "hi"))
            assert r.json()["statusCode"] == "200"

        seq = iter(range(10**9))  # every send its own number and key

        def keyed(gw: Gateway, tag: str) -> Callable[[int], Awaitable[Any]]:
            return lambda i: gw.send(f"017{i:08d}", "hi", idempotency_key=f"{tag}{next(seq)}")

        with tempfile.TemporaryDirectory() as tmp:
            ledger = SqliteLedger(Path(tmp) / "ledger.db")
            gw = Gateway([provider("http://mock", client)])
            gws = Gateway([provider("http://mock", client)], ledger=ledger)
            ways: dict[str, Callable[[int], Awaitable[Any]]] = {
                "raw_httpx_us": raw,
                "gateway_memory_us": lambda i: gw.send(f"017{i:08d}", "hi"),
                "gateway_memory_key_us": keyed(gw, "m"),
                "gateway_sqlite_us": lambda i: gws.send(f"017{i:08d}", "hi"),
                "gateway_sqlite_key_us": keyed(gws, "s"),
            }
            runs: dict[str, list[float]] = {name: [] for name in ways}
            per_round = max(1, n // rounds)
            for one in ways.values():  # warm-up
                for i in range(100):
                    await one(i)
            for _ in range(rounds):
                for name, one in ways.items():
                    start = time.process_time()
                    for _ in range(per_round):
                        await one(next(seq) % 100_000_000)
                    runs[name].append((time.process_time() - start) / per_round * 1e6)
            await ledger.aclose()
    out = {name: min(values) for name, values in runs.items()}
    raw_runs = runs["raw_httpx_us"]
    out["ratio_memory"] = _median_ratio(runs["gateway_memory_us"], raw_runs)
    out["ratio_sqlite"] = _median_ratio(runs["gateway_sqlite_us"], raw_runs)
    return out


async def bulk(base: str, n: int, rounds: int = 5) -> dict[str, float]:
    """10,000 messages five ways, in interleaved rounds: ``Gateway.send_bulk`` batched and
    singles (its default client), and the same DSMS batches of 100 written by hand over
    raw httpx, raw httpx on httpx-aiohttp's transport (the transport mimgw's default
    client is built on) and raw aiohttp. Each way's best time, and each ratio as the
    median of the rounds' own (a sub-second run on a shared 2-core VM swings by half
    between rounds)."""
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    from mimgw import Gateway, Message
    from mimgw.transport import DEFAULT_LIMITS

    messages = [Message(to=f"017{i:08d}", text=f"hello {i}") for i in range(n)]
    url = f"{base}/api/SmsSending/DSMS"
    names = ("batched_s", "singles_s", "raw_dsms_s", "raw_dsms_on_aiohttp_s", "raw_dsms_aiohttp_s")
    runs: dict[str, list[float]] = {name: [] for name in names}

    def keep(name: str, started: float) -> None:
        runs[name].append(time.perf_counter() - started)

    def dsms(chunk: int) -> dict[str, Any]:
        data = [
            {"MobNumber": number(i), "Message": f"hello {i}"}
            for i in range(chunk * 100, min(n, chunk * 100 + 100))
        ]
        return {**v4_body("", ""), "TransactionType": "D", "SmsData": data}

    async with (
        Gateway([provider(base, None)]) as gw,
        httpx.AsyncClient(limits=DEFAULT_LIMITS) as client,  # 64 connections, all kept alive
        httpx.AsyncClient(transport=AiohttpTransport(), limits=DEFAULT_LIMITS) as on_aiohttp,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session,
    ):

        async def one(chunk: int) -> None:
            r = await client.post(url, json=dsms(chunk))
            assert r.json()["statusCode"] == "200"

        async def one_on_aiohttp(chunk: int) -> None:
            r = await on_aiohttp.post(url, json=dsms(chunk))
            assert r.json()["statusCode"] == "200"

        async def one_aiohttp(chunk: int) -> None:
            async with session.post(url, json=dsms(chunk)) as r:
                assert (await r.json())["statusCode"] == "200"

        warm = [Message(to=f"018{i:08d}", text=f"warm {i}") for i in range(500)]
        for batch in (True, False):  # connections open, first-use costs paid, both ways
            assert (await gw.send_bulk(warm, concurrency=64, batch=batch)).ok
        await rate(5, 5, one)
        await rate(5, 5, one_on_aiohttp)
        await rate(5, 5, one_aiohttp)
        chunks = (n + 99) // 100
        for _ in range(rounds):
            start = time.perf_counter()
            assert (await gw.send_bulk(messages, concurrency=64)).ok
            keep("batched_s", start)
            start = time.perf_counter()
            await rate(chunks, 64, one)
            keep("raw_dsms_s", start)
            start = time.perf_counter()
            await rate(chunks, 64, one_on_aiohttp)
            keep("raw_dsms_on_aiohttp_s", start)
            start = time.perf_counter()
            await rate(chunks, 64, one_aiohttp)
            keep("raw_dsms_aiohttp_s", start)
            start = time.perf_counter()
            assert (await gw.send_bulk(messages, concurrency=64, batch=False)).ok
            keep("singles_s", start)
    out = {name: min(values) for name, values in runs.items()}
    out["batched_vs_singles"] = _median_ratio(runs["singles_s"], runs["batched_s"])
    out["batched_vs_raw_dsms"] = _median_ratio(runs["batched_s"], runs["raw_dsms_s"])
    out["batched_vs_raw_dsms_on_aiohttp"] = _median_ratio(
        runs["batched_s"], runs["raw_dsms_on_aiohttp_s"]
    )
    out["batched_vs_raw_dsms_aiohttp"] = _median_ratio(
        runs["batched_s"], runs["raw_dsms_aiohttp_s"]
    )
    return out


def _median_ratio(top: list[float], bottom: list[float]) -> float:
    """The median of the rounds' own ratios (the two sides of a round ran back to back)."""
    return statistics.median(t / b for t, b in zip(top, bottom, strict=True))


RSS_CHILD = """
import asyncio, sys, tempfile, time
from pathlib import Path
import mimgw
def hwm():  # peak RSS (KiB) of this process image; ru_maxrss survives exec on Linux
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base_rss = hwm()
if sys.argv[1] == "0":
    print(base_rss, base_rss); raise SystemExit
from mimgw import Gateway
from mimgw.ledger.sqlite import SqliteLedger
from mimgw.providers.mimsms_v4 import MimSmsV4
n = int(sys.argv[1])
async def main():
    def source():
        for i in range(n):
            yield (f"017{i:08d}", f"hello {i}")
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SqliteLedger(Path(tmp) / "l.db")
        sms = MimSmsV4(username="u@x.example", api_key="k", sender="B", base_url=sys.argv[2])
        async with Gateway([sms], ledger=ledger) as gw:
            done = 0
            batch = sys.argv[3] == "1"
            async for _pair in gw.stream_bulk(source(), concurrency=64, batch=batch):
                done += 1
            assert done == n
asyncio.run(main())
print(base_rss, hwm())
"""


def rss(base: str, n: int, batch: bool) -> dict[str, float]:
    out = subprocess.run(  # noqa: S603 - our own child script
        [sys.executable, "-c", RSS_CHILD, str(n), base, "1" if batch else "0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    before, after = int(out[0]), int(out[1])
    return {
        "messages": n,
        "after_import_mb": before / 1024,
        "peak_mb": after / 1024,
        "growth_mb": (after - before) / 1024,
    }


async def ledger_entry_bytes(n: int = 20_000) -> float:
    from mimgw.ledger import MemoryLedger
    from mimgw.models import Receipt

    receipts = [
        Receipt(
            provider="mimsms_v4", message_id=f"T{i:09d}", to=f"88017{i:08d}", reference=f"{i:032x}"
        )
        for i in range(n)
    ]
    ledger = MemoryLedger(max_entries=None)

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for r in receipts:
        await ledger.record_submit(r)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def svg(results: dict[str, Any]) -> str:
    """Horizontal bars: throughput (msg/s) of each case, log-free and scaled to the max."""
    bars: list[tuple[str, float]] = []
    for conc in ("c1", "c64"):
        row = results["singles"][conc]
        for key in ("raw_httpx", "mimgw_httpx", "mimgw_default", "raw_aiohttp"):
            bars.append((f"singles {conc[1:]} in flight: {key}", row[key]))
    b = results["bulk"]
    n = results["bulk_messages"]
    bars += [
        ("bulk: Gateway singles", n / b["singles_s"]),
        ("bulk: Gateway batched", n / b["batched_s"]),
        ("bulk: raw DSMS batches, httpx", n / b["raw_dsms_s"]),
        ("bulk: raw DSMS batches, httpx on aiohttp", n / b["raw_dsms_on_aiohttp_s"]),
        ("bulk: raw DSMS batches, aiohttp", n / b["raw_dsms_aiohttp_s"]),
    ]
    top = max(v for _, v in bars)
    width, label, height = 760, 300, 22
    rows = []
    for i, (name, value) in enumerate(bars):
        y = 30 + i * height
        w = max(1.0, (width - label - 90) * value / top)
        rows.append(
            f'<text x="{label - 6}" y="{y + 15}" text-anchor="end">{name}</text>'
            f'<rect x="{label}" y="{y + 3}" width="{w:.1f}" height="{height - 6}" fill="#4a7ab5"/>'
            f'<text x="{label + w + 4:.1f}" y="{y + 15}">{value:,.0f}/s</text>'
        )
    total = 40 + len(bars) * height
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" '
        f'font-family="sans-serif" font-size="12">'
        '<text x="10" y="18" font-weight="bold">'
        "messages per second on loopback (higher is better)</text>" + "".join(rows) + "</svg>\n"
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    proc, base = start_server()
    try:
        results: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
        results["singles"] = await singles(base, args.requests)
        results["cpu"] = await cpu_per_send(args.cpu_sends)
        results["bulk_messages"] = args.bulk
        results["bulk"] = await bulk(base, args.bulk)
        results["rss_batched"] = rss(base, args.rss_messages, True)
        results["rss_singles"] = rss(base, args.rss_messages, False)
        results["memory_ledger_bytes_per_entry"] = await ledger_entry_bytes()
    finally:
        proc.terminate()
        proc.wait()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--cpu-sends", type=int, default=5000)
    parser.add_argument("--bulk", type=int, default=10_000)
    parser.add_argument("--rss-messages", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--svg", type=Path)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if args.svg:
        args.svg.parent.mkdir(parents=True, exist_ok=True)
        args.svg.write_text(svg(results))


if __name__ == "__main__":
    main()
