"""Ledger entries: what the ledger knows about one message at one gateway.

One entry per ``(provider, message_id)``. A report only moves the entry's state
forward (:meth:`State.advance`); a repeated or late report changes nothing. A report
that arrives before its submit is recorded is kept and merged when the submit comes.
Message text is kept only when redelivery may need it, and erased once the entry is
settled (final and not to be resent).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from mimgw.errors import MimgwError
from mimgw.models import Category, DeliveryReport, Message, Receipt, trusted
from mimgw.taxonomy import State

__all__ = ["LedgerEntry", "LedgerError", "settled"]


class LedgerError(MimgwError):
    """The ledger's storage failed."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class LedgerEntry(BaseModel):
    """What the ledger knows about one message at one gateway."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    message_id: str
    reference: str | None = None
    to: str | None = None
    state: State = State.UNKNOWN
    attempt: int = 1
    """1 for the first submit of a reference, 2 for its first redelivery, …"""
    submitted: bool = False
    """False while only a report (that beat its submit) is known."""
    report: DeliveryReport | None = None
    """The report that last moved the state."""
    text: str | None = None
    sender: str | None = None
    category: Category = "transactional"
    next_attempt_at: AwareDatetime | None = None
    """When a redelivery is due; None when none is scheduled."""
    settled: bool = False
    """Final and not to be resent; text erased."""
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @property
    def redeliveries(self) -> int:
        return self.attempt - 1

    @property
    def failed(self) -> bool:
        return self.state in (State.UNDELIVERABLE, State.EXPIRED, State.REJECTED)

    def as_report(self) -> DeliveryReport:
        """The entry as a delivery report (the last report, with the ledger's state)."""
        if self.report is not None:
            return self.report.model_copy(
                update={
                    "state": self.state,
                    "reference": self.report.reference or self.reference,
                    "to": self.report.to or self.to,
                }
            )
        return DeliveryReport(
            provider=self.provider,
            message_id=self.message_id,
            to=self.to,
            state=self.state,
            reference=self.reference,
        )

    def message(self) -> Message | None:
        """The message to resend, while its text is kept."""
        if self.text is None or self.to is None:
            return None
        return Message(
            to=self.to,
            text=self.text,
            sender=self.sender,
            reference=self.reference,
            category=self.category,
        )

    # -- pure transitions shared by every backend --------------------------------------

    @classmethod
    def from_submit(
        cls, receipt: Receipt, *, attempt: int, message: Message | None, now: datetime
    ) -> LedgerEntry:
        # built from validated models: no second validation (a submit per message sent)
        return trusted(
            cls,
            {
                "provider": receipt.provider,
                "message_id": receipt.message_id,
                "reference": receipt.reference,
                "to": receipt.to,
                "state": receipt.state,
                "attempt": attempt,
                "submitted": True,
                "report": None,
                "text": None if message is None else message.text,
                "sender": None if message is None else message.sender,
                "category": "transactional" if message is None else message.category,
                "next_attempt_at": None,
                "settled": False,
                "created_at": now,
                "updated_at": now,
            },
        )

    def merge_submit(
        self, receipt: Receipt, *, attempt: int, message: Message | None, now: datetime
    ) -> LedgerEntry:
        """A submit for an entry that already exists (a report beat it, or a repeat)."""
        if self.submitted:
            return self
        return self.absorb_submit(
            LedgerEntry.from_submit(receipt, attempt=attempt, message=message, now=now)
        )

    def absorb_submit(self, fresh: LedgerEntry) -> LedgerEntry:
        """:meth:`merge_submit` given the entry the submit makes on its own
        (:meth:`from_submit`)."""
        if self.submitted:
            return self
        return fresh.model_copy(
            update={
                "state": fresh.state.advance(self.state),
                "report": self.report,
                "reference": fresh.reference or self.reference,
                "created_at": self.created_at,
            }
        )

    @classmethod
    def from_report(cls, report: DeliveryReport, *, now: datetime) -> LedgerEntry:
        return cls(
            provider=report.provider,
            message_id=report.message_id,
            reference=report.reference,
            to=report.to,
            state=report.state,
            report=report,
            created_at=now,
            updated_at=now,
        )

    def merge_report(self, report: DeliveryReport, *, now: datetime) -> tuple[LedgerEntry, bool]:
        """Apply ``report``; returns the entry and whether anything changed."""
        state = self.state.advance(report.state)
        if state == self.state and self.report is not None:
            return self, False
        if state == self.state and report.state != state:
            return self, False  # an older report on an entry without one: keep the state only
        update: dict[str, object] = {"state": state, "report": report, "updated_at": now}
        if self.reference is None and report.reference is not None:
            update["reference"] = report.reference
        if self.to is None and report.to is not None:
            update["to"] = report.to
        return self.model_copy(update=update), True


def settled(entry: LedgerEntry, now: datetime) -> LedgerEntry:
    return entry.model_copy(
        update={"settled": True, "text": None, "next_attempt_at": None, "updated_at": now}
    )
