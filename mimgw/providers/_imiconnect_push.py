"""What IMIconnect pushes to our URLs: delivery reports (``deliveryInfoNotification``)
and inbound messages, read by :meth:`IMIconnect.parse_webhook`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mimgw.errors import MimgwError
from mimgw.models import DeliveryReport, InboundMessage
from mimgw.phone import normalize_number
from mimgw.providers.base import Provider, WebhookItem
from mimgw.taxonomy import ErrorKind, State

__all__ = ["DELIVERY_STATES", "IMIconnectPush"]

DELIVERY_STATES: dict[str, State] = {
    "delivered": State.DELIVERED,
    "delivrd": State.DELIVERED,
    "deliveredtohandset": State.DELIVERED,
    "sent": State.SENT,
    "submitted": State.SENT,
    "deliveredtooperator": State.SENT,
    "deliveredtonetwork": State.SENT,
    "queued": State.PENDING,
    "pending": State.PENDING,
    "accepted": State.PENDING,
    "buffered": State.PENDING,
    "enroute": State.PENDING,
    "failed": State.UNDELIVERABLE,
    "undelivered": State.UNDELIVERABLE,
    "undeliverable": State.UNDELIVERABLE,
    "notdelivered": State.UNDELIVERABLE,
    "undeliv": State.UNDELIVERABLE,
    "expired": State.EXPIRED,
    "rejected": State.REJECTED,
    "rejectd": State.REJECTED,
}
"""``deliveryStatus`` words (lowercase, no spaces) to states; anything else is UNKNOWN."""


class IMIconnectPush(Provider):
    """Reading IMIconnect's pushed payloads (the rest of the backend is :class:`IMIconnect`)."""

    def _parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[WebhookItem]:
        text = body if isinstance(body, str) else bytes(body).decode("utf-8", errors="replace")
        text = text.removeprefix("\ufeff")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise self._bad_push("body is not JSON", text) from None
        entries = data if isinstance(data, list) else [data]
        items: list[WebhookItem] = []
        for entry in entries:
            if isinstance(entry, dict) and "deliveryInfoNotification" in entry:
                items.append(self._report(entry, text))
            elif isinstance(entry, dict) and "oa" in entry and "message" in entry:
                items.append(self._inbound(entry, text))
            else:
                raise self._bad_push("neither a delivery report nor an inbound message", text)
        return items

    def _bad_push(self, detail: str, text: str) -> MimgwError:
        return self.error(ErrorKind.BAD_RESPONSE, f"pushed payload: {detail}", raw=text[:4000])

    def _report(self, entry: dict[str, Any], text: str) -> DeliveryReport:
        note = entry["deliveryInfoNotification"]
        info = note.get("deliveryInfo") if isinstance(note, dict) else None
        if not isinstance(note, dict) or not isinstance(info, dict):
            raise self._bad_push("delivery report without deliveryInfo", text)
        transid = note.get("transid")
        status = info.get("deliveryStatus")
        if not isinstance(transid, str) or not transid.strip():
            raise self._bad_push("delivery report without transid", text)
        if not isinstance(status, str) or not status.strip():
            raise self._bad_push("delivery report without deliveryStatus", text)
        word = "".join(status.split()).replace("_", "").lower()
        description, code = info.get("Description"), info.get("code")
        reason = description if isinstance(description, str) and description else None
        if isinstance(code, str | int) and not isinstance(code, bool) and str(code):
            reason = f"{reason or status} (code {code})"
        cid = note.get("correlationid")
        return DeliveryReport(
            provider=self.name,
            message_id=transid.strip(),
            to=_number(info.get("destination")),
            state=DELIVERY_STATES.get(word, State.UNKNOWN),
            reason=reason,
            retries_allowed=0,
            provider_status=status.strip(),
            done_at=self._time(info.get("timeStamp")),
            reference=cid if isinstance(cid, str) and cid else None,
            raw=self._redact(json.dumps(entry, ensure_ascii=False)),
        )

    def _inbound(self, entry: dict[str, Any], text: str) -> InboundMessage:
        sender, message = _number(entry.get("oa")), entry.get("message")
        if sender is None or not isinstance(message, str):
            raise self._bad_push("inbound message without oa or message text", text)
        recipient = entry.get("da")
        received = _epoch(entry.get("ts")) or self._time(entry.get("datetime"))
        return InboundMessage(
            provider=self.name,
            sender=sender,
            recipient=str(recipient) if isinstance(recipient, str | int) and recipient else None,
            text=message,
            received_at=received,
            raw=self._redact(json.dumps(entry, ensure_ascii=False)),
        )

    def _time(self, value: object) -> datetime | None:
        """An ISO timestamp; without a zone it is read in the provider's timezone."""
        if not isinstance(value, str) or not value.strip():
            return None
        try:
            return self.local_time(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            return None


def _number(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        return None
    try:
        return normalize_number(str(value))
    except MimgwError:
        return str(value).strip()


def _epoch(value: object) -> datetime | None:
    """Epoch seconds or milliseconds (told apart by size); ``None`` when unusable."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value)
        if number <= 0:
            return None
        return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
    except (ValueError, OverflowError, OSError):
        return None
