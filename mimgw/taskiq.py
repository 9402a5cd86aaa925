"""Send through a taskiq queue (extra ``taskiq``): many workers, each message sent once.

    broker = RedisStreamBroker("redis://127.0.0.1:6379")
    tasks = MimgwTasks(broker)                      # Gateway.from_settings() per worker

    await tasks.enqueue(Message(to="01712345678", text="hi"))
    await tasks.enqueue_campaign("spring-sale", ["01712345678", ...], text="20% off")

Run workers with ``taskiq worker myapp.tasks:broker --workers 4``. Each worker process
builds its :class:`~mimgw.Gateway` once (worker start-up) and closes it at shutdown.
Every message travels with an idempotency key — the caller's, the campaign's
``campaign:<id>:<recipient>``, or one fixed at enqueue time — so a task the broker
delivers twice (at-least-once), a chunk re-enqueued after a crash, or the same campaign
enqueued again never sends a message twice, as long as the workers share a ledger
(``MIMGW_LEDGER__URL=postgresql://…``). Each task returns small JSON outcomes; the
ledger holds the full record. See docs/scale-out.md.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

try:
    from taskiq import AsyncBroker, TaskiqEvents, TaskiqState
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from mimgw.errors import ConfigurationError

    raise ConfigurationError(
        "mimgw.taskiq needs the taskiq extra: pip install 'mimgw[taskiq]'"
    ) from exc

import anyio

from mimgw.errors import (
    AllProvidersFailedError,
    InvalidMessageError,
    MimgwError,
    OutcomeUnknownError,
    ProviderError,
)
from mimgw.ledger import LedgerError
from mimgw.models import Message, Receipt

if TYPE_CHECKING:
    from mimgw.config import GatewaySettings
    from mimgw.gateway import Gateway

__all__ = ["CampaignEnqueued", "MimgwTasks", "campaign_key", "outcome"]

GatewayFactory = Callable[[], "Gateway | Awaitable[Gateway]"]


def campaign_key(campaign_id: str, to: str, suffix: str | None = None) -> str:
    """The idempotency key of one campaign message: the same campaign, recipient (and
    ``suffix``, for several messages to one recipient) always give the same key."""
    number = Message(to=to, text=".").to  # normalised: 017… and 88017… are one recipient
    key = f"campaign:{campaign_id}:{number}"
    return key if suffix is None else f"{key}:{suffix}"


def outcome(message: Message, result: Receipt | BaseException) -> dict[str, Any]:
    """What a task returns for one message (JSON): ``state`` is ``accepted``, ``failed``
    (nothing was sent) or ``unknown`` (it may have been sent; see Ledger.unresolved)."""
    base: dict[str, Any] = {"idempotency_key": message.idempotency_key, "to": message.to}
    if isinstance(result, Receipt):
        return {
            **base,
            "state": "accepted",
            "provider": result.provider,
            "message_id": result.message_id,
        }
    maybe = False
    provider = None
    kind = "error"
    if isinstance(result, ProviderError):
        maybe, provider, kind = result.may_have_been_sent, result.provider, result.kind.value
    elif isinstance(result, AllProvidersFailedError):
        last = result.last
        maybe = result.may_have_been_sent
        provider = None if last is None else last.provider
        kind = "all_failed" if last is None else last.kind.value
    elif isinstance(result, InvalidMessageError):
        kind = "invalid_message"
    if isinstance(result, OutcomeUnknownError):
        maybe = True
    return {
        **base,
        "state": "unknown" if maybe else "failed",
        "provider": provider,
        "error": kind,
        "detail": str(result)[:300],
        "may_have_been_sent": maybe,
    }


@dataclass(frozen=True)
class CampaignEnqueued:
    """What :meth:`MimgwTasks.enqueue_campaign` queued."""

    campaign_id: str
    messages: int
    chunks: int
    task_ids: tuple[str, ...]


class MimgwTasks:
    """mimgw's tasks on a taskiq ``broker``: ``send``, ``send_chunk`` and ``redeliver_due``.

    ``gateway_factory`` (sync or async) builds the worker's Gateway; by default
    ``Gateway.from_settings(settings)`` (``settings=None`` reads ``MIMGW_*``).
    ``redeliver_every`` (seconds) labels ``redeliver_due`` for taskiq's scheduler
    (``taskiq scheduler`` with a ``LabelScheduleSource``); ``concurrency`` bounds the
    requests one chunk has in flight at once. A chunk goes in native batches where its
    gateway has them (``batch=False``: one request per message); either way each
    message has its own write-ahead intent and key.
    """

    def __init__(
        self,
        broker: AsyncBroker,
        *,
        settings: GatewaySettings | None = None,
        gateway_factory: GatewayFactory | None = None,
        prefix: str = "mimgw",
        chunk_size: int = 200,
        concurrency: int = 32,
        redeliver_every: float | None = 60.0,
        batch: bool = True,
    ) -> None:
        if chunk_size < 1 or concurrency < 1:
            raise ValueError("chunk_size and concurrency must be at least 1")
        self.broker = broker
        self.settings = settings
        self._factory = gateway_factory
        self.chunk_size = chunk_size
        self.concurrency = concurrency
        self.batch = batch
        self._gateway: Gateway | None = None
        self._lock = anyio.Lock()

        # taskiq registers plain functions (it renames them), not bound methods
        async def send(payload: dict[str, Any]) -> dict[str, Any]:
            return await self._send(payload)

        async def send_chunk(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return await self._send_chunk(payloads)

        async def redeliver_due(limit: int | None = None) -> dict[str, int]:
            return await self._redeliver_due(limit)

        self.send = broker.register_task(send, task_name=f"{prefix}.send")
        self.send_chunk = broker.register_task(send_chunk, task_name=f"{prefix}.send_chunk")
        labels: dict[str, Any] = {}
        if redeliver_every is not None:
            labels["schedule"] = [{"interval": max(1, round(redeliver_every))}]
        self.redeliver_due = broker.register_task(
            redeliver_due, task_name=f"{prefix}.redeliver_due", **labels
        )
        broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, self._startup)
        broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, self._shutdown)

    # -- the worker's Gateway -----------------------------------------------------------

    async def gateway(self) -> Gateway:
        """This process's Gateway, built and opened on first use (worker start-up)."""
        if self._gateway is not None:
            return self._gateway
        async with self._lock:
            if self._gateway is None:
                gateway = await self._build()
                await gateway.__aenter__()
                self._gateway = gateway
        return self._gateway

    async def _build(self) -> Gateway:
        if self._factory is not None:
            made = self._factory()
            return await made if inspect.isawaitable(made) else made
        from mimgw.gateway import Gateway

        return Gateway.from_settings(self.settings)

    async def aclose(self) -> None:
        """Close this process's Gateway (done at worker shutdown)."""
        gateway, self._gateway = self._gateway, None
        if gateway is not None:
            await gateway.aclose()

    async def _startup(self, state: TaskiqState) -> None:
        await self.gateway()

    async def _shutdown(self, state: TaskiqState) -> None:
        await self.aclose()

    # -- tasks (run on workers) -----------------------------------------------------------

    async def _send(self, payload: dict[str, Any]) -> dict[str, Any]:
        message = _message(payload)
        gateway = await self.gateway()
        try:
            receipt = await gateway.send_message(message)
        except LedgerError:
            raise  # the ledger is down: fail the task (nothing was sent)
        except MimgwError as exc:
            return outcome(message, exc)
        return outcome(message, receipt)

    async def _send_chunk(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        messages = [_message(p) for p in payloads]
        gateway = await self.gateway()
        # each message keeps its own write-ahead intent and key, batched or not: a chunk
        # delivered twice sends nothing twice
        result = await gateway.send_bulk(messages, concurrency=self.concurrency, batch=self.batch)
        return [outcome(m, o) for m, o in zip(messages, result.outcomes, strict=True)]

    async def _redeliver_due(self, limit: int | None = None) -> dict[str, int]:
        gateway = await self.gateway()
        outcomes = await gateway.redeliver_due(limit=limit)
        sent = sum(isinstance(o, Receipt) for o in outcomes)
        return {"resent": sent, "failed": len(outcomes) - sent}

    # -- enqueueing (run anywhere) ----------------------------------------------------------

    async def enqueue(self, message: Message | Mapping[str, Any]) -> str:
        """Queue one message; returns the task id. A message without an idempotency key
        gets one now, so every delivery of this task is the same message."""
        if not isinstance(message, Message):
            message = Message.model_validate(dict(message))
        if message.idempotency_key is None:
            message = message.model_copy(update={"idempotency_key": f"task:{uuid.uuid4().hex}"})
        task = await self.send.kiq(message.model_dump(mode="json"))
        return str(task.task_id)

    async def enqueue_campaign(
        self,
        campaign_id: str,
        recipients: Iterable[str | Message | Mapping[str, Any]],
        *,
        text: str | None = None,
        sender: str | None = None,
        chunk_size: int | None = None,
    ) -> CampaignEnqueued:
        """Queue a campaign in chunks. A recipient is a number (sent ``text``), a Message
        or a mapping of Message fields (``suffix`` tells apart several messages to one
        number). Keys are ``campaign_key(campaign_id, to, suffix)`` unless given, so
        enqueueing the same campaign again sends only what was not sent yet."""
        size = chunk_size or self.chunk_size
        chunk: list[dict[str, Any]] = []
        ids: list[str] = []
        count = 0
        for item in recipients:
            chunk.append(_campaign_payload(campaign_id, item, text, sender))
            count += 1
            if len(chunk) >= size:
                ids.append(str((await self.send_chunk.kiq(chunk)).task_id))
                chunk = []
        if chunk:
            ids.append(str((await self.send_chunk.kiq(chunk)).task_id))
        return CampaignEnqueued(campaign_id, count, len(ids), tuple(ids))


def _campaign_payload(
    campaign_id: str, item: str | Message | Mapping[str, Any], text: str | None, sender: str | None
) -> dict[str, Any]:
    suffix: str | None = None
    if isinstance(item, str):
        if text is None:
            raise InvalidMessageError("enqueue_campaign: text= is required for bare numbers")
        fields: dict[str, Any] = {"to": item, "text": text, "sender": sender}
    elif isinstance(item, Message):
        fields = item.model_dump(mode="json")
    else:
        fields = dict(item)
        raw_suffix = fields.pop("suffix", None)
        suffix = None if raw_suffix is None else str(raw_suffix)
        fields.setdefault("text", text)
        fields.setdefault("sender", sender)
    message = Message.model_validate(fields)
    if message.idempotency_key is None:
        key = campaign_key(campaign_id, message.to, suffix)
        message = message.model_copy(update={"idempotency_key": key})
    return message.model_dump(mode="json")


def _message(payload: Mapping[str, Any]) -> Message:
    """The message of a task payload; one without a key gets one derived from its content
    (including its reference), the same on every delivery of that task."""
    message = Message.model_validate(dict(payload))
    if message.idempotency_key is None:
        digest = hashlib.sha256(
            json.dumps(message.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()[:32]
        message = message.model_copy(update={"idempotency_key": f"task:{digest}"})
    return message
