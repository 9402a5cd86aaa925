from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from mimgw import (
    Balance,
    BulkResult,
    DeliveryReport,
    ErrorKind,
    InvalidMessageError,
    Message,
    ProviderError,
    Receipt,
    State,
)


def test_message_normalises_the_number_and_generates_a_reference_once() -> None:
    m = Message(to="+880 1712-345678", text="hi")
    assert m.to == "8801712345678"
    assert len(m.reference) == 32
    assert m.reference == m.model_copy().reference
    assert Message(to="01712345678", text="hi").reference != m.reference


def test_message_keeps_a_given_reference() -> None:
    assert Message(to="01712345678", text="x", reference="order-7").reference == "order-7"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"to": "123", "text": "x"}, "to"),
        ({"to": "01712345678", "text": ""}, "text"),
        ({"to": "01712345678", "text": "   "}, "text"),
        ({"to": "01712345678", "text": "x", "sender": " "}, "sender"),
        ({"to": "01712345678", "text": "x", "reference": ""}, "reference"),
        ({"to": "01712345678", "text": "x", "category": "spam"}, "category"),
        ({"to": "01712345678", "text": "x", "send_at": datetime(2030, 1, 1)}, "send_at"),
        ({"to": None, "text": "x"}, "to"),
        ({"to": "01712345678", "text": "x", "colour": "red"}, "colour"),
    ],
)
def test_invalid_messages_raise_a_typed_error_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidMessageError) as info:
        Message(**kwargs)
    assert field in str(info.value)
    assert not isinstance(info.value, ValidationError)


def test_model_validate_also_raises_typed_errors() -> None:
    with pytest.raises(InvalidMessageError):
        Message.model_validate({"to": "nope", "text": "x"})
    assert Message.model_validate({"to": "01712345678", "text": "x"}).to == "8801712345678"


def test_model_validate_describes_each_problem_once() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        Message.model_validate({"to": "01712345678", "text": "x", "bogus": 1})
    assert str(caught.value) == "invalid message: bogus: Extra inputs are not permitted"
    with pytest.raises(InvalidMessageError) as caught:
        Message.model_validate({"to": "0171", "text": " "})
    assert str(caught.value).startswith("invalid message: to: not a valid Bangladeshi mobile")
    assert str(caught.value).count("invalid message") == 1 and "text: must not be empty" in str(
        caught.value
    )


def test_send_at_becomes_utc() -> None:
    dhaka = timezone(timedelta(hours=6))
    m = Message(to="01712345678", text="x", send_at=datetime(2030, 1, 1, 12, tzinfo=dhaka))
    assert m.send_at == datetime(2030, 1, 1, 6, tzinfo=UTC)
    assert m.send_at is not None and m.send_at.tzinfo is UTC


def test_models_are_frozen() -> None:
    m = Message(to="01712345678", text="x")
    with pytest.raises(ValidationError):
        m.text = "y"  # type: ignore[misc]


def test_raw_is_kept_out_of_reprs() -> None:
    r = Receipt(provider="p", message_id="1", to="8801712345678", raw="secret-ish body")
    assert "secret-ish" not in repr(r)
    b = Balance(provider="p", amount=Decimal("1.50"), raw="1.50")
    assert b.amount == Decimal("1.50")


def test_report_times_become_utc_and_flags() -> None:
    dhaka = timezone(timedelta(hours=6))
    rep = DeliveryReport(
        provider="p",
        message_id="1",
        state=State.UNDELIVERABLE,
        done_at=datetime(2030, 1, 1, 6, tzinfo=dhaka),
        retries_allowed=3,
    )
    assert rep.done_at == datetime(2030, 1, 1, 0, tzinfo=UTC)
    assert rep.final and rep.failed
    assert not DeliveryReport(provider="p", message_id="1", state=State.DELIVERED).failed


def test_bulk_result_is_ordered_and_typed() -> None:
    ok = Message(to="01712345678", text="a")
    bad = Message(to="01812345678", text="b")
    receipt = Receipt(provider="p", message_id="1", to=ok.to)
    error = ProviderError.of(ErrorKind.RECIPIENT_REJECTED, "p", 206)
    result = BulkResult(messages=(ok, bad), outcomes=(receipt, error))
    assert len(result) == 2
    assert list(result) == [receipt, error]
    assert result[1] is error
    assert result.receipts == [receipt]
    assert result.errors == [error]
    assert not result.ok
    assert list(result.items()) == [(ok, receipt), (bad, error)]
    assert "accepted=1" in repr(result)
    assert str(result) == repr(result)  # a campaign's str is not every message in it


def test_bulk_result_needs_one_outcome_per_message() -> None:
    m = Message(to="01712345678", text="a")
    with pytest.raises(ValueError, match="one outcome per message"):
        BulkResult(messages=(m,), outcomes=())


def test_trusted_receipts_equal_validated_ones() -> None:
    from mimgw.models import trusted
    from mimgw.taxonomy import State

    values = {
        "provider": "p",
        "message_id": "T1",
        "to": "8801712345678",
        "state": State.ACCEPTED,
        "reference": "r" * 32,
        "segments": 2,
        "encoding": "ucs2",
        "raw": "{}",
    }
    fast = trusted(Receipt, dict(values))
    assert fast == Receipt(**values)
    assert fast.model_dump() == Receipt(**values).model_dump()
    assert repr(fast) == repr(Receipt(**values))
    assert set(Receipt.model_fields) == set(values)  # a new field must be added at the call site


def test_references_are_32_random_hex_characters() -> None:
    from mimgw.models import new_reference

    refs = {new_reference() for _ in range(1000)}
    assert len(refs) == 1000
    assert all(len(r) == 32 and int(r, 16) >= 0 and r == r.lower() for r in refs)
