"""Fakes and pytest fixtures for testing code that sends SMS through mimgw.

    from mimgw import ErrorKind
    from mimgw.testing import FakeProvider, FakeClock, fake_gateway_for

    primary, backup = FakeProvider(name="primary"), FakeProvider(name="backup")
    primary.fail(ErrorKind.CONNECT_FAILED, times=3)
    gw = fake_gateway_for(primary, backup)
    receipt = await gw.send("01712345678", "hello")
    assert receipt.provider == "backup" and len(primary.submits) == 3

The module needs pytest (it is meant for test suites). ``pytest_plugins =
["mimgw.testing"]`` in your top-level ``conftest.py`` adds the ``fake_clock``,
``fake_primary``, ``fake_backup`` and ``fake_gateway`` fixtures. Nothing here
touches the network.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Self

import anyio
import anyio.lowlevel
import pytest

from mimgw.breaker import BreakerPolicy
from mimgw.errors import ProviderError
from mimgw.gateway import Gateway
from mimgw.ledger import Ledger
from mimgw.models import Balance, DeliveryReport, InboundMessage, Receipt
from mimgw.providers.base import Capabilities, Outgoing, Provider, TextLimits, WebhookItem
from mimgw.retry import RedeliveryPolicy, RetryPolicy
from mimgw.taxonomy import ErrorKind, State

__all__ = [
    "FAKE_CAPABILITIES",
    "FakeClock",
    "FakeProvider",
    "Scripted",
    "fake_backup",
    "fake_clock",
    "fake_gateway",
    "fake_gateway_for",
    "fake_primary",
]

Scripted = ProviderError | ErrorKind | Receipt | Balance | None
"""One scripted answer: an error (instance or kind), a canned result, or None for the default."""

FAKE_CAPABILITIES = Capabilities(
    balance=True, status=True, reports=True, webhook=True, schedule=True, notes="fake"
)


class FakeClock:
    """Time that moves only when slept on or advanced: instant, deterministic tests.

    ``clock.monotonic`` and ``clock.sleep`` plug into :class:`RetryPolicy`,
    :class:`BreakerPolicy` and :class:`RateLimit`; ``clock.now`` into ``Gateway(now=...)``.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime(2025, 1, 1, tzinfo=UTC)
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.elapsed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def advance(self, seconds: float | timedelta) -> None:
        self.elapsed += seconds.total_seconds() if isinstance(seconds, timedelta) else seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds
        await anyio.lowlevel.checkpoint()


class FakeProvider(Provider):
    """A provider whose answers are scripted; records every request it gets.

    Each operation (``send``, ``balance``, ``status``, ``reports``) has a queue of
    scripted answers consumed one per request; an empty queue gives the default
    answer (a receipt, the configured balance, the recorded status…).
    """

    kind = "fake"
    default_base_url = "https://fake.invalid"

    def __init__(
        self,
        *,
        name: str = "fake",
        sender: str | None = "FAKE",
        capabilities: Capabilities = FAKE_CAPABILITIES,
        limits: TextLimits | None = None,
        balance: Decimal | int | str = 100,
        read_once: bool = False,
        delay: float = 0.0,
    ) -> None:
        super().__init__(sender=sender, name=name)
        vars(self)["capabilities"] = capabilities
        if limits is not None:
            vars(self)["limits"] = limits
        self.balance_amount = Decimal(str(balance))
        self.read_once = read_once
        """Like DiniSoft ``getstatus``: a final status is answered once, then "unknown id"."""
        self.delay = delay
        self.submits: list[Outgoing] = []
        """Every submit that reached this fake, in order (retries included)."""
        self.receipts: list[Receipt] = []
        self.calls: Counter[str] = Counter()
        self.statuses: dict[str, DeliveryReport] = {}
        self.unread: list[DeliveryReport] = []
        self._read_final: set[str] = set()
        self._scripts: dict[str, deque[Scripted]] = {}
        self._ids = itertools.count(1)
        self.in_flight = 0
        self.peak_in_flight = 0

    # -- scripting --------------------------------------------------------------------

    def script(self, *answers: Scripted, operation: str = "send") -> Self:
        """Queue answers for the next requests of ``operation``."""
        self._scripts.setdefault(operation, deque()).extend(answers)
        return self

    def fail(
        self,
        kind: ErrorKind,
        *,
        times: int = 1,
        operation: str = "send",
        retry_after: float | None = None,
        code: str | int | None = None,
    ) -> Self:
        """Make the next ``times`` requests of ``operation`` fail with ``kind``."""
        for _ in range(times):
            self.script(
                self.error(kind, f"scripted {kind.value}", code=code, retry_after=retry_after),
                operation=operation,
            )
        return self

    def report(
        self,
        message_id: str,
        state: State,
        *,
        permanent: bool | None = None,
        retries_allowed: int = 0,
        reason: str | None = None,
    ) -> DeliveryReport:
        """Set the status of a message: answered by ``status`` and queued for ``fetch_reports``."""
        report = DeliveryReport(
            provider=self.name,
            message_id=message_id,
            state=state,
            permanent=permanent,
            retries_allowed=retries_allowed,
            reason=reason,
            provider_status=state.value,
        )
        self.statuses[message_id] = report
        self.unread.append(report)
        return report

    @staticmethod
    def webhook_body(items: Iterable[DeliveryReport | Mapping[str, Any]]) -> bytes:
        """A body this fake's ``parse_webhook`` understands."""
        rows = [
            i.model_dump(mode="json", exclude={"raw", "provider"})
            if isinstance(i, DeliveryReport)
            else dict(i)
            for i in items
        ]
        return json.dumps(rows).encode()

    def _next(self, operation: str) -> Scripted:
        self.calls[operation] += 1
        queue = self._scripts.get(operation)
        answer = queue.popleft() if queue else None
        if isinstance(answer, ErrorKind):
            answer = self.error(answer, f"scripted {answer.value}")
        if isinstance(answer, ProviderError):
            raise answer
        return answer

    # -- the provider -------------------------------------------------------------------

    async def _send(self, outgoing: Outgoing) -> Receipt:
        self.submits.append(outgoing)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.delay) if self.delay else await anyio.lowlevel.checkpoint()
            answer = self._next("send")
        finally:
            self.in_flight -= 1
        receipt = (
            answer
            if isinstance(answer, Receipt)
            else outgoing.receipt(self.name, f"{self.name}-{next(self._ids)}", raw=None)
        )
        self.receipts.append(receipt)
        return receipt

    async def _balance(self) -> Balance:
        answer = self._next("balance")
        if isinstance(answer, Balance):
            return answer
        return Balance(provider=self.name, amount=self.balance_amount, currency="BDT")

    async def _status(self, message_id: str) -> DeliveryReport:
        self._next("status")
        if message_id in self._read_final:
            raise self.error(ErrorKind.REQUEST_REJECTED, "status already read", code=114)
        report = self.statuses.get(message_id)
        if report is None:
            if any(r.message_id == message_id for r in self.receipts):
                return DeliveryReport(provider=self.name, message_id=message_id, state=State.SENT)
            raise self.error(ErrorKind.REQUEST_REJECTED, f"unknown message id {message_id}")
        if self.read_once and report.final:
            self._read_final.add(message_id)
        return report

    async def _fetch_reports(self, limit: int | None) -> list[DeliveryReport]:
        self._next("reports")
        count = len(self.unread) if limit is None else limit
        taken, self.unread = self.unread[:count], self.unread[count:]
        return taken

    def _parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[WebhookItem]:
        try:
            rows = json.loads(body)
            items: list[WebhookItem] = []
            for row in rows:
                if "message_id" in row:
                    items.append(DeliveryReport(provider=self.name, **row))
                else:
                    items.append(InboundMessage(provider=self.name, **row))
        except (ValueError, TypeError, AttributeError) as exc:
            raise self.error(ErrorKind.BAD_RESPONSE, f"not a fake webhook body: {exc}") from None
        return items


def fake_gateway_for(
    *providers: Provider,
    clock: FakeClock | None = None,
    retry: RetryPolicy | None = None,
    breaker: BreakerPolicy | None = None,
    ledger: Ledger | None = None,
    redelivery: RedeliveryPolicy | None = None,
    **kwargs: Any,
) -> Gateway:
    """A :class:`Gateway` over ``providers`` whose waits and clocks all run on ``clock``."""
    clock = clock or FakeClock()
    retry = retry or RetryPolicy(jitter=False, sleep=clock.sleep, clock=clock.monotonic)
    breaker = breaker or BreakerPolicy(clock=clock.monotonic)
    return Gateway(
        providers,
        retry=retry,
        breaker=breaker,
        ledger=ledger,
        redelivery=redelivery,
        now=clock.now,
        **kwargs,
    )


@pytest.fixture
def fake_clock() -> FakeClock:
    """A :class:`FakeClock` starting at 2025-01-01 UTC."""
    return FakeClock()


@pytest.fixture
def fake_primary() -> FakeProvider:
    """A :class:`FakeProvider` named ``primary`` (sender ``PRIMARY``)."""
    return FakeProvider(name="primary", sender="PRIMARY")


@pytest.fixture
def fake_backup() -> FakeProvider:
    """A :class:`FakeProvider` named ``backup`` (sender ``BACKUP``)."""
    return FakeProvider(name="backup", sender="BACKUP")


@pytest.fixture
def fake_gateway(
    fake_primary: FakeProvider, fake_backup: FakeProvider, fake_clock: FakeClock
) -> Gateway:
    """A gateway over ``fake_primary`` then ``fake_backup``, on ``fake_clock``."""
    return fake_gateway_for(fake_primary, fake_backup, clock=fake_clock)
