"""Send every row of a CSV file (columns ``to,text[,reference]``) and write the outcomes.

    uv run python examples/bulk_csv.py customers.csv outcomes.csv
    uv run python examples/bulk_csv.py customers.csv outcomes.csv --simulator

The gateways come from ``MIMGW_…`` variables / ``.env`` (``--simulator``: every gateway
emulated in-process). Rows go to ``Gateway.stream_bulk`` as plain mappings: a row
with a bad number becomes that row's ``InvalidMessageError`` outcome, the others are
sent; outcomes arrive (and are written) as they complete, so memory stays flat for a
file of any size. ``mimgw send-bulk`` does the same with resume and a progress bar.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from mimgw import Gateway, Message, MimgwError, Receipt
from mimgw.simulator import Simulator

FIELDS = ("line", "to", "reference", "outcome", "provider", "message_id", "error")


def rows(source: Path) -> Iterator[dict[str, Any]]:
    """One mapping with Message's field names per CSV row (read lazily)."""
    with source.open(newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            yield {
                "to": row.get("to", ""),
                "text": row.get("text", ""),
                "reference": row.get("reference") or f"{source.stem}-{line}",
                # the same row of the same file is the same message: never sent twice
                "idempotency_key": f"{source.name}:{line}",
            }


async def send_csv(gateway: Gateway, source: Path, target: Path) -> Counter[str]:
    """Send ``source`` through ``gateway``; one outcome row per input row in ``target``."""
    counts: Counter[str] = Counter()
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        async for item, outcome in gateway.stream_bulk(rows(source), concurrency=8):
            given: Mapping[str, Any] = (
                item.model_dump() if isinstance(item, Message) else dict(item)
            )
            record: dict[str, Any] = {
                "line": str(given.get("idempotency_key", "")).rpartition(":")[2],
                "to": given.get("to", ""),
                "reference": given.get("reference", ""),
            }
            if isinstance(outcome, Receipt):
                record.update(
                    outcome="accepted", provider=outcome.provider, message_id=outcome.message_id
                )
            else:
                assert isinstance(outcome, MimgwError)
                record.update(outcome="failed", error=str(outcome))
            writer.writerow(record)
            handle.flush()
            counts[record["outcome"]] += 1
    return counts


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--simulator", action="store_true", help="use the built-in simulator")
    args = parser.parse_args(argv)
    async with AsyncExitStack() as stack:
        if args.simulator:
            sim = Simulator()
            stack.push_async_callback(sim.aclose)
            gateway = Gateway([sim.provider("mimsms_v4"), sim.provider("dinisoft")])
        else:
            gateway = Gateway.from_settings()
        await stack.enter_async_context(gateway)
        counts = await send_csv(gateway, args.source, args.target)
    print(f"accepted {counts['accepted']}, failed {counts['failed']}; see {args.target}")
    return 0 if not counts["failed"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
