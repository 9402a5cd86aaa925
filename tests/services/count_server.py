"""A MiMSMS-v4-shaped gateway on loopback that counts what it is sent (tests, benchmark).

Run as ``python tests/services/count_server.py --port P [--latency 0.02]`` (uvicorn).
``POST /api/SmsSending/SMS`` (one number), ``OneToMany`` (comma-separated numbers, one
text) and ``DSMS`` (``SmsData`` rows of number and text) answer success (``statusCode``
200 and a ``trxnId``) after ``latency`` seconds, or 401 while ``POST /control/auth`` is
set; every recipient counts as one submit. ``GET /stats`` gives the
total, the number of distinct (number, text) pairs, the highest count of one pair and,
with ``?times=1``, the arrival time of every submit. ``POST /control/reset`` clears it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter
from typing import Any

SMS_PATH = "/api/SmsSending/SMS"
ONE_TO_MANY_PATH = "/api/SmsSending/OneToMany"
DSMS_PATH = "/api/SmsSending/DSMS"
USERNAME = "count@example.com"
API_KEY = "count-server-key"
SENDER = "COUNTSRV"


class CountServer:
    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.auth_fails = False
        self.counts: Counter[tuple[str, str]] = Counter()
        self.times: list[float] = []
        self.ids = itertools.count(1)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        status, answer = await self.handle(scope["method"], scope["path"], scope, body)
        data = json.dumps(answer).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def handle(
        self, method: str, path: str, scope: dict[str, Any], body: bytes
    ) -> tuple[int, Any]:
        if path in (SMS_PATH, ONE_TO_MANY_PATH, DSMS_PATH) and method == "POST":
            fields = json.loads(body or b"{}")
            if self.auth_fails or fields.get("Apikey") != API_KEY:
                return 200, {
                    "statusCode": "401",
                    "status": "Unauthorized",
                    "trxnId": "",
                    "responseResult": "Invalid UserName & Password",
                }
            for pair in recipients(path, fields):
                self.times.append(time.time())
                self.counts[pair] += 1
            if self.latency:
                await asyncio.sleep(self.latency)
            return 200, {
                "statusCode": "200",
                "status": "Success",
                "trxnId": f"T{next(self.ids):09d}",
                "responseResult": "SMS Send Successfuly",
            }
        if path == "/stats":
            stats: dict[str, Any] = {
                "total": sum(self.counts.values()),
                "distinct": len(self.counts),
                "max_count": max(self.counts.values(), default=0),
            }
            if b"times=1" in scope.get("query_string", b""):
                stats["times"] = self.times
            return 200, stats
        if path == "/control/auth" and method == "POST":
            self.auth_fails = True
            return 200, {}
        if path == "/control/ok" and method == "POST":
            self.auth_fails = False
            return 200, {}
        if path == "/control/reset" and method == "POST":
            self.counts.clear()
            self.times.clear()
            self.auth_fails = False
            return 200, {}
        return 404, {"error": "not found"}


def recipients(path: str, fields: dict[str, Any]) -> list[tuple[str, str]]:
    """The (number, text) pairs of one v4 submit: a single, a one-to-many or a DSMS."""
    if path == DSMS_PATH:
        rows = fields.get("SmsData") or []
        return [(str(r.get("MobNumber")), str(r.get("Message"))) for r in rows]
    numbers = str(fields.get("MobileNumber")).split(",") if path == ONE_TO_MANY_PATH else None
    text = str(fields.get("Message"))
    return [(n, text) for n in numbers] if numbers else [(str(fields.get("MobileNumber")), text)]


def provider_env(url: str, *, name: str = "count") -> dict[str, str]:
    """``MIMGW_*`` variables that point a MiMSMS v4 provider at this server."""
    base = f"MIMGW_PROVIDERS__{name.upper()}__"
    return {
        base + "KIND": "mimsms_v4",
        base + "USERNAME": USERNAME,
        base + "API_KEY": API_KEY,
        base + "SENDER": SENDER,
        base + "BASE_URL": url,
    }


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    uvicorn.run(
        CountServer(args.latency),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
