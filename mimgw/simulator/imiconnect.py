"""Emulation of IMIconnect: ``POST /resources/v1/messaging`` and pushed notifications.

Every destination is queued (code 1001) unless ``force(code)`` says otherwise.
Delivery reports are not pulled: :meth:`IMIconnectSim.push_reports` POSTs the
reports that are due (``deliver_after`` seconds on the simulator clock) to the
request's ``notifyurl`` or to :attr:`IMIconnectSim.notify_url`, through
:attr:`IMIconnectSim.push_client`; :meth:`IMIconnectSim.generate_mo` pushes an
inbound message to :attr:`IMIconnectSim.mo_url`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx

from mimgw.errors import ConfigurationError
from mimgw.providers.base import Provider
from mimgw.providers.imiconnect import MESSAGING_PATH, IMIconnect
from mimgw.simulator._asgi import SimRequest, SimResponse
from mimgw.simulator.base import GatewaySim, Route

if TYPE_CHECKING:
    from mimgw.simulator import Simulator

__all__ = ["IMIconnectSim", "SimImiMessage"]

DELIVERED_CODE = "7500"
_LOCAL = ZoneInfo("Asia/Dhaka")
"""Zone of the naive timestamps the simulator writes (the provider's default)."""


@dataclass
class SimImiMessage:
    transid: str
    msisdn: str
    text: str | None
    template: str | None
    senderid: str | None
    correlationid: str | None
    notify_url: str | None
    notify_data: str | None
    created_at: float
    pushed: bool = False


class IMIconnectSim(GatewaySim):
    key = "imiconnect"
    pushes = True

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.service_key = "sim-imiconnect-service-key"
        self.sender = "SIMIMI"
        self.max_batch = 1000
        self.deliver_after = 1.0
        self.outcomes: dict[str, str] = {}
        """Number -> the ``deliveryStatus`` word pushed for it (default ``"Delivered"``)."""
        # notify_url: the DR notify URL configured for the service (a request's
        # ``notifyurl`` wins); push_client: as on every emulator (see GatewaySim)
        self.mo_url: str | None = None
        """MO notify URL; falls back to :attr:`notify_url`."""
        self.messages: dict[str, SimImiMessage] = {}
        self.batch_sizes: list[int] = []
        """Message objects per accepted request, in arrival order."""

    def routes(self) -> list[Route]:
        return [("POST", MESSAGING_PATH, self._messaging)]

    def provider_kwargs(self) -> dict[str, Any]:
        return {
            "service_key": self.service_key,
            "sender": self.sender,
            "base_url": "https://imiconnect.sim.invalid",
        }

    def provider(self, **overrides: Any) -> Provider:
        kwargs = {**self.provider_kwargs(), "client": self.sim.shared_client, **overrides}
        return IMIconnect(**kwargs)

    # -- submit ---------------------------------------------------------------------------

    async def _messaging(self, request: SimRequest) -> SimResponse:
        if request.headers.get("key") != self.service_key:
            return SimResponse.text("invalid service key", 401)
        data = request.json()
        objects = data if isinstance(data, list) else [data]
        if not objects or len(objects) > self.max_batch:
            return SimResponse.text(f"between 1 and {self.max_batch} messages per request", 400)
        if not all(_valid(o) for o in objects):
            return SimResponse.text("malformed message object", 400)
        self.batch_sizes.append(len(objects))
        items: list[dict[str, str]] = []
        for obj in objects:
            sms = obj["channels"]["sms"]
            for destination in obj["destination"]:
                cid = destination.get("correlationid") or obj.get("correlationid")
                for msisdn in destination["msisdn"]:
                    items.append(self._queue(obj, sms, str(msisdn), cid))
        return SimResponse.json({"response": items})

    def _queue(
        self, obj: dict[str, Any], sms: dict[str, Any], msisdn: str, cid: str | None
    ) -> dict[str, str]:
        forced = self.take_forced()
        if forced is not None and forced != "1001":
            item = {"code": forced, "description": "Refused by the simulator"}
            return {**item, "correlationid": cid} if cid else item
        transid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        message = obj.get("message")
        self.messages[transid] = SimImiMessage(
            transid=transid,
            msisdn=msisdn,
            text=sms.get("text"),
            template=message.get("template") if isinstance(message, dict) else None,
            senderid=sms.get("senderid"),
            correlationid=cid,
            notify_url=obj.get("notifyurl") or None,
            notify_data=obj.get("notifydata") or None,
            created_at=self.clock.time(),
        )
        self.count_submission(msisdn, sms.get("text") or "", cid)
        item = {"code": "1001", "description": "Queued", "transid": transid}
        return {**item, "correlationid": cid} if cid else item

    # -- pushes ---------------------------------------------------------------------------

    def report_payload(self, message: SimImiMessage) -> dict[str, Any]:
        """The delivery notification IMIconnect would push for ``message``."""
        status = self.outcomes.get(message.msisdn, "Delivered")
        when = datetime.fromtimestamp(message.created_at + self.deliver_after, _LOCAL)
        note: dict[str, Any] = {
            "deliveryInfo": {
                "deliveryChannel": "SMS",
                "Description": status,
                "destinationType": "msisdn",
                "timeStamp": when.replace(tzinfo=None).isoformat(timespec="milliseconds"),
                "deliveryStatus": status,
                "destination": message.msisdn,
            },
            "transid": message.transid,
        }
        if status == "Delivered":
            # the only delivery code the vendor shows; others are left out, not guessed
            note["deliveryInfo"]["code"] = DELIVERED_CODE
        if message.correlationid:
            note["correlationid"] = message.correlationid
        if message.notify_data:
            note["callbackData"] = message.notify_data
        return {"deliveryInfoNotification": note}

    async def push_reports(self) -> int:
        """POST every due, not yet pushed report; returns how many the receiver took (2xx)."""
        now = self.clock.time()
        pushed = 0
        for message in list(self.messages.values()):
            if message.pushed or now < message.created_at + self.deliver_after:
                continue
            url = message.notify_url or self.notify_url
            if url is None:
                continue
            response = await self._client().post(url, json=self.report_payload(message))
            if response.is_success:
                message.pushed = True
                pushed += 1
        return pushed

    async def generate_mo(
        self, sender: str, text: str, *, recipient: str = "16123", user_id: str = "sim-user"
    ) -> httpx.Response:
        """Push an inbound message from ``sender`` to the MO notify URL."""
        url = self.mo_url or self.notify_url
        if url is None:
            raise ConfigurationError("configure IMIconnectSim.mo_url (or notify_url) first")
        now = self.clock.time()
        payload = {
            "userId": user_id,
            "channel": "SMS",
            "da": recipient,
            "oa": sender,
            "message": text,
            "tid": uuid.UUID(int=self.rng.getrandbits(128), version=4).hex,
            "datetime": datetime.fromtimestamp(now, _LOCAL)
            .replace(tzinfo=None)
            .isoformat(" ", "seconds"),
            "ts": str(int(now * 1000)),
        }
        return await self._client().post(url, json=payload)

    def _client(self) -> httpx.AsyncClient:
        return self.pusher()


def _valid(obj: object) -> bool:
    if not isinstance(obj, dict) or obj.get("deliverychannel", "sms") != "sms":
        return False
    channels = obj.get("channels")
    sms = channels.get("sms") if isinstance(channels, dict) else None
    message = obj.get("message")
    has_template = isinstance(message, dict) and bool(message.get("template"))
    if not isinstance(sms, dict) or not (isinstance(sms.get("text"), str) or has_template):
        return False
    destinations = obj.get("destination")
    return (
        isinstance(destinations, list)
        and bool(destinations)
        and all(
            isinstance(d, dict)
            and isinstance(d.get("msisdn"), list)
            and bool(d["msisdn"])
            and all(isinstance(n, str) and n.isdigit() for n in d["msisdn"])
            for d in destinations
        )
    )
