"""Native batches: which messages one gateway request can carry, and how its answer is read.

A *batch adapter* knows one gateway's batch endpoints. Given messages already
prepared for that gateway it returns :class:`Batch` plans (one request each, two or
more recipients) and leaves the rest to be sent as singles; a plan's ``send`` makes
the request and answers one outcome per recipient, or raises a
:class:`~mimgw.ProviderError` when the request as a whole failed.

- **MiMSMS v4**: messages with the same text, sender and category go to
  ``OneToMany`` (``SendOneToMany`` with ``method="query"``); personalised
  transactional texts from one sender go to ``DSMS`` (JSON only; the dynamic
  endpoint has no GET form). Up to :attr:`MimSmsV4.batch_size` numbers a request.
  The gateway answers a batch with **one** ``trxnId``; its delivery reports (the
  operator DLR rows) name the ``trxnId`` *and* the number. So each recipient's
  receipt carries the derived id ``"<trxnId>/<number>"`` (:func:`recipient_id`):
  one ledger entry per recipient, and a report for ``trxnId`` + number finds its
  entry (:func:`batch_parts`; the Gateway tries the derived id when a report's own
  id has no entry). A number appears at most once per request, so derived ids are
  unique.
- **IMIconnect**: arrays of up to 1,000 request objects; the answer lists one item
  (with its own ``transid``) per object, so every recipient keeps the gateway's id.

Other gateways have no documented batch endpoint: their messages go as singles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mimgw.errors import MimgwError
from mimgw.ledger import Ledger
from mimgw.models import DeliveryReport, Message, Receipt
from mimgw.providers.base import Outgoing, Provider

if TYPE_CHECKING:
    from mimgw.providers.imiconnect import IMIconnect
    from mimgw.providers.mimsms_v4 import MimSmsV4

__all__ = [
    "BATCH_ID_SEPARATOR",
    "Batch",
    "BatchAdapter",
    "adapter_for",
    "batch_parts",
    "batch_report",
    "orphaned_report",
    "plain",
    "recipient_id",
]

BATCH_ID_SEPARATOR = "/"
"""Between a gateway's batch id and the recipient's number in a derived id."""

Result = Receipt | MimgwError
SendBatch = Callable[[Provider], Awaitable[list[Result]]]


def recipient_id(batch_id: str, to: str) -> str:
    """The per-recipient id of ``to`` in a request the gateway named ``batch_id``."""
    return f"{batch_id}{BATCH_ID_SEPARATOR}{to}"


def batch_parts(message_id: str) -> tuple[str, str] | None:
    """``(batch id, number)`` of a derived id, or ``None`` for an ordinary one."""
    head, sep, tail = message_id.rpartition(BATCH_ID_SEPARATOR)
    if not sep or not head or not tail.isdigit():
        return None
    return head, tail


@dataclass(slots=True)
class Batch:
    """One planned request: the recipients (positions in the planner's input) and the call."""

    members: list[int]
    send: SendBatch
    endpoint: str
    outgoing: list[Outgoing] = field(default_factory=list, repr=False)
    all_or_nothing: bool = False
    """The gateway answers the request with one code for every recipient, so a refusal
    of the whole may be one recipient's fault (MiMSMS v4); IMIconnect answers each item
    itself, so a refusal of the whole request is the request's."""


class BatchAdapter(Protocol):
    def window(self, provider: Provider) -> int:
        """How many messages are worth collecting before planning (the biggest batch)."""

    def plan(self, provider: Provider, ready: Sequence[Outgoing]) -> tuple[list[Batch], list[int]]:
        """Batches of two or more, and the positions left to send as singles."""


def _unique_chunks(indices: list[int], ready: Sequence[Outgoing], size: int) -> list[list[int]]:
    """Chunks of at most ``size`` in which no number appears twice (input order kept)."""
    chunks: list[tuple[list[int], set[str]]] = []
    for i in indices:
        to = ready[i].message.to
        for members, numbers in chunks:
            if len(members) < size and to not in numbers:
                members.append(i)
                numbers.add(to)
                break
        else:
            chunks.append(([i], {to}))
    return [members for members, _ in chunks]


class _MimSmsV4Batches:
    def window(self, provider: Provider) -> int:
        return max(2, _v4(provider).batch_size)

    def plan(self, provider: Provider, ready: Sequence[Outgoing]) -> tuple[list[Batch], list[int]]:
        v4 = _v4(provider)
        size = max(1, v4.batch_size)
        texts = Counter(item.message.text for item in ready)
        same: dict[tuple[str, str, str], list[int]] = {}
        rest: list[int] = []
        for index, item in enumerate(ready):
            message = item.message
            if texts[message.text] < 2:  # personalised: no group to look for
                rest.append(index)
            else:
                same.setdefault((message.text, item.sender, message.category), []).append(index)
        batches: list[Batch] = []
        for indices in same.values():
            if len(indices) < 2:
                rest += indices
                continue
            for chunk in _unique_chunks(indices, ready, size):
                if len(chunk) < 2:
                    rest += chunk
                else:
                    batches.append(self._batch(chunk, ready, many=True))
        if v4.method != "json":
            return batches, sorted(rest)
        dynamic: dict[str, list[int]] = {}
        singles: list[int] = []
        for index in sorted(rest):
            item = ready[index]
            if item.message.category == "transactional":
                dynamic.setdefault(item.sender, []).append(index)
            else:
                singles.append(index)
        for indices in dynamic.values():
            for chunk in _unique_chunks(indices, ready, size):
                if len(chunk) < 2:
                    singles += chunk
                else:
                    batches.append(self._batch(chunk, ready, many=False))
        return batches, sorted(singles)

    def _batch(self, members: list[int], ready: Sequence[Outgoing], *, many: bool) -> Batch:
        items = [ready[i] for i in members]

        async def send(provider: Provider) -> list[Result]:
            v4 = _v4(provider)
            send = v4._one_to_many if many else v4._dynamic
            return list(await send(items, name_each=recipient_id))

        endpoint = "one_to_many" if many else "dsms"
        return Batch(members, send, endpoint, items, all_or_nothing=True)


class _IMIconnectBatches:
    def window(self, provider: Provider) -> int:
        return max(2, _imi(provider).max_batch)

    def plan(self, provider: Provider, ready: Sequence[Outgoing]) -> tuple[list[Batch], list[int]]:
        size = max(1, _imi(provider).max_batch)
        indices = list(range(len(ready)))
        chunks = [indices[i : i + size] for i in range(0, len(indices), size)]
        batches = [self._batch(c, ready) for c in chunks if len(c) > 1]
        return batches, [c[0] for c in chunks if len(c) == 1]

    def _batch(self, members: list[int], ready: Sequence[Outgoing]) -> Batch:
        items = [ready[i] for i in members]

        async def send(provider: Provider) -> list[Result]:
            imi = _imi(provider)
            response = await imi._post([imi._body(o) for o in items])
            return imi._outcomes(response, items)

        return Batch(members, send, "messaging_array", items)


def _v4(provider: Provider) -> MimSmsV4:
    from mimgw.providers.mimsms_v4 import MimSmsV4

    assert isinstance(provider, MimSmsV4)
    return provider


def _imi(provider: Provider) -> IMIconnect:
    from mimgw.providers.imiconnect import IMIconnect

    assert isinstance(provider, IMIconnect)
    return provider


_ADAPTERS: dict[str, BatchAdapter] = {
    "mimsms_v4": _MimSmsV4Batches(),
    "imiconnect": _IMIconnectBatches(),
}


def adapter_for(provider: Provider) -> BatchAdapter | None:
    """The batch adapter for ``provider``, or ``None`` when it sends singles only."""
    adapter = _ADAPTERS.get(provider.kind)
    if adapter is None or not provider.capabilities.batch:
        return None
    if provider.kind == "mimsms_v4":
        from mimgw.providers.mimsms_v4 import MimSmsV4

        return adapter if isinstance(provider, MimSmsV4) else None
    from mimgw.providers.imiconnect import IMIconnect

    return adapter if isinstance(provider, IMIconnect) else None


SHARED_BATCH_IDS = frozenset({"mimsms_v4"})
"""Provider kinds that answer a batch with one id for every recipient (see above)."""


async def batch_report(ledger: Ledger, report: DeliveryReport, kind: str | None) -> DeliveryReport:
    """``report`` under the derived id of a batch recipient when it names a batch id and
    a number that belongs to one. Only gateways of a ``kind`` in
    :data:`SHARED_BATCH_IDS` pay the lookups.

    - The recipient's entry exists: its derived id.
    - An entry under the plain id exists: a single's (submitted), or a report that beat
      its submit for the same number: the plain id. One for another number (or a row
      that named none) beat the batch: this report takes its own derived id.
    - Neither: the plain id, as a single's report before its submit would be; when the
      batch's submit is recorded, :func:`orphaned_report` moves it to its recipient.
    """
    if kind not in SHARED_BATCH_IDS:
        return report
    if report.to is None or batch_parts(report.message_id) is not None:
        return report
    derived = recipient_id(report.message_id, report.to)
    if await ledger.get(report.provider, derived) is not None:
        return report.model_copy(update={"message_id": derived})
    plain_entry = await ledger.get(report.provider, report.message_id)
    if plain_entry is None or plain_entry.submitted or plain_entry.to == report.to:
        return report
    return report.model_copy(update={"message_id": derived})


async def orphaned_report(
    ledger: Ledger, provider: str, receipts: Sequence[Receipt]
) -> list[DeliveryReport]:
    """Reports that reached the ledger under a batch's plain id before the batch's
    submit was recorded (see :func:`batch_report`), re-addressed to their recipients:
    one lookup per batch id among ``receipts`` (one request's recipients)."""
    batch_ids = {r.message_id.rpartition(BATCH_ID_SEPARATOR)[0] for r in receipts}
    batch_ids.discard("")
    moved: list[DeliveryReport] = []
    for batch_id in batch_ids:
        entry = await ledger.get(provider, batch_id)
        if entry is None or entry.submitted or entry.report is None or entry.to is None:
            continue
        derived = recipient_id(batch_id, entry.to)
        if any(r.message_id == derived for r in receipts):
            moved.append(entry.report.model_copy(update={"message_id": derived}))
    return moved


def plain(message: Message) -> bool:
    """Whether a message may join a batch at all (scheduled messages go as singles)."""
    return message.send_at is None
