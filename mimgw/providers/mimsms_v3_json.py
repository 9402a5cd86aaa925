"""MiMSMS v3 Basic-auth JSON API: send, read-once reports, repeatable logs, pushed reports.

Every request carries ``Authorization: Basic …``; the token and the password are
registered with the redactor, so neither appears in logs, errors, reprs or ``raw``.
No balance endpoint is documented for this API.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import httpx
from pydantic import SecretStr

from mimgw.errors import InvalidMessageError, ProviderError
from mimgw.http import RAW_LIMIT, HttpResponse, parse_retry_after
from mimgw.models import DeliveryReport, Receipt
from mimgw.phone import normalize_number
from mimgw.providers._v3_codes import (
    STATUS_GROUPS,
    Status,
    as_int,
    classify,
    credential,
    failure,
    retries_for,
)
from mimgw.providers.base import DHAKA, Capabilities, Outgoing, Provider, WebhookItem
from mimgw.taxonomy import ErrorKind, State

__all__ = ["MimSmsV3Json"]

log = logging.getLogger("mimgw.providers.mimsms_v3_json")

SEND_PATH = "/sms/1/text/single"
REPORTS_PATH = "/sms/1/reports"
LOGS_PATH = "/sms/1/logs"

_GROUP_BY_NAME = dict(STATUS_GROUPS.values())
_FAILED = (State.UNDELIVERABLE, State.EXPIRED, State.REJECTED)


class MimSmsV3Json(Provider):
    """Legacy MiMSMS v3 JSON API with Basic authentication.

    The document shows one submit form only (a single ``to`` string), so
    ``send_bulk`` sends bounded concurrent singles. ``status()`` reads the
    repeatable logs; ``fetch_reports()`` and ``reports()`` the read-once reports.
    """

    kind = "mimsms_v3_json"
    default_base_url = "http://api.mimsms.com"
    capabilities = Capabilities(
        batch=False,
        balance=False,
        status=True,
        reports=True,
        webhook=True,
        schedule=False,
        notes="no balance endpoint is documented; reports are read once, logs cover 48 hours",
    )

    def __init__(
        self,
        *,
        username: str | SecretStr,
        password: str | SecretStr,
        sender: str | None,
        name: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: httpx.AsyncClient | None = None,
        timezone: tzinfo | str = DHAKA,
    ) -> None:
        label = name or self.kind
        username = credential(username, "username", label)
        password = credential(password, "password", label)
        super().__init__(
            sender=sender,
            secrets=[password],
            name=name,
            base_url=base_url,
            timeout=timeout,
            client=client,
            timezone=timezone,
        )
        self._auth = {"Authorization": self._redact.add_basic_auth(username, password)}
        # the API wants a Content-Type on every request, reads included
        self._read_headers = {**self._auth, "Content-Type": "application/json"}
        self._unmapped: set[str] = set()

    # -- submit ----------------------------------------------------------------------------

    async def _send(self, outgoing: Outgoing) -> Receipt:
        response, entries = await self._submit(outgoing.sender, outgoing.text, outgoing.to)
        mine = [e for e in entries if _digits(e.get("to")) == outgoing.to] or entries
        outcome = self._outcome(outgoing, mine[0], response)
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    async def _submit(
        self, sender: str, text: str, to: str
    ) -> tuple[HttpResponse, list[dict[str, Any]]]:
        response = await self._request(
            "POST",
            SEND_PATH,
            submit=True,
            json_body={"from": sender, "to": to, "text": text},
            headers=self._auth,
        )
        body = _body(response, submit=True)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise response.bad("no messages in the answer")
        if not all(isinstance(m, dict) for m in messages):
            raise response.bad("messages must be objects")
        return response, messages

    def _outcome(
        self, outgoing: Outgoing, entry: dict[str, Any], response: HttpResponse
    ) -> Receipt | ProviderError:
        raw = self._redact(_dump(entry))
        status = entry.get("status")
        if not isinstance(status, dict):
            return response.bad("message without a status object")
        state, row, code, label = classify(status)
        if state is State.REJECTED:
            kind = row.submit_error if row and row.submit_error else ErrorKind.REQUEST_REJECTED
            return self.error(kind, _detail(status, row, label), code=code, raw=raw)
        message_id = entry.get("messageId")
        if not isinstance(message_id, str | int) or isinstance(message_id, bool):
            return response.bad("accepted without a messageId")
        if not str(message_id).strip():
            return response.bad("accepted without a messageId")
        count = as_int(entry.get("smsCount"))
        receipt = outgoing.receipt(
            self.name,
            str(message_id).strip(),
            raw=raw,
            segments=count if count and count > 0 else None,
        )
        if state in (State.ACCEPTED, State.UNKNOWN):
            return receipt  # an unlisted status that is no rejection: the id stands
        return receipt.model_copy(update={"state": state})

    # -- reports and logs ------------------------------------------------------------------

    async def reports(
        self,
        *,
        bulk_id: str | None = None,
        message_id: str | None = None,
        limit: int | None = None,
    ) -> list[DeliveryReport]:
        """Pull unread delivery reports (each is handed out once); all go to the listeners."""
        self._require("reports")
        found = await self._reports(
            bulk_id=_text(bulk_id, "bulk_id"),
            message_id=_text(message_id, "message_id"),
            limit=_limit(limit),
        )
        self._publish(found)
        return found

    async def _fetch_reports(self, limit: int | None) -> list[DeliveryReport]:
        return await self._reports(bulk_id=None, message_id=None, limit=limit)

    async def _reports(
        self, *, bulk_id: str | None, message_id: str | None, limit: int | None
    ) -> list[DeliveryReport]:
        query = [("bulkId", bulk_id), ("messageId", message_id), ("limit", limit)]
        response = await self._request(
            "GET", REPORTS_PATH, submit=False, query=query, headers=self._read_headers
        )
        return self._results(_body(response, submit=False), response)

    async def logs(
        self,
        *,
        sender: str | None = None,
        to: str | None = None,
        bulk_id: str | Sequence[str] | None = None,
        message_id: str | Sequence[str] | None = None,
        general_status: str | None = None,
        sent_since: datetime | None = None,
        sent_until: datetime | None = None,
        limit: int | None = None,
        mcc: str | None = None,
        mnc: str | None = None,
    ) -> list[DeliveryReport]:
        """Sent-message logs of the last 48 hours; repeatable. Every filter is optional.

        ``bulk_id`` and ``message_id`` take one id or several (sent comma-separated);
        ``general_status`` is a status group name such as ``"DELIVERED"``; naive
        datetimes are read in the provider's timezone.
        """
        group = None
        if general_status is not None:
            group = str(general_status).strip().upper()
            if group not in _GROUP_BY_NAME:
                raise InvalidMessageError(
                    f"general_status must be one of {', '.join(_GROUP_BY_NAME)}"
                )
        query: list[tuple[str, str | int | None]] = [
            ("from", _text(sender, "sender")),
            ("to", None if to is None else normalize_number(to)),
            ("bulkId", _ids(bulk_id, "bulk_id")),
            ("messageId", _ids(message_id, "message_id")),
            ("generalStatus", group),
            ("sentSince", self._iso(sent_since)),
            ("sentUntil", self._iso(sent_until)),
            ("limit", _limit(limit)),
            ("mcc", _text(mcc, "mcc")),
            ("mnc", _text(mnc, "mnc")),
        ]
        found = await self._logs(query)
        self._publish(found)
        return found

    async def _logs(self, query: list[tuple[str, str | int | None]]) -> list[DeliveryReport]:
        response = await self._request(
            "GET", LOGS_PATH, submit=False, query=query, headers=self._read_headers
        )
        return self._results(_body(response, submit=False), response)

    async def _status(self, message_id: str) -> DeliveryReport:
        found = [
            r for r in await self._logs([("messageId", message_id)]) if r.message_id == message_id
        ]
        if found:
            return max(found, key=lambda r: r.state.rank)
        return DeliveryReport(
            provider=self.name,
            message_id=message_id,
            state=State.UNKNOWN,
            reason="not in the logs (unknown id, or sent more than 48 hours ago)",
        )

    def _parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[WebhookItem]:
        text = body.decode("utf-8", errors="replace")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):  # self.error redacts raw
            raise self.error(
                ErrorKind.BAD_RESPONSE, "pushed body is not a JSON object", raw=text[:RAW_LIMIT]
            )
        return list(self._results(data, None, raw=self._redact(text)))

    # -- parsing ---------------------------------------------------------------------------

    def _results(
        self, body: dict[str, Any], response: HttpResponse | None, raw: str = ""
    ) -> list[DeliveryReport]:
        results = body.get("results")
        if not isinstance(results, list):
            if response is not None:
                raise response.bad("no results list")
            raise self.error(ErrorKind.BAD_RESPONSE, "no results list", raw=raw[:RAW_LIMIT])
        found: list[DeliveryReport] = []
        for entry in results:
            report = self._report(entry) if isinstance(entry, dict) else None
            if report is None:
                skipped = self._redact(_dump(entry))[:300]
                log.warning("%s: unusable report skipped: %s", self.name, skipped)
            else:
                found.append(report)
        return found

    def _report(self, entry: dict[str, Any]) -> DeliveryReport | None:
        message_id = entry.get("messageId")
        if not isinstance(message_id, str | int) or isinstance(message_id, bool):
            return None
        if not str(message_id).strip():
            return None
        status = entry.get("status")
        state, row, _code, label = classify(status if isinstance(status, dict) else {})
        if state is State.UNKNOWN and label not in self._unmapped:
            self._unmapped.add(label)
            log.warning("%s: unmapped status %s (raw kept)", self.name, label)
        reason, permanent = None, None
        if state in _FAILED:
            reason, permanent = failure(entry.get("error"), row, label)
        to = entry.get("to")
        return DeliveryReport(
            provider=self.name,
            message_id=str(message_id).strip(),
            to=_digits(to) or None,
            state=state,
            reason=reason,
            permanent=permanent,
            retries_allowed=retries_for(state, permanent, row),
            provider_status=label,
            done_at=self._timestamp(entry.get("doneAt")),
            raw=self._redact(_dump(entry)),
        )

    def _timestamp(self, value: object) -> datetime | None:
        """``2024-03-09T07:05:00.123+0600`` (offset with or without colon) as an aware time."""
        if not isinstance(value, str) or not value.strip():
            return None
        try:
            return self.local_time(datetime.fromisoformat(value.strip()))
        except ValueError:
            return None

    def _iso(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise InvalidMessageError("sent_since and sent_until must be datetimes")
        utc = self.local_time(value).astimezone(UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def _body(response: HttpResponse, *, submit: bool) -> dict[str, Any]:
    status = response.status_code
    if status == 401:
        raise response.error(ErrorKind.AUTH, "username or password refused", code=401)
    if status >= 500:
        # a JSON error from the gateway itself (bodiless and HTML 5xx are mapped before):
        # a submit may still have been processed, a read can simply be tried again
        kind = ErrorKind.OUTCOME_UNKNOWN if submit else ErrorKind.PROVIDER_UNAVAILABLE
        if status == 503 and submit and response.headers.get("retry-after"):
            kind = ErrorKind.PROVIDER_UNAVAILABLE  # an explicit "come back later"
        said = _service_text(response)
        detail = f"HTTP {status} from the gateway" + (f" ({said})" if said else "")
        raise response.error(
            kind,
            detail,
            code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if not 200 <= status < 300:
        raise response.bad(f"HTTP {status}")
    return response.json_object()


def _service_text(response: HttpResponse) -> str:
    """The ``requestError.serviceException.text`` of an error body, if there is one."""
    try:
        body = response.json_object()
    except ProviderError:
        return ""
    error = body.get("requestError")
    service = error.get("serviceException") if isinstance(error, dict) else None
    text = service.get("text") if isinstance(service, dict) else None
    return text.strip()[:200] if isinstance(text, str) else ""


def _detail(status: Mapping[str, Any], row: Status | None, label: str) -> str:
    """A rejection as the table gives it: name, description and the Action to take."""
    detail = label
    described = status.get("description")
    if isinstance(described, str) and described.strip():
        detail = f"{label}: {described.strip()}"
    action = status.get("action")
    if not isinstance(action, str) or action.strip().upper() in ("", "NULL"):
        action = row.action if row else None
    return f"{detail} (action: {action.strip()})" if action else detail


def _digits(value: object) -> str:
    return value.strip().lstrip("+") if isinstance(value, str) else ""


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidMessageError(f"{field} must be a non-empty string")
    return value.strip()


def _ids(value: str | Sequence[str] | None, field: str) -> str | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    cleaned = [_text(v, field) for v in items]
    if not cleaned or any(v is None or "," in v for v in cleaned):
        raise InvalidMessageError(f"{field} must be one or more ids without commas")
    return ",".join(v for v in cleaned if v)


def _limit(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidMessageError("limit must be a positive integer")
    return value
