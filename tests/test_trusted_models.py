"""Models the hot paths build without validation equal their validated twins, field for field."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import httpx
import pytest

from mimgw import Gateway, Message, Receipt
from mimgw.ledger import Intent, IntentAttempt, IntentState, MemoryLedger
from mimgw.providers.mimsms_v4 import MimSmsV4
from mimgw.providers.outgoing import Outgoing
from mimgw.retry import RetryPolicy
from mimgw.taxonomy import ErrorKind
from mimgw.text import analyse_text


def same_as_validated(model: object) -> None:
    cls = type(model)
    twin = cls.model_validate(model.model_dump())  # type: ignore[attr-defined]
    assert twin == model
    assert twin.__dict__.keys() == model.__dict__.keys()
    assert repr(twin) == repr(model)


def test_intents_for_a_message_and_finished() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    message = Message(to="01712345678", text="hi", idempotency_key="k1")
    intent = Intent.for_message(message, now=now)
    same_as_validated(intent)
    receipt = Receipt(provider="p", message_id="T1", to=message.to)
    attempts = (
        IntentAttempt(provider="a", kind=ErrorKind.CONNECT_FAILED),
        IntentAttempt(provider="p"),
    )
    done = intent.finished(IntentState.ACCEPTED, now=now, receipt=receipt, attempts=attempts)
    same_as_validated(done)
    assert done.id == intent.id and done.key == "k1" and done.state is IntentState.ACCEPTED
    assert intent.state is IntentState.IN_FLIGHT  # the original is untouched


@pytest.mark.parametrize("fail_first", [False, True])
async def test_receipts_and_attempts_of_a_gateway_send(fail_first: bool) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if fail_first and request.headers.get("x-gw") == "a":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"statusCode": "200", "trxnId": "T9"})

    ledger = MemoryLedger()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        client_a = httpx.AsyncClient(transport=client._transport, headers={"X-Gw": "a"})
        first = MimSmsV4(username="u@x.test", api_key="k", sender="S", name="a", client=client_a)
        second = MimSmsV4(username="u@x.test", api_key="k", sender="S", name="b", client=client)
        gw = Gateway([first, second], ledger=ledger, retry=RetryPolicy(attempts=1))
        receipt = await gw.send("01712345678", "hi", idempotency_key="key-1")
        await client_a.aclose()
    same_as_validated(receipt)
    intent = await ledger.intent("key-1")
    assert intent is not None
    same_as_validated(intent)
    for attempt in intent.attempts:
        same_as_validated(attempt)
    assert [a.provider for a in intent.attempts] == (["a", "b"] if fail_first else ["a"])


def test_a_prepared_messages_receipt_is_the_validated_one() -> None:
    v4 = MimSmsV4(username="u@x.test", api_key="k", sender="S")
    items = [
        v4.prepare(Message(to="01712345678", text="hi")),
        v4.prepare(Message(to="01812345678", text="অ" * 71, reference="ref-2")),  # 2 segments
    ]
    got = [o.receipt("v4", f"T1/{o.message.to}", raw='{"a":1}') for o in items]
    for receipt in got:
        same_as_validated(receipt)
    assert got[1].segments == 2 and got[1].encoding == "ucs2" and got[1].reference == "ref-2"
    assert got[0].to == "8801712345678" and got[0].message_id == "T1/8801712345678"


def test_a_prepared_message_is_the_outgoing_the_dataclass_builds() -> None:
    v4 = MimSmsV4(username="u@x.test", api_key="k", sender="S")
    message = Message(to="01712345678", text="hi", sender="OTHER")
    made = v4.prepare(message)
    assert type(made) is Outgoing
    assert made == Outgoing(message=message, sender="OTHER", info=analyse_text("hi"))
    assert made.to == "8801712345678" and made.sender == "OTHER" and made.info.segments == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.sender = "X"  # type: ignore[misc]
