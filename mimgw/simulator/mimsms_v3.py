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

import binascii
import hmac
import re
from abc import abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from xml.sax.saxutils import escape, quoteattr

from mimgw.errors import ConfigurationError
from mimgw.providers._v3_codes import DR_STATES
from mimgw.providers.base import DHAKA
from mimgw.providers.mimsms_v3 import MimSmsV3
from mimgw.simulator._asgi import SimRequest, SimResponse
from mimgw.simulator.base import GatewaySim, Route
from mimgw.text import analyse_text

__all__ = ["BASE_URL", "MimSmsV3Sim", "SimMessage"]

BASE_URL = "http://api.mimsms.com"
_DELAY = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_NUMBER = re.compile(r"\d{8,15}")


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

    @abstractmethod
    def push_body(self, messages: list[SimMessage]) -> SimResponse:
        """The pushed form of these messages' reports (body and content type)."""

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


def _unpadded(at: datetime) -> str:
    return f"{at.year}/{at.month}/{at.day} {at.hour}:{at.minute}:{at.second}"
