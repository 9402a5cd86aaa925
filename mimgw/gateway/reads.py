"""Reads: balances, delivery status (pulled, or answered from the ledger), pulled reports
and a reference's history. Reads are retried on the same gateway, never failed over."""

from __future__ import annotations

import logging

import anyio

from mimgw.errors import (
    AllProvidersFailedError,
    InvalidMessageError,
    MessageNotFoundError,
    MimgwError,
    ProviderError,
)
from mimgw.gateway.core import GatewayCore
from mimgw.ledger import LedgerEntry
from mimgw.models import Balance, DeliveryReport
from mimgw.taxonomy import ErrorKind, State

__all__ = ["ReadsMixin"]

log = logging.getLogger("mimgw.gateway")

_NOT_FOUND = frozenset({ErrorKind.UNSUPPORTED, ErrorKind.REQUEST_REJECTED})
"""Answers to a status pull that mean "not here" rather than "could not ask"."""


class ReadsMixin(GatewayCore):
    async def balance(self, *, provider: str | None = None) -> Balance:
        """Credit of the pinned gateway, or of the first one (in priority order) that tells."""
        if provider is None:
            able = [n for n, p in self._providers.items() if p.capabilities.balance]
            if not able:
                raise next(iter(self._providers.values())).unsupported("balance")
            provider = able[0]
        self._provider(provider)
        return await self._call(provider, "read", lambda p: p.balance())

    async def balances(self) -> dict[str, Balance | MimgwError]:
        """Every gateway's credit (or the error saying why not), concurrently."""
        results: dict[str, Balance | MimgwError] = {}

        async def one(name: str) -> None:
            try:
                results[name] = await self.balance(provider=name)
            except MimgwError as exc:
                results[name] = exc

        async with anyio.create_task_group() as tg:
            for name in self._providers:
                tg.start_soon(one, name)
        return {name: results[name] for name in self._providers}

    async def status(self, message_id: str, *, provider: str | None = None) -> DeliveryReport:
        """Delivery status: pulled where the gateway can, recorded, else from the ledger.

        A message already final in the ledger is answered from it (several gateways
        answer a status only once). When a pull says the id is unknown or pulling is
        unsupported, the ledger answers if it knows the message.
        """
        if not isinstance(message_id, str) or not message_id.strip():
            raise InvalidMessageError("message_id must be a non-empty string")
        message_id = message_id.strip()
        await self.flush()
        if provider is not None:
            self._provider(provider)
        entries = await self.ledger.find(message_id, provider=provider)
        # several gateways may have said something about this id (one of them only "no
        # idea", while looking for it): the one that sent it, or knows its state, wins
        entry = max(entries, key=_relevance) if entries else None
        if provider is None and entry is not None:
            provider = entry.provider
        if provider is None:
            return await self._status_anywhere(message_id)
        if entry is not None and entry.state.final:
            return entry.as_report()
        gateway = self._providers.get(provider)
        if gateway is None or not gateway.capabilities.status:
            if entry is not None:
                return entry.as_report()
            raise self._providers[provider].unsupported("status")
        try:
            report = await self._call(provider, "read", lambda p: p.status(message_id))
        except ProviderError as exc:
            if entry is not None and exc.kind in (
                ErrorKind.UNSUPPORTED,
                ErrorKind.REQUEST_REJECTED,
            ):
                return entry.as_report()
            raise
        return await self._recorded(report)

    async def _status_anywhere(self, message_id: str) -> DeliveryReport:
        """An id the ledger does not know: ask each gateway that can pull, in order."""
        errors: list[ProviderError] = []
        unknown: DeliveryReport | None = None
        for name, gateway in self._providers.items():
            if not gateway.capabilities.status:
                errors.append(gateway.unsupported("status"))
                continue
            try:
                report = await self._call(name, "read", lambda p: p.status(message_id))
            except ProviderError as exc:
                errors.append(exc)
                continue
            if report.state is State.UNKNOWN:  # "no report for that id": maybe not ours
                unknown = unknown or report
                continue
            return await self._recorded(report)
        if unknown is not None:
            return await self._recorded(unknown)
        tried = "; ".join(str(e) for e in errors)
        if all(e.kind in _NOT_FOUND for e in errors):  # every gateway answered: not ours
            raise MessageNotFoundError(message_id, tried)
        if len(errors) == 1:  # a gateway that might know could not be asked
            raise errors[0]
        raise AllProvidersFailedError(errors, f"no gateway could look up {message_id!r}: {tried}")

    async def _recorded(self, report: DeliveryReport) -> DeliveryReport:
        self._pending.append(report)
        await self.flush()
        entry = await self.ledger.get(report.provider, report.message_id)
        return report if entry is None else entry.as_report()

    async def fetch_reports(
        self, *, provider: str | None = None, limit: int | None = None
    ) -> list[DeliveryReport]:
        """Pull unread reports from the pinned gateway or every gateway that offers it.

        Everything pulled is recorded before it is returned. Without a pin, a gateway
        that fails is logged and skipped unless all fail.
        """
        names = [provider] if provider is not None else list(self._providers)
        for name in names:
            self._provider(name)
        able = [n for n in names if provider is not None or self._providers[n].capabilities.reports]
        reports: list[DeliveryReport] = []
        errors: list[ProviderError] = []
        for name in able:
            try:
                reports.extend(
                    await self._call(name, "read", lambda p: p.fetch_reports(limit=limit))
                )
            except ProviderError as exc:
                if provider is not None:
                    raise
                log.warning("%s: pulling reports failed: %s", name, exc)
                errors.append(exc)
        await self.flush()
        if errors and len(errors) == len(able):
            raise AllProvidersFailedError(errors)
        return reports

    async def history(self, reference: str) -> list[LedgerEntry]:
        """Every recorded attempt for a reference (first submit, failovers, redeliveries)."""
        await self.flush()
        return await self.ledger.by_reference(reference)


def _relevance(entry: LedgerEntry) -> tuple[bool, bool]:
    """Order of preference among ledger entries sharing a message id (ties: newest)."""
    return entry.submitted, entry.state is not State.UNKNOWN
