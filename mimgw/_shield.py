"""Finish a write even when the caller is cancelled, by any kind of cancellation.

An anyio shielded scope stops anyio's own cancellation, but not ``Task.cancel()`` or
``asyncio.wait_for``: those throw ``CancelledError`` into whatever the task awaits.
:func:`complete` runs the write as its own task, keeps waiting for it through any
number of cancellations (up to ``grace`` seconds), and then re-raises the first
cancellation it swallowed, so the caller is still cancelled — after the write.

:func:`complete_eager` first runs the write in the caller's own task, up to its first
suspension: a write that ends without suspending (an inline SQLite write, the memory
ledger's) could not have been cancelled and needs no task at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

import anyio
import sniffio

log = logging.getLogger("mimgw.ledger")

__all__ = ["complete", "complete_eager"]

T = TypeVar("T")


async def complete(fn: Callable[[], Awaitable[T]], *, grace: float) -> T:
    """Await ``fn()`` to its end although the caller may be cancelled meanwhile.

    Raises ``TimeoutError`` when it takes longer than ``grace`` seconds (the write is
    abandoned), else its result or exception; a cancellation received meanwhile is
    re-raised afterwards.
    """
    if sniffio.current_async_library() != "asyncio":  # trio: shielded scopes are complete
        with anyio.CancelScope(shield=True), anyio.fail_after(grace):
            return await fn()

    async def bounded() -> T:
        with anyio.fail_after(grace):
            return await fn()

    task = asyncio.ensure_future(bounded())
    cancelled: BaseException | None = None
    with anyio.CancelScope(shield=True):  # anyio's own cancellation waits outside
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError as exc:
                if not task.done():
                    cancelled = cancelled or exc
            except BaseException:  # noqa: S110 - the task's own error, read below
                pass
    if cancelled is not None:
        if not task.cancelled() and task.exception() is not None:
            log.error("write interrupted by a cancellation failed: %r", task.exception())
        raise cancelled
    return task.result()


async def complete_eager(fn: Callable[[], Awaitable[T]], *, grace: float) -> T:
    """:func:`complete`, but ``fn()`` starts in the caller's task; only if it suspends
    does the rest run as a task of its own (on asyncio; elsewhere :func:`complete`).

    Only for writes that hold nothing bound to their task across that first suspension
    (no cancel scope, timeout or context-variable token): the rest runs in another task.
    """
    if sniffio.current_async_library() != "asyncio":
        return await complete(fn, grace=grace)
    steps = fn().__await__()
    try:
        pending = steps.send(None)
    except StopIteration as done:  # ended without suspending: nothing could cancel it
        return done.value  # type: ignore[no-any-return]
    return await complete(lambda: _Rest(steps, pending), grace=grace)


class _Rest(Generic[T]):
    """The rest of a started awaitable: what ``yield from`` would do after its first
    suspension, ``pending`` (the future it waits on) yielded again to the new task."""

    def __init__(self, steps: Generator[Any, Any, T], pending: Any) -> None:
        self._steps = steps
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, T]:
        steps, pending = self._steps, self._pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:  # thrown in (a cancellation): passed on to the write
                try:
                    pending = steps.throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
            else:
                try:
                    pending = steps.send(sent)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
