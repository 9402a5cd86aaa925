"""What the write-ahead intent costs per send: ``Gateway.send`` with and without an
idempotency key, on the memory and SQLite ledgers (a file in a temp dir), over a mock
transport (no network: the ledger's cost stands out) and over loopback HTTP (the
MiMSMS v4 simulator under uvicorn in a separate process, so its CPU is not ours).

    uv run python benchmarks/bench_intents.py
    uv run python benchmarks/bench_intents.py --sends 2000 --json benchmarks/intents.json

For each case: wall time and this process's CPU time per send (µs), sequential sends
and with ``--in-flight`` sends at once (their intent writes share SQLite commits).
The goal checked at the end: on loopback, SQLite's write-ahead costs less than the
HTTP call it protects.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from mimgw.gateway import Gateway
from mimgw.ledger import Ledger, MemoryLedger, SqliteLedger
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.retry import RetryPolicy
from mimgw.simulator import Simulator

TO = "01712345678"

_SERVER = """
import sys, uvicorn
from decimal import Decimal
from mimgw.simulator import Simulator
sim = Simulator()
sim.mimsms_v4.balance = Decimal("1e12")
uvicorn.run(sim, host="127.0.0.1", port=int(sys.argv[1]), log_level="error", access_log=False)
"""


@dataclass
class Row:
    transport: str
    ledger: str
    key: bool
    in_flight: int
    sends: int
    wall_us: float
    cpu_us: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def loopback_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)])  # noqa: S603
    try:
        end = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise RuntimeError("the loopback simulator did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def mock_client() -> httpx.AsyncClient:
    ids = itertools.count(1)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "statusCode": "200",
                "status": "Success",
                "trxnId": f"MOCK{next(ids):011d}",
                "responseResult": "SMS Send Successfuly",
            },
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def make_ledger(kind: str, directory: str, run: int) -> Ledger:
    if kind == "memory":
        return MemoryLedger(max_entries=None)
    return SqliteLedger(Path(directory) / f"bench-{run}.db")


async def measure(
    transport: str, url: str | None, kind: str, key: bool, in_flight: int, sends: int, run: int
) -> Row:
    sim = Simulator()
    kwargs: dict[str, Any] = sim.mimsms_v4.provider_kwargs()
    if transport == "mock":
        client = mock_client()
    else:
        assert url is not None
        kwargs["base_url"] = url
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=in_flight))
    kwargs["client"] = client
    with tempfile.TemporaryDirectory() as directory:
        ledger = make_ledger(kind, directory, run)
        gw = Gateway(
            [MimSmsV4(**kwargs)],
            ledger=ledger,
            retry=RetryPolicy(attempts=1, deadline=None),
            breaker=None,
        )
        counter = itertools.count()

        async def one() -> None:
            i = next(counter)
            await gw.send(TO, f"bench {run} {i}", idempotency_key=f"k{run}-{i}" if key else None)

        for _ in range(min(50, sends)):  # warm up: connections, the SQLite file, caches
            await one()

        async def worker(n: int) -> None:
            for _ in range(n):
                await one()

        wall0, cpu0 = time.perf_counter(), time.process_time()
        per = sends // in_flight
        await asyncio.gather(*(worker(per) for _ in range(in_flight)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        done = per * in_flight
        await gw.aclose()
        await client.aclose()
    return Row(transport, kind, key, in_flight, done, wall / done * 1e6, cpu / done * 1e6)


async def run(args: argparse.Namespace, url: str | None) -> list[Row]:
    rows: list[Row] = []
    transports = ["mock"] + (["loopback"] if url else [])
    n = itertools.count()
    for transport in transports:
        for in_flight in (1, args.in_flight):
            for kind in ("memory", "sqlite"):
                for key in (False, True):
                    sends = args.sends if transport == "mock" else args.loopback_sends
                    row = await measure(transport, url, kind, key, in_flight, sends, next(n))
                    rows.append(row)
                    print(
                        f"{row.transport:9} {row.ledger:7} key={'yes' if key else 'no ':3} "
                        f"in_flight={row.in_flight:<3} wall {row.wall_us:8.1f} µs/send   "
                        f"cpu {row.cpu_us:8.1f} µs/send",
                        flush=True,
                    )
    return rows


def verdict(rows: list[Row]) -> dict[str, Any]:
    """SQLite's extra cost per send (over memory, same transport/key/in-flight) against
    the cost of the HTTP call itself (loopback minus mock, memory ledger)."""

    def get(t: str, led: str, key: bool, f: int) -> Row | None:
        return next(
            (r for r in rows if (r.transport, r.ledger, r.key, r.in_flight) == (t, led, key, f)),
            None,
        )

    out: dict[str, Any] = {}
    for f in sorted({r.in_flight for r in rows}):
        for key in (False, True):
            mem, sql = get("loopback", "memory", key, f), get("loopback", "sqlite", key, f)
            mock = get("mock", "memory", key, f)
            if mem is None or sql is None or mock is None:
                continue
            write_ahead = sql.wall_us - mem.wall_us
            http = mem.wall_us - mock.wall_us
            out[f"in_flight={f} key={key}"] = {
                "sqlite_write_ahead_us": round(write_ahead, 1),
                "http_call_us": round(http, 1),
                "write_ahead_cheaper": write_ahead < http,
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=2000, help="sends per mock case")
    parser.add_argument("--loopback-sends", type=int, default=600, help="per loopback case")
    parser.add_argument("--in-flight", type=int, default=32, help="concurrent sends")
    parser.add_argument("--no-loopback", action="store_true", help="mock transport only")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    os.environ.setdefault("MIMGW_TRANSPORT", "httpx")
    if args.no_loopback:
        rows = asyncio.run(run(args, None))
    else:
        with loopback_server() as url:
            rows = asyncio.run(run(args, url))
    result = {"rows": [asdict(r) for r in rows], "verdict": verdict(rows)}
    print(json.dumps(result["verdict"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
