"""Finish a write even when the caller is cancelled, by any kind of cancellation.

An anyio shielded scope stops anyio's own cancellation, but not ``Task.cancel()`` or
``asyncio.wait_for``: those throw ``CancelledError`` into whatever the task awaits.
:func:`complete` runs the write as its own task, keeps waiting for it through any
number of cancellations (up to ``grace`` seconds), and then re-raises the first
cancellation it swallowed, so the caller is still cancelled — after the write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import sniffio

log = logging.getLogger("mimgw.ledger")

__all__ = ["complete"]

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
