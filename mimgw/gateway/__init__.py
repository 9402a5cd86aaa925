"""The Gateway: several providers used as one (see ``docs/failover.md``).

The class is assembled from one module per concern: :mod:`.core` (construction,
routing, pacing, breakers), :mod:`.sending` (write-ahead intents, idempotency, retry
and failover of one message), :mod:`.bulk` (streaming bulk), :mod:`.reads` (balance,
status, pulled reports), :mod:`.hooks` (pushed reports, listeners, flush) and
:mod:`.redelivery` (resending what the DLR tables allow).
"""

from __future__ import annotations

from mimgw.gateway.bulk import BulkMixin
from mimgw.gateway.core import DEFAULT_BREAKER, DEFAULT_RETRY, OnUnknown, Strategy
from mimgw.gateway.hooks import HooksMixin
from mimgw.gateway.reads import ReadsMixin
from mimgw.gateway.redelivery import RedeliveryMixin
from mimgw.gateway.sending import SendingMixin

__all__ = ["DEFAULT_BREAKER", "DEFAULT_RETRY", "Gateway", "OnUnknown", "Strategy"]


class Gateway(BulkMixin, RedeliveryMixin, ReadsMixin, HooksMixin, SendingMixin):
    """Several providers used as one. Offers the provider methods, plus ``provider=`` pins.

    ``providers`` is a sequence (priority order) or a mapping name -> provider. A
    submit is retried on one gateway only while nothing can have been sent, then
    fails over to the next gateway for kinds marked ``failover``; a non-failover
    error is raised as itself, and when every gateway failed
    :class:`~mimgw.AllProvidersFailedError` lists each attempt in order. Every send
    is written to the ledger before it leaves the process (see docs/ledger.md).
    """
