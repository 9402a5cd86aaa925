"""The value types every backend shares: what a gateway offers (:class:`Capabilities`),
how long a text it takes (:class:`TextLimits`), and a message made ready for one gateway
(:class:`Outgoing`, which also builds the receipt of an accepted submit)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any
from zoneinfo import ZoneInfo

from mimgw.errors import InvalidMessageError
from mimgw.models import DeliveryReport, InboundMessage, Message, Receipt, trusted
from mimgw.taxonomy import State
from mimgw.text import TextInfo

__all__ = [
    "DHAKA",
    "Capabilities",
    "Outgoing",
    "ReportListener",
    "TextLimits",
    "WebhookItem",
    "outgoing_for",
]

DHAKA = ZoneInfo("Asia/Dhaka")
"""Gateway-local times without a zone are read in this zone unless configured otherwise."""

WebhookItem = DeliveryReport | InboundMessage
ReportListener = Callable[[WebhookItem], None]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a gateway offers. An unsupported call raises ``UnsupportedOperationError`` at once."""

    send: bool = True
    batch: bool = False
    """Has its own endpoint for many messages in one request."""
    max_batch: int | None = None
    """Most messages (or destinations) one batch request may carry."""
    balance: bool = False
    status: bool = False
    """Can pull the delivery status of one message from the gateway."""
    reports: bool = False
    """Can pull a batch of unread delivery reports (``fetch_reports``); often read-once."""
    webhook: bool = False
    """Pushes delivery reports or inbound messages to a URL of ours."""
    schedule: bool = False
    """Accepts ``send_at``."""
    promotional: bool = True
    """Accepts ``category="promotional"``."""
    parse_dlr: bool = False
    """Offers ``parse_dlr`` to classify a delivery status row."""
    notes: str = ""

    def supports(self, operation: str) -> bool:
        value = getattr(self, operation, False)
        return value is True

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class TextLimits:
    """How long a message a gateway takes, checked before any request."""

    max_characters: int | None = None
    max_segments: int | None = None

    def check(self, info: TextInfo, provider: str) -> None:
        if self.max_characters is not None and info.characters > self.max_characters:
            raise InvalidMessageError(
                f"{provider}: text is {info.characters} characters; "
                f"this gateway takes at most {self.max_characters}"
            )
        if self.max_segments is not None and info.segments > self.max_segments:
            raise InvalidMessageError(
                f"{provider}: text needs {info.segments} segments ({info.encoding}); "
                f"this gateway takes at most {self.max_segments}"
            )


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message checked and ready for one gateway: sender resolved, text analysed."""

    message: Message
    sender: str
    info: TextInfo

    @property
    def to(self) -> str:
        return self.message.to

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def reference(self) -> str:
        return self.message.reference

    def receipt(
        self,
        provider: str,
        message_id: str,
        *,
        raw: str | None,
        segments: int | None = None,
        to: str | None = None,
    ) -> Receipt:
        message, info = self.message, self.info  # once: a batch builds hundreds
        return trusted(
            Receipt,
            {
                "provider": provider,
                "message_id": message_id,
                "to": to or message.to,
                "state": _ACCEPTED,
                "reference": message.reference,
                "segments": segments if segments is not None else info.segments,
                "encoding": info.encoding,
                "raw": raw,
            },
        )


_ACCEPTED = State.ACCEPTED
_new = object.__new__
_set_message = Outgoing.__dict__["message"].__set__
_set_sender = Outgoing.__dict__["sender"].__set__
_set_info = Outgoing.__dict__["info"].__set__


def outgoing_for(message: Message, sender: str, info: TextInfo) -> Outgoing:
    """``Outgoing(message=message, sender=sender, info=info)`` without the frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field): one per message sent."""
    made = _new(Outgoing)
    _set_message(made, message)
    _set_sender(made, sender)
    _set_info(made, info)
    return made
