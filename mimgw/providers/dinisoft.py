"""DiniSoft: ``sendtext`` / ``getstatus`` query API and the client balance page.

Credentials travel in the query string; the base redacts them from URLs, logs,
errors and ``raw``. ``getstatus`` hands a final status out only once (later
calls answer 114), so the final reports this provider has read are kept in a
bounded in-memory cache and repeated ``status()`` calls are answered from it.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import anyio
import httpx
from pydantic import SecretStr

from mimgw.errors import ConfigurationError, ProviderError
from mimgw.http import HttpResponse
from mimgw.models import Balance, DeliveryReport, Receipt
from mimgw.providers.base import DHAKA, Capabilities, Outgoing, Provider
from mimgw.taxonomy import ErrorKind, State

__all__ = ["DiniSoft"]

log = logging.getLogger("mimgw.providers.dinisoft")

SECURE_BASE_URL = "https://sms.dinisoftbd.com:7790"
PLAIN_BASE_URL = "http://sms.dinisoftbd.com:7788"
BALANCE_PATH = "/login/sms/smsConfiguration/smsClientBalance.jsp"
API_PORTS = (7790, 7788)
"""The documented ports of ``sendtext`` and ``getstatus`` (HTTPS, plain HTTP)."""

_AUTH, _REJECTED = ErrorKind.AUTH, ErrorKind.REQUEST_REJECTED
_UNAVAILABLE = ErrorKind.PROVIDER_UNAVAILABLE

SUBMIT_ERRORS: dict[str, tuple[ErrorKind, str]] = {
    "109": (_AUTH, "user not provided or deleted (check api_key)"),
    "108": (_AUTH, "wrong or missing password (check secret_key)"),
    "-42": (_AUTH, "authorization failed"),
    "114": (_REJECTED, "message content not provided"),
    "101": (_UNAVAILABLE, "internal server error at the gateway; the request was not processed"),
    "1": (_REJECTED, "request failed"),
    "5400": (ErrorKind.ACCESS_DENIED, "source IP address is not allowed for this account"),
}
"""Submit answers other than 0, as (kind, explanation)."""

STATUS_ERRORS: dict[str, tuple[ErrorKind, str]] = {
    "109": (_AUTH, "api key not provided or unknown"),
    "108": (_AUTH, "wrong or missing password (check secret_key)"),
    "-42": (_AUTH, "authorization failed"),
    "101": (_UNAVAILABLE, "internal server error at the gateway"),
}
"""``getstatus`` answers that are errors of the request rather than a message state."""

DELIVERY_STATES: dict[str, State] = {
    "0": State.DELIVERED,
    "2": State.PENDING,
    "4": State.SENT,
    "1": State.REJECTED,
}
"""``getstatus`` answers that describe the message."""

TEXT_STATES: dict[str, State] = {
    "DELIVRD": State.DELIVERED,
    "DELIVERED": State.DELIVERED,
    "PENDING": State.PENDING,
    "SENT": State.SENT,
    "ACCEPTD": State.ACCEPTED,
    "ACCEPTED": State.ACCEPTED,
    "UNDELIV": State.UNDELIVERABLE,
    "EXPIRED": State.EXPIRED,
    "REJECTD": State.REJECTED,
    "REJECTED": State.REJECTED,
}
"""``Text`` words (any case) read only when the ``Status`` code is not in the tables above."""

READ_ONCE_CODE = "114"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MILLIS = Decimal(253_402_300_799_999)
"""The last millisecond of year 9999."""
_BOM = "\ufeff"
_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"'})
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")


def _secret(value: str | SecretStr | None, field: str) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"dinisoft: {field} must be a non-empty string")
    return value.strip()


class DiniSoft(Provider):
    """DiniSoft SMS gateway.

    ``secure=False`` selects the documented plain-HTTP port (7788) instead of HTTPS
    (7790). ``balance()`` reads the public client balance page, which is looked up by
    ``client_name`` and receives no credentials; unless ``balance_url`` is given, it is
    on the host (and scheme) of ``base_url``.
    """

    kind = "dinisoft"
    default_base_url = SECURE_BASE_URL
    regions = frozenset({"BD"})  # the document shows only 880 numbers
    capabilities = Capabilities(
        send=True,
        batch=False,
        balance=True,
        status=True,
        webhook=False,
        schedule=False,
        notes="balance needs client_name; getstatus returns a final status only once",
    )
    default_report_cache: ClassVar[int] = 10_000

    def __init__(
        self,
        *,
        api_key: str | SecretStr,
        secret_key: str | SecretStr,
        sender: str | None,
        client_name: str | None = None,
        secure: bool = True,
        name: str | None = None,
        base_url: str | None = None,
        balance_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: httpx.AsyncClient | None = None,
        timezone: tzinfo | str = DHAKA,
        report_cache_size: int | None = None,
    ) -> None:
        self._api_key = _secret(api_key, "api_key")
        self._secret_key = _secret(secret_key, "secret_key")
        super().__init__(
            sender=sender,
            secrets=[self._api_key, self._secret_key],
            name=name,
            base_url=base_url or (SECURE_BASE_URL if secure else PLAIN_BASE_URL),
            timeout=timeout,
            client=client,
            timezone=timezone,
        )
        if client_name is not None and not client_name.strip():
            raise ConfigurationError(f"{self.name}: client_name must not be blank")
        self.client_name = client_name.strip() if client_name else None
        self.balance_url = balance_url or _balance_url(self.base_url)
        if not self.balance_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"{self.name}: balance_url must start with http:// or https://"
            )
        size = self.default_report_cache if report_cache_size is None else report_cache_size
        if size < 1:
            raise ConfigurationError(f"{self.name}: report_cache_size must be at least 1")
        self._cache_size = size
        self._final: OrderedDict[str, DeliveryReport] = OrderedDict()
        self._locks: dict[str, anyio.Lock] = {}
        self._unmapped_logged: set[str] = set()

    # -- submit --------------------------------------------------------------------------

    async def _send(self, outgoing: Outgoing) -> Receipt:
        response = await self._request(
            "GET",
            "/sendtext",
            submit=True,
            query=[
                ("apikey", self._api_key),
                ("secretkey", self._secret_key),
                ("callerID", outgoing.sender),
                ("toUser", outgoing.to),
                ("messageContent", outgoing.text),
            ],
        )
        body = _parse(response)
        code = _code(body, response)
        if code == "0":
            text = body.get("text")
            if text is not None and str(text).strip().upper() not in ("ACCEPTD", "ACCEPTED"):
                raise response.bad("status 0 with a text that does not say accepted")
            message_id = body.get("messageid")
            if message_id is None or (isinstance(message_id, str) and not message_id.strip()):
                # the documented success row carries no id: the message was taken, but
                # there is nothing to ask getstatus about; say so rather than fail it
                log.warning("%s: message accepted without a Message_ID", self.name)
                return outgoing.receipt(self.name, "", raw=response.text)
            if not isinstance(message_id, str | int) or isinstance(message_id, bool):
                raise response.bad("accepted with a message id that is not text or a number")
            return outgoing.receipt(self.name, str(message_id).strip(), raw=response.text)
        raise _code_error(response, code, body, SUBMIT_ERRORS)

    # -- delivery status -----------------------------------------------------------------

    async def _status(self, message_id: str) -> DeliveryReport:
        cached = self._cached(message_id)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(message_id, anyio.Lock())
        try:
            async with lock:
                # a concurrent call for the same id may have read the final status meanwhile
                cached = self._cached(message_id)
                return cached if cached is not None else await self._fetch_status(message_id)
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop(message_id, None)

    async def _fetch_status(self, message_id: str) -> DeliveryReport:
        response = await self._request(
            "GET",
            "/getstatus",
            submit=False,
            query=[
                ("apikey", self._api_key),
                ("secretkey", self._secret_key),
                ("messageid", message_id),
            ],
        )
        body = _parse(response)
        code = _code(body, response)
        if code == READ_ONCE_CODE:
            raise response.error(
                ErrorKind.REQUEST_REJECTED,
                f"no status for message {message_id!r}: the id is unknown, or its final "
                "status was already read (DiniSoft hands it out only once)",
                code=code,
            )
        if code in STATUS_ERRORS:
            raise _code_error(response, code, body, STATUS_ERRORS)
        text = body.get("text")
        state = DELIVERY_STATES.get(code)
        if state is None:
            word = text.strip().upper() if isinstance(text, str) else ""
            state = TEXT_STATES.get(word, State.UNKNOWN)
            if code not in self._unmapped_logged:
                self._unmapped_logged.add(code)
                log.warning("%s: unmapped getstatus code %r (raw kept)", self.name, code)
        report = DeliveryReport(
            provider=self.name,
            message_id=message_id,
            state=state,
            reason="request failed" if code == "1" else None,
            permanent=True if state is State.REJECTED else None,
            retries_allowed=0,
            provider_status=f"{code} {text}".strip() if isinstance(text, str) else code,
            done_at=_epoch_ms(body.get("deliverytime")),
            raw=response.text,
        )
        if state.final:
            self._remember(report)
        return report

    def _cached(self, message_id: str) -> DeliveryReport | None:
        report = self._final.get(message_id)
        if report is not None:
            self._final.move_to_end(message_id)
        return report

    def _remember(self, report: DeliveryReport) -> None:
        self._final[report.message_id] = report
        self._final.move_to_end(report.message_id)
        while len(self._final) > self._cache_size:
            self._final.popitem(last=False)

    # -- balance ---------------------------------------------------------------------------

    async def _balance(self) -> Balance:
        if not self.client_name:
            raise ConfigurationError(
                f"{self.name}: balance() needs client_name=... (the DiniSoft client name; "
                "the balance page is looked up by it)"
            )
        response = await self._request(
            "GET", self.balance_url, submit=False, query=[("client", self.client_name)]
        )
        text = response.body.replace(_BOM, "").strip()
        if response.status_code != 200 or not _DECIMAL.fullmatch(text):
            raise response.bad("balance page did not answer a decimal amount")
        try:
            amount = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            raise response.bad("balance page did not answer a decimal amount") from None
        return Balance(provider=self.name, amount=amount, currency=None, raw=response.text)


# -- parsing helpers ---------------------------------------------------------------------------


def _balance_url(base_url: str) -> str:
    """The balance page on the host of ``base_url``.

    The page lives on the web server's own port, not on the API ports 7790/7788, so a
    documented API port is dropped (the scheme is kept); any other port is kept, since a
    proxy or a simulator that moved the API elsewhere serves the page there too.
    """
    url = httpx.URL(base_url)
    port = "" if url.port in (None, *API_PORTS) else f":{url.port}"
    return f"{url.scheme}://{url.raw_host.decode('ascii')}{port}{BALANCE_PATH}"


def _parse(response: HttpResponse) -> dict[str, Any]:
    """The body as a JSON object with keys folded (``Delivery Time`` -> ``deliverytime``).

    Bodies written with typographic quotes (as in the vendor's tables) are accepted too.
    """
    data: Any = None
    body = response.body.replace(_BOM, "")
    for candidate in (body, body.translate(_CURLY)):
        try:
            data = json.loads(candidate)
            break
        except (ValueError, RecursionError):
            continue
    else:
        raise response.bad("body is not JSON")
    if not isinstance(data, dict):
        raise response.bad("expected a JSON object")
    return {re.sub(r"[\s_]", "", str(k)).lower(): v for k, v in data.items()}


def _code(body: dict[str, Any], response: HttpResponse) -> str:
    status = body.get("status")
    if isinstance(status, bool) or not isinstance(status, str | int):
        raise response.bad("no Status code")
    code = str(status).strip()
    if not re.fullmatch(r"-?\d+", code):
        raise response.bad("Status is not a number")
    return str(int(code))


def _code_error(
    response: HttpResponse,
    code: str,
    body: dict[str, Any],
    table: dict[str, tuple[ErrorKind, str]],
) -> ProviderError:
    known = table.get(code)
    if known is not None:
        return response.error(known[0], known[1], code=code)
    text = body.get("text")
    if isinstance(text, str) and text.strip().upper() == "REJECTD":
        return response.error(
            ErrorKind.REQUEST_REJECTED, "rejected with an unlisted code", code=code
        )
    return response.error(ErrorKind.BAD_RESPONSE, "unlisted status code", code=code)


def _epoch_ms(value: object) -> datetime | None:
    """Epoch milliseconds (string or number) as an aware UTC time; ``None`` when unusable.

    A bad timestamp never costs the report itself: the final status is read only once.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        millis = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not millis.is_finite() or not 1 <= millis <= _MAX_MILLIS:
        return None
    return _EPOCH + timedelta(microseconds=int(millis * 1000))
