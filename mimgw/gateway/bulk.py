"""Bulk sending: a bounded pool of sends over any iterable or async iterable.

:meth:`BulkMixin.stream_bulk` yields ``(message, outcome)`` pairs as sends complete,
holding at most ``concurrency`` sends at a time (a single message, or a native batch of
up to the gateway's batch size), so a campaign of any size runs in constant memory.
:meth:`BulkMixin.send_bulk` collects them in input order. Each item may be a
:class:`~mimgw.Message`, a ``(to, text)`` pair or a mapping of Message fields; an item
that is not a valid message is that item's ``InvalidMessageError``. If the consumer of
a stream stops early or is cancelled, the sends under way are cancelled and waited for;
each records in the ledger what it knows. If the source itself raises, what it gave so
far is sent and reported as usual, then its error is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from functools import partial
from typing import Any

import anyio

from mimgw.errors import ConfigurationError, InvalidMessageError, MimgwError
from mimgw.gateway.batch_route import BatchRouteMixin
from mimgw.gateway.batching import Batch, adapter_for, plain
from mimgw.gateway.sending import _REFUSALS
from mimgw.models import BulkResult, Message, Receipt
from mimgw.providers.base import Outgoing

__all__ = ["BulkItem", "BulkMixin", "as_message"]

BulkItem = Message | tuple[str, str] | Mapping[str, Any]
Outcome = Receipt | MimgwError
Done = tuple[int, Message | Any, Outcome]


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


def _items(source: Iterable[Any] | AsyncIterable[Any]) -> Iterator[Any] | AsyncIterator[Any]:
    """An iterator over ``source``: a plain one for a plain iterable (read without an
    ``await`` per item), an async one for an async iterable."""
    if isinstance(source, AsyncIterable):
        return aiter(source)
    if isinstance(source, str | bytes | Message | Mapping):
        raise InvalidMessageError("send_bulk takes an iterable of messages, not a single one")
    return iter(source)


class BulkMixin(BatchRouteMixin):
    batch_linger = 0.02
    """Seconds a batch being formed from an async source waits for more messages."""

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
        items: dict[int, Any] = {}
        outcomes: dict[int, Outcome] = {}
        async for done in self._run_bulk(messages, concurrency, provider, batch):
            for index, item, outcome in done:
                items[index] = item
                outcomes[index] = outcome
        count = range(len(outcomes))
        return BulkResult(
            messages=tuple(items[i] for i in count), outcomes=tuple(outcomes[i] for i in count)
        )

    async def stream_bulk(
        self,
        messages: Iterable[BulkItem] | AsyncIterable[BulkItem],
        *,
        concurrency: int | None = None,
        provider: str | None = None,
        batch: bool = True,
    ) -> AsyncGenerator[tuple[Message | Any, Outcome], None]:
        """Send every item, yielding ``(message, outcome)`` in completion order.

        At most ``concurrency`` sends run at once (default
        :attr:`default_concurrency`; a native batch is one send: one request), each
        within its gateway's own limits; the input is read only as fast as sends
        complete. ``provider`` pins one gateway.
        ``message`` is the :class:`Message` sent, or the input item when it was not a
        valid message. Closing the stream (``aclose()``, :func:`contextlib.aclosing`)
        or cancelling its consumer cancels the sends under way and waits for them. If
        ``messages`` raises, what it gave is sent and yielded, then its error raised.
        """
        # closed with the stream: a consumer's break or aclose() ends the sends at once
        async with contextlib.aclosing(
            self._run_bulk(messages, concurrency, provider, batch)
        ) as runs:
            async for done in runs:
                for _, item, outcome in done:
                    yield item, outcome

    async def _run_bulk(
        self,
        messages: Iterable[BulkItem] | AsyncIterable[BulkItem],
        concurrency: int | None,
        provider: str | None,
        batch: bool,
    ) -> AsyncGenerator[list[Done], None]:
        """The outcomes of each unit of work (a batch or a single) as it completes."""
        limit = self.default_concurrency if concurrency is None else concurrency
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"concurrency must be a whole number >= 1, not {limit!r}")
        if not isinstance(messages, Iterable | AsyncIterable):
            raise InvalidMessageError(
                "send_bulk takes an iterable or async iterable of messages, "
                f"not {type(messages).__name__}"
            )
        if provider is not None:
            self._provider(provider)
        reader = _Reader(_items(messages))
        backlog: deque[Callable[[], Awaitable[list[Done]]]] = deque()
        running: set[asyncio.Task[list[Done]]] = set()
        try:
            while True:
                while len(running) < limit:
                    if not backlog:
                        if reader.done:
                            break
                        order = self._order(provider) if batch and self._batching(provider) else []
                        size = self._window(order[0]) if order else limit
                        start, window = await reader.window(size, self.batch_linger)
                        backlog.extend(self._plan(start, window, order, provider, batch))
                        continue
                    running.add(asyncio.ensure_future(backlog.popleft()()))
                if not running:
                    if reader.failed is not None:  # the source's own error, after its items
                        raise reader.failed
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
            await reader.aclose()

    def _batching(self, pin: str | None) -> bool:
        """Whether any gateway this bulk may use has native batches."""
        names = [pin] if pin is not None else list(self._providers)
        return any(adapter_for(self._providers[n]) is not None for n in names)

    def _window(self, name: str) -> int:
        provider = self._providers[name]
        adapter = adapter_for(provider)
        return 1 if adapter is None else adapter.window(provider)

    def _plan(
        self, start: int, window: list[Any], order: list[str], pin: str | None, batch: bool
    ) -> list[Callable[[], Awaitable[list[Done]]]]:
        """Units of work for one window (items ``start``, ``start + 1``, …): batches for
        ``order[0]`` and singles."""
        units: list[Callable[[], Awaitable[list[Done]]]] = []
        provider = self._providers[order[0]] if order else None
        adapter = adapter_for(provider) if batch and provider is not None else None
        # the window took one turn of the strategy: its singles keep that turn's order
        turn = order or None
        if adapter is None or provider is None or len(window) < 2:
            return [
                partial(self._bulk_one, i, item, pin, turn) for i, item in enumerate(window, start)
            ]
        keys: set[str] = set()
        indices: list[int] = []
        messages: list[Message] = []
        outgoing: list[Outgoing] = []
        refused: tuple[list[int], list[Message]] = ([], [])
        for index, item in enumerate(window, start):
            try:
                message = as_message(item)
            except InvalidMessageError as exc:
                units.append(partial(_ready, [(index, item, exc)]))
                continue
            key = message.idempotency_key
            if not plain(message) or (key is not None and key in keys):
                units.append(partial(self._bulk_one, index, message, pin, turn))
                continue
            try:
                ready = provider.prepare(message)
            except _REFUSALS:  # not for this gateway (a foreign number, say): for the next
                if key is not None:
                    keys.add(key)
                refused[0].append(index)
                refused[1].append(message)
                continue
            except MimgwError:  # the single path routes it
                units.append(partial(self._bulk_one, index, message, pin, turn))
                continue
            if key is not None:
                keys.add(key)
            indices.append(index)
            messages.append(message)
            outgoing.append(ready)
        batches, singles = adapter.plan(provider, outgoing) if len(outgoing) > 1 else ([], [0])
        for plan in batches:
            members = ([indices[i] for i in plan.members], [messages[i] for i in plan.members])
            units.append(partial(self._bulk_batch, *members, plan, order, pin))
        units += [
            partial(self._bulk_one, indices[i], messages[i], pin, turn) for i in singles if indices
        ]
        if len(refused[0]) > 1 and pin is None:
            # together, planned again as batches by the gateway that takes them
            units.append(partial(self._bulk_batch, *refused, None, order, pin))
        else:
            alone = zip(*refused, strict=True)
            units += [partial(self._bulk_one, i, m, pin, turn) for i, m in alone]
        return units

    async def _bulk_batch(
        self,
        indices: list[int],
        messages: list[Message],
        plan: Batch | None,
        order: list[str],
        pin: str | None,
    ) -> list[Done]:
        """``plan``: one batch for ``order[0]``; None: messages ``order[0]`` refused, for
        the gateways after it."""
        outgoing = [None] * len(messages) if plan is None else plan.outgoing
        outcomes = await self._send_batch(messages, outgoing, order, pin, plan)
        return list(zip(indices, messages, outcomes, strict=True))

    async def _bulk_one(
        self, index: int, item: Any, provider: str | None, order: list[str] | None = None
    ) -> list[Done]:
        try:
            message = as_message(item)
        except InvalidMessageError as exc:
            return [(index, item, exc)]
        try:
            if self._pending:
                await self.flush()
            return [(index, message, await self._submit(message, provider, order=order))]
        except MimgwError as exc:
            return [(index, message, exc)]


async def _ready(done: list[Done]) -> list[Done]:
    return done


_END = object()


class _Reader:
    """Reads bulk items in windows. An async source is read by its own task, so that a
    window waits at most ``linger`` seconds for more once it has an item."""

    def __init__(self, source: Iterator[Any] | AsyncIterator[Any]) -> None:
        self._source = source
        self._queue: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._index = 0
        self.done = False
        self.failed: BaseException | None = None
        """What the source raised (it gives nothing more)."""

    async def window(self, size: int, linger: float) -> tuple[int, list[Any]]:
        """The index of the next item, and up to ``size`` items from there."""
        items: list[Any] = []
        source = self._source
        if isinstance(source, AsyncIterator):  # (an object that is both goes async)
            queue = self._start(source, size)
            while len(items) < size:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    if items:
                        try:
                            item = await asyncio.wait_for(queue.get(), linger)
                        except TimeoutError:
                            break
                    else:
                        item = await queue.get()
                if item is _END:
                    self.done = True
                    break
                if isinstance(item, _Failed):
                    self.done, self.failed = True, item.error
                    break
                items.append(item)
        else:  # a plain iterable: read in place
            try:
                items.extend(itertools.islice(source, size))
            except Exception as exc:  # the items read so far still go out
                self.done, self.failed = True, exc
            else:
                self.done = len(items) < size
        start = self._index
        self._index += len(items)
        return start, items

    def _start(self, source: AsyncIterator[Any], size: int) -> asyncio.Queue[Any]:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=max(1, size))
            self._task = asyncio.ensure_future(self._pump(source, self._queue))
        return self._queue

    async def _pump(self, source: AsyncIterator[Any], queue: asyncio.Queue[Any]) -> None:
        try:
            async for item in source:
                await queue.put(item)
        except BaseException as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # aclose(): the reader is done
                raise
            # the source's own error (a CancelledError of its own included): handed to
            # the consumer and raised where it reads, so the campaign never waits forever
            await queue.put(_Failed(exc))
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return
        await queue.put(_END)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([self._task])


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error
