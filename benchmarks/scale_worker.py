"""The taskiq app bench_scale.py runs as worker processes (configured by environment).

``BENCH_REDIS_URL`` and ``BENCH_QUEUE`` name the broker; ``BENCH_CONCURRENCY`` bounds the
requests one chunk has in flight; ``BENCH_BATCH=1`` sends chunks in native batches
(else one request per message). The Gateway comes from ``MIMGW_*`` (the loopback
server, the PostgreSQL ledger, RedisState), built once per worker process.
"""

from __future__ import annotations

import os

from taskiq_redis import ListQueueBroker

from mimgw.taskiq import MimgwTasks

broker = ListQueueBroker(os.environ["BENCH_REDIS_URL"], queue_name=os.environ["BENCH_QUEUE"])
tasks = MimgwTasks(
    broker,
    concurrency=int(os.environ.get("BENCH_CONCURRENCY", "8")),
    redeliver_every=None,
    batch=os.environ.get("BENCH_BATCH") == "1",
)
