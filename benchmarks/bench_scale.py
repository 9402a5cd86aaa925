"""Scale-out: one campaign through taskiq on Redis with 1, 2 and 4 worker processes sharing
one PostgreSQL ledger, against a loopback gateway that takes 20 ms per request.

    uv run python benchmarks/bench_scale.py --messages 10000
    uv run python benchmarks/bench_scale.py --json benchmarks/scale.json   # 50,000

Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (user postgres, database
test); exits with status 2 and says so when one is missing. Everything it makes is its
own: a queue and key prefix in Redis (deleted), ledger tables (dropped), the counting
server (benchmarks/scale_server.py) and the workers (benchmarks/scale_worker.py).

Per worker count it reports messages/s (from the enqueue to the last submit the server
saw), the scaling against one worker (goal: 4 workers ≥ 3.5x), the ledger rows written
per second during the campaign, and the peak RSS of each worker process; it checks that
the server saw every message exactly once and that the ledger holds every message as
accepted. Separately, PostgresLedger.begin_many / finish_many of 10,000 intents measure
the batched write rate (goal ≥ 5,000 rows/s). See docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import scale_support as support
from scale_server import provider_env

from mimgw.ledger import PostgresLedger
from mimgw.ledger.intent import Intent, IntentState
from mimgw.models import Message, Receipt
from mimgw.taskiq import MimgwTasks

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SCALING_GOAL = 3.5
LEDGER_GOAL = 5000.0


def number(i: int, block: int = 1) -> str:
    return f"01{7 + block}{i:08d}"


# -- the batched ledger ------------------------------------------------------------------------


async def ledger_batch(dsn: str, table: str, count: int) -> dict[str, Any]:
    """begin_many then finish_many (accepted, with a receipt) of ``count`` intents."""
    ledger = PostgresLedger(dsn, table=table)
    try:
        await ledger.intent("warm-up")  # opens the pool and creates the tables
        now = datetime.now(UTC)
        messages = [
            Message(to=number(i, 2), text="batch", idempotency_key=f"batch-{i}")
            for i in range(count)
        ]
        intents = [Intent.for_message(m, now=now) for m in messages]
        started = time.perf_counter()
        begun = await ledger.begin_many(intents)
        begin_s = time.perf_counter() - started
        assert all(b.id == i.id for b, i in zip(begun, intents, strict=True))
        finished = [
            (
                i.finished(
                    IntentState.ACCEPTED,
                    now=now,
                    receipt=Receipt(provider="bench", message_id=f"B{n}", to=i.to),
                ),
                1,
                None,
            )
            for n, i in enumerate(intents)
        ]
        started = time.perf_counter()
        entries = await ledger.finish_many(finished)
        finish_s = time.perf_counter() - started
        assert all(e is not None for e in entries)
    finally:
        await ledger.aclose()
    return {
        "intents": count,
        "begin_many_s": round(begin_s, 3),
        "begin_rows_per_s": round(count / begin_s),
        "finish_many_s": round(finish_s, 3),
        # finish writes each intent's outcome and one ledger entry per accepted message
        "finish_rows_per_s": round(2 * count / finish_s),
        "rows_per_s": round(3 * count / (begin_s + finish_s)),
    }


# -- one campaign --------------------------------------------------------------------------------


async def wait_for(server: support.Server, total: int, stall: float) -> dict[str, Any]:
    """Poll the server until it saw ``total`` submits; give up after ``stall`` s of none."""
    seen, since = -1, time.monotonic()
    while True:
        stats = await asyncio.to_thread(server.stats)
        if stats["total"] >= total:
            return stats
        if stats["total"] != seen:
            seen, since = stats["total"], time.monotonic()
        elif time.monotonic() - since > stall:
            raise RuntimeError(f"stalled at {seen} of {total} submits")
        await asyncio.sleep(0.1)


async def ledger_counts(conn: Any, table: str) -> tuple[int, int]:
    accepted = await conn.fetchval(
        f"SELECT count(*) FROM \"{table}_intents\" WHERE state = 'accepted'"  # noqa: S608
    )
    entries = await conn.fetchval(f'SELECT count(*) FROM "{table}"')  # noqa: S608
    return int(accepted), int(entries)


async def campaign(
    args: argparse.Namespace,
    server: support.Server,
    workers: int,
    prefix: str,
    conn: Any,
) -> dict[str, Any]:
    from taskiq_redis import ListQueueBroker

    table = f"{prefix.replace('-', '_')}_w{workers}"
    queue = f"{prefix}:w{workers}:queue"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMGW_")}
    env.update(provider_env(server.url))
    env.update(
        {
            "MIMGW_LEDGER__URL": args.pg_dsn,
            "MIMGW_LEDGER__TABLE": table,
            "MIMGW_STATE__URL": args.redis_url,
            "MIMGW_STATE__PREFIX": f"{prefix}:state",
            "MIMGW_RETRY__ATTEMPTS": "1",
            "BENCH_REDIS_URL": args.redis_url,
            "BENCH_QUEUE": queue,
            "BENCH_CONCURRENCY": str(args.concurrency),
            "BENCH_BATCH": "1" if args.batch else "0",
        }
    )
    broker = ListQueueBroker(args.redis_url, queue_name=queue)
    await broker.startup()
    client = MimgwTasks(broker, chunk_size=args.chunk, redeliver_every=None)
    process = support.start_workers(env, workers, args.max_async_tasks)
    try:
        with support.RssSampler(process.pid) as rss:
            # warm-up: every worker opens its Gateway, pool and tables before the clock starts
            server.reset()
            warm = [number(i, 1) for i in range(workers * 8)]
            await client.enqueue_campaign(f"warm-{workers}", warm, text="warm", chunk_size=1)
            await wait_for(server, len(warm), args.stall)
            server.reset()
            started = time.time()
            numbers = (number(i) for i in range(args.messages))
            queued = await client.enqueue_campaign(
                f"bench-{workers}", numbers, text="scale-out benchmark"
            )
            enqueued_s = time.time() - started
            stats = await wait_for(server, args.messages, args.stall)
            elapsed = stats["last"] - started
            # the last outcomes reach the ledger just after the server answered them
            deadline = time.monotonic() + 30
            accepted = entries = 0
            while time.monotonic() < deadline:
                accepted, entries = await ledger_counts(conn, table)
                if accepted >= args.messages + len(warm):
                    break
                await asyncio.sleep(0.2)
            alive = rss.children()
        await asyncio.sleep(1)  # anything sent twice would show up now
        stats = await asyncio.to_thread(server.stats)
    finally:
        support.stop_group(process)
        await broker.shutdown()
    accepted -= len(warm)
    entries -= len(warm)
    peaks = sorted(rss.peaks.values())
    exactly_once = (
        stats["total"] == args.messages
        and stats["distinct"] == args.messages
        and stats["max_count"] == 1
        and accepted == args.messages
    )
    return {
        "workers": workers,
        "worker_processes_seen": alive,
        "messages": args.messages,
        "chunks": queued.chunks,
        "enqueue_s": round(enqueued_s, 3),
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(args.messages / elapsed, 1),
        "server_total": stats["total"],
        "server_distinct": stats["distinct"],
        "server_max_count": stats["max_count"],
        "ledger_accepted": accepted,
        "ledger_entries": entries,
        # per message: the intent's insert, its update with the outcome, the ledger entry
        "ledger_rows_per_s": round(3 * args.messages / elapsed),
        "peak_rss_mib": [round(p / 2**20, 1) for p in peaks],
        "exactly_once": exactly_once,
    }


# -- driver ----------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"mimgw-bench-{uuid.uuid4().hex[:8]}"
    server = support.start_server(args.latency)
    conn = await asyncpg.connect(args.pg_dsn)
    tables = [
        f"{prefix.replace('-', '_')}_{s}" for s in ("batch", *(f"w{w}" for w in args.workers))
    ]
    try:
        batch = await ledger_batch(args.pg_dsn, tables[0], args.ledger_intents)
        print(f"ledger batch: {batch}", flush=True)
        runs = []
        for workers in args.workers:
            result = await campaign(args, server, workers, prefix, conn)
            print(f"{workers} worker(s): {result}", flush=True)
            runs.append(result)
    finally:
        for table in tables:
            await support.drop_tables(conn, table)
        await conn.close()
        support.stop_group(server.process)
        support.delete_redis_keys(args.redis_url, prefix)
    base = next((r["messages_per_s"] for r in runs if r["workers"] == 1), None)
    for r in runs:
        r["scaling"] = None if base is None else round(r["messages_per_s"] / base, 2)
    return {
        "benchmark": "scale",
        "settings": {
            "messages": args.messages,
            "latency_s": args.latency,
            "chunk_size": args.chunk,
            "concurrency_per_worker": args.concurrency,
            "max_async_tasks": args.max_async_tasks,
            "batch": args.batch,
        },
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "ledger_batch": batch,
        "runs": runs,
        "goals": goals(batch, runs),
    }


def goals(batch: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    four = next((r["scaling"] for r in runs if r["workers"] == 4), None)
    return {
        "scaling_4_workers": four,
        "scaling_met": None if four is None else four >= SCALING_GOAL,
        "ledger_batched_rows_per_s": batch["rows_per_s"],
        "ledger_met": batch["rows_per_s"] >= LEDGER_GOAL,
        "exactly_once": all(r["exactly_once"] for r in runs),
    }


def table(result: dict[str, Any]) -> str:
    settings = result["settings"]
    lines = [
        f"{settings['messages']:,} messages, {settings['latency_s'] * 1000:g} ms per request, "
        f"{settings['concurrency_per_worker']} in flight per worker, "
        + ("native batches" if settings["batch"] else "one request per message"),
        "",
        f"{'workers':>7} {'msg/s':>9} {'scaling':>8} {'ledger rows/s':>14} "
        f"{'peak RSS/worker (MiB)':>22} {'exactly once':>13}",
    ]
    for r in result["runs"]:
        rss = "/".join(f"{p:.0f}" for p in r["peak_rss_mib"])
        lines.append(
            f"{r['workers']:>7} {r['messages_per_s']:>9,.1f} {r['scaling']:>7.2f}x "
            f"{r['ledger_rows_per_s']:>14,} {rss:>22} {('yes' if r['exactly_once'] else 'NO'):>13}"
        )
    b = result["ledger_batch"]
    lines += [
        "",
        f"PostgresLedger batched, {b['intents']:,} intents: begin_many {b['begin_rows_per_s']:,} "
        f"rows/s, finish_many {b['finish_rows_per_s']:,} rows/s (together {b['rows_per_s']:,})",
    ]
    g = result["goals"]
    lines.append(
        f"goals: 4 workers ≥ {SCALING_GOAL}x: {g['scaling_met']} ({g['scaling_4_workers']}x); "
        f"ledger ≥ {LEDGER_GOAL:,.0f} rows/s: {g['ledger_met']}; exactly once: {g['exactly_once']}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument(
        "--workers", type=lambda s: [int(w) for w in s.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--latency", type=float, default=0.02, help="server latency (s)")
    parser.add_argument("--concurrency", type=int, default=1, help="in flight per worker")
    parser.add_argument("--max-async-tasks", type=int, default=1, help="chunks at once per worker")
    parser.add_argument("--chunk", type=int, default=50, help="messages per queued chunk")
    parser.add_argument(
        "--batch",
        action="store_true",
        help="chunks in native batches (MimgwTasks' default); without it one request per "
        "message, the case where the gateway's latency bounds each worker",
    )
    parser.add_argument("--ledger-intents", type=int, default=10_000)
    parser.add_argument(
        "--stall", type=float, default=60.0, help="give up after s without progress"
    )
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--pg-dsn", default=PG_DSN)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    missing = [
        name
        for name, port in (("Redis", 6379), ("PostgreSQL", 5432))
        if not support.reachable("127.0.0.1", port)
    ]
    if missing:
        print(f"bench_scale: {' and '.join(missing)} not reachable on 127.0.0.1", file=sys.stderr)
        return 2
    result = asyncio.run(run(args))
    print()
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    checks = ("scaling_met", "ledger_met", "exactly_once")
    return 0 if all(result["goals"][k] is not False for k in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
