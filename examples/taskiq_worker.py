"""A taskiq worker that sends SMS through mimgw (extras: taskiq, redis, postgres).

    export MIMGW_PROVIDERS__MAIN__KIND=mimsms_v4 ...        # the gateway, as usual
    export MIMGW_LEDGER__URL=postgresql://app@db/app         # one ledger for all workers
    export MIMGW_STATE__URL=redis://127.0.0.1:6379/0         # shared limits and breakers
    taskiq worker examples.taskiq_worker:broker --workers 4
    taskiq scheduler examples.taskiq_worker:scheduler        # redelivery every minute

Each worker process builds its Gateway once, from those settings, and closes it at
shutdown. RabbitMQ instead of Redis: ``from taskiq_aio_pika import AioPikaBroker`` and
``broker = AioPikaBroker("amqp://guest:guest@127.0.0.1:5672/")``.
"""

from __future__ import annotations

import os

from taskiq import TaskiqScheduler
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from mimgw.taskiq import MimgwTasks

REDIS = os.environ.get("TASKIQ_REDIS_URL", "redis://127.0.0.1:6379/0")

broker = RedisStreamBroker(REDIS).with_result_backend(
    RedisAsyncResultBackend(REDIS, result_ex_time=3600)
)
tasks = MimgwTasks(broker, chunk_size=200, concurrency=32, redeliver_every=60)
scheduler = TaskiqScheduler(broker, [LabelScheduleSource(broker)])
