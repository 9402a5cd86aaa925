"""What every gateway backend shares: construction, capabilities, the common methods.

A backend subclasses :class:`Provider` and implements only request building and
response parsing (``_send``, optionally ``_send_batch``, ``_balance``, ``_status``,
``_parse_webhook``) plus its code tables. Retry and failover live in
:class:`mimgw.Gateway`, never here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from types import TracebackType
from typing import Any, ClassVar, Self
from zoneinfo import ZoneInfo

import anyio
import httpx

from mimgw.errors import (
    ConfigurationError,
    InvalidMessageError,
    MimgwError,
    ProviderError,
    UnsupportedOperationError,
)
from mimgw.http import DEFAULT_TIMEOUT, HttpResponse, HttpTransport, Query
from mimgw.models import (
    Balance,
    BulkResult,
    Category,
    DeliveryReport,
    Message,
    Receipt,
)
from mimgw.phone import region_of
from mimgw.providers.outgoing import (
    DHAKA,
    Capabilities,
    Outgoing,
    ReportListener,
    TextLimits,
    WebhookItem,
    outgoing_for,
)
from mimgw.redact import Redactor
from mimgw.taxonomy import ErrorKind
from mimgw.text import TextInfo, analyse_text

__all__ = [
    "DHAKA",
    "Capabilities",
    "Outgoing",
    "Provider",
    "ReportListener",
    "TextLimits",
    "WebhookItem",
]

log = logging.getLogger("mimgw")


class Provider(ABC):
    """Base of every gateway backend.

    Keyword-only construction; ``name`` labels it in receipts, errors and logs;
    ``client`` lets several providers share one :class:`httpx.AsyncClient` (the
    provider then never closes it). Use as ``async with Provider(...) as sms:``.
    """

    kind: ClassVar[str]
    """Registry key used by configuration, e.g. ``"mimsms_v4"``."""
    default_base_url: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    limits: ClassVar[TextLimits] = TextLimits()
    default_concurrency: ClassVar[int] = 8
    regions: ClassVar[frozenset[str] | None] = None
    """ISO regions (``"BD"``…) whose numbers this gateway delivers to; ``None``: any."""

    def __init__(
        self,
        *,
        sender: str | None,
        secrets: Sequence[str | None] = (),
        name: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: httpx.AsyncClient | None = None,
        timezone: tzinfo | str = DHAKA,
    ) -> None:
        self.name = name or self.kind
        self.sender = sender
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"{self.name}: base_url must start with http:// or https://")
        try:
            httpx.URL(self.base_url)
        except httpx.InvalidURL as exc:
            raise ConfigurationError(f"{self.name}: base_url is not a valid URL ({exc})") from None
        try:
            self.timezone: tzinfo = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        except (ValueError, KeyError) as exc:
            raise ConfigurationError(f"{self.name}: unknown timezone {timezone!r}") from exc
        self._redact = Redactor(s for s in secrets if s)
        self._listeners: list[ReportListener] = []
        self._http = HttpTransport(
            provider=self.name,
            redactor=self._redact,
            timeout=_timeout(timeout, self.name),
            client=client,
        )

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this provider created it."""
        await self._http.aclose()

    def __repr__(self) -> str:
        cls = type(self).__name__
        return f"{cls}(name={self.name!r}, base_url={self.base_url!r}, sender={self.sender!r})"

    # -- public API ----------------------------------------------------------------

    async def send(
        self,
        to: str,
        text: str,
        *,
        sender: str | None = None,
        reference: str | None = None,
        category: Category = "transactional",
        send_at: datetime | None = None,
    ) -> Receipt:
        """Submit one message; the receipt says the gateway took it and gives its id."""
        message = Message(
            to=to, text=text, sender=sender, reference=reference, category=category, send_at=send_at
        )
        return await self.send_message(message)

    async def send_message(self, message: Message) -> Receipt:
        """Submit a prepared :class:`Message`."""
        outgoing = self.prepare(message)
        return await self._send(outgoing)

    async def send_prepared(self, outgoing: Outgoing) -> Receipt:
        """Submit what :meth:`prepare` returned for this provider (the Gateway prepares
        once to route, then sends the same :class:`Outgoing`)."""
        return await self._send(outgoing)

    async def send_bulk(
        self, messages: Iterable[Message], *, concurrency: int | None = None
    ) -> BulkResult:
        """Submit many messages; one outcome per input, in input order, never raising for one.

        Uses the gateway's batch endpoint where it has one, else bounded concurrent singles.
        """
        batch = list(messages)
        for item in batch:
            if not isinstance(item, Message):
                raise InvalidMessageError(
                    f"send_bulk takes Message objects, not {type(item).__name__}"
                )
        self._require("send")
        limit = self.default_concurrency if concurrency is None else concurrency
        if limit < 1:
            raise ConfigurationError("concurrency must be at least 1")
        outcomes: list[Receipt | MimgwError | None] = [None] * len(batch)
        ready: list[tuple[int, Outgoing]] = []
        for index, message in enumerate(batch):
            try:
                ready.append((index, self.prepare(message)))
            except MimgwError as exc:
                outcomes[index] = exc
        if ready:
            results = await self._send_many([o for _, o in ready], limit)
            for (index, _), result in zip(ready, results, strict=True):
                outcomes[index] = result
        final: list[Receipt | MimgwError] = []
        for outcome in outcomes:
            assert outcome is not None
            final.append(outcome)
        return BulkResult(messages=tuple(batch), outcomes=tuple(final))

    def add_listener(self, listener: ReportListener) -> None:
        """Call ``listener`` with every report and inbound message this provider parses.

        Several gateways hand a report over only once; the :class:`~mimgw.Gateway`
        listens so that its ledger keeps everything, whoever asked.
        """
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: ReportListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _publish(self, items: Iterable[WebhookItem]) -> None:
        for item in items:
            for listener in list(self._listeners):
                try:
                    listener(item)
                except Exception:  # a listener's bug must not lose the caller's answer
                    log.exception("%s: report listener failed", self.name)

    async def balance(self) -> Balance:
        """Account credit."""
        self._require("balance")
        return await self._balance()

    async def status(self, message_id: str) -> DeliveryReport:
        """Delivery status of one message, pulled from the gateway."""
        self._require("status")
        if not isinstance(message_id, str) or not message_id.strip():
            raise InvalidMessageError("message_id must be a non-empty string")
        report = await self._status(message_id.strip())
        self._publish([report])
        return report

    async def fetch_reports(self, *, limit: int | None = None) -> list[DeliveryReport]:
        """Pull every unread delivery report the gateway holds (read-once where it says so)."""
        self._require("reports")
        if limit is not None and limit < 1:
            raise InvalidMessageError("limit must be at least 1")
        reports = await self._fetch_reports(limit)
        self._publish(reports)
        return reports

    def parse_webhook(
        self, body: bytes, headers: Mapping[str, str] | None = None
    ) -> list[WebhookItem]:
        """Parse what the gateway pushed to our URL. Plain function: no I/O."""
        self._require("webhook")
        items = self._parse_webhook(body, headers or {})
        self._publish(items)
        return items

    # -- preparation -----------------------------------------------------------------

    def prepare(self, message: Message) -> Outgoing:
        """Resolve the sender, analyse the text and check this gateway's limits."""
        if message.send_at is not None and not self.capabilities.schedule:
            raise self.unsupported(
                "scheduled sending (send_at)",
                note="this gateway cannot schedule: its API documents no send time; "
                "send the message when it is due, or through a gateway that can schedule",
            )
        if message.category == "promotional" and not self.capabilities.promotional:
            raise self.unsupported("promotional messages")
        if self.regions is not None:
            region = region_of(message.to)
            if region not in self.regions:
                served = ", ".join(sorted(self.regions))
                raise InvalidMessageError(
                    f"{self.name}: does not deliver to {region} numbers ({message.to}); "
                    f"it serves {served}"
                )
        sender = message.sender or self.sender
        if not sender:
            raise ConfigurationError(
                f"{self.name}: no sender id: configure sender= or pass sender per message"
            )
        info = analyse_text(message.text)
        self.limits.check(info, self.name)
        self._check(message, info)
        return outgoing_for(message, sender, info)

    def _check(self, message: Message, info: TextInfo) -> None:  # noqa: B027 - optional hook
        """Gateway-specific checks before sending; raise ``InvalidMessageError``."""

    # -- what backends implement -------------------------------------------------------

    @abstractmethod
    async def _send(self, outgoing: Outgoing) -> Receipt: ...

    async def _send_many(
        self, outgoing: Sequence[Outgoing], concurrency: int
    ) -> list[Receipt | MimgwError]:
        """Default bulk: bounded concurrent singles. Backends with a batch endpoint override."""
        results: list[Receipt | MimgwError | None] = [None] * len(outgoing)
        limiter = anyio.Semaphore(concurrency)

        async def one(index: int, item: Outgoing) -> None:
            async with limiter:
                try:
                    results[index] = await self._send(item)
                except MimgwError as exc:
                    results[index] = exc

        async with anyio.create_task_group() as tg:
            for index, item in enumerate(outgoing):
                tg.start_soon(one, index, item)
        return [r for r in results if r is not None]

    async def _balance(self) -> Balance:
        raise self.unsupported("balance")

    async def _status(self, message_id: str) -> DeliveryReport:
        raise self.unsupported("status")

    async def _fetch_reports(self, limit: int | None) -> list[DeliveryReport]:
        raise self.unsupported("reports")

    def _parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[WebhookItem]:
        raise self.unsupported("webhook")

    # -- helpers for backends ------------------------------------------------------------

    def _require(self, operation: str) -> None:
        if not self.capabilities.supports(operation):
            raise self.unsupported(operation)

    def unsupported(self, operation: str, *, note: str | None = None) -> UnsupportedOperationError:
        """The error for an operation this gateway lacks; ``note`` (else the capability
        notes) says why."""
        note = note or self.capabilities.notes
        note = f" ({note})" if note else ""
        error = ProviderError.of(
            ErrorKind.UNSUPPORTED,
            self.name,
            None,
            f"{type(self).__name__} does not support {operation}{note}",
        )
        assert isinstance(error, UnsupportedOperationError)
        return error

    def error(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        code: str | int | None = None,
        raw: str | None = None,
        retry_after: float | None = None,
    ) -> ProviderError:
        return ProviderError.of(
            kind,
            self.name,
            code,
            self._redact(detail),
            raw=None if raw is None else self._redact(raw),
            retry_after=retry_after,
        )

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    async def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        submit: bool,
        query: Query | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Make one request; transport errors, 429 and bodiless 5xx are already mapped."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        response = await self._http.request(
            method, url, query=query, json_body=json_body, headers=headers, submit=submit
        )
        self._check_transport(response, submit=submit)
        return response

    def _check_transport(self, response: HttpResponse, *, submit: bool) -> None:
        """Map 429 and bodiless 5xx; a gateway whose body outranks its HTTP status overrides."""
        response.check_transport_status(submit=submit)

    def local_time(self, value: datetime) -> datetime:
        """Attach this gateway's zone to a naive timestamp."""
        return value if value.tzinfo is not None else value.replace(tzinfo=self.timezone)


def _timeout(value: float | httpx.Timeout | None, name: str) -> httpx.Timeout:
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, httpx.Timeout):
        return value
    if isinstance(value, int | float) and value > 0:
        return httpx.Timeout(
            float(value), connect=min(float(value), DEFAULT_TIMEOUT.connect or 5.0)
        )
    raise ConfigurationError(f"{name}: timeout must be a positive number of seconds")
