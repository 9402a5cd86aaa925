"""One worker process racing others on a shared PostgreSQL ledger (run by test_pg_ledger.py).

``python pg_race_worker.py DSN TABLE MODE SEED N`` prints ``ready``, waits for a line
on stdin (so that every worker starts at once), then prints one JSON line: what this
process won. MODE is ``begin`` (concurrent begin() calls), ``begin_many``, ``settle``
or ``report``.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from datetime import UTC, datetime

from mimgw import DeliveryReport, Message, State
from mimgw.ledger import Intent, PostgresLedger


async def main(dsn: str, table: str, mode: str, seed: int, n: int) -> None:
    rng = random.Random(seed)
    ledger = PostgresLedger(dsn, table=table)
    await ledger.get("warm", "up")  # pool and schema ready before the start line
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    won: list[str] = []
    keys = [f"k{i}" for i in range(n)]
    rng.shuffle(keys)
    if mode in ("begin", "begin_many"):
        now = datetime.now(UTC)
        mine = [
            Intent.for_message(Message(to="01712345678", text="x", idempotency_key=k), now=now)
            for k in keys
        ]
        if mode == "begin":
            results = await asyncio.gather(*(ledger.begin(i) for i in mine))
        else:
            results = []
            for at in range(0, len(mine), 5):  # small batches with pauses: the
                results += await ledger.begin_many(mine[at : at + 5])  # workers interleave
                await asyncio.sleep(0.005)
        won = [i.key or "" for i, got in zip(mine, results, strict=True) if got.id == i.id]
    elif mode == "settle":
        claims = await asyncio.gather(*(ledger.settle("gw", k) for k in keys))
        won = [k for k, ok in zip(keys, claims, strict=True) if ok]
    elif mode == "report":
        states = [State.UNKNOWN, State.ACCEPTED, State.PENDING, State.SENT]
        reports = [
            DeliveryReport(provider="gw", message_id=k, state=rng.choice(states), reason=str(seed))
            for k in keys
            for _ in range(3)
        ]
        rng.shuffle(reports)
        results = await asyncio.gather(*(ledger.record_report(r) for r in reports))
        won = [f"{r.message_id}={r.state.value}" for r in reports]  # what this worker sent
        backwards = [
            e.message_id
            for (e, _), r in zip(results, reports, strict=True)
            if e.state.rank < r.state.rank
        ]
        if backwards:
            won.append(f"BACKWARDS:{backwards}")
    await ledger.aclose()
    print(json.dumps(won))


if __name__ == "__main__":
    dsn, table, mode, seed, n = sys.argv[1:6]
    asyncio.run(main(dsn, table, mode, int(seed), int(n)))
