"""Emulation of the legacy MiMSMS v3 Basic-auth JSON API: submit, read-once reports,
repeatable 48-hour logs and pushed reports, on the lifecycle shared with the plain API."""

from __future__ import annotations

import base64
import hmac
import uuid
from datetime import datetime
from typing import Any

from mimgw.errors import ConfigurationError
from mimgw.providers._v3_codes import ERROR_GROUPS, GSM_ERRORS, STATUS_GROUPS, STATUSES
from mimgw.providers.base import DHAKA
from mimgw.providers.mimsms_v3_json import MimSmsV3Json
from mimgw.simulator._asgi import SimRequest, SimResponse
from mimgw.simulator.base import Route
from mimgw.simulator.mimsms_v3 import _NUMBER, SimMessage, _Lifecycle
from mimgw.text import analyse_text

__all__ = ["DESCRIPTIONS", "MimSmsV3JsonSim"]

LOG_WINDOW = 48 * 3600.0
# mobile prefixes of the Bangladeshi operators -> MCC+MNC
_MCCMNC = {"17": "47001", "13": "47001", "18": "47002", "16": "47002", "19": "47003"}
_MCCMNC |= {"14": "47003", "15": "47004"}
DESCRIPTIONS = {
    1: "Time window violation",
    2: "Message delivered to operator",
    3: "Message sent, waiting for delivery report",
    4: "Message rejected by operator",
    5: "Message delivered to handset",
    6: "Network is forbidden",
    7: "Message sent to next instance",
    8: "Number prefix missing",
    9: "Message sent not delivered",
    10: "Destination on DND list",
    11: "Invalid Source address",
    12: "Not enough credits",
    13: "By Sender",
    14: "By Destination",
    15: "Message expired",
    16: "Network not reachable",
    17: "Prepaid package expired",
    18: "Destination not registered",
    19: "Route not available",
    20: "Rejected flooding",
    21: "System error",
    22: "Unknown Reason",
    23: "Rejected duplicate message ID",
    24: "Rejected invalid UDH",
    25: "Rejected message too long",
}
"""The status table's Description column, as the gateway writes it into status objects."""


class MimSmsV3JsonSim(_Lifecycle):
    """The Basic-auth JSON API: submit, read-once reports, repeatable logs.

    ``force(status_id)`` answers every message of the next submit with that status
    (e.g. ``12``). ``set_outcome(number, status_id, error_id)`` picks the final status
    and GSM error of a number. ``notify_body()`` builds what the gateway would push.
    """

    key = "mimsms_v3_json"
    username = "sim-json-user"
    password = "sim-json-pass-4e9"  # noqa: S105 - demo account of the simulator

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self.outcomes: dict[str, tuple[int, int]] = {}
        self.default_outcome = (5, 0)

    def set_outcome(self, number: str, status_id: int, error_id: int = 0) -> None:
        if status_id not in STATUSES or error_id not in GSM_ERRORS:
            raise ConfigurationError("unknown status or GSM error id")
        self.outcomes[number.lstrip("+")] = (status_id, error_id)

    def routes(self) -> list[Route]:
        return [
            ("POST", "/sms/1/text/single", self._send),
            ("GET", "/sms/1/reports", self._reports),
            ("GET", "/sms/1/logs", self._logs),
        ]

    def provider(self, **overrides: Any) -> MimSmsV3Json:
        kwargs = {**self.provider_kwargs(), "client": self.sim.shared_client, **overrides}
        return MimSmsV3Json(**kwargs)

    def _authorised(self, request: SimRequest) -> bool:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return hmac.compare_digest(request.headers.get("authorization", ""), f"Basic {token}")

    @staticmethod
    def _refused(status: int, reason: str) -> SimResponse:
        return SimResponse.json({"requestError": {"serviceException": {"text": reason}}}, status)

    async def _send(self, request: SimRequest) -> SimResponse:
        """The one documented submit form: a JSON object with ``from``, a single ``to``
        string and ``text``. A list ``to`` (or anything else) is refused with HTTP 400."""
        if not self._authorised(request):
            return self._refused(401, "invalid login details")
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith(("application/json", "application/xml")):
            return self._refused(400, "General error: no Content-Type")
        body = request.json()
        if not isinstance(body, dict):
            return self._refused(400, "body must be a JSON object")
        sender, number, text = body.get("from"), body.get("to"), body.get("text")
        if not isinstance(sender, str) or not isinstance(text, str) or not text:
            return self._refused(400, "from and text are required")
        if not isinstance(number, str) or not number:
            return self._refused(400, "to must be one phone number (a string)")
        forced = self.take_forced()
        status = int(forced) if forced is not None else None
        if status is not None and _accepts(status):
            shown, status = status, None
        else:
            shown = 0  # the documented answer: ACCEPTED / MESSAGE_ACCEPTED
        segments = analyse_text(text).segments
        if status is None and not _NUMBER.fullmatch(number):
            status = 8 if number.startswith("0") else 14
        if status is None and not self._charge(segments):
            status = 12
        answered = _status(shown if status is None else status)
        entry: dict[str, Any] = {"to": number, "status": answered}
        if status is None:
            message = SimMessage(
                str(self._uuid()),
                number,
                sender,
                text,
                segments,
                self.clock.time(),
                self.outcomes.get(number, self.default_outcome),
                str(self._uuid()),  # each request is a bulk of one; shown in reports
            )
            self.messages[message.id] = message
            self.count_submission(number, text)
            entry |= {"smsCount": segments, "messageId": message.id}
        return SimResponse.json({"messages": [entry]})

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def entry(self, message: SimMessage, *, log: bool = False) -> dict[str, Any]:
        """A report (or, with ``log``, a log) row for ``message`` at the current sim time."""
        now = self.clock.time()
        status_id, error_id = 7, 0
        if self.final(message):
            status_id, error_id = message.outcome
        elif now >= message.due + self.operator_after:
            status_id = 2
        row: dict[str, Any] = {"bulkId": message.bulk_id, "messageId": message.id, "to": message.to}
        if log:
            row |= {"from": message.sender, "text": message.text}
        row["sentAt"] = _iso(self.local(message.due))
        if self.final(message):
            row["doneAt"] = _iso(self.local(message.final_at(self.final_after)))
        row["smsCount"] = message.segments
        if log:
            row["mccmnc"] = _MCCMNC.get(message.to[3:5], "47000")
        row["price"] = {"pricePerMessage": float(self.price), "currency": "BDT"}
        row["status"] = _status(status_id)
        row["error"] = _error(error_id)
        return row

    def notify_body(self, *message_ids: str) -> bytes:
        """The body the gateway would push to a notify URL for these (or all final) messages."""
        chosen = [self.messages[i] for i in message_ids] if message_ids else self.unread_final()
        return self.push_body(chosen).body

    def push_body(self, messages: list[SimMessage]) -> SimResponse:
        return SimResponse.json({"results": [self.entry(m) for m in messages]})

    async def _reports(self, request: SimRequest) -> SimResponse:
        if not self._authorised(request):
            return self._refused(401, "invalid login details")
        q = request.q
        found = [
            m
            for m in self.unread_final()
            if q("bulkId") in (None, m.bulk_id) and q("messageId") in (None, m.id)
        ]
        limit = q("limit")
        if limit is not None:
            if not limit.isdigit():
                return self._refused(400, "limit must be a number")
            found = found[: int(limit)]
        self.read.update(m.id for m in found)
        return SimResponse.json({"results": [self.entry(m) for m in found]})

    async def _logs(self, request: SimRequest) -> SimResponse:
        if not self._authorised(request):
            return self._refused(401, "invalid login details")
        q = request.q
        try:
            since = _parse_iso(q("sentSince"))
            until = _parse_iso(q("sentUntil"))
        except ValueError:
            return self._refused(400, "sentSince and sentUntil must be ISO 8601 times")
        bulk_ids = set((q("bulkId") or "").split(",")) - {""}
        message_ids = set((q("messageId") or "").split(",")) - {""}
        now = self.clock.time()
        rows = []
        for message in reversed(self.messages.values()):
            row = self.entry(message, log=True)
            checks = (
                now - message.due <= LOG_WINDOW,
                q("from") in (None, message.sender),
                q("to") in (None, message.to),
                not bulk_ids or message.bulk_id in bulk_ids,
                not message_ids or message.id in message_ids,
                q("generalStatus") in (None, row["status"]["groupName"]),
                since is None or message.due >= since,
                until is None or message.due <= until,
                q("mcc") in (None, row["mccmnc"][:3]),
                q("mnc") in (None, row["mccmnc"][3:]),
            )
            if all(checks):
                rows.append(row)
        limit = q("limit")
        if limit is not None and limit.isdigit():
            rows = rows[: int(limit)]
        return SimResponse.json({"results": rows})


def _accepts(status_id: int) -> bool:
    """A forced status that is no rejection: the message is taken and shown in it."""
    row = STATUSES.get(status_id)
    return status_id == 0 or (row is not None and row.group != 5)


def _status(status_id: int) -> dict[str, Any]:
    """A status object in the document's form (``action`` only where the table has one)."""
    if status_id == 0:
        return {
            "id": 0,
            "groupId": 0,
            "groupName": "ACCEPTED",
            "name": "MESSAGE_ACCEPTED",
            "description": "Message accepted",
        }
    row = STATUSES.get(status_id)
    group = row.group if row else 5
    name = row.name if row else "REJECTED_UNKNOWN"
    status: dict[str, Any] = {
        "id": status_id,
        "groupId": group,
        "groupName": STATUS_GROUPS[group][0],
        "name": name,
        "description": DESCRIPTIONS.get(status_id, name.replace("_", " ").capitalize()),
    }
    if row is not None and row.action:
        status["action"] = row.action
    return status


def _error(error_id: int) -> dict[str, Any]:
    known = GSM_ERRORS[error_id]
    group = 0 if error_id == 0 else (1 if error_id < 256 else 3)
    return {
        "groupId": group,
        "groupName": ERROR_GROUPS[group],
        "id": error_id,
        "name": known.name,
        "description": known.name.removeprefix("EC_").replace("_", " ").lower(),
        "permanent": bool(known.permanent),
    }


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}" + at.strftime("%z")


def _parse_iso(value: str | None) -> float | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=DHAKA)
    return parsed.timestamp()
