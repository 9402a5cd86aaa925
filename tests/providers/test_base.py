"""The shared provider behaviour, on a small in-test backend."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import anyio
import httpx
import pytest
import respx

from mimgw import (
    ConfigurationError,
    DeliveryReport,
    ErrorKind,
    InvalidMessageError,
    Message,
    MimgwError,
    ProviderError,
    Receipt,
    State,
    UnsupportedOperationError,
)
from mimgw.providers.base import Capabilities, Outgoing, Provider, TextLimits, WebhookItem


class Echo(Provider):
    kind = "echo"
    default_base_url = "https://echo.test"
    capabilities = Capabilities(status=True, webhook=True, notes="test backend")
    limits = TextLimits(max_characters=200, max_segments=2)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(sender=kwargs.pop("sender", "ECHO"), secrets=["topsecret"], **kwargs)  # type: ignore[arg-type]
        self.in_flight = 0
        self.max_in_flight = 0

    async def _send(self, outgoing: Outgoing) -> Receipt:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.sleep(0.001)
            if outgoing.to.endswith("9"):
                raise self.error(ErrorKind.RECIPIENT_REJECTED, "no topsecret here", code=206)
            return outgoing.receipt(self.name, f"id-{outgoing.to}", raw=None)
        finally:
            self.in_flight -= 1

    async def _status(self, message_id: str) -> DeliveryReport:
        return DeliveryReport(provider=self.name, message_id=message_id, state=State.DELIVERED)

    def _parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[WebhookItem]:
        return [DeliveryReport(provider=self.name, message_id=body.decode(), state=State.SENT)]


async def test_send_builds_a_receipt_from_the_analysis() -> None:
    async with Echo() as echo:
        r = await echo.send("01712345678", "আমার সোনার বাংলা", reference="ref-1")
    assert (r.provider, r.message_id, r.to, r.reference) == (
        "echo",
        "id-8801712345678",
        "8801712345678",
        "ref-1",
    )
    assert (r.encoding, r.segments, r.state) == ("ucs2", 1, State.ACCEPTED)


async def test_limits_are_checked_before_any_request() -> None:
    echo = Echo()
    with pytest.raises(InvalidMessageError, match="at most 2"):
        await echo.send("01712345678", "অ" * 150)
    with pytest.raises(InvalidMessageError, match="at most 200"):
        await echo.send("01712345678", "a" * 201)


async def test_sender_is_required_and_message_pins_it() -> None:
    echo = Echo(sender=None)
    with pytest.raises(ConfigurationError, match="sender"):
        await echo.send("01712345678", "x")
    assert echo.prepare(Message(to="01712345678", text="x", sender="PIN")).sender == "PIN"
    assert Echo().prepare(Message(to="01712345678", text="x")).sender == "ECHO"


async def test_unsupported_operations_raise_at_once() -> None:
    echo = Echo()
    with pytest.raises(UnsupportedOperationError, match="balance"):
        await echo.balance()
    with pytest.raises(UnsupportedOperationError, match="reports"):
        await echo.fetch_reports()
    with pytest.raises(UnsupportedOperationError, match="send_at"):
        await echo.send("01712345678", "x", send_at=datetime(2030, 1, 1, tzinfo=UTC))


async def test_status_validates_the_id() -> None:
    with pytest.raises(InvalidMessageError):
        await Echo().status("  ")


async def test_send_bulk_keeps_order_and_one_outcome_each() -> None:
    numbers = [f"0171234567{i}" for i in range(10)]
    messages = [Message(to=n, text="hi") for n in numbers]
    messages.insert(3, Message(to="01712345670", text="a" * 500))  # too long for this gateway
    echo = Echo()
    result = await echo.send_bulk(messages, concurrency=3)
    assert len(result) == len(messages)
    assert echo.max_in_flight <= 3
    for message, outcome in result.items():
        if len(message.text) > 200:
            assert isinstance(outcome, InvalidMessageError)
        elif message.to.endswith("9"):
            assert isinstance(outcome, ProviderError)
            assert outcome.kind is ErrorKind.RECIPIENT_REJECTED
        else:
            assert isinstance(outcome, Receipt)
            assert outcome.to == message.to
    assert all(isinstance(o, Receipt | MimgwError) for o in result)


async def test_send_bulk_rejects_non_messages_and_bad_concurrency() -> None:
    with pytest.raises(InvalidMessageError):
        await Echo().send_bulk(["01712345678"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError):
        await Echo().send_bulk([], concurrency=0)


async def test_listeners_see_every_parsed_report_even_if_one_fails() -> None:
    echo = Echo()
    seen: list[WebhookItem] = []

    def broken(item: WebhookItem) -> None:
        raise RuntimeError("listener bug")

    echo.add_listener(broken)
    echo.add_listener(seen.append)
    echo.add_listener(seen.append)  # added once only
    await echo.status("m1")
    echo.parse_webhook(b"m2", {})
    assert [r.message_id for r in seen if isinstance(r, DeliveryReport)] == ["m1", "m2"]
    echo.remove_listener(seen.append)
    await echo.status("m3")
    assert len(seen) == 2


def test_repr_and_errors_never_show_secrets() -> None:
    echo = Echo()
    assert "topsecret" not in repr(echo)
    err = echo.error(ErrorKind.AUTH, "key topsecret refused", raw="topsecret")
    assert "topsecret" not in str(err) and err.raw == "***"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "ftp://x"}, "base_url"),
        ({"timeout": -1}, "timeout"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_bad_construction_is_a_configuration_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Echo(**kwargs)


def test_capabilities_are_introspectable() -> None:
    caps = Echo.capabilities
    assert caps.supports("status") and not caps.supports("balance")
    assert caps.as_dict()["webhook"] is True


def test_local_time_uses_dhaka_by_default() -> None:
    naive = datetime(2030, 1, 1, 12, 0)
    assert Echo().local_time(naive).utcoffset().total_seconds() == 6 * 3600  # type: ignore[union-attr]


@respx.mock
async def test_request_maps_transport_status_and_redacts() -> None:
    class Http(Echo):
        async def _send(self, outgoing: Outgoing) -> Receipt:
            resp = await self._request("GET", "/x", submit=True, query={"k": "topsecret"})
            return outgoing.receipt(self.name, resp.text, raw=resp.text)

    respx.get(url__startswith="https://echo.test/x").mock(return_value=httpx.Response(504))
    with pytest.raises(ProviderError) as info:
        await Http().send("01712345678", "x")
    assert info.value.kind is ErrorKind.OUTCOME_UNKNOWN
    assert "topsecret" not in str(info.value)
