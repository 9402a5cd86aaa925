"""Write-ahead intents: what the Gateway writes before a submit leaves the process.

An :class:`Intent` is one call to send one message (with its retries and failovers).
It is written ``IN_FLIGHT`` before the first request and updated with the answer:
``ACCEPTED`` (a gateway took it), ``NOT_SENT`` (every attempt provably sent nothing) or
``UNKNOWN`` (some attempt may have sent it). An intent still ``IN_FLIGHT`` after its
process died is as unknown as an ``UNKNOWN`` one: :meth:`Ledger.unresolved` lists both.

An intent may carry the caller's ``idempotency_key``; a ledger holds at most one intent
per key (a unique constraint), which is what makes "at most once" hold across
processes sharing a ledger.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from mimgw.models import Message, Receipt, new_reference, new_references, trusted
from mimgw.taxonomy import ErrorKind

__all__ = ["Intent", "IntentAttempt", "IntentState", "process_token"]


def _new_token() -> str:
    return f"{os.getpid()}-{os.urandom(6).hex()}"


_PROCESS = _new_token()


def _forked() -> None:
    global _PROCESS
    _PROCESS = _new_token()


if hasattr(os, "register_at_fork"):  # prefork servers and workers fork after import
    os.register_at_fork(after_in_child=_forked)


def process_token() -> str:
    """Identifies this process among the writers of a shared ledger (made again in a
    forked child)."""
    return _PROCESS


class IntentState(StrEnum):
    IN_FLIGHT = "in_flight"
    """Written before the submit left; no answer recorded yet."""
    ACCEPTED = "accepted"
    """A gateway took the message; ``receipt`` says which and under what id."""
    NOT_SENT = "not_sent"
    """Every attempt provably sent nothing: sending it again is safe."""
    UNKNOWN = "unknown"
    """Some attempt may have sent it and nobody knows: resending may send it twice."""

    @property
    def resolved(self) -> bool:
        """True when the outcome is known (accepted, or provably not sent)."""
        return self in (IntentState.ACCEPTED, IntentState.NOT_SENT)


class IntentAttempt(BaseModel):
    """One gateway tried for an intent, and how it ended (``kind`` None: accepted)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    kind: ErrorKind | None = None
    may_have_been_sent: bool = False


class Intent(BaseModel):
    """One send of one message, as the ledger knows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    key: str | None = None
    """The caller's idempotency key; unique in a ledger."""
    reference: str
    to: str
    state: IntentState = IntentState.IN_FLIGHT
    receipt: Receipt | None = None
    """Set when accepted."""
    attempts: tuple[IntentAttempt, ...] = ()
    error: str | None = None
    """The last error's text (already redacted), when the send failed."""
    resolved_by: str | None = None
    """``"operator"`` when someone resolved it by hand, with their note."""
    owner: str = ""
    """The process that wrote it (see :func:`process_token`)."""
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @classmethod
    def for_message(cls, message: Message, *, now: datetime, id: str | None = None) -> Intent:
        """A new ``IN_FLIGHT`` intent for ``message`` (``id``: 32 hex digits, time-ordered
        as :func:`~mimgw.models.new_reference`)."""
        # built from a validated Message: construct without validating again (hot path)
        return trusted(cls, _fresh(message, new_reference() if id is None else id, now))

    @classmethod
    def for_messages(cls, messages: Sequence[Message], *, now: datetime) -> list[Intent]:
        """:meth:`for_message` for each of ``messages`` (one read of the random source)."""
        ids = new_references(len(messages))
        return [trusted(cls, _fresh(m, i, now)) for i, m in zip(ids, messages, strict=True)]

    @classmethod
    def finished_for(
        cls,
        message: Message,
        *,
        id: str,
        created_at: datetime,
        state: IntentState,
        now: datetime,
        receipt: Receipt | None = None,
        attempts: tuple[IntentAttempt, ...] = (),
        error: str | None = None,
    ) -> Intent:
        """What ``for_message(message, now=created_at, id=id)`` becomes once
        :meth:`finished`, built at once: for a sender that let go of the intent while
        its request was under way (a batch keeps thousands of recipients in flight)."""
        return trusted(
            cls,
            {
                "id": id,
                "key": message.idempotency_key,
                "reference": message.reference,
                "to": message.to,
                "state": state,
                "receipt": receipt,
                "attempts": attempts,
                "error": error,
                "resolved_by": None,
                "owner": _PROCESS,
                "created_at": created_at,
                "updated_at": now,
            },
        )

    @property
    def may_have_been_sent(self) -> bool:
        return self.state is not IntentState.NOT_SENT

    def finished(
        self,
        state: IntentState,
        *,
        now: datetime,
        receipt: Receipt | None = None,
        attempts: tuple[IntentAttempt, ...] = (),
        error: str | None = None,
    ) -> Intent:
        values = dict(self.__dict__)
        values.update(state=state, receipt=receipt, attempts=attempts, error=error, updated_at=now)
        return trusted(type(self), values)


def _fresh(message: Message, id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": id,
        "key": message.idempotency_key,
        "reference": message.reference,
        "to": message.to,
        "state": IntentState.IN_FLIGHT,
        "receipt": None,
        "attempts": (),
        "error": None,
        "resolved_by": None,
        "owner": _PROCESS,
        "created_at": now,
        "updated_at": now,
    }
