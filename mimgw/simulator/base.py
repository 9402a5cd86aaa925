"""What every gateway emulator shares."""

from __future__ import annotations

import itertools
import random
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from mimgw.errors import ConfigurationError, MimgwError
from mimgw.phone import normalize_number
from mimgw.simulator._asgi import Handler

if TYPE_CHECKING:
    from mimgw.providers.base import Provider
    from mimgw.simulator import Simulator

__all__ = ["Clock", "GatewaySim", "Route"]

Route = tuple[str, str, Handler]
"""(method, path, handler). Paths match exactly."""


class Clock:
    """The simulator's time: real time plus whatever the tests advanced it by."""

    def __init__(self) -> None:
        self._offset = 0.0

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def time(self) -> float:
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset)


class GatewaySim(ABC):
    """One emulated gateway: its routes, accounts, messages and forced answers.

    ``force(code)`` makes the next submit answer with that documented code (the
    gateway's own error format), ``times`` times. Transport faults live on the
    :class:`~mimgw.simulator.Simulator` (``sim.fail(...)``).
    """

    key: ClassVar[str]
    """Also the provider's ``kind``."""
    pushes: ClassVar[bool] = False
    """Whether the real gateway pushes delivery reports to a URL of ours."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._forced: deque[str] = deque()
        self._ids = itertools.count(1)
        self.rng = random.Random(f"{self.key}:{sim.seed}")  # noqa: S311 - not for security
        self.requests = 0
        """How many requests reached this gateway's handlers (faulted ones excluded)."""
        self.submissions: Counter[tuple[str, str]] = Counter()
        """Messages this gateway took, per (recipient as sent on the wire, text). A message
        counts once per acceptance: refused submits and requests a fault stopped before
        the gateway do not count; one whose answer a fault lost afterwards does."""
        self.references: Counter[str] = Counter()
        """Accepted messages per caller reference, where the wire carries one."""
        self.notify_url: str | None = None
        """Where this gateway pushes delivery reports (gateways that push only)."""
        self.push_client: httpx.AsyncClient | None = None
        """Client the pushes go through; ``None``: the simulator's ``push_client``."""

    @property
    def clock(self) -> Clock:
        return self.sim.clock

    def force(self, code: str | int, times: int = 1) -> None:
        """Answer the next ``times`` submits with the documented code ``code``."""
        self._forced.extend([str(code)] * times)

    def take_forced(self) -> str | None:
        return self._forced.popleft() if self._forced else None

    def next_number(self) -> int:
        return next(self._ids)

    def count_submission(self, to: str, text: str, reference: str | None = None) -> None:
        """Record one accepted message (called by the emulators when they take one)."""
        self.submissions[(_wire_number(to), text)] += 1
        if reference:
            self.references[reference] += 1

    def sent_count(
        self, to: str | None = None, text: str | None = None, *, reference: str | None = None
    ) -> int:
        """How many times this gateway took a message to ``to`` (any text unless ``text``
        is given), or, with ``reference``, one carrying that caller reference.

        ``to`` may be written in any form mimgw accepts (``01712345678``,
        ``+8801712345678``); with no argument at all, every accepted message counts.
        """
        if reference is not None:
            return self.references[reference]
        number = None if to is None else _wire_number(to)
        return sum(
            count
            for (recipient, body), count in self.submissions.items()
            if (number is None or recipient == number) and (text is None or body == text)
        )

    async def push_reports(self) -> int:
        """POST every due, not yet pushed delivery report to :attr:`notify_url`; returns
        how many the receiver took (2xx). Gateways that document no push return 0."""
        return 0

    def pusher(self) -> httpx.AsyncClient:
        """The client pushes go through."""
        client = self.push_client or self.sim.push_client
        if client is None:
            raise ConfigurationError(
                f"configure {type(self).__name__}.push_client (or the simulator's) to push"
            )
        return client

    @abstractmethod
    def routes(self) -> list[Route]:
        """The documented endpoints this gateway serves."""

    @abstractmethod
    def provider_kwargs(self) -> dict[str, Any]:
        """Constructor arguments (credentials, sender, base_url) for a provider talking to us."""

    @abstractmethod
    def provider(self, **overrides: Any) -> Provider:
        """A provider wired to this simulator in-process."""


def _wire_number(value: str) -> str:
    """A recipient as digits with the country code, whatever form it was written in."""
    try:
        return normalize_number(value)
    except MimgwError:
        return value.strip().lstrip("+")
