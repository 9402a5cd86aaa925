"""Bulk sending: a bounded pool of sends over any iterable or async iterable.

:meth:`BulkMixin.stream_bulk` yields ``(message, outcome)`` pairs as sends complete,
holding at most ``concurrency`` messages at a time, so a campaign of any size runs in
constant memory. :meth:`BulkMixin.send_bulk` collects them in input order. Each item
may be a :class:`~mimgw.Message`, a ``(to, text)`` pair or a mapping of Message
fields; an item that is not a valid message is that item's ``InvalidMessageError``.
If the consumer of a stream stops early or is cancelled, the sends under way are
cancelled and waited for; each records in the ledger what it knows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any

import anyio

from mimgw.errors import ConfigurationError, InvalidMessageError, MimgwError
from mimgw.gateway.sending import SendingMixin
from mimgw.models import BulkResult, Message, Receipt

__all__ = ["BulkItem", "BulkMixin", "as_message"]

BulkItem = Message | tuple[str, str] | Mapping[str, Any]
Outcome = Receipt | MimgwError


def as_message(item: object) -> Message:
    """Turn one bulk item into a Message; InvalidMessageError says why it cannot be."""
    if isinstance(item, Message):
        return item
    if isinstance(item, Mapping):
        return Message.model_validate(dict(item))
    if isinstance(item, tuple | list) and len(item) == 2:
        to, text = item
        return Message(to=to, text=text)
    raise InvalidMessageError(
        f"a bulk item must be a Message, a (to, text) pair or a mapping, not {type(item).__name__}"
    )


async def _items(source: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    elif isinstance(source, str | bytes | Message | Mapping):
        raise InvalidMessageError("send_bulk takes an iterable of messages, not a single one")
    else:
        for item in source:
            yield item


class BulkMixin(SendingMixin):
    async def send_bulk(
        self,
        messages: Iterable[BulkItem] | AsyncIterable[BulkItem],
        *,
        concurrency: int | None = None,
        provider: str | None = None,
        batch: bool = True,
    ) -> BulkResult:
        """Send every item; one outcome per item, in input order. Never raises for one
        message's failure (see :meth:`stream_bulk` for the parameters)."""
        done: dict[int, tuple[Any, Outcome]] = {}
        async for index, item, outcome in self._run_bulk(messages, concurrency, provider, batch):
            done[index] = (item, outcome)
        ordered = [done[i] for i in range(len(done))]
        return BulkResult(
            messages=tuple(m for m, _ in ordered), outcomes=tuple(o for _, o in ordered)
        )

    async def stream_bulk(
        self,
        messages: Iterable[BulkItem] | AsyncIterable[BulkItem],
        *,
        concurrency: int | None = None,
        provider: str | None = None,
        batch: bool = True,
    ) -> AsyncIterator[tuple[Message | Any, Outcome]]:
        """Send every item, yielding ``(message, outcome)`` in completion order.

        At most ``concurrency`` sends run at once (default
        :attr:`default_concurrency`), each within its gateway's own limits; the input
        is read only as fast as sends complete. ``provider`` pins one gateway.
        ``message`` is the :class:`Message` sent, or the input item when it was not a
        valid message.
        """
        async for _, item, outcome in self._run_bulk(messages, concurrency, provider, batch):
            yield item, outcome

    async def _run_bulk(
        self,
        messages: Iterable[BulkItem] | AsyncIterable[BulkItem],
        concurrency: int | None,
        provider: str | None,
        batch: bool,
    ) -> AsyncIterator[tuple[int, Message | Any, Outcome]]:
        limit = self.default_concurrency if concurrency is None else concurrency
        if limit < 1:
            raise ConfigurationError("concurrency must be at least 1")
        if provider is not None:
            self._provider(provider)
        source = _items(messages)
        running: set[asyncio.Task[tuple[int, Message | Any, Outcome]]] = set()
        index = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(running) < limit:
                    try:
                        item = await anext(source)
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    running.add(asyncio.ensure_future(self._bulk_one(index, item, provider)))
                    index += 1
                if not running:
                    return
                finished, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    yield task.result()
        finally:
            # the consumer stopped or was cancelled: sends under way are cancelled like
            # any send (each records what it knows: sent, not sent or unknown) and
            # waited for, so no send outlives the loop that started it
            if running:
                for task in running:
                    task.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait(running)

    async def _bulk_one(
        self, index: int, item: Any, provider: str | None
    ) -> tuple[int, Message | Any, Outcome]:
        try:
            message = as_message(item)
        except InvalidMessageError as exc:
            return index, item, exc
        try:
            return index, message, await self.send_message(message, provider=provider)
        except MimgwError as exc:
            return index, message, exc
