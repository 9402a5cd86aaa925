"""MiMSMS v4: the ``/api/SmsSending/...`` JSON API and its GET query variants.

Success is decided by the body's ``statusCode`` (string or number), never by the
HTTP status. ``send_bulk`` uses the gateway's own batch endpoints: identical texts
go out as one-to-many requests, personalised texts as dynamic (DSMS) requests.
No delivery-status endpoint is documented, so ``status()`` is unsupported; the
operator DLR table is still offered through :meth:`MimSmsV4.parse_dlr`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import tzinfo
from typing import ClassVar, Literal

import anyio
import httpx
from pydantic import SecretStr

from mimgw.errors import ConfigurationError, InvalidMessageError, MimgwError
from mimgw.http import HttpResponse
from mimgw.models import Balance, DeliveryReport, Message, Receipt
from mimgw.phone import normalize_number
from mimgw.providers._v4_answers import (
    _accepted,
    _decimal,
    _documented_code,
    _succeeded,
)
from mimgw.providers._v4_codes import (
    _DLR_INDEX,
    _UNKNOWN_LOG_LIMIT,
    DLR_TABLE,
    ERRORS,
    SMS_FAILED,
    DlrRow,
    _compact,
    classify_sms_failed,
)
from mimgw.providers.base import DHAKA, Capabilities, Outgoing, Provider, TextLimits
from mimgw.taxonomy import State
from mimgw.text import TextInfo

__all__ = ["DLR_TABLE", "ERRORS", "CampaignRequiredError", "DlrRow", "MimSmsV4"]

log = logging.getLogger("mimgw.providers.mimsms_v4")

Method = Literal["json", "query"]
Namer = Callable[[str, str], str] | None
"""Names each recipient of a batch from the batch's ``trxnId`` and the number."""

SMS_PATH = "/api/SmsSending/SMS"
ONE_TO_MANY_PATH = "/api/SmsSending/OneToMany"
DYNAMIC_PATH = "/api/SmsSending/DSMS"
BALANCE_PATH = "/api/SmsSending/Balance"
SEND_QUERY_PATH = "/api/SmsSending/Send"
ONE_TO_MANY_QUERY_PATH = "/api/SmsSending/SendOneToMany"
BALANCE_QUERY_PATH = "/api/SmsSending/balanceCheck"

NO_CAMPAIGN = "null"
"""What ``CampaignId`` carries when there is no campaign (transactional messages)."""
_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class CampaignRequiredError(ConfigurationError, InvalidMessageError):
    """A promotional message for a provider configured without ``campaign_id``.

    Raised before any request. It is both a configuration problem (no approved
    campaign configured) and a message this gateway cannot take as given, so it is
    both a :class:`~mimgw.ConfigurationError` and an :class:`~mimgw.InvalidMessageError`.
    """


def _required(value: str | SecretStr | None, field: str) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"mimsms_v4: {field} must be a non-empty string")
    return value.strip()


class MimSmsV4(Provider):
    """MiMSMS v4 JSON API.

    ``method="json"`` posts JSON to the documented endpoints; ``method="query"`` uses
    the documented GET variants (``Send``, ``SendOneToMany``, ``balanceCheck``) and
    never posts JSON (personalised bulk messages then go out as concurrent singles,
    since the dynamic endpoint has no GET form). ``campaign_id`` is the approved
    campaign sent with promotional messages, which need one.
    """

    kind = "mimsms_v4"
    default_base_url = "https://api.mimsms.com"
    regions = frozenset({"BD"})  # the document shows only 880 numbers
    batch_size: ClassVar[int] = 100
    """Most numbers one one-to-many or dynamic request carries (our choice, not documented)."""
    capabilities = Capabilities(
        send=True,
        batch=True,
        max_batch=100,
        balance=True,
        status=False,
        reports=False,
        webhook=False,
        schedule=False,
        promotional=True,
        parse_dlr=True,
        notes="no delivery-status endpoint is documented; classify operator DLR rows "
        "with parse_dlr",
    )
    limits = TextLimits()
    """No documented length limit: the gateway answers 209 for a text that is too long."""

    def __init__(
        self,
        *,
        username: str,
        api_key: str | SecretStr,
        sender: str | None,
        campaign_id: str | None = None,
        method: Method = "json",
        name: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: httpx.AsyncClient | None = None,
        timezone: tzinfo | str = DHAKA,
    ) -> None:
        self.username = _required(username, "username")
        self._api_key = _required(api_key, "api_key")
        if method not in ("json", "query"):
            raise ConfigurationError(f"mimsms_v4: method must be 'json' or 'query', not {method!r}")
        if campaign_id is not None and (
            not isinstance(campaign_id, str) or not campaign_id.strip()
        ):
            raise ConfigurationError("mimsms_v4: campaign_id must be a non-empty string or None")
        super().__init__(
            sender=sender,
            secrets=[self._api_key],
            name=name,
            base_url=base_url,
            timeout=timeout,
            client=client,
            timezone=timezone,
        )
        self.method: Method = method
        self.campaign_id = campaign_id.strip() if campaign_id else None
        self._unknown_logged: set[str] = set()

    def _check(self, message: Message, info: TextInfo) -> None:
        if message.category == "promotional" and self.campaign_id is None:
            raise CampaignRequiredError(
                f"{self.name}: promotional messages need campaign_id= "
                "(the approved MiMSMS campaign id)"
            )

    # -- submit --------------------------------------------------------------------------

    async def _send(self, outgoing: Outgoing) -> Receipt:
        response = await self._submit_same([outgoing], many=False)
        return outgoing.receipt(self.name, _accepted(response), raw=response.text)

    async def _send_many(
        self, outgoing: Sequence[Outgoing], concurrency: int
    ) -> list[Receipt | MimgwError]:
        results: list[Receipt | MimgwError | None] = [None] * len(outgoing)
        groups: dict[tuple[str, str, str], list[int]] = {}
        for index, item in enumerate(outgoing):
            key = (item.text, item.sender, item.message.category)
            groups.setdefault(key, []).append(index)
        jobs: list[tuple[Callable[[list[Outgoing]], Awaitable[list[Receipt]]], list[int]]] = []
        dynamic: dict[str, list[int]] = {}
        for indices in groups.values():
            if len(indices) > 1:
                jobs += [(self._one_to_many, chunk) for chunk in self._chunks(indices)]
                continue
            item = outgoing[indices[0]]
            if self.method == "json" and item.message.category == "transactional":
                dynamic.setdefault(item.sender, []).append(indices[0])
            else:
                jobs.append((self._single, indices))
        for indices in dynamic.values():
            if len(indices) == 1:
                jobs.append((self._single, indices))
            else:
                jobs += [(self._dynamic, chunk) for chunk in self._chunks(indices)]
        limiter = anyio.Semaphore(concurrency)

        async def run(
            call: Callable[[list[Outgoing]], Awaitable[list[Receipt]]], chunk: list[int]
        ) -> None:
            async with limiter:
                try:
                    receipts = await call([outgoing[i] for i in chunk])
                except MimgwError as exc:  # the whole request failed: every message in it did
                    for i in chunk:
                        results[i] = exc
                    return
                for i, receipt in zip(chunk, receipts, strict=True):
                    results[i] = receipt

        async with anyio.create_task_group() as tg:
            for call, chunk in jobs:
                tg.start_soon(run, call, chunk)
        return [r for r in results if r is not None]

    def _chunks(self, indices: list[int]) -> list[list[int]]:
        size = max(1, self.batch_size)
        return [indices[i : i + size] for i in range(0, len(indices), size)]

    async def _single(self, items: list[Outgoing]) -> list[Receipt]:
        return [await self._send(items[0])]

    async def _one_to_many(
        self, items: list[Outgoing], *, name_each: Namer = None
    ) -> list[Receipt]:
        response = await self._submit_same(items, many=True)
        return self._receipts(items, response, name_each)

    def _receipts(
        self, items: list[Outgoing], response: HttpResponse, name_each: Namer
    ) -> list[Receipt]:
        """One receipt per recipient of an accepted batch: under the batch's ``trxnId``,
        or under ``name_each(trxnId, number)`` (the Gateway's per-recipient ids)."""
        trxn_id = _accepted(response)
        raw = response.text
        if name_each is None:
            return [o.receipt(self.name, trxn_id, raw=raw) for o in items]
        return [o.receipt(self.name, name_each(trxn_id, o.message.to), raw=raw) for o in items]

    async def _dynamic(self, items: list[Outgoing], *, name_each: Namer = None) -> list[Receipt]:
        body = {
            "UserName": self.username,
            "Apikey": self._api_key,
            "SenderName": items[0].sender,
            "TransactionType": "D",
            "SmsData": [{"MobNumber": m.to, "Message": m.text} for m in (o.message for o in items)],
        }
        response = await self._request(
            "POST", DYNAMIC_PATH, submit=True, json_body=body, headers=_JSON_HEADERS
        )
        return self._receipts(items, response, name_each)

    async def _submit_same(self, items: Sequence[Outgoing], *, many: bool) -> HttpResponse:
        """One text from one sender to ``items``' numbers (a single send or one-to-many)."""
        head = items[0]
        promotional = head.message.category == "promotional"
        transaction_type = "P" if promotional else "T"
        campaign = self.campaign_id if promotional else None
        numbers = ",".join(o.to for o in items)
        if self.method == "json":
            body = {
                "UserName": self.username,
                "Apikey": self._api_key,
                "MobileNumber": numbers,
                "CampaignId": campaign or NO_CAMPAIGN,
                "SenderName": head.sender,
                "TransactionType": transaction_type,
                "Message": head.text,
            }
            path = ONE_TO_MANY_PATH if many else SMS_PATH
            return await self._request(
                "POST", path, submit=True, json_body=body, headers=_JSON_HEADERS
            )
        # the documented single GET carries CampaignId only when there is one
        campaign_param = campaign or (NO_CAMPAIGN if many else None)
        query = [
            ("UserName", self.username),
            ("Apikey", self._api_key),
            ("MobileNumber", numbers),
            ("CampaignId", campaign_param),
            ("SenderName", head.sender),
            ("TransactionType", transaction_type),
            ("Message", head.text),
        ]
        path = ONE_TO_MANY_QUERY_PATH if many else SEND_QUERY_PATH
        return await self._request("GET", path, submit=True, query=query)

    def _check_transport(self, response: HttpResponse, *, submit: bool) -> None:
        """A body carrying a documented ``statusCode`` outranks the HTTP status.

        A 429 (or any status) whose body says ``statusCode`` 200 with a ``trxnId`` was
        accepted: reporting it as rate limited would invite a duplicate resend.
        """
        if response.status_code != 429 and response.status_code < 500:
            return  # nothing for the transport check to map
        if _documented_code(response) is None:
            response.check_transport_status(submit=submit)

    # -- balance ---------------------------------------------------------------------------

    async def _balance(self) -> Balance:
        if self.method == "json":
            response = await self._request(
                "POST",
                BALANCE_PATH,
                submit=False,
                json_body={"UserName": self.username, "Apikey": self._api_key},
                headers=_JSON_HEADERS,
            )
        else:
            response = await self._request(
                "GET",
                BALANCE_QUERY_PATH,
                submit=False,
                query=[("userName", self.username), ("Apikey", self._api_key)],
            )
        body = _succeeded(response)
        amount = _decimal(body.get("responseresult"))
        if amount is None:
            raise response.bad("balance is not a number")
        return Balance(provider=self.name, amount=amount, currency=None, raw=response.text)

    # -- delivery reports --------------------------------------------------------------------

    def parse_dlr(
        self,
        message_id: str,
        status: str,
        description: str | None = None,
        *,
        to: str | None = None,
    ) -> DeliveryReport:
        """Classify one row of the operator DLR table (name and, for "SMS Failed", description).

        ``retries_allowed`` is the row's operator retry policy. An unknown name gives
        ``State.UNKNOWN`` with ``provider_status`` kept (logged once per name). Plain
        function: no I/O.
        """
        if not isinstance(message_id, str) or not message_id.strip():
            raise InvalidMessageError("message_id must be a non-empty string")
        if not isinstance(status, str) or not status.strip():
            raise InvalidMessageError("status must be a non-empty string")
        if description is not None and not isinstance(description, str):
            raise InvalidMessageError("description must be a string or None")
        key = _compact(status)
        row: DlrRow | None
        if key.startswith(SMS_FAILED):
            # the description tells the two rows apart; it may also trail the name itself
            row = classify_sms_failed(" ".join(t for t in (status, description) if t))
        else:
            row = _DLR_INDEX.get(key)
        if row is None:
            self._log_unknown(status.strip())
        raw = status if description is None else f"{status} | {description}"
        report = DeliveryReport(
            provider=self.name,
            message_id=message_id.strip(),
            to=None if to is None else normalize_number(to),
            state=State.UNKNOWN if row is None else row.state,
            reason=None if row is None else row.reason,
            permanent=None if row is None else row.permanent,
            retries_allowed=0 if row is None else row.retries,
            provider_status=status.strip(),
            raw=self._redact(raw),
        )
        self._publish([report])
        return report

    def _log_unknown(self, status: str) -> None:
        if status in self._unknown_logged or len(self._unknown_logged) >= _UNKNOWN_LOG_LIMIT:
            return
        self._unknown_logged.add(status)
        log.warning("%s: unmapped DLR status %r (kept as provider_status)", self.name, status)
