"""Emulation of MiMSMS v4: the seven ``/api/SmsSending/...`` endpoints.

Checks what the real gateway checks (credentials, registered sender ids, numbers,
campaign ids for promotional messages, balance) and answers in its JSON form with
``statusCode`` as a string. Every submitted number costs ``price_per_sms`` per
segment. ``force(code)`` answers the next submit with a documented code;
``force("401", text=IP_BLACKLIST)`` gives the IP-blacklist variant of 401.

The gateway documents no delivery-status endpoint, so none is served;
:meth:`MimSmsV4Sim.dlr_for` gives the operator DLR row of each sent message
(``outcomes`` pins a row per number, default delivered) for use with
:meth:`~mimgw.providers.mimsms_v4.MimSmsV4.parse_dlr`.
"""

from __future__ import annotations

import json
import re
import string
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mimgw.providers.base import Provider
from mimgw.providers.mimsms_v4 import (
    BALANCE_PATH,
    BALANCE_QUERY_PATH,
    DYNAMIC_PATH,
    ONE_TO_MANY_PATH,
    ONE_TO_MANY_QUERY_PATH,
    SEND_QUERY_PATH,
    SMS_PATH,
    MimSmsV4,
)
from mimgw.simulator._asgi import SimRequest, SimResponse
from mimgw.simulator.base import GatewaySim, Route
from mimgw.text import analyse_text

if TYPE_CHECKING:
    from mimgw.simulator import Simulator

__all__ = [
    "DEMO_API_KEY",
    "DEMO_CAMPAIGN",
    "DEMO_SENDER",
    "DEMO_USERNAME",
    "IP_BLACKLIST",
    "MimSmsV4Sim",
    "SimDlr",
    "SimV4Message",
]

DEMO_USERNAME = "demo@example.com"
DEMO_API_KEY = "sim-mimsms-v4-demo-key"
DEMO_SENDER = "MIMGWDEMO"
DEMO_CAMPAIGN = "SIMCAMP01"

RESULTS = {
    "200": ("Success", "SMS Send Successfuly"),
    "401": ("Unauthorized", "Invalid UserName & Password"),
    "208": ("Failed", "Invalid Sender ID"),
    "205": ("Failed", "Invalid Message Content"),
    "206": ("Failed", "Invalid Mobile Number"),
    "209": ("Failed", "SMS Length cross the Max level"),
    "221": ("Failed", "SMS Sending Failed"),
    "500": ("Failed", "Internal Server Error"),
    "213": ("Failed", "Parameter Mismatch"),
    "216": ("Failed", "Insufficient Balance"),
    "210": ("Failed", "Invalid CampaignId"),
}
"""The documented code map: code -> (status word, responseResult text). A success says
"SMS Send Successfuly", the vendor's spelling in every JSON example; the GET one-to-many
example alone writes ``ONE_TO_MANY_GET_SUCCESS``."""
ONE_TO_MANY_GET_SUCCESS = "SMS Send successfully"
IP_BLACKLIST = "IP Black List"
"""``responseResult`` of the other 401 row."""

_NUMBER = re.compile(r"8801[3-9]\d{8}")
_ID_ALPHABET = string.ascii_uppercase + string.digits


@dataclass
class SimV4Message:
    """One number of one accepted submit."""

    trxn_id: str
    number: str
    text: str
    sender: str
    transaction_type: str
    campaign_id: str | None
    segments: int
    cost: Decimal
    created_at: float


@dataclass(frozen=True)
class SimDlr:
    """The operator DLR row reported for one sent message."""

    trxn_id: str
    number: str
    status: str
    description: str | None


class MimSmsV4Sim(GatewaySim):
    key = "mimsms_v4"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.username = DEMO_USERNAME
        self.api_key = DEMO_API_KEY
        self.senders: set[str] = {DEMO_SENDER}
        """Registered sender ids; others are answered with 208."""
        self.campaigns: set[str] = {DEMO_CAMPAIGN}
        """Approved campaign ids; promotional messages naming another get 210."""
        self.balance = Decimal("500.00")
        self.price_per_sms = Decimal("0.25")
        """Charged per segment per recipient."""
        self.max_segments = 10
        """Longer texts are answered with 209 (the simulator's choice; none is documented)."""
        self.blocked_words: set[str] = set()
        """Texts containing one of these (case-insensitive) are answered with 205."""
        self.ip_blacklisted = False
        """When true, every request is answered with the IP-blacklist 401."""
        self.outcomes: dict[str, tuple[str, str | None]] = {}
        """Number -> (DLR status name, description) reported by :meth:`dlr_for`."""
        self.messages: list[SimV4Message] = []
        self._forced_text: deque[str | None] = deque()

    # -- configuration -----------------------------------------------------------------

    def force(self, code: str | int, times: int = 1, *, text: str | None = None) -> None:
        """Answer the next ``times`` submits with ``code`` (and ``responseResult`` ``text``)."""
        super().force(code, times)
        self._forced_text.extend([text] * times)

    def routes(self) -> list[Route]:
        return [
            ("POST", SMS_PATH, self._sms),
            ("POST", ONE_TO_MANY_PATH, self._one_to_many),
            ("POST", DYNAMIC_PATH, self._dynamic),
            ("GET", SEND_QUERY_PATH, self._send_query),
            ("GET", ONE_TO_MANY_QUERY_PATH, self._one_to_many_query),
            ("POST", BALANCE_PATH, self._balance_json),
            ("GET", BALANCE_QUERY_PATH, self._balance_query),
        ]

    def provider_kwargs(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "api_key": self.api_key,
            "sender": DEMO_SENDER,
            "campaign_id": DEMO_CAMPAIGN,
            "base_url": "https://api.mimsms.com",
        }

    def provider(self, **overrides: Any) -> Provider:
        kwargs = {**self.provider_kwargs(), "client": self.sim.shared_client, **overrides}
        return MimSmsV4(**kwargs)

    def dlr_for(self, trxn_id: str) -> list[SimDlr]:
        """The DLR row of every message sent under ``trxn_id`` (KeyError when unknown)."""
        rows = [
            SimDlr(m.trxn_id, m.number, *self.outcomes.get(m.number, ("Delivered", None)))
            for m in self.messages
            if m.trxn_id == trxn_id
        ]
        if not rows:
            raise KeyError(trxn_id)
        return rows

    # -- answers --------------------------------------------------------------------------

    def _trxn_id(self) -> str:
        return "".join(self.rng.choice(_ID_ALPHABET) for _ in range(15))

    def _answer(self, code: str, text: str | None = None, *, trxn_id: str = "") -> SimResponse:
        status, result = RESULTS.get(code, ("Failed", "Error"))
        return SimResponse.json(
            {
                "statusCode": code,
                "status": status,
                "trxnId": trxn_id,
                "responseResult": result if text is None else text,
            }
        )

    def _refused(self, username: object, api_key: object) -> SimResponse | None:
        if self.ip_blacklisted:
            return self._answer("401", IP_BLACKLIST)
        if username != self.username or api_key != self.api_key:
            return self._answer("401")
        return None

    def _fields(self, request: SimRequest) -> dict[str, Any] | None:
        if "application/json" not in request.headers.get("content-type", ""):
            return None
        data = request.json()
        return data if isinstance(data, dict) else None

    # -- submit endpoints ---------------------------------------------------------------------

    async def _sms(self, request: SimRequest) -> SimResponse:
        return self._submit(self._fields(request), many=False)

    async def _one_to_many(self, request: SimRequest) -> SimResponse:
        return self._submit(self._fields(request), many=True)

    async def _send_query(self, request: SimRequest) -> SimResponse:
        return _as_query(self._submit(request.query, many=False))

    async def _one_to_many_query(self, request: SimRequest) -> SimResponse:
        return _as_query(self._submit(request.query, many=True), ONE_TO_MANY_GET_SUCCESS)

    def _gate(self, fields: dict[str, Any] | None) -> dict[str, Any] | SimResponse:
        """The fields of a submit, or the answer that stops it before its content is read:
        a body that is not a JSON object, refused credentials, or a code forced by a test."""
        if fields is None:
            return self._answer("213")
        return self._refused(fields.get("UserName"), fields.get("Apikey")) or self._take() or fields

    def _submit(self, body: dict[str, Any] | None, *, many: bool) -> SimResponse:
        fields = self._gate(body)
        if isinstance(fields, SimResponse):
            return fields
        numbers, sender = fields.get("MobileNumber"), fields.get("SenderName")
        text, kind = fields.get("Message"), fields.get("TransactionType")
        if not (isinstance(numbers, str) and numbers and isinstance(sender, str) and sender):
            return self._answer("213")
        if not (isinstance(text, str) and text and kind in ("T", "P")):
            return self._answer("213")
        campaign = fields.get("CampaignId")
        campaign = None if campaign in (None, "", "null") else str(campaign)
        if kind == "P" and campaign not in self.campaigns:
            return self._answer("210")
        targets = [n.strip() for n in numbers.split(",")]
        if len(targets) > 1 and not many and kind != "P":
            return self._answer("206")  # a comma-separated list is for promotional only
        return self._accept(sender, kind, campaign, [(n, text) for n in targets])

    async def _dynamic(self, request: SimRequest) -> SimResponse:
        fields = self._gate(self._fields(request))
        if isinstance(fields, SimResponse):
            return fields
        sender, rows = fields.get("SenderName"), fields.get("SmsData")
        if fields.get("TransactionType") != "D" or not isinstance(sender, str) or not sender:
            return self._answer("213")
        if not isinstance(rows, list) or not rows:
            return self._answer("213")
        items: list[tuple[str, str]] = []
        for row in rows:
            number = row.get("MobNumber") if isinstance(row, dict) else None
            text = row.get("Message") if isinstance(row, dict) else None
            if not isinstance(number, str) or not isinstance(text, str) or not text:
                return self._answer("213")
            items.append((number.strip(), text))
        return self._accept(sender, "D", None, items)

    def _take(self) -> SimResponse | None:
        code = self.take_forced()
        if code is None:
            return None
        text = self._forced_text.popleft() if self._forced_text else None
        return self._answer(code, text, trxn_id=self._trxn_id())

    def _accept(
        self, sender: str, kind: str, campaign: str | None, items: list[tuple[str, str]]
    ) -> SimResponse:
        """Validate and charge every (number, text); all or nothing, like one request."""
        if sender not in self.senders:
            return self._answer("208", trxn_id=self._trxn_id())
        segments: list[int] = []
        for number, text in items:
            if not _NUMBER.fullmatch(number):
                return self._answer("206", trxn_id=self._trxn_id())
            lowered = text.lower()
            if any(word.lower() in lowered for word in self.blocked_words):
                return self._answer("205", trxn_id=self._trxn_id())
            count = analyse_text(text).segments
            if count > self.max_segments:
                return self._answer("209", trxn_id=self._trxn_id())
            segments.append(count)
        cost = self.price_per_sms * sum(segments)
        if cost > self.balance:
            return self._answer("216", trxn_id=self._trxn_id())
        self.balance -= cost
        trxn_id = self._trxn_id()
        now = self.clock.time()
        for (number, text), count in zip(items, segments, strict=True):
            self.count_submission(number, text)
            self.messages.append(
                SimV4Message(
                    trxn_id,
                    number,
                    text,
                    sender,
                    kind,
                    campaign,
                    count,
                    self.price_per_sms * count,
                    now,
                )
            )
        return self._answer("200", trxn_id=trxn_id)

    # -- balance ------------------------------------------------------------------------------

    async def _balance_json(self, request: SimRequest) -> SimResponse:
        fields = self._fields(request)
        if fields is None:
            return self._answer("213")
        refused = self._refused(fields.get("UserName"), fields.get("Apikey"))
        if refused is not None:
            return refused
        return SimResponse.json(
            {
                "statusCode": "200",
                "status": "Ok",
                "trxnId": "",
                "responseResult": f"{self.balance:.2f}",
            }
        )

    async def _balance_query(self, request: SimRequest) -> SimResponse:
        refused = self._refused(request.q("userName"), request.q("Apikey"))
        if refused is not None:
            return refused
        return SimResponse.json(
            {"statusCode": "200", "status": "Ok", "responseResult": f"{self.balance:.2f}"}
        )


def _as_query(response: SimResponse, success: str | None = None) -> SimResponse:
    """A submit answer in the GET examples' key order (``trxnId`` last)."""
    data = json.loads(response.body)
    if success is not None and data.get("statusCode") == "200":
        data["responseResult"] = success
    trxn_id = data.pop("trxnId", "")
    return SimResponse.json({**data, "trxnId": trxn_id})
