"""``send-bulk --enqueue``: put the CSV rows on a taskiq queue instead of sending them.

The rows go out as a campaign of ``mimgw.send_chunk`` tasks (:class:`mimgw.taskiq.MimgwTasks`),
each message keeping the row's idempotency key (``csv-<digest>-<line>`` or
``--key-column``), so workers sharing a ledger send each row at most once however often
it is queued. Each row is recorded ``queued`` in the outcome file once its chunk is on the
queue; a later run (queueing or sending) skips it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from mimgw.cli.bulk import Outcome, OutcomeFile, Row, file_key
from mimgw.cli.common import EXIT_FAILED, EXIT_OK, CliError

BROKER_ENV = "MIMGW_TASKIQ__BROKER_URL"
QUEUE_ENV = "MIMGW_TASKIQ__QUEUE"


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("queueing (--enqueue)")
    group.add_argument(
        "--enqueue",
        action="store_true",
        help="queue the rows for mimgw.taskiq workers instead of sending them here",
    )
    group.add_argument(
        "--broker",
        metavar="URL",
        help=f"taskiq broker: redis://… or amqp://… (default: ${BROKER_ENV})",
    )
    group.add_argument(
        "--broker-type",
        choices=("stream", "list"),
        default="stream",
        help="Redis broker of the workers: taskiq-redis RedisStreamBroker (stream, default) "
        "or ListQueueBroker (list)",
    )
    group.add_argument(
        "--queue",
        metavar="NAME",
        help=f"the workers' queue (default: ${QUEUE_ENV}, else taskiq's 'taskiq')",
    )
    group.add_argument(
        "--campaign", metavar="ID", help="campaign label (default: csv-<input digest>)"
    )
    group.add_argument(
        "--chunk-size", type=int, default=200, metavar="N", help="messages per queued task"
    )


@dataclass
class Queued(Outcome):
    """A row put on the queue (its sending is up to the workers)."""

    @property
    def status(self) -> str:
        return "queued"

    def record(self) -> dict[str, object]:
        message = self.row.message
        return {
            "line": self.row.line,
            "to": message.to if message else self.row.cells.get("to", ""),
            "reference": message.reference if message else "",
            "outcome": "queued",
            "idempotency_key": self.row.key or "",
        }


def make_broker(url: str, kind: str, queue: str) -> Any:
    """The taskiq broker for ``url`` (the worker side must use the same kind and queue)."""
    scheme = url.split("://", 1)[0].lower()
    try:
        if scheme in ("redis", "rediss", "unix"):
            from taskiq_redis import ListQueueBroker, RedisStreamBroker

            broker_class = RedisStreamBroker if kind == "stream" else ListQueueBroker
            return broker_class(url, queue_name=queue)
        if scheme in ("amqp", "amqps"):
            from taskiq_aio_pika import AioPikaBroker

            return AioPikaBroker(url, queue_name=queue)
    except ImportError as exc:
        raise CliError(
            f"--enqueue to a {scheme}:// broker needs {exc.name}: pip install 'mimgw[taskiq]'"
            + (" taskiq-aio-pika" if scheme.startswith("amqp") else "")
        ) from None
    raise CliError(f"--broker: {scheme}:// is not a taskiq broker mimgw knows (redis, amqp)")


def _never_sends() -> Any:
    raise CliError("send-bulk --enqueue only queues: it never sends")


async def enqueue_rows(
    args: argparse.Namespace,
    out: Any,
    rows: Sequence[Row],
    pending: Sequence[Row],
    kept: dict[int, dict[str, str]],
    output: Path,
) -> int:
    url = args.broker or os.environ.get(BROKER_ENV, "").strip()
    if not url:
        raise CliError(f"--enqueue needs a broker: --broker redis://… or {BROKER_ENV}")
    if args.chunk_size < 1:
        raise CliError("--chunk-size must be at least 1")
    queue = args.queue or os.environ.get(QUEUE_ENV, "").strip() or "taskiq"
    campaign = args.campaign or f"csv-{file_key(args.csv)}"
    try:
        from mimgw.taskiq import MimgwTasks
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise CliError("--enqueue needs the taskiq extra: pip install 'mimgw[taskiq]'") from exc
    broker = make_broker(url, args.broker_type, queue)
    tasks = MimgwTasks(broker, gateway_factory=_never_sends, redeliver_every=None)
    valid = [row for row in pending if row.message is not None]
    invalid = [row for row in pending if row.message is None]
    queued = 0
    error: str | None = None
    outcomes = OutcomeFile(output, (kept[line] for line in sorted(kept)))
    try:
        for row in invalid:
            outcomes.write(Outcome(row, row.error))
        async with AsyncExitStack() as stack:
            try:
                await broker.startup()
                stack.push_async_callback(broker.shutdown)
                for start in range(0, len(valid), args.chunk_size):
                    chunk = valid[start : start + args.chunk_size]
                    messages = [row.message for row in chunk if row.message is not None]
                    await tasks.enqueue_campaign(campaign, messages, chunk_size=len(messages))
                    for row in chunk:
                        outcomes.write(Queued(row, None))
                    queued += len(chunk)
            except CliError:
                raise
            except Exception as exc:  # the broker's own errors: no URL (it may hold a password)
                error = f"{type(exc).__name__}: the broker stopped taking tasks"
    finally:
        outcomes.close(sort=error is None)
    out.print(
        f"queued {queued} of {len(rows)} row(s) as campaign {escape(campaign)} on "
        f"{escape(queue)}"
        + (f" ({len(kept)} recorded earlier)" if kept else "")
        + (f"; {len(invalid)} invalid row(s) recorded as failed" if invalid else "")
    )
    out.print(f"outcomes written to {escape(str(output))}")
    if error is not None:
        raise CliError(
            f"{error} after {queued} row(s); run the same command again to queue the rest"
        )
    return EXIT_FAILED if invalid else EXIT_OK
