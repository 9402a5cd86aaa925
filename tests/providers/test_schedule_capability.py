"""Which gateways can schedule, as their documents say, and what a send_at elsewhere says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import respx

from mimgw import UnsupportedOperationError
from mimgw.providers.base import Provider
from mimgw.providers.dinisoft import DiniSoft
from mimgw.providers.imiconnect import IMIconnect
from mimgw.providers.mimsms_v3 import MimSmsV3
from mimgw.providers.mimsms_v3_json import MimSmsV3Json
from mimgw.providers.mimsms_v4 import MimSmsV4

LATER = datetime.now(UTC) + timedelta(hours=2)


def providers() -> list[Provider]:
    return [
        MimSmsV4(username="u@example.com", api_key="k-4", sender="ACME"),
        MimSmsV3(username="u", password="p-3", sender="ACME"),
        MimSmsV3Json(username="u", password="p-3j", sender="ACME"),
        DiniSoft(api_key="k-d", secret_key="s-d", sender="ACME"),
        IMIconnect(service_key="k-i", sender="ACME"),
    ]


def test_each_provider_declares_whether_it_can_schedule() -> None:
    # only the v3 plain API documents a send time (SendDateTime=1d2h5m3s)
    assert {type(p).kind: p.capabilities.schedule for p in providers()} == {
        "mimsms_v4": False,
        "mimsms_v3": True,
        "mimsms_v3_json": False,
        "dinisoft": False,
        "imiconnect": False,
    }
    assert all(p.capabilities.supports("schedule") is p.capabilities.schedule for p in providers())


@pytest.mark.parametrize("provider", [p for p in providers() if not p.capabilities.schedule])
async def test_send_at_says_plainly_that_the_gateway_cannot_schedule(provider: Provider) -> None:
    with (
        respx.mock(assert_all_mocked=True) as router,
        pytest.raises(UnsupportedOperationError) as info,
    ):
        await provider.send("01712345678", "later", send_at=LATER)
    text = str(info.value)
    assert "cannot schedule" in text and "send_at" in text
    # the capability notes are about other things: none of them belongs here
    assert provider.capabilities.notes not in text
    assert "DLR" not in text and "delivery-status" not in text
    assert not router.calls


async def test_v4_send_at_error_is_about_scheduling_only() -> None:
    provider = MimSmsV4(username="u@example.com", api_key="k-4", sender="ACME")
    with pytest.raises(UnsupportedOperationError) as info:
        await provider.send("01712345678", "later", send_at=LATER)
    assert "parse_dlr" not in str(info.value)
