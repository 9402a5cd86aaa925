"""Redelivery from the gateways' own DLR tables: a failed report that allows it is
resent, up to what the table allows, with backoff; each resend is recorded as the next
attempt of the same reference. Settling an entry is the claim that makes one worker
(of several sharing a ledger) the only one to resend it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from mimgw.errors import (
    AllProvidersFailedError,
    ConfigurationError,
    InvalidMessageError,
    MimgwError,
    ProviderError,
)
from mimgw.gateway.sending import SendingMixin
from mimgw.ledger import LedgerEntry
from mimgw.models import Receipt
from mimgw.retry import RedeliveryPolicy

__all__ = ["RedeliveryMixin"]

log = logging.getLogger("mimgw.gateway")


class RedeliveryMixin(SendingMixin):
    async def _after_record(self, entry: LedgerEntry) -> None:
        """Schedule a redelivery the report allows, or settle a final entry."""
        if entry.settled or not entry.submitted or not entry.state.final:
            return
        policy = self.redelivery
        report = entry.report
        if (
            policy is not None
            and entry.failed
            and entry.text is not None
            and report is not None
            and report.permanent is not True
            and policy.allows(entry.redeliveries, report.retries_allowed)
        ):
            if entry.next_attempt_at is None:
                at = self._now() + policy.delay(entry.redeliveries)
                await self.ledger.schedule(entry.provider, entry.message_id, at)
            return
        await self.ledger.settle(entry.provider, entry.message_id)

    async def redeliver_due(self, *, limit: int | None = None) -> list[Receipt | MimgwError]:
        """Resubmit every message whose redelivery is due; one outcome per message.

        Each resubmission carries the original reference and is recorded as the next
        attempt; the failed entry is settled first, so a message is never resent twice
        for one report. Settling is the claim: of several gateways (workers) sharing a
        ledger, only the one whose settle succeeded resends; the others skip the entry.
        """
        if self.redelivery is None:
            return []
        async with self._redelivery_lock:
            await self.flush()
            outcomes: list[Receipt | MimgwError] = []
            for entry in await self.ledger.due(self._now(), limit=limit):
                outcome = await self._redeliver(entry, self.redelivery)
                if outcome is not None:
                    outcomes.append(outcome)
            return outcomes

    async def _redeliver(
        self, entry: LedgerEntry, policy: RedeliveryPolicy
    ) -> Receipt | MimgwError | None:
        """Resend one due entry; None when another worker sharing the ledger took it."""
        message = entry.message()
        if not await self.ledger.settle(entry.provider, entry.message_id):
            return None
        if message is None:
            return InvalidMessageError(f"{entry.message_id}: text no longer kept; not resent")
        pin = entry.provider if policy.target == "same" else None
        if pin is not None and pin not in self._providers:
            pin = None
        try:
            receipt = await self._submit(message, pin, attempt=entry.attempt + 1)
        except MimgwError as exc:
            if _transient_and_unsent(exc):
                # nothing went out and the cause may pass: the message stays due, and
                # this try does not count against what the report allows
                at = self._now() + policy.delay(entry.redeliveries)
                await self.ledger.restore(
                    entry.model_copy(update={"next_attempt_at": at, "updated_at": self._now()})
                )
                log.warning("redelivery of %s postponed to %s: %s", entry.reference, at, exc)
            else:
                log.warning("redelivery of %s failed: %s", entry.reference, exc)
            return exc
        return receipt

    @asynccontextmanager
    async def redelivery_loop(
        self, interval: float = 30.0, *, pull_reports: bool = False
    ) -> AsyncIterator[None]:
        """Run :meth:`redeliver_due` (and optionally :meth:`fetch_reports`) every
        ``interval`` seconds while the block runs; stopped cleanly on exit."""
        if interval <= 0:
            raise ConfigurationError("interval must be positive")

        async def forever() -> None:
            while True:
                if pull_reports:
                    try:
                        await self.fetch_reports()
                    except MimgwError as exc:  # a gateway down must not stall redelivery
                        log.warning("redelivery loop: pulling reports: %s", exc)
                try:
                    await self.redeliver_due()
                except MimgwError as exc:
                    log.warning("redelivery loop: %s", exc)
                await anyio.sleep(interval)

        async with anyio.create_task_group() as tg:
            tg.start_soon(forever)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()


def _transient_and_unsent(error: MimgwError) -> bool:
    """Nothing was sent, and trying again later may succeed (a gateway down, paced,
    or skipped by its breaker), on every gateway that was tried."""
    attempts = error.attempts if isinstance(error, AllProvidersFailedError) else [error]
    return bool(attempts) and all(
        isinstance(a, ProviderError) and a.retryable and not a.may_have_been_sent for a in attempts
    )
