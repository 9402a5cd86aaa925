"""IMIconnect: JSON messaging API (single objects or arrays of up to 1000) and pushed reports.

Only submitting is pulled; delivery reports and inbound messages are pushed to
the URLs configured at IMIconnect and read with :meth:`IMIconnect.parse_webhook`.
No balance or status endpoint is documented, so none is offered.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any, ClassVar, Literal

import anyio
import httpx
from pydantic import SecretStr

from mimgw.errors import ConfigurationError, InvalidMessageError, MimgwError
from mimgw.http import HttpResponse
from mimgw.models import Receipt, new_reference
from mimgw.phone import normalize_number
from mimgw.providers._imiconnect_push import DELIVERY_STATES, IMIconnectPush
from mimgw.providers.base import DHAKA, Capabilities, Outgoing
from mimgw.taxonomy import ErrorKind

__all__ = ["DELIVERY_STATES", "IMIconnect"]

MESSAGING_PATH = "/resources/v1/messaging"
QUEUED = "1001"
_REFUSALS: dict[int, tuple[ErrorKind, str]] = {
    401: (ErrorKind.AUTH, "service key refused"),
    403: (ErrorKind.ACCESS_DENIED, "access denied"),
}


class IMIconnect(IMIconnectPush):
    """IMIconnect (Webex Connect) SMS.

    The API host follows the tenant's web domain: ``tld="com"`` or ``tld="in"``
    selects ``https://api.imiconnect.<tld>``; any other (regional) host goes in
    ``base_url``. ``notify_url``/``notify_data``/``priority`` are sent with every
    message when set.
    """

    kind = "imiconnect"
    default_base_url = "https://api.imiconnect.io"
    capabilities = Capabilities(
        send=True,
        batch=True,
        max_batch=1000,
        balance=False,
        status=False,
        webhook=True,
        schedule=False,
        notes="no balance or status endpoint is documented; delivery reports are pushed",
    )
    max_batch: ClassVar[int] = 1000

    def __init__(
        self,
        *,
        service_key: str | SecretStr,
        sender: str | None,
        notify_url: str | None = None,
        notify_data: str | None = None,
        priority: str | int | None = None,
        validity: timedelta | None = None,
        tld: Literal["io", "com", "in"] | None = None,
        name: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: httpx.AsyncClient | None = None,
        timezone: tzinfo | str = DHAKA,
    ) -> None:
        key = service_key.get_secret_value() if isinstance(service_key, SecretStr) else service_key
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError("imiconnect: service_key must be a non-empty string")
        if tld is not None and base_url is not None:
            raise ConfigurationError("imiconnect: pass either tld or base_url, not both")
        if tld is not None and tld not in ("io", "com", "in"):
            raise ConfigurationError("imiconnect: tld must be 'io', 'com' or 'in'")
        self._key = key.strip()
        super().__init__(
            sender=sender,
            secrets=[self._key],
            name=name,
            base_url=base_url or (f"https://api.imiconnect.{tld}" if tld else None),
            timeout=timeout,
            client=client,
            timezone=timezone,
        )
        if validity is not None and (
            not isinstance(validity, timedelta) or validity <= timedelta(0)
        ):
            raise ConfigurationError(f"{self.name}: validity must be a positive timedelta")
        self.validity = validity
        if notify_url is not None and not notify_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"{self.name}: notify_url must start with http:// or https://")
        self._extras: dict[str, str] = {
            k: str(v)
            for k, v in (
                ("notifyurl", notify_url),
                ("notifydata", notify_data),
                ("priority", priority),
            )
            if v is not None
        }

    # -- submit ------------------------------------------------------------------------

    def _object(self, to: str, reference: str, sms: dict[str, str], **extra: Any) -> dict[str, Any]:
        timing: dict[str, str] = {}
        if self.validity is not None:
            # a naive local time, as the gateway's own timestamps are written
            until = datetime.now(self.timezone) + self.validity
            timing["expiry"] = until.replace(tzinfo=None).isoformat(timespec="seconds")
        return {
            "correlationid": reference,
            **self._extras,
            **timing,
            **extra,
            "deliverychannel": "sms",
            "channels": {"sms": sms},
            "destination": [{"msisdn": [to], "correlationid": reference}],
        }

    def _body(self, outgoing: Outgoing) -> dict[str, Any]:
        sms = {"text": outgoing.text, "senderid": outgoing.sender}
        return self._object(outgoing.to, outgoing.reference, sms)

    async def _send(self, outgoing: Outgoing) -> Receipt:
        response = await self._post(self._body(outgoing))
        outcome = self._outcomes(response, [outgoing])[0]
        if isinstance(outcome, MimgwError):
            raise outcome
        return outcome

    async def send_template(
        self,
        to: str,
        template_id: str,
        *,
        sender: str | None = None,
        reference: str | None = None,
    ) -> Receipt:
        """Send a template stored at IMIconnect (``message.template``).

        The template's text lives at IMIconnect, so the receipt's ``segments`` and
        ``encoding`` are the model defaults, not a measurement.
        """
        if not isinstance(template_id, str) or not template_id.strip():
            raise InvalidMessageError("template_id must be a non-empty string")
        number = normalize_number(to)
        ref = reference or new_reference()
        chosen = sender or self.sender
        sms = {"senderid": chosen} if chosen else {}
        body = self._object(number, ref, sms, message={"template": template_id.strip()})
        response = await self._post(body)
        item = self._match(response, [ref])[0]
        if item is None:
            raise self._missing(response)
        return self._receipt(response, item, number, ref, None)

    async def _send_many(
        self, outgoing: Sequence[Outgoing], concurrency: int
    ) -> list[Receipt | MimgwError]:
        chunks = [outgoing[i : i + self.max_batch] for i in range(0, len(outgoing), self.max_batch)]
        results: list[list[Receipt | MimgwError]] = [[] for _ in chunks]
        limiter = anyio.Semaphore(concurrency)

        async def one(index: int, chunk: Sequence[Outgoing]) -> None:
            async with limiter:
                try:
                    response = await self._post([self._body(o) for o in chunk])
                    results[index] = self._outcomes(response, chunk)
                except MimgwError as exc:
                    results[index] = [exc] * len(chunk)

        async with anyio.create_task_group() as tg:
            for index, chunk in enumerate(chunks):
                tg.start_soon(one, index, chunk)
        return [outcome for chunk_results in results for outcome in chunk_results]

    async def _post(self, body: Any) -> HttpResponse:
        response = await self._request(
            "POST", MESSAGING_PATH, submit=True, json_body=body, headers={"key": self._key}
        )
        refusal = _REFUSALS.get(response.status_code)
        if refusal is not None:
            kind, detail = refusal
            code, description = _stated_code(response)
            raise response.error(
                kind,
                f"{detail}: {description}" if description else detail,
                code=code or response.status_code,
            )
        return response

    # -- response mapping ----------------------------------------------------------------

    def _outcomes(
        self, response: HttpResponse, chunk: Sequence[Outgoing]
    ) -> list[Receipt | MimgwError]:
        items = self._match(response, [o.reference for o in chunk])
        return [
            self._missing(response)
            if item is None
            else self._safe_receipt(response, item, o.to, o.reference, o)
            for o, item in zip(chunk, items, strict=True)
        ]

    def _match(self, response: HttpResponse, refs: Sequence[str]) -> list[Any]:
        """Response items for each reference: by correlationid, else by position."""
        data = response.json_object() if response.body.strip() else None
        items = data.get("response") if isinstance(data, dict) else None
        if not isinstance(items, list):
            code, description = _stated_code(response)
            if code is not None and code != QUEUED:
                # one refusal for the whole request, not a list of items
                raise response.error(
                    ErrorKind.REQUEST_REJECTED, description or "rejected", code=code
                )
            raise response.bad("no 'response' list")
        matched: list[Any] = [None] * len(refs)
        waiting: dict[str, deque[int]] = defaultdict(deque)
        for index, ref in enumerate(refs):
            waiting[ref].append(index)
        unplaced: list[tuple[int, Any]] = []
        for position, item in enumerate(items):
            cid = item.get("correlationid") if isinstance(item, dict) else None
            if isinstance(cid, str) and waiting.get(cid):
                matched[waiting[cid].popleft()] = item
            else:
                unplaced.append((position, item))
        if len(items) == len(refs):
            for position, item in unplaced:
                if matched[position] is None:
                    matched[position] = item
        return matched

    def _missing(self, response: HttpResponse) -> MimgwError:
        return response.error(
            ErrorKind.OUTCOME_UNKNOWN,
            "the gateway's answer has no entry for this message; it may have been queued",
        )

    def _safe_receipt(
        self, response: HttpResponse, item: Any, to: str, ref: str, outgoing: Outgoing
    ) -> Receipt | MimgwError:
        try:
            return self._receipt(response, item, to, ref, outgoing)
        except MimgwError as exc:
            return exc

    def _receipt(
        self, response: HttpResponse, item: Any, to: str, ref: str, outgoing: Outgoing | None
    ) -> Receipt:
        raw = json.dumps(item, ensure_ascii=False) if isinstance(item, dict) else repr(item)
        code = item.get("code") if isinstance(item, dict) else None
        if isinstance(code, bool) or not isinstance(code, str | int):
            raise self.error(ErrorKind.BAD_RESPONSE, "response entry without a code", raw=raw)
        assert isinstance(item, dict)
        code = str(code).strip()
        description = item.get("description")
        detail = description.strip() if isinstance(description, str) and description else "rejected"
        if code != QUEUED:
            raise self.error(ErrorKind.REQUEST_REJECTED, detail, code=code, raw=raw)
        transid = item.get("transid")
        if not isinstance(transid, str) or not transid.strip():
            raise self.error(ErrorKind.BAD_RESPONSE, "queued without a transid", code=code, raw=raw)
        if outgoing is not None:
            return outgoing.receipt(self.name, transid.strip(), raw=raw)
        return Receipt(
            provider=self.name, message_id=transid.strip(), to=to, reference=ref, raw=raw
        )


def _stated_code(response: HttpResponse) -> tuple[str | None, str | None]:
    """The gateway's own code and description in a body that has no usable item list.

    Looks at the first ``response`` item (a list or a single object) or, failing
    that, the top level; ``(None, None)`` when the body states no code.
    """
    try:
        data = json.loads(response.body)
    except (ValueError, RecursionError):
        return None, None
    items = data.get("response") if isinstance(data, dict) else None
    if isinstance(items, list):
        items = items[0] if items else None
    for entry in (items, data):
        if not isinstance(entry, dict):
            continue
        code = entry.get("code")
        if isinstance(code, bool) or not isinstance(code, str | int) or not str(code).strip():
            continue
        description = entry.get("description")
        text = description.strip() if isinstance(description, str) else ""
        return str(code).strip(), response.redact(text) or None
    return None, None
