# ruff: noqa: F401, F811, S603
"""``mimgw send-bulk --enqueue`` against real Redis: the rows are queued (not sent) with
their CSV idempotency keys, a taskiq worker sharing a PostgreSQL ledger sends each row
once, and queueing the same file again sends nothing more."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from svc_support import Served, prefix, server, start_worker, stop, worker_env

pytestmark = pytest.mark.services

ROWS = 30


def _csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["to", "text"])
        for i in range(ROWS):
            writer.writerow([f"0171{i:07d}", f"queued row {i}"])
        writer.writerow(["12345", "not a number"])  # line ROWS + 2: invalid, never queued
    return path


def _enqueue(
    source: Path, output: Path, redis_url: str, queue: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMGW_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "MIMGW_TASKIQ__BROKER_URL": redis_url})
    return subprocess.run(
        [
            *(sys.executable, "-m", "mimgw.cli", "send-bulk", str(source), "--enqueue"),
            *("--broker-type", "list", "--queue", queue, "--chunk-size", "7", "-o", str(output)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _outcomes(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _drained(
    redis_url: str, queue: str, served: Served, total: int, timeout: float
) -> dict[str, int]:
    """Wait until the queue is empty and the server saw ``total`` submits (or time out)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if client.llen(queue) == 0 and served.stats()["total"] >= total:
                break
            time.sleep(0.1)
    finally:
        client.close()
    time.sleep(1.5)  # a second delivery of anything would arrive now
    stats: dict[str, int] = served.stats()
    return stats


def test_enqueue_then_one_worker_sends_each_row_once(
    tmp_path: Path, server: Served, prefix: str, redis_url: str, pg_dsn: str, pg_table: str
) -> None:
    queue = f"{prefix}:queue"
    source = _csv(tmp_path / "rows.csv")
    output = tmp_path / "rows.outcomes.csv"

    done = _enqueue(source, output, redis_url, queue)
    assert done.returncode == 1, done.stdout + done.stderr  # the invalid row failed
    assert f"queued {ROWS} of {ROWS + 1} row(s)" in done.stdout
    records = _outcomes(output)
    assert [r["outcome"] for r in records] == ["queued"] * ROWS + ["failed"]
    digest = records[0]["idempotency_key"].split("-")[1]
    assert [r["idempotency_key"] for r in records[:ROWS]] == [
        f"csv-{digest}-{line}" for line in range(2, ROWS + 2)
    ]
    assert server.stats()["total"] == 0  # queued, not sent

    again = _enqueue(source, output, redis_url, queue)  # resumed: queued rows are skipped
    assert f"queued 0 of {ROWS + 1} row(s)" in again.stdout, again.stdout + again.stderr
    import redis

    client = redis.Redis.from_url(redis_url)
    assert client.llen(queue) == 5  # ceil(30 / 7) chunks, once
    client.close()

    # the same rows queued a second time (another outcome file): still sent once
    second = _enqueue(source, tmp_path / "second.csv", redis_url, queue)
    assert f"queued {ROWS} of {ROWS + 1} row(s)" in second.stdout, second.stdout + second.stderr

    env = worker_env(
        server, prefix, redis_url, MIMGW_LEDGER__URL=pg_dsn, MIMGW_LEDGER__TABLE=pg_table
    )
    worker = start_worker(env)
    try:
        stats = _drained(redis_url, queue, server, ROWS, timeout=60)
        assert (stats["total"], stats["distinct"], stats["max_count"]) == (ROWS, ROWS, 1)

        # queued once more after everything was sent: nothing more reaches the gateway
        third = _enqueue(source, tmp_path / "third.csv", redis_url, queue)
        assert f"queued {ROWS} of" in third.stdout, third.stdout + third.stderr
        stats = _drained(redis_url, queue, server, ROWS, timeout=30)
        assert (stats["total"], stats["distinct"], stats["max_count"]) == (ROWS, ROWS, 1)
    finally:
        stop(worker)


def test_enqueue_to_an_unreachable_broker_records_nothing_queued(tmp_path: Path) -> None:
    source = _csv(tmp_path / "rows.csv")
    output = tmp_path / "out.csv"
    done = _enqueue(source, output, "redis://127.0.0.1:1/0", "q")
    assert done.returncode == 1
    assert "the broker stopped taking tasks after 0 row(s)" in done.stdout + done.stderr
    assert "127.0.0.1:1" not in done.stdout + done.stderr
    assert [r["outcome"] for r in _outcomes(output)] == ["failed"]
