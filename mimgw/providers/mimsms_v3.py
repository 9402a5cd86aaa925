"""MiMSMS v3 plain query API (legacy): send, Credits balance, XML delivery reports.

Delivery reports come pulled (``/api/v3/dr/pull``, read once) or pushed to a call-back
URL (``parse_webhook``); both carry the same ``<DeliveryReport>`` document.

Credentials travel in the query string (``user``/``password``; ``username`` for the
balance command); the base redacts the password from URLs, logs, errors and ``raw``.
Answers come as a small XML document or a bare number. XML is parsed with
defusedxml and documents carrying a DTD or entities are refused.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import ClassVar
from xml.etree.ElementTree import Element, ParseError, tostring

import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from pydantic import SecretStr

from mimgw.errors import ConfigurationError, InvalidMessageError, ProviderError
from mimgw.http import RAW_LIMIT, HttpResponse
from mimgw.models import Balance, DeliveryReport, Message, Receipt
from mimgw.providers._v3_codes import credential, dr_state, legacy_error, retries_for
from mimgw.providers.base import DHAKA, Capabilities, Outgoing, Provider, TextLimits, WebhookItem
from mimgw.taxonomy import ErrorKind, State
from mimgw.text import TextInfo

__all__ = ["MimSmsV3"]

log = logging.getLogger("mimgw.providers.mimsms_v3")

SHORT_PATH = "/api/sendsms/plain"
LONG_PATH = "/api/v3/sendsms/plain"
COMMAND_PATH = "/api/command"
DR_PULL_PATH = "/api/v3/dr/pull"
MAX_SENDER = 11
MAX_CHARACTERS = 1080
ACCEPT = {"Accept": "application/xml, text/plain;q=0.9, */*;q=0.5"}
"""The plain API answers XML or a bare number, never JSON."""

_INTEGER = re.compile(r"[+-]?\d+")
_AMOUNT = re.compile(r"\d+(?:\.\d+)?")
_LOCAL_TIME = re.compile(
    r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})\s+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?(?:\.\d+)?"
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MimSmsV3(Provider):
    """Legacy MiMSMS v3 plain query API.

    Plain GSM texts of one segment go to the short-SMS path; longer, unicode
    (``datacoding=8``) and scheduled ones to the v3 path, with ``type=longSMS``
    when the text needs several segments. ``binary_unicode=True`` sends unicode
    texts in the documented UCS-2 hex form instead of as text.
    """

    kind = "mimsms_v3"
    default_base_url = "http://api.mimsms.com"
    capabilities = Capabilities(
        balance=True,
        status=True,
        reports=True,
        webhook=True,
        schedule=True,
        notes="delivery reports are pulled once and then gone; the ledger keeps them",
    )
    limits = TextLimits(max_characters=MAX_CHARACTERS)

    UNICODE_TEXT_PARAM: ClassVar[str] = "SMSText"
    """Query parameter that carries a unicode text. The parameter list names ``SMSText``
    as the message body; one unicode example writes ``text``. Subclass to change it."""

    def __init__(
        self,
        *,
        username: str | SecretStr,
        password: str | SecretStr,
        sender: str | None,
        binary_unicode: bool = False,
        name: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: httpx.AsyncClient | None = None,
        timezone: tzinfo | str = DHAKA,
    ) -> None:
        label = name or self.kind
        self._username = credential(username, "username", label)
        self._password = credential(password, "password", label)
        if sender is not None and not 0 < len(sender.strip()) <= MAX_SENDER:
            raise ConfigurationError(f"{label}: sender must be 1 to {MAX_SENDER} characters")
        super().__init__(
            sender=sender.strip() if sender else None,
            secrets=[self._password],
            name=name,
            base_url=base_url,
            timeout=timeout,
            client=client,
            timezone=timezone,
        )
        self.binary_unicode = binary_unicode
        self._now: Callable[[], datetime] = _utcnow
        self._unmapped: set[str] = set()

    # -- submit ----------------------------------------------------------------------------

    def _check(self, message: Message, info: TextInfo) -> None:
        sender = message.sender or self.sender or ""
        if len(sender) > MAX_SENDER:
            raise InvalidMessageError(
                f"{self.name}: sender {sender!r} is longer than {MAX_SENDER} characters"
            )
        if message.send_at is not None and message.send_at < self._now():
            # the gateway takes only a delay from now; a time already past would go out at
            # once, which is not what the caller asked for
            raise InvalidMessageError(
                f"{self.name}: send_at {message.send_at.isoformat()} is in the past"
            )

    async def _send(self, outgoing: Outgoing) -> Receipt:
        info = outgoing.info
        delay = self._delay(outgoing.message.send_at)
        query: list[tuple[str, str | int | None]] = [
            ("user", self._username),
            ("password", self._password),
            ("sender", outgoing.sender),
        ]
        if info.unicode and self.binary_unicode:
            query.append(("binary", ucs2_hex(outgoing.text)))
        else:
            query.append((self.UNICODE_TEXT_PARAM if info.unicode else "SMSText", outgoing.text))
        # the order of the vendor's examples: the schedule before the number, flags after it
        query.append(("SendDateTime", delay))
        query.append(("GSM", outgoing.to))
        if info.long:
            query.append(("type", "longSMS"))
        if info.unicode:
            query.append(("datacoding", 8))
        short = not info.unicode and not info.long and delay is None
        response = await self._request(
            "GET", SHORT_PATH if short else LONG_PATH, submit=True, query=query, headers=ACCEPT
        )
        body = self._parse(response)
        if isinstance(body, int):
            raise _code_error(response, body) if body else response.bad("status 0 without an id")
        if _tag(body) != "results":
            raise response.bad("expected a results document")
        results = [_result(e, response) for e in body if _tag(e) == "result"]
        if not results:
            raise response.bad("no result in the answer")
        mine = [r for r in results if r[2].lstrip("+") == outgoing.to] or results
        for code, _, _ in mine:
            if code != 0:
                raise _code_error(response, code)
        message_id = mine[0][1]
        if not message_id:
            raise response.bad("accepted without a message id")
        return outgoing.receipt(self.name, message_id, raw=response.text)

    def _delay(self, send_at: datetime | None) -> str | None:
        """``send_at`` as the gateway's relative ``1d2h5m3s`` form; ``None`` to send now
        (no time, or less than a second ahead). A time in the past never gets here."""
        if send_at is None:
            return None
        seconds = round((send_at - self._now()).total_seconds())
        if seconds < 1:
            return None
        days, rest = divmod(seconds, 86_400)
        hours, rest = divmod(rest, 3_600)
        minutes, seconds = divmod(rest, 60)
        return f"{days}d{hours}h{minutes}m{seconds}s"

    # -- balance ---------------------------------------------------------------------------

    async def _balance(self) -> Balance:
        response = await self._request(
            "GET",
            COMMAND_PATH,
            submit=False,
            query=[("username", self._username), ("password", self._password), ("cmd", "Credits")],
            headers=ACCEPT,
        )
        text = response.body.lstrip("\ufeff").strip()
        if response.status_code == 200 and _AMOUNT.fullmatch(text):
            try:
                return Balance(provider=self.name, amount=Decimal(text), raw=response.text)
            except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
                raise response.bad("Credits did not answer an amount") from None
        body = self._parse(response)
        if isinstance(body, int) and body < 0:
            raise _code_error(response, body)
        if not isinstance(body, int) and _tag(body) == "results":
            codes = [_result(e, response)[0] for e in body if _tag(e) == "result"]
            if codes and codes[0] < 0:
                raise _code_error(response, codes[0])
        raise response.bad("Credits did not answer an amount")

    # -- delivery reports ------------------------------------------------------------------

    async def reports(self, message_ids: str | Iterable[str] | None = None) -> list[DeliveryReport]:
        """Pull unread delivery reports, all of them or those of ``message_ids``.

        ``message_ids`` is one id, a comma-separated string of ids, or an iterable of ids.
        The gateway hands each report out once; every report is passed to the listeners.
        """
        self._require("reports")
        if isinstance(message_ids, str):
            message_ids = message_ids.split(",")
        ids = None if message_ids is None else [_message_id(i) for i in message_ids]
        if ids == []:
            return []  # no ids asked for: pulling without messageid would consume every report
        found = await self._pull(ids)
        self._publish(found)
        return found

    async def _status(self, message_id: str) -> DeliveryReport:
        found = await self._pull([_message_id(message_id)])
        mine = [r for r in found if r.message_id == message_id]
        # anything else the gateway handed over is gone from it: keep it through the listeners
        self._publish([r for r in found if r.message_id != message_id] + mine[:-1])
        if mine:
            return mine[-1]
        return DeliveryReport(
            provider=self.name,
            message_id=message_id,
            state=State.UNKNOWN,
            reason="no unread report: not final yet, already read, or an unknown id",
        )

    async def _fetch_reports(self, limit: int | None) -> list[DeliveryReport]:
        found = await self._pull(None)
        if limit is not None and len(found) > limit:
            self._publish(found[limit:])  # already read at the gateway: never drop them
            found = found[:limit]
        return found

    async def _pull(self, ids: Sequence[str] | None) -> list[DeliveryReport]:
        query: list[tuple[str, str | int | None]] = [
            ("user", self._username),
            ("password", self._password),
        ]
        if ids:
            query.append(("messageid", ",".join(ids)))
        response = await self._request(
            "GET", DR_PULL_PATH, submit=False, query=query, headers=ACCEPT
        )
        body = self._parse(response)
        if isinstance(body, int):
            raise _code_error(response, body) if body else response.bad("unexpected code 0")
        return self._delivery_reports(body, response.bad)

    def _parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[WebhookItem]:
        """Reports the gateway pushes to a call-back URL: the same XML as the pull answers."""
        text = body.decode("utf-8", errors="replace")

        def bad(detail: str) -> ProviderError:  # self.error redacts detail and raw
            return self.error(ErrorKind.BAD_RESPONSE, f"pushed {detail}", raw=text[:RAW_LIMIT])

        document = _read(text, bad)
        if isinstance(document, int):
            raise bad("body is a bare code, not a DeliveryReport document")
        return list(self._delivery_reports(document, bad))

    def _delivery_reports(
        self, body: Element, bad: Callable[[str], ProviderError]
    ) -> list[DeliveryReport]:
        """The reports of a ``<DeliveryReport>`` document (or of one bare ``<message>``)."""
        if _tag(body) == "message":
            elements = [body]
        elif _tag(body) == "deliveryreport":
            elements = [e for e in body if _tag(e) == "message"]
        else:
            raise bad("expected a DeliveryReport document")
        found: list[DeliveryReport] = []
        for element in elements:
            report = self._report(element)
            if report is not None:
                found.append(report)
        return found

    def _report(self, element: Element) -> DeliveryReport | None:
        raw = self._redact(tostring(element, encoding="unicode").strip())
        attrs = {str(k).rsplit("}", 1)[-1].lower(): v for k, v in element.attrib.items()}
        message_id = (attrs.get("id") or "").strip()
        if not message_id:
            log.warning("%s: delivery report without an id skipped: %s", self.name, raw[:300])
            return None
        word = (attrs.get("status") or "").strip()
        known = dr_state(word) if word else None
        if known is None and word.upper() not in self._unmapped:
            self._unmapped.add(word.upper())
            log.warning("%s: unmapped delivery status %r (raw kept)", self.name, word)
        state = known.state if known else State.UNKNOWN
        permanent = known.permanent if known else None
        return DeliveryReport(
            provider=self.name,
            message_id=message_id,
            state=state,
            reason=word if state.final and state is not State.DELIVERED else None,
            permanent=permanent,
            retries_allowed=retries_for(state, permanent),
            provider_status=word or None,
            done_at=self._local(attrs.get("donedate")),
            raw=raw,
        )

    def _local(self, value: str | None) -> datetime | None:
        """An unpadded gateway-local ``2024/3/9 7:5:0`` time; ``None`` when unusable."""
        match = _LOCAL_TIME.fullmatch((value or "").strip())
        if match is None:
            return None
        try:
            year, month, day, hour, minute, second = (int(p) for p in match.groups(default="0"))
            return self.local_time(datetime(year, month, day, hour, minute, second))
        except ValueError:
            return None

    # -- parsing ---------------------------------------------------------------------------

    def _parse(self, response: HttpResponse) -> Element | int:
        """The body as a bare integer code or a safely parsed XML element."""
        return _read(response.body, response.bad)


def _read(body: str, bad: Callable[[str], ProviderError]) -> Element | int:
    """``body`` as a bare integer code or a safely parsed XML element; else ``bad(...)``."""
    text = body.lstrip("\ufeff").strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    if not text.startswith("<"):
        raise bad("body is neither XML nor a code")
    try:
        return fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise bad("XML with a DTD or entities refused") from None
    except (ParseError, ValueError):
        raise bad("body is not well-formed XML") from None


def _tag(element: Element) -> str:
    """The element's name without a namespace, lower-cased."""
    return str(element.tag).rsplit("}", 1)[-1].lower()


def ucs2_hex(text: str) -> str:
    """``text`` as the gateway's binary unicode form: BOM plus UTF-16BE, upper-case hex."""
    return "FEFF" + text.encode("utf-16-be").hex().upper()


def _message_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or "," in value:
        raise InvalidMessageError("message ids must be non-empty strings without commas")
    return value.strip()


def _result(element: Element, response: HttpResponse) -> tuple[int, str, str]:
    """(status, message id, destination) of one ``<result>``."""
    values = {_tag(child): (child.text or "").strip() for child in element}
    status = values.get("status", "")
    if not _INTEGER.fullmatch(status):
        raise response.bad("result without a numeric status")
    return int(status), values.get("messageid", ""), values.get("destination", "")


def _code_error(response: HttpResponse, code: int) -> ProviderError:
    kind, explanation = legacy_error(code)
    return response.error(kind, explanation, code=code)
