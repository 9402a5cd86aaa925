"""A separate process that sends through a Gateway over a shared ledger.

    python worker.py '<json config>'

Config: ``url`` (a loopback server of the MiMSMS v4 simulator), ``provider`` (its
constructor arguments), ``ledger`` (``{"kind": "sqlite", "path": ...}`` or
``{"kind": "postgres", "dsn": ..., "table": ...}``) and ``messages`` (``to``, ``text``,
``key``). Sends them all at once and prints one JSON line per outcome; the crash test
kills it with SIGKILL while its submits are held open by the server.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from mimgw import MimgwError, Receipt
from mimgw.gateway import Gateway
from mimgw.ledger import Ledger, SqliteLedger
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.retry import RetryPolicy

LedgerSpec = dict[str, Any]
"""``{"kind": "sqlite", "path": ...}`` or ``{"kind": "postgres", "dsn": ..., "table": ...}``"""


def open_ledger(spec: LedgerSpec) -> Ledger:
    if spec["kind"] == "sqlite":
        return SqliteLedger(spec["path"])
    from mimgw.ledger import PostgresLedger

    return PostgresLedger(spec["dsn"], table=spec["table"])


async def send_one(gw: Gateway, item: dict[str, Any]) -> dict[str, Any]:
    try:
        receipt: Receipt = await gw.send(item["to"], item["text"], idempotency_key=item["key"])
    except MimgwError as exc:
        return {"key": item["key"], "error": type(exc).__name__, "detail": str(exc)}
    return {"key": item["key"], "provider": receipt.provider, "message_id": receipt.message_id}


async def main(config: dict[str, Any]) -> None:
    ledger = open_ledger(config["ledger"])
    provider = MimSmsV4(**{**config["provider"], "base_url": config["url"]})
    retry = RetryPolicy(attempts=1, deadline=None)
    async with Gateway([provider], ledger=ledger, retry=retry, breaker=None) as gw:
        print(json.dumps({"ready": True}), flush=True)
        results = await asyncio.gather(*(send_one(gw, m) for m in config["messages"]))
        for result in results:
            print(json.dumps(result), flush=True)
    await ledger.aclose()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
