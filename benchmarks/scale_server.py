"""A MiMSMS-v4-shaped gateway on loopback that counts what it is sent (bench_scale.py).

Run as ``python benchmarks/scale_server.py --port P [--latency 0.02]``. It is aiohttp
(installed with mimgw's ``aiohttp`` extra) rather than uvicorn + h11, so the server's own
CPU stays small next to the workers' on a small machine.

``POST /api/SmsSending/SMS`` (one number), ``OneToMany`` (comma-separated numbers, one
text) and ``DSMS`` (``SmsData`` rows) answer success (``statusCode`` 200, a ``trxnId``)
after ``latency`` seconds; every recipient counts as one submit. ``GET /stats`` gives
``total`` submits, ``distinct`` (number, text) pairs, ``max_count`` of one pair and the
``first`` / ``last`` arrival times (epoch s). ``POST /control/reset`` clears the counts.
The shapes match the v4 document's sends (``UserName``, ``Apikey``, ``MobileNumber``,
``Message``, ``SenderName``, ``SmsData``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import Counter
from typing import Any

SMS_PATH = "/api/SmsSending/SMS"
ONE_TO_MANY_PATH = "/api/SmsSending/OneToMany"
DSMS_PATH = "/api/SmsSending/DSMS"
USERNAME = "bench@example.com"
API_KEY = "bench-server-key"
SENDER = "BENCHSRV"


def provider_env(url: str, *, name: str = "bench") -> dict[str, str]:
    """``MIMGW_*`` variables that point one MiMSMS v4 provider at this server."""
    base = f"MIMGW_PROVIDERS__{name.upper()}__"
    return {
        base + "KIND": "mimsms_v4",
        base + "USERNAME": USERNAME,
        base + "API_KEY": API_KEY,
        base + "SENDER": SENDER,
        base + "BASE_URL": url,
    }


def recipients(path: str, fields: dict[str, Any]) -> list[tuple[str, str]]:
    """The (number, text) pairs of one submit: a single, a one-to-many or a DSMS."""
    if path == DSMS_PATH:
        return [(str(r.get("MobNumber")), str(r.get("Message"))) for r in fields["SmsData"]]
    text = str(fields.get("Message"))
    numbers = str(fields.get("MobileNumber"))
    return [(n, text) for n in (numbers.split(",") if path == ONE_TO_MANY_PATH else [numbers])]


def make_app(latency: float) -> object:
    from aiohttp import web

    counts: Counter[tuple[str, str]] = Counter()
    span: list[float] = []  # [first, last]
    ids = itertools.count(1)

    async def sms(request: web.Request) -> web.Response:
        fields = await request.json()
        if fields.get("Apikey") != API_KEY:
            return web.json_response(
                {
                    "statusCode": "401",
                    "status": "Unauthorized",
                    "trxnId": "",
                    "responseResult": "Invalid UserName & Password",
                }
            )
        now = time.time()
        if span:
            span[1] = now
        else:
            span.extend((now, now))
        for pair in recipients(request.path, fields):
            counts[pair] += 1
        if latency:
            await asyncio.sleep(latency)
        return web.json_response(
            {
                "statusCode": "200",
                "status": "Success",
                "trxnId": f"T{next(ids):09d}",
                "responseResult": "SMS Send Successfuly",
            }
        )

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "total": sum(counts.values()),
                "distinct": len(counts),
                "max_count": max(counts.values(), default=0),
                "first": span[0] if span else None,
                "last": span[1] if span else None,
            }
        )

    async def reset(request: web.Request) -> web.Response:
        counts.clear()
        span.clear()
        return web.json_response({})

    app = web.Application()
    for path in (SMS_PATH, ONE_TO_MANY_PATH, DSMS_PATH):
        app.router.add_post(path, sms)
    app.router.add_get("/stats", stats)
    app.router.add_post("/control/reset", reset)
    return app


def main() -> None:
    from aiohttp import web

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    web.run_app(
        make_app(args.latency),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=args.port,
        backlog=4096,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
