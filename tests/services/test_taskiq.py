# ruff: noqa: F401, F811, ASYNC109
"""mimgw.taskiq with real worker processes: taskiq on Redis, one PostgreSQL ledger, the
counting gateway on loopback. Each message is sent once, whatever the queue does."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
from svc_support import (
    Served,
    prefix,
    server,
    start_server,
    start_worker,
    stop,
    worker_env,
)

pytestmark = pytest.mark.services

COUNT = 120


@pytest.fixture
async def tasks(prefix: str, redis_url: str) -> AsyncIterator[object]:
    """The test's client side of svc_worker_app (same queue and result backend)."""
    os.environ["MIMGW_TEST_BROKER_URL"] = redis_url
    os.environ["MIMGW_TEST_QUEUE"] = f"{prefix}:queue"
    from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

    from mimgw.taskiq import MimgwTasks

    broker = ListQueueBroker(redis_url, queue_name=f"{prefix}:queue").with_result_backend(
        RedisAsyncResultBackend(redis_url, result_ex_time=120)
    )
    await broker.startup()
    made = MimgwTasks(broker, chunk_size=20, gateway_factory=_no_gateway)
    yield made
    await broker.shutdown()


def _no_gateway() -> object:
    raise AssertionError("the client side never sends")


def _env(served: Served, prefix: str, redis_url: str, pg_dsn: str, pg_table: str) -> dict[str, str]:
    return worker_env(
        served,
        prefix,
        redis_url,
        MIMGW_LEDGER__URL=pg_dsn,
        MIMGW_LEDGER__TABLE=pg_table,
    )


async def _wait_total(served: Served, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        total = int((await asyncio.to_thread(served.stats))["total"])
        if total >= at_least:
            return total
        await asyncio.sleep(0.1)
    return total


async def test_campaign_enqueued_twice_on_three_workers_sends_each_once(
    server: Served,
    prefix: str,
    redis_url: str,
    pg_dsn: str,
    pg_table: str,
    tasks: object,
) -> None:
    from mimgw.taskiq import MimgwTasks

    assert isinstance(tasks, MimgwTasks)
    env = _env(server, prefix, redis_url, pg_dsn, pg_table)
    workers = [start_worker(env) for _ in range(3)]
    try:
        numbers = [f"0171{i:07d}" for i in range(COUNT)]
        first = await tasks.enqueue_campaign("c1", numbers, text="sale")
        again = await tasks.enqueue_campaign("c1", numbers, text="sale")
        assert first.chunks == again.chunks == COUNT // 20
        handles = []
        # the same keys as single sends too, from whichever worker takes them
        from mimgw.taskiq import campaign_key

        for number in numbers[:10]:
            handles.append(
                await tasks.send.kiq(
                    {"to": number, "text": "sale", "idempotency_key": campaign_key("c1", number)}
                )
            )
        assert await _wait_total(server, COUNT, 40) == COUNT
        await asyncio.sleep(1.0)  # let every duplicate task run
        stats = await asyncio.to_thread(server.stats)
        assert stats["total"] == COUNT and stats["max_count"] == 1
        for handle in handles:
            result = await handle.wait_result(timeout=20)
            # accepted (answered from the ledger), or unknown when it ran while another
            # worker's send of the same key was in flight: never sent a second time
            assert result.return_value["state"] in ("accepted", "unknown"), result.return_value
    finally:
        for worker in workers:
            stop(worker)


async def test_worker_killed_mid_run_then_campaign_reenqueued(
    prefix: str, redis_url: str, pg_dsn: str, pg_table: str, tasks: object
) -> None:
    from mimgw.ledger import PostgresLedger
    from mimgw.taskiq import MimgwTasks

    assert isinstance(tasks, MimgwTasks)
    slow = start_server(latency=0.4)  # requests in flight when the worker dies
    env = _env(slow, prefix, redis_url, pg_dsn, pg_table)
    victim, survivor = start_worker(env), None
    try:
        numbers = [f"0172{i:07d}" for i in range(COUNT)]
        await tasks.enqueue_campaign("c2", numbers, text="kill")
        assert await _wait_total(slow, 10, 40) >= 10
        os.killpg(victim.pid, signal.SIGKILL)  # manager and worker, mid-request
        victim.wait(10)
        survivor = start_worker(env)
        await tasks.enqueue_campaign("c2", numbers, text="kill")
        deadline = time.monotonic() + 45
        ledger = PostgresLedger(pg_dsn, table=pg_table)
        try:
            while time.monotonic() < deadline:
                unresolved = await ledger.unresolved()
                stats = await asyncio.to_thread(slow.stats)
                if stats["total"] + len(unresolved) >= COUNT and stats["total"] > 0:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)
            unresolved = await ledger.unresolved()
            stats = await asyncio.to_thread(slow.stats)
        finally:
            await ledger.aclose()
        assert stats["max_count"] == 1  # nothing sent twice
        assert unresolved, "the killed worker's in-flight sends are reported unknown"
        keys = {i.key for i in unresolved}
        assert all(k is not None and k.startswith("campaign:c2:") for k in keys)
        # every message was either sent (counted once) or is reported unknown
        assert stats["distinct"] + len(unresolved) >= COUNT
    finally:
        stop(victim, signal.SIGKILL)
        if survivor is not None:
            stop(survivor)
        stop(slow.process)
