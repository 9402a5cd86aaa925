"""The fakes and fixtures users get from mimgw.testing."""

from __future__ import annotations

import pytest

from mimgw import Balance, ErrorKind, ProviderError, Receipt, State
from mimgw.gateway import Gateway
from mimgw.testing import (  # the fixtures, as a user's conftest would import them
    FakeClock,
    FakeProvider,
    fake_backup,  # noqa: F401
    fake_clock,  # noqa: F401
    fake_gateway,  # noqa: F401
    fake_primary,  # noqa: F401
)

TO = "01712345678"


async def test_fixtures_give_a_gateway_over_two_fakes(
    fake_gateway: Gateway,  # noqa: F811
    fake_primary: FakeProvider,  # noqa: F811
    fake_backup: FakeProvider,  # noqa: F811
    fake_clock: FakeClock,  # noqa: F811
) -> None:
    fake_primary.fail(ErrorKind.CONNECT_FAILED, times=3)
    receipt = await fake_gateway.send(TO, "hello")
    assert receipt.provider == "backup" and receipt.to == "8801712345678"
    assert len(fake_primary.submits) == 3 and fake_clock.sleeps == [0.2, 0.4]
    assert fake_backup.submits[0].sender == "BACKUP"


async def test_scripted_answers_are_consumed_in_order_then_default() -> None:
    fake = FakeProvider(name="f")
    canned = Receipt(provider="f", message_id="canned", to="8801712345678")
    custom = ProviderError.of(ErrorKind.SENDER_REJECTED, "f", 208, "no")
    fake.script(canned, ErrorKind.AUTH, custom, None)
    assert (await fake.send(TO, "a")).message_id == "canned"
    with pytest.raises(ProviderError) as first:
        await fake.send(TO, "b")
    assert first.value.kind is ErrorKind.AUTH and first.value.provider == "f"
    with pytest.raises(ProviderError) as second:
        await fake.send(TO, "c")
    assert second.value is custom
    assert (await fake.send(TO, "d")).message_id.startswith("f-")
    assert (await fake.send(TO, "e")).message_id.startswith("f-")
    assert fake.calls["send"] == 5 and len(fake.receipts) == 3


async def test_balance_status_and_reports() -> None:
    fake = FakeProvider(name="f", balance="12.5", read_once=True)
    assert (await fake.balance()).amount == 12.5
    fake.script(Balance(provider="f", amount=1), operation="balance")
    assert (await fake.balance()).amount == 1
    fake.fail(ErrorKind.RATE_LIMITED, operation="balance", retry_after=2)
    with pytest.raises(ProviderError) as caught:
        await fake.balance()
    assert caught.value.retry_after == 2
    receipt = await fake.send(TO, "x")
    assert (await fake.status(receipt.message_id)).state is State.SENT
    fake.report(receipt.message_id, State.DELIVERED)
    assert (await fake.status(receipt.message_id)).state is State.DELIVERED
    with pytest.raises(ProviderError, match="already read"):
        await fake.status(receipt.message_id)
    assert [r.message_id for r in await fake.fetch_reports()] == [receipt.message_id]
    assert await fake.fetch_reports() == []


async def test_fake_clock_is_instant_and_records_sleeps() -> None:
    clock = FakeClock()
    start = clock.now()
    await clock.sleep(30)
    clock.advance(15)
    assert clock.sleeps == [30] and clock.monotonic() == 45
    assert (clock.now() - start).total_seconds() == 45
