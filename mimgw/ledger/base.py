"""The :class:`Ledger` interface every backend implements (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime, timedelta

from mimgw.ledger.entry import LedgerEntry, LedgerError, utcnow
from mimgw.ledger.intent import Intent, IntentState
from mimgw.models import DeliveryReport, Message, Receipt

__all__ = ["Finish", "Ledger"]

Finish = tuple[Intent, int, Message | None]
"""What :meth:`Ledger.finish_many` takes per intent: the finished intent, the attempt
number its receipt is recorded under, and the message when its text must be kept."""


class Ledger(ABC):
    """Where intents, submits and delivery reports are recorded. All methods are coroutines.

    Two records live in a ledger: an :class:`Intent` per send (written before the
    request, so a crash leaves a trace) and a :class:`LedgerEntry` per message a
    gateway took (keyed by gateway and gateway id, moved forward by reports).
    """

    # -- write-ahead intents ----------------------------------------------------------

    @abstractmethod
    async def begin(self, intent: Intent) -> Intent:
        """Write ``intent`` (``IN_FLIGHT``) before its submit leaves the process.

        Atomic with respect to every writer of the ledger: when another intent holds
        the same ``key``, that one is returned unchanged (compare ``.id``) — unless it
        is ``NOT_SENT``, in which case ``intent`` takes the key over and is returned.
        """

    @abstractmethod
    async def finish(
        self, intent: Intent, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry | None:
        """Record ``intent``'s outcome (its state, receipt, attempts).

        When it was accepted with a gateway id, the submit is recorded too, in the same
        write, as attempt ``attempt`` (``message`` given only when its text must be kept
        for redelivery); that entry is returned.
        """

    @abstractmethod
    async def intent(self, ref: str) -> Intent | None:
        """The intent with this id, or holding this idempotency key."""

    @abstractmethod
    async def unresolved(self, older_than: timedelta | None = None) -> list[Intent]:
        """Intents whose outcome nobody knows (in flight or unknown), oldest first;
        ``older_than`` keeps those written at least that long ago."""

    async def begin_many(self, intents: Sequence[Intent]) -> list[Intent]:
        """:meth:`begin` for several intents; backends write them in one transaction."""
        return [await self.begin(i) for i in intents]

    async def finish_many(self, items: Sequence[Finish]) -> list[LedgerEntry | None]:
        """:meth:`finish` for several intents; backends write them in one transaction."""
        return [await self.finish(i, attempt=a, message=m) for i, a, m in items]

    async def resolve(
        self,
        ref: str,
        *,
        sent: bool,
        provider: str | None = None,
        message_id: str | None = None,
        note: str | None = None,
    ) -> Intent:
        """Settle an unresolved intent by hand, after checking the gateway's own records.

        ``sent=False``: the gateway has no trace of it, so it may be sent again (its
        idempotency key is free for a new send). ``sent=True``: the gateway took it;
        with ``provider`` and ``message_id`` the submit is recorded so reports for it
        land on an entry. Only an intent that is in flight or unknown can be resolved.
        """
        held = await self.intent(ref)
        if held is None:
            raise LedgerError(f"no intent with id or idempotency key {ref!r}")
        if held.state.resolved:
            raise LedgerError(f"intent {held.id} is already {held.state.value}; nothing to resolve")
        now = utcnow()
        receipt = None
        if sent:
            if (provider is None) != (message_id is None):
                raise LedgerError("give both provider and message_id, or neither")
            receipt = Receipt(
                provider=provider or "",
                message_id=message_id or "",
                to=held.to,
                reference=held.reference,
            )
        update = held.finished(
            IntentState.ACCEPTED if sent else IntentState.NOT_SENT,
            now=now,
            receipt=receipt,
            attempts=held.attempts,
            error=held.error,
        ).model_copy(update={"resolved_by": f"operator: {note}" if note else "operator"})
        await self.finish(update)
        return update

    # -- submits and reports ----------------------------------------------------------

    @abstractmethod
    async def record_submit(
        self, receipt: Receipt, *, attempt: int = 1, message: Message | None = None
    ) -> LedgerEntry:
        """Record a gateway's receipt. ``message`` is given only when its text must be kept."""

    @abstractmethod
    async def record_report(self, report: DeliveryReport) -> tuple[LedgerEntry, bool]:
        """Record a delivery report; returns the entry and whether the report changed it."""

    @abstractmethod
    async def get(self, provider: str, message_id: str) -> LedgerEntry | None: ...

    @abstractmethod
    async def find(self, message_id: str, *, provider: str | None = None) -> list[LedgerEntry]:
        """Entries with this gateway message id (newest first), optionally at one gateway."""

    @abstractmethod
    async def by_reference(self, reference: str) -> list[LedgerEntry]:
        """Every attempt made for a reference, oldest first."""

    @abstractmethod
    async def schedule(self, provider: str, message_id: str, at: datetime | None) -> None:
        """Set (or with ``None`` clear) when the entry's redelivery is due."""

    @abstractmethod
    async def settle(self, provider: str, message_id: str) -> bool:
        """Mark the entry as needing nothing more: erase its text, cancel any redelivery.

        Returns True when this call settled it, False when it was settled already or is
        unknown: the check and the write must be atomic, so that of several workers
        sharing a ledger exactly one wins the right to redeliver a message.
        """

    @abstractmethod
    async def restore(self, entry: LedgerEntry) -> None:
        """Write ``entry`` back as given: undoes a redelivery claim (:meth:`settle`) when
        the resend provably sent nothing, so the message stays due."""

    @abstractmethod
    async def due(self, now: datetime, *, limit: int | None = None) -> list[LedgerEntry]:
        """Unsettled entries whose redelivery is due at ``now``, earliest first."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release storage resources."""

    async def _late_entries(self, *, apply: bool = False) -> list[LedgerEntry]:
        """Entries whose follow-up the writer of a submit still owes (settle, or
        schedule a redelivery): a ledger that records a submit after :meth:`finish`
        has returned (the SQLite journal) finds a report there when it does, and the
        merged entry is final. ``apply``: record what is waiting first. Each entry is
        returned once; ledgers that record at once have none."""
        return []
