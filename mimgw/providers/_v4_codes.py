"""MiMSMS v4 code tables: submit ``statusCode`` values and the operator DLR table with
its retry policy, classified into the common taxonomy (used by :mod:`.mimsms_v4`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mimgw.taxonomy import ErrorKind, State

__all__ = ["DLR_TABLE", "ERRORS", "DlrRow", "classify_sms_failed"]


ERRORS: dict[str, tuple[ErrorKind, str]] = {
    "208": (ErrorKind.SENDER_REJECTED, "sender id is not registered for this account"),
    "205": (ErrorKind.CONTENT_REJECTED, "message content refused"),
    "206": (ErrorKind.RECIPIENT_REJECTED, "mobile number refused"),
    "209": (ErrorKind.CONTENT_REJECTED, "message is longer than the gateway allows"),
    "221": (ErrorKind.PROVIDER_UNAVAILABLE, "the gateway reports that sending failed"),
    "500": (ErrorKind.PROVIDER_UNAVAILABLE, "internal error at the gateway"),
    "213": (ErrorKind.REQUEST_REJECTED, "parameters missing or mismatched"),
    "216": (ErrorKind.INSUFFICIENT_BALANCE, "not enough balance; recharge the account"),
    "210": (ErrorKind.REQUEST_REJECTED, "campaign id is not valid"),
}
"""``statusCode`` values other than 200 and 401, as (kind, explanation)."""


@dataclass(frozen=True, slots=True)
class DlrRow:
    """How one row of the operator DLR table is classified."""

    state: State
    retries: int
    """The table's operator retry policy: how many resubmissions are worthwhile."""
    reason: str
    permanent: bool | None = False


def _row(state: State, retries: int, reason: str) -> DlrRow:
    return DlrRow(state, retries, reason, permanent=retries == 0 and state is not State.DELIVERED)


DLR_TABLE: dict[str, DlrRow] = {
    "delivered": _row(State.DELIVERED, 0, "delivered to the handset"),
    "absent subscriber for sm": _row(
        State.UNDELIVERABLE, 3, "handset switched off or out of coverage"
    ),
    "undelivered": _row(State.UNDELIVERABLE, 0, "handset has no memory left for messages"),
    "subscriber busy": _row(State.UNDELIVERABLE, 3, "handset busy with another transaction"),
    "unidentified subscriber": _row(
        State.UNDELIVERABLE, 0, "number unknown in the destination network"
    ),
    "barred subscriber": _row(State.UNDELIVERABLE, 0, "number is barred from receiving SMS"),
    "illegal subscriber": _row(State.REJECTED, 0, "sender id blocked by the operator"),
    "system failure": _row(State.UNDELIVERABLE, 3, "SS7 or network failure"),
    "smsc timeout abort": _row(State.UNDELIVERABLE, 3, "SMSC timed out"),
}
"""Operator DLR names (folded: lowercase, punctuation as single spaces) to classifications.

"SMS Failed" is not here: the table has two rows of that name, told apart by their
description (see :func:`classify_sms_failed`).
"""
_DLR_INDEX: dict[str, DlrRow] = {
    **{key.replace(" ", ""): row for key, row in DLR_TABLE.items()},
    # the same rows under shortened names seen in operator exports
    "absentsubscriber": DLR_TABLE["absent subscriber for sm"],
    "smsctimeout": DLR_TABLE["smsc timeout abort"],
}
"""Lookup by the name with every space and punctuation mark removed."""

SMS_FAILED = "smsfailed"
SMS_FAILED_SENDER_BLOCK = _row(State.REJECTED, 0, "sender id blocked by the operator")
SMS_FAILED_NETWORK = _row(State.UNDELIVERABLE, 3, "network failure on the SMSC link")
SMS_FAILED_UNCLEAR = DlrRow(
    State.UNDELIVERABLE,
    0,
    "failed; the description does not say whether the sender id was blocked "
    "or the SMSC link failed",
    permanent=None,
)
_SENDER_BLOCK_WORDS = ("sender", "illegal", "block")
_NETWORK_WORDS = ("network", "smsc", "link")
_UNKNOWN_LOG_LIMIT = 1024


def _fold(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def classify_sms_failed(description: str | None) -> DlrRow:
    """Tell the two "SMS Failed" rows apart by keywords of their description."""
    folded = _fold(description or "")
    blocked = any(word in folded for word in _SENDER_BLOCK_WORDS)
    network = any(word in folded for word in _NETWORK_WORDS)
    if blocked and not network:
        return SMS_FAILED_SENDER_BLOCK
    if network and not blocked:
        return SMS_FAILED_NETWORK
    return SMS_FAILED_UNCLEAR
