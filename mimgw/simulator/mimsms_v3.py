"""Emulation of the two legacy MiMSMS v3 gateways: the plain query API and the JSON API.

Both keep an account balance that goes down per segment, and a message lifecycle
driven by the simulator clock: a message leaves when it is due (scheduled ones
later), reaches the operator ``operator_after`` seconds later and is final
``final_after`` seconds after leaving. Final outcomes are set per number by tests
(``set_outcome``). Delivery reports are handed out once, as the gateways do;
the JSON API's logs stay readable for 48 hours.

The plain API is stricter than a real gateway where that catches client bugs: a
multi-segment text without ``type=longSMS``, a unicode text without
``datacoding=8`` or a schedule on the short path is answered with HTTP 400.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from xml.sax.saxutils import escape, quoteattr

from mimgw.errors import ConfigurationError
from mimgw.providers._v3_codes import DR_STATES, ERROR_GROUPS, GSM_ERRORS, STATUS_GROUPS, STATUSES
from mimgw.providers.base import DHAKA
from mimgw.providers.mimsms_v3 import MimSmsV3
from mimgw.providers.mimsms_v3_json import MimSmsV3Json
from mimgw.simulator._asgi import SimRequest, SimResponse
from mimgw.simulator.base import GatewaySim, Route
from mimgw.text import analyse_text

__all__ = ["MimSmsV3JsonSim", "MimSmsV3Sim"]

BASE_URL = "http://api.mimsms.com"
LOG_WINDOW = 48 * 3600.0
_DELAY = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_NUMBER = re.compile(r"\d{8,15}")
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


@dataclass
class SimMessage:
    """One submitted message as the emulated gateway keeps it."""

    id: str
    to: str
    sender: str
    text: str
    segments: int
    due: float
    """Sim-clock time at which it leaves the gateway."""
    outcome: Any
    bulk_id: str | None = None

    def final_at(self, final_after: float) -> float:
        return self.due + final_after


class _Lifecycle(GatewaySim):
    username: ClassVar[str]
    password: ClassVar[str]
    sender: ClassVar[str] = "mimgw"
    pushes = True  # both APIs can push delivery reports to a call-back URL

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self.credits = Decimal("250.00")
        self.price = Decimal("0.30")
        """Charged per segment."""
        self.operator_after = 1.0
        self.final_after = 2.0
        self.messages: dict[str, SimMessage] = {}
        self.read: set[str] = set()
        """Ids whose final report was handed out (read-once)."""

    def _charge(self, segments: int) -> bool:
        cost = self.price * segments
        if cost > self.credits:
            return False
        self.credits -= cost
        return True

    def final(self, message: SimMessage) -> bool:
        return self.clock.time() >= message.final_at(self.final_after)

    def unread_final(self, ids: set[str] | None = None) -> list[SimMessage]:
        return [
            m
            for m in self.messages.values()
            if self.final(m) and m.id not in self.read and (ids is None or m.id in ids)
        ]

    def local(self, at: float) -> datetime:
        return datetime.fromtimestamp(at, UTC).astimezone(DHAKA)

    def push_body(self, messages: list[SimMessage]) -> SimResponse:
        """The pushed form of these messages' reports (body and content type)."""
        raise NotImplementedError

    async def push_reports(self) -> int:
        """POST every final, unread report to :attr:`notify_url` in one request; a
        report the receiver took (2xx) is handed out and will not be pulled again."""
        due = self.unread_final()
        if self.notify_url is None or not due:
            return 0
        body = self.push_body(due)
        response = await self.pusher().post(
            self.notify_url, content=body.body, headers={"Content-Type": body.content_type}
        )
        if not response.is_success:
            return 0
        self.read.update(m.id for m in due)
        return len(due)

    def provider_kwargs(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "password": self.password,
            "sender": self.sender,
            "base_url": BASE_URL,
        }


class MimSmsV3Sim(_Lifecycle):
    """The plain query API: XML send answers, Credits, read-once XML report pull.

    ``force(code)`` answers the next submit with that legacy status (e.g. ``-2``).
    ``set_outcome(number, "NOT_SENT")`` picks the final report word for a number.
    """

    key = "mimsms_v3"
    username = "sim-v3-user"
    password = "sim-v3-pass-7c1"  # noqa: S105 - demo account of the simulator

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self.outcomes: dict[str, str] = {}
        self.default_outcome = "DELIVERED"

    def set_outcome(self, number: str, status: str) -> None:
        status = status.strip().upper()
        if status not in DR_STATES:
            raise ConfigurationError(f"unknown delivery status word {status!r}")
        self.outcomes[number.lstrip("+")] = status

    def routes(self) -> list[Route]:
        return [
            ("GET", "/api/sendsms/plain", self._short),
            ("GET", "/api/v3/sendsms/plain", self._long),
            ("GET", "/api/command", self._command),
            ("GET", "/api/v3/dr/pull", self._dr_pull),
        ]

    def provider(self, **overrides: Any) -> MimSmsV3:
        kwargs = {**self.provider_kwargs(), "client": self.sim.shared_client, **overrides}
        provider = MimSmsV3(**kwargs)
        provider._now = self.clock.now  # schedules are relative to the simulator's time
        return provider

    def _login(self, user: str | None, password: str | None) -> int:
        if not user:
            return -10
        if not password:
            return -11
        ok = hmac.compare_digest(user, self.username) & hmac.compare_digest(password, self.password)
        return 0 if ok else -5

    @staticmethod
    def _answer(status: int, message_id: str = "", destination: str = "") -> SimResponse:
        return SimResponse.xml(
            f"<results><result><status>{status}</status><messageid>{escape(message_id)}"
            f"</messageid><destination>{escape(destination)}</destination></result></results>"
        )

    async def _short(self, request: SimRequest) -> SimResponse:
        return self._submit(request, long_path=False)

    async def _long(self, request: SimRequest) -> SimResponse:
        return self._submit(request, long_path=True)

    def _submit(self, request: SimRequest, *, long_path: bool) -> SimResponse:
        q = request.q
        code = self._login(q("user"), q("password"))
        if code:
            return self._answer(code)
        forced = self.take_forced()
        if forced is not None:
            return self._answer(int(forced))
        text, problem = self._text(request, long_path)
        if problem:
            return SimResponse.text(problem, 400)
        sender, number = q("sender") or "", q("GSM") or ""
        if not 0 < len(sender) <= 11:
            return SimResponse.text("sender must be 1 to 11 characters", 400)
        if not _NUMBER.fullmatch(number):
            return self._answer(-13, destination=number)
        delay = 0
        if q("SendDateTime") is not None:
            match = _DELAY.fullmatch(q("SendDateTime") or "")
            if not long_path or match is None or not any(match.groups()):
                return SimResponse.text("bad SendDateTime", 400)
            d, h, m, s = (int(g or 0) for g in match.groups())
            delay = ((d * 24 + h) * 60 + m) * 60 + s
        segments = analyse_text(text).segments
        if not self._charge(segments):
            return self._answer(-2, destination=number)
        message_id = str(7_100_000_000_000 + self.next_number())
        outcome = self.outcomes.get(number, self.default_outcome)
        self.messages[message_id] = SimMessage(
            message_id, number, sender, text, segments, self.clock.time() + delay, outcome
        )
        self.count_submission(number, text)
        return self._answer(0, message_id, number)

    def _text(self, request: SimRequest, long_path: bool) -> tuple[str, str | None]:
        q = request.q
        unicode_flag = q("datacoding") == "8"
        if q("binary") is not None:
            try:
                data = binascii.unhexlify(q("binary") or "")
            except (binascii.Error, ValueError):
                return "", "binary is not hex"
            if not data.startswith(b"\xfe\xff") or not unicode_flag:
                return "", "binary needs a FEFF byte-order mark and datacoding=8"
            text = data[2:].decode("utf-16-be", errors="replace")
        else:
            text = q("SMSText") or q("text") or ""
        if not text:
            return "", "no message text"
        info = analyse_text(text)
        if info.characters > 1080:
            return "", "text longer than 1080 characters"
        if info.unicode and not unicode_flag:
            return "", "unicode text needs datacoding=8"
        if info.long and (not long_path or q("type") != "longSMS"):
            return "", "long text needs type=longSMS on the v3 path"
        return text, None

    async def _command(self, request: SimRequest) -> SimResponse:
        code = self._login(request.q("username"), request.q("password"))
        if code:
            return SimResponse.text(str(code))
        if request.q("cmd") != "Credits":
            return SimResponse.text("unknown command", 400)
        return SimResponse.text(f"{self.credits:.2f}")

    async def _dr_pull(self, request: SimRequest) -> SimResponse:
        code = self._login(request.q("user"), request.q("password"))
        if code:
            return SimResponse.text({-10: "10", -11: "11"}.get(code, "5"))
        wanted = request.q("messageid")
        ids = {i.strip() for i in wanted.split(",") if i.strip()} if wanted else None
        found = self.unread_final(ids)
        self.read.update(m.id for m in found)
        return self.push_body(found)

    def push_body(self, messages: list[SimMessage]) -> SimResponse:
        """A ``<DeliveryReport>`` document: what the pull answers and what is pushed."""
        rows = []
        for message in messages:
            sent, done = self.local(message.due), self.local(message.final_at(self.final_after))
            rows.append(
                f"<message id={quoteattr(message.id)} sentdate={quoteattr(_unpadded(sent))} "
                f"donedate={quoteattr(_unpadded(done))} status={quoteattr(message.outcome)} />"
            )
        return SimResponse.xml("<DeliveryReport>" + "".join(rows) + "</DeliveryReport>")


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


def _unpadded(at: datetime) -> str:
    return f"{at.year}/{at.month}/{at.day} {at.hour}:{at.minute}:{at.second}"


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}" + at.strftime("%z")


def _parse_iso(value: str | None) -> float | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=DHAKA)
    return parsed.timestamp()
