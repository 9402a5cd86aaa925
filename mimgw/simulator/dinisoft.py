"""Emulation of DiniSoft: ``/sendtext``, read-once ``/getstatus`` and the balance page.

Messages move PENDING -> SENT -> final on the simulator clock (``pending_for`` and
``sent_for`` seconds); ``outcomes`` pins a number's final answer (``"DELIVRD"`` or
``"REJECTD"``) or keeps it ``"PENDING"``/``"SENT"`` for ever. Once a final status
has been read, ``getstatus`` answers 114 for that id, as the real gateway does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mimgw.providers.base import Provider
from mimgw.providers.dinisoft import BALANCE_PATH, DiniSoft
from mimgw.simulator._asgi import SimRequest, SimResponse
from mimgw.simulator.base import GatewaySim, Route
from mimgw.text import analyse_text

if TYPE_CHECKING:
    from mimgw.simulator import Simulator

__all__ = ["DiniSoftSim", "SimDiniMessage"]

_STATUS_CODES = {"DELIVRD": "0", "REJECTD": "1", "PENDING": "2", "SENT": "4"}
_FINAL = ("DELIVRD", "REJECTD")


@dataclass
class SimDiniMessage:
    message_id: str
    to: str
    sender: str
    text: str
    segments: int
    created_at: float
    final_read: bool = False


class DiniSoftSim(GatewaySim):
    key = "dinisoft"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.api_key = "sim-dinisoft-apikey"
        self.secret_key = "sim-dinisoft-secretkey"  # noqa: S105 - simulator credential
        self.client_name = "simclient"
        self.sender = "SIMDINI"
        self.balance = Decimal("100.000000")
        self.price_per_segment = Decimal("0.250000")
        self.pending_for = 2.0
        self.sent_for = 3.0
        self.outcomes: dict[str, str] = {}
        """Number (E.164 digits) -> DELIVRD, REJECTD, PENDING or SENT."""
        self.allowed_ips: set[str] | None = None
        """When set, requests from other addresses are refused with 5400."""
        self.curly_quotes = False
        """Write bodies with typographic quotes, as the vendor's tables show them."""
        self.messages: dict[str, SimDiniMessage] = {}
        self.balance_queries: list[str] = []
        """Raw query strings the balance page received."""
        self._status_forced: deque[str] = deque()

    def force_status(self, code: str | int, times: int = 1) -> None:
        """Answer the next ``times`` getstatus calls with ``code``."""
        self._status_forced.extend([str(code)] * times)

    def routes(self) -> list[Route]:
        return [
            ("GET", "/sendtext", self._sendtext),
            ("GET", "/getstatus", self._getstatus),
            ("GET", BALANCE_PATH, self._balance_page),
        ]

    def provider_kwargs(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key,
            "secret_key": self.secret_key,
            "sender": self.sender,
            "client_name": self.client_name,
            "base_url": "https://dinisoft.sim.invalid:7790",
        }

    def provider(self, **overrides: Any) -> Provider:
        kwargs = {**self.provider_kwargs(), "client": self.sim.shared_client, **overrides}
        return DiniSoft(**kwargs)

    # -- answers ------------------------------------------------------------------------

    def _answer(self, **fields: str) -> SimResponse:
        response = SimResponse.json(fields)
        if self.curly_quotes:
            body = response.body.decode("utf-8")
            out, opening = [], True
            for char in body:
                if char == '"':
                    out.append("\u201c" if opening else "\u201d")
                    opening = not opening
                else:
                    out.append(char)
            response.body = "".join(out).encode("utf-8")
        return response

    def _reject(self, code: str) -> SimResponse:
        if code == "5400":
            return self._answer(Status=code, Text="REJECTD", Message_ID="")
        return self._answer(Status=code, Text="REJECTD")

    def _auth(self, request: SimRequest, *, missing_key: str, bad_key: str) -> str | None:
        if self.allowed_ips is not None and request.client_host not in self.allowed_ips:
            return "5400"
        api_key, secret = request.q("apikey"), request.q("secretkey")
        if not api_key:
            return missing_key
        if api_key != self.api_key:
            return bad_key
        if secret != self.secret_key:
            return "108"
        return None

    async def _sendtext(self, request: SimRequest) -> SimResponse:
        refused = self._auth(request, missing_key="109", bad_key="109")
        if refused:
            return self._reject(refused)
        forced = self.take_forced()
        if forced is not None:
            return self._reject(forced)
        text, to, sender = request.q("messageContent"), request.q("toUser"), request.q("callerID")
        if not text:
            return self._reject("114")
        if not to or not to.isdigit() or not sender:
            return self._reject("1")
        segments = analyse_text(text).segments
        cost = self.price_per_segment * segments
        if cost > self.balance:
            return self._reject("1")
        self.balance -= cost
        message_id = str(700000 + self.next_number())
        self.messages[message_id] = SimDiniMessage(
            message_id, to, sender, text, segments, self.clock.time()
        )
        self.count_submission(to, text)
        return self._answer(Status="0", Text="ACCEPTD", Message_ID=message_id)

    def state_of(self, message: SimDiniMessage) -> tuple[str, float | None]:
        """The message's status word now and since when (epoch seconds)."""
        pinned = self.outcomes.get(message.to, "DELIVRD")
        sent_at = message.created_at + self.pending_for
        done_at = sent_at + self.sent_for
        now = self.clock.time()
        if pinned == "PENDING" or now < sent_at:
            return "PENDING", None
        if pinned == "SENT" or now < done_at:
            return "SENT", sent_at
        return pinned, done_at

    async def _getstatus(self, request: SimRequest) -> SimResponse:
        refused = self._auth(request, missing_key="109", bad_key="-42")
        if refused:
            return self._reject(refused)
        if self._status_forced:
            return self._reject(self._status_forced.popleft())
        message = self.messages.get(request.q("messageid") or "")
        if message is None or message.final_read:
            return self._reject("114")
        word, since = self.state_of(message)
        if word in _FINAL:
            message.final_read = True
        fields = {"Status": _STATUS_CODES[word], "Text": word, "Message_ID": message.message_id}
        if since is not None:
            fields["Delivery Time"] = str(int(since * 1000))
        return self._answer(**fields)

    async def _balance_page(self, request: SimRequest) -> SimResponse:
        self.balance_queries.append(request.raw_query)
        if request.q("client") != self.client_name:
            return SimResponse.text(
                "<html><body><form action='login'>Please log in</form></body></html>",
                content_type="text/html",
            )
        return SimResponse.text(f"{self.balance:.6f}")
