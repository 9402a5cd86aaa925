"""What gateways push or hand over: reports and inbound messages, recorded, then told.

Providers call :meth:`HooksMixin._on_item` (a plain function) for everything they
parse. Items wait in a queue until :meth:`HooksMixin.flush` records each report in the
ledger and then awaits the callbacks registered with :meth:`on_report` and
:meth:`on_inbound`. The report callbacks hear only reports that moved a message's
state (a duplicate or stale one changes nothing and is told to nobody). An item leaves
the queue only once recorded and told: a ledger failure or a cancellation puts the
rest back for the next flush (a report recorded but not yet told goes back marked so,
and is told then).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

from mimgw.errors import MimgwError
from mimgw.gateway.batching import batch_report
from mimgw.gateway.core import GatewayCore, Hook, Recorded
from mimgw.models import DeliveryReport, InboundMessage
from mimgw.providers.base import ReportListener, WebhookItem

__all__ = ["HooksMixin"]

log = logging.getLogger("mimgw.gateway")

F = TypeVar("F", bound=Hook[DeliveryReport])
G = TypeVar("G", bound=Hook[InboundMessage])


class HooksMixin(GatewayCore):
    def add_listener(self, listener: ReportListener) -> None:
        """Call ``listener`` (a plain function) with every report and inbound message any
        provider parses, at once, before it is recorded. Prefer :meth:`on_report`."""
        for provider in self._providers.values():
            provider.add_listener(listener)

    def on_report(self, hook: F) -> F:
        """Register a callback (``async def`` or plain) for every delivery report, called
        after the report is recorded in the ledger; usable as a decorator. Its errors are
        logged and do not stop other callbacks; the ledger already holds the report."""
        self._report_hooks.append(hook)
        return hook

    def on_inbound(self, hook: G) -> G:
        """Register a callback (``async def`` or plain) for every inbound message (MO)
        a gateway pushes; usable as a decorator. Errors are logged."""
        self._inbound_hooks.append(hook)
        return hook

    # -- pushed reports ---------------------------------------------------------------------

    def parse_webhook(
        self, body: bytes, headers: Mapping[str, str] | None = None, *, provider: str
    ) -> list[WebhookItem]:
        """Parse what ``provider`` pushed. Plain function; reports reach the ledger on the
        next gateway call or :meth:`flush` (use :meth:`ingest_webhook` to do both)."""
        return self._provider(provider).parse_webhook(body, headers)

    async def ingest_webhook(
        self, provider: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> list[WebhookItem]:
        """Parse a push from ``provider``, record its reports and run the callbacks."""
        items = self.parse_webhook(body, headers, provider=provider)
        await self.flush()
        return items

    def _on_item(self, item: WebhookItem) -> None:
        if isinstance(item, DeliveryReport) or self._inbound_hooks:
            self._pending.append(item)

    async def flush(self) -> None:
        """Record every report the providers have parsed since the last flush, then tell
        the callbacks. Recording twice is harmless (the ledger ignores duplicates). Then
        follow up entries a submit recorded late made final (a report got there first:
        settled, or their redelivery scheduled)."""
        while self._pending:
            batch, self._pending = self._pending, []
            for index, item in enumerate(batch):
                try:
                    if isinstance(item, Recorded):  # recorded by an interrupted flush
                        report = item.report
                        entry = await self.ledger.get(report.provider, report.message_id)
                        if entry is not None:
                            await self._after_record(entry)
                        await _tell(self._report_hooks, report)
                    elif isinstance(item, DeliveryReport):
                        sender = self._providers.get(item.provider)
                        kind = sender.kind if sender is not None else None
                        item = await batch_report(self.ledger, item, kind)
                        entry, changed = await self.ledger.record_report(item)
                        if changed:
                            batch[index] = Recorded(item)  # to be told, whatever happens now
                        await self._after_record(entry)
                        if changed:
                            await _tell(self._report_hooks, item)
                    else:
                        await _tell(self._inbound_hooks, item)
                except MimgwError:
                    log.exception("ledger: recording a report failed; will retry")
                    self._pending[:0] = batch[index:]
                    return
                except BaseException:  # cancelled: nothing fetched may be dropped
                    self._pending[:0] = batch[index:]
                    raise
        try:  # submits the ledger recorded after the fact, merged with a report
            await self._follow_up_late(apply=True)
        except MimgwError:
            log.exception("ledger: following up an entry failed")


async def _tell(
    hooks: list[Hook[DeliveryReport]] | list[Hook[InboundMessage]], item: object
) -> None:
    for hook in list(hooks):
        call: Callable[[object], object] = hook  # type: ignore[assignment]
        try:
            result = call(item)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("callback %r failed for %r", hook, item)
