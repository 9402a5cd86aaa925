"""Testing your own SMS code with mimgw.testing: no network, no gateway account, no sleeping.

Run it with ``uv run pytest examples/test_example.py``. The async tests need an async
plugin: this repository sets pytest-asyncio's ``asyncio_mode = "auto"`` in
pyproject.toml; in yours, set the same or keep the ``pytestmark`` line below.
"""

from __future__ import annotations

import pytest

from mimgw import ErrorKind, Gateway, OutcomeUnknownError, State
from mimgw.testing import FakeClock, FakeProvider, fake_gateway_for

# conftest.py beside this file says pytest_plugins = ["mimgw.testing"]: that brings the
# fake_clock, fake_primary, fake_backup and fake_gateway fixtures
pytestmark = pytest.mark.asyncio


# -- the code under test: what your service would have ----------------------------------------


async def send_code(gateway: Gateway, to: str, code: str) -> str:
    """Send a login code; answer "sent", "check-later" (may have been sent) or "failed"."""
    try:
        await gateway.send(to, f"Your login code is {code}", idempotency_key=f"login:{to}:{code}")
    except OutcomeUnknownError:
        return "check-later"  # never send a second code blindly: it may have arrived
    except Exception:
        return "failed"
    return "sent"


# -- the tests ---------------------------------------------------------------------------------


async def test_a_code_goes_out(fake_gateway: Gateway, fake_primary: FakeProvider) -> None:
    assert await send_code(fake_gateway, "01712345678", "4711") == "sent"
    [submit] = fake_primary.submits
    assert submit.to == "8801712345678"
    assert "4711" in submit.text


async def test_a_dead_primary_fails_over_after_its_retries(
    fake_gateway: Gateway,
    fake_primary: FakeProvider,
    fake_backup: FakeProvider,
    fake_clock: FakeClock,
) -> None:
    fake_primary.fail(ErrorKind.CONNECT_FAILED, times=3)
    assert await send_code(fake_gateway, "01712345678", "4711") == "sent"
    assert len(fake_primary.submits) == 3
    assert len(fake_backup.submits) == 1
    assert fake_clock.sleeps  # the backoff waited on the fake clock: the test took no time


async def test_an_unknown_outcome_is_not_resent(
    fake_gateway: Gateway, fake_primary: FakeProvider, fake_backup: FakeProvider
) -> None:
    fake_primary.fail(ErrorKind.OUTCOME_UNKNOWN)
    assert await send_code(fake_gateway, "01712345678", "4711") == "check-later"
    assert fake_backup.submits == []
    # the same key again: still unknown, and still nothing sent
    assert await send_code(fake_gateway, "01712345678", "4711") == "check-later"
    assert len(fake_primary.submits) == 1


async def test_the_same_key_is_sent_once() -> None:
    provider = FakeProvider(name="only")
    async with fake_gateway_for(provider) as gateway:
        assert await send_code(gateway, "01712345678", "4711") == "sent"
        assert await send_code(gateway, "01712345678", "4711") == "sent"
    assert len(provider.submits) == 1


async def test_a_pushed_report_reaches_your_hook() -> None:
    provider = FakeProvider(name="pusher")
    gateway = fake_gateway_for(provider)
    seen: list[State] = []

    @gateway.on_report
    async def record(report: object) -> None:
        seen.append(getattr(report, "state", State.UNKNOWN))

    async with gateway:
        receipt = await gateway.send("01712345678", "hello")
        body = FakeProvider.webhook_body(
            [{"message_id": receipt.message_id, "state": "delivered", "to": receipt.to}]
        )
        await gateway.ingest_webhook("pusher", body)
        assert (await gateway.status(receipt.message_id)).state is State.DELIVERED
    assert seen == [State.DELIVERED]
