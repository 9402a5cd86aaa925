"""The taskiq app the service tests run as worker processes (configured by environment)."""

from __future__ import annotations

import os

from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from mimgw.taskiq import MimgwTasks

_url = os.environ["MIMGW_TEST_BROKER_URL"]
broker = ListQueueBroker(_url, queue_name=os.environ["MIMGW_TEST_QUEUE"]).with_result_backend(
    RedisAsyncResultBackend(_url, result_ex_time=120)
)
tasks = MimgwTasks(
    broker,
    chunk_size=int(os.environ.get("MIMGW_TEST_CHUNK", "20")),
    concurrency=int(os.environ.get("MIMGW_TEST_CONCURRENCY", "16")),
)
