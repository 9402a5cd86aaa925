"""Real services on loopback: PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379).

A test that needs one takes its fixture. When the service is down the test is skipped
with the reason on a laptop, and fails under CI (``CI=true``): CI never skips silently.
Tests that use them are marked ``services`` (``pytest -m "not services"`` leaves them out).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_DSN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> None:
    """Skip (laptop) or fail (CI) a test whose service is down."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: services are required)", pytrace=False)
    pytest.skip(reason)


def _port_error(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The DSN of the test database, once PostgreSQL answers a real query."""
    import asyncpg  # type: ignore[import-untyped]

    async def probe() -> None:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    try:
        _run(probe())
    except Exception as exc:
        unavailable(f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT}: {type(exc).__name__}: {exc}")
    return PG_DSN


@pytest.fixture
def pg_table(pg_dsn: str) -> Iterator[str]:
    """A fresh table prefix for one test; its tables are dropped afterwards."""
    table = f"t_{secrets.token_hex(5)}"
    yield table
    drop_tables(pg_dsn, table)


def drop_tables(dsn: str, table: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for name in (table, f"{table}_intents", f"{table}_meta"):
                await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
        finally:
            await conn.close()

    _run(drop())


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end on its own loop (in a thread: a test's loop may be running)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
async def pg_ledger(pg_dsn: str, pg_table: str) -> AsyncIterator[object]:
    from mimgw.ledger import PostgresLedger

    led = PostgresLedger(pg_dsn, table=pg_table)
    yield led
    await led.aclose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of the loopback Redis, once it answers PING."""
    error = _port_error(REDIS_HOST, REDIS_PORT)
    if error is None:
        try:
            with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2) as s:
                s.sendall(b"PING\r\n")
                answer = s.recv(64)
            if not answer.startswith(b"+PONG"):
                error = f"PING answered {answer[:40]!r}"
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
    if error is not None:
        unavailable(f"Redis not reachable on {REDIS_HOST}:{REDIS_PORT}: {error}")
    return REDIS_URL
