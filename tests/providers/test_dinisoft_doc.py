"""DiniSoft checked row by row against the vendor document, through the public API only.

Every request is checked on the wire with respx; bodies are written the way the
vendor's tables print them (typographic quotes included) as well as plain JSON.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from mimgw import (
    AccessDeniedError,
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    DeliveryReport,
    ErrorKind,
    Message,
    MimgwError,
    ProviderError,
    ProviderUnavailableError,
    Receipt,
    RequestRejectedError,
    State,
    UnsupportedOperationError,
)
from mimgw.providers import DiniSoft
from mimgw.simulator import Simulator

API_KEY = "dk-7f3a9c1e"
SECRET_KEY = "ds-5b2e8d40"
HTTPS = "https://sms.dinisoftbd.com:7790"
HTTP = "http://sms.dinisoftbd.com:7788"
BALANCE_PATH = "/login/sms/smsConfiguration/smsClientBalance.jsp"
BALANCE_HTTPS = f"https://sms.dinisoftbd.com{BALANCE_PATH}"
BALANCE_HTTP = f"http://sms.dinisoftbd.com{BALANCE_PATH}"


def provider(**kwargs: object) -> DiniSoft:
    options: dict[str, object] = {
        "api_key": API_KEY,
        "secret_key": SECRET_KEY,
        "sender": "DiniTest",
        "client_name": "acme",
    }
    options.update(kwargs)
    return DiniSoft(**options)  # type: ignore[arg-type]


def curly(body: dict[str, str]) -> str:
    """A body written as the vendor's tables print it: keys in typographic quotes."""
    parts = [f"\u201c{key}\u201d:{json.dumps(value)}" for key, value in body.items()]
    return "{" + ",".join(parts) + "}"


def secret_free(*texts: object) -> None:
    for text in texts:
        assert API_KEY not in str(text)
        assert SECRET_KEY not in str(text)


# -- submit: sendtext -------------------------------------------------------------------------


@respx.mock
async def test_sendtext_goes_to_the_https_port_with_the_documented_parameters() -> None:
    route = respx.get(f"{HTTPS}/sendtext").respond(
        json={"Status": "0", "Text": "ACCEPTD", "Message_ID": "194234"}
    )
    async with provider() as sms:
        receipt = await sms.send("+880 1712-345678", "Hello world")
    request = route.calls.last.request
    assert request.method == "GET"
    assert str(request.url).startswith("https://sms.dinisoftbd.com:7790/sendtext?")
    assert list(request.url.params.keys()) == [
        "apikey",
        "secretkey",
        "callerID",
        "toUser",
        "messageContent",
    ]
    assert dict(request.url.params) == {
        "apikey": API_KEY,
        "secretkey": SECRET_KEY,
        "callerID": "DiniTest",
        "toUser": "8801712345678",
        "messageContent": "Hello world",
    }
    assert b"messageContent=Hello%20world" in request.url.query
    assert isinstance(receipt, Receipt)
    assert (receipt.provider, receipt.message_id, receipt.state) == (
        "dinisoft",
        "194234",
        State.ACCEPTED,
    )
    assert (receipt.to, receipt.encoding, receipt.segments) == ("8801712345678", "gsm7", 1)
    secret_free(receipt.raw, repr(receipt))


@pytest.mark.parametrize(
    "make",
    [
        lambda: provider(secure=False),
        lambda: provider(base_url="http://sms.dinisoftbd.com:7788"),
    ],
)
@respx.mock
async def test_plain_http_port_is_an_option(make: object) -> None:
    route = respx.get(f"{HTTP}/sendtext").respond(
        json={"Status": "0", "Text": "Acceptd", "Message_ID": "77"}
    )
    async with make() as sms:  # type: ignore[operator]
        receipt = await sms.send("01812345678", "x")
    url = route.calls.last.request.url
    assert (url.scheme, url.host, url.port, url.path) == (
        "http",
        "sms.dinisoftbd.com",
        7788,
        "/sendtext",
    )
    assert receipt.message_id == "77"


@pytest.mark.parametrize("text", ["ACCEPTD", "Acceptd", "acceptd", "ACCEPTED"])
@pytest.mark.parametrize("typographic", [False, True])
@respx.mock
async def test_accepted_in_every_spelling(text: str, typographic: bool) -> None:
    body = {"Status": "0", "Text": text, "Message_ID": "194234"}
    respx.get(f"{HTTPS}/sendtext").respond(text=curly(body) if typographic else json.dumps(body))
    async with provider() as sms:
        receipt = await sms.send("01712345678", "hi", reference="order-9")
    assert (receipt.message_id, receipt.reference, receipt.state) == (
        "194234",
        "order-9",
        State.ACCEPTED,
    )


SUBMIT_TABLE = [
    ("109", AuthenticationError, ErrorKind.AUTH),
    ("108", AuthenticationError, ErrorKind.AUTH),
    ("114", RequestRejectedError, ErrorKind.REQUEST_REJECTED),
    ("101", ProviderUnavailableError, ErrorKind.PROVIDER_UNAVAILABLE),
    ("1", RequestRejectedError, ErrorKind.REQUEST_REJECTED),
    ("5400", AccessDeniedError, ErrorKind.ACCESS_DENIED),
]


@pytest.mark.parametrize(("code", "cls", "kind"), SUBMIT_TABLE)
@pytest.mark.parametrize("typographic", [False, True])
@respx.mock
async def test_every_submit_code(
    code: str, cls: type[ProviderError], kind: ErrorKind, typographic: bool
) -> None:
    body = {"Status": code, "Text": "REJECTD"}
    if code == "5400":
        body["Message_ID"] = ""
    respx.get(f"{HTTPS}/sendtext").respond(text=curly(body) if typographic else json.dumps(body))
    async with provider() as sms:
        with pytest.raises(cls) as info:
            await sms.send("01712345678", "hi")
    error = info.value
    assert (error.kind, error.code, error.provider) == (kind, code, "dinisoft")
    assert error.retryable is (code == "101")
    assert error.failover is (kind is not ErrorKind.REQUEST_REJECTED)
    assert not error.may_have_been_sent
    assert error.raw is not None and "REJECTD" in error.raw
    secret_free(str(error), repr(error), error.raw)


@respx.mock
async def test_submit_codes_sent_as_numbers() -> None:
    respx.get(f"{HTTPS}/sendtext").respond(json={"Status": 5400, "Text": "REJECTD"})
    async with provider() as sms:
        with pytest.raises(AccessDeniedError):
            await sms.send("01712345678", "hi")


@respx.mock
async def test_curly_quotes_inside_the_message_text() -> None:
    route = respx.get(f"{HTTPS}/sendtext").respond(
        json={"Status": "0", "Text": "ACCEPTD", "Message_ID": "5"}
    )
    text = "\u201cSale\u201d starts \u2018today\u2019"
    async with provider() as sms:
        receipt = await sms.send("01712345678", text)
    request = route.calls.last.request
    assert request.url.params["messageContent"] == text
    assert b"messageContent=%E2%80%9CSale%E2%80%9D%20starts%20%E2%80%98today%E2%80%99" in (
        request.url.query
    )
    assert receipt.encoding == "ucs2"


@respx.mock
async def test_bangla_text_is_sent_as_utf8() -> None:
    route = respx.get(f"{HTTPS}/sendtext").respond(
        json={"Status": "0", "Text": "ACCEPTD", "Message_ID": "6"}
    )
    async with provider() as sms:
        receipt = await sms.send("01712345678", "আপনার কোড ১২৩৪")
    assert route.calls.last.request.url.params["messageContent"] == "আপনার কোড ১২৩৪"
    assert (receipt.encoding, receipt.segments) == ("ucs2", 1)


async def test_empty_text_and_bad_numbers_never_reach_the_gateway() -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route()
        async with provider() as sms:
            for to, text in (("01712345678", "  "), ("12345", "hi")):
                with pytest.raises(MimgwError):
                    await sms.send(to, text)
    assert not route.called


@respx.mock
async def test_send_bulk_singles_one_outcome_per_message_in_order() -> None:
    answers = {
        "8801712345671": {"Status": "0", "Text": "ACCEPTD", "Message_ID": "1"},
        "8801712345672": {"Status": "108", "Text": "REJECTD"},
        "8801712345673": {"Status": "0", "Text": "Acceptd", "Message_ID": "3"},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers[request.url.params["toUser"]])

    respx.get(f"{HTTPS}/sendtext").mock(side_effect=answer)
    messages = [Message(to=f"0171234567{i}", text="x") for i in (1, 2, 3)]
    async with provider() as sms:
        result = await sms.send_bulk(messages)
    assert len(result) == 3
    assert isinstance(result[0], Receipt) and result[0].message_id == "1"
    assert isinstance(result[1], AuthenticationError)
    assert isinstance(result[2], Receipt) and result[2].message_id == "3"


# -- delivery: getstatus ----------------------------------------------------------------------


@respx.mock
async def test_getstatus_wire_format_and_the_sample_answer() -> None:
    route = respx.get(f"{HTTPS}/getstatus").respond(
        text='{"Status": "0","Text": "DELIVRD","Message_ID": "194234",'
        '"Delivery Time": "1586420396602"}'
    )
    async with provider() as sms:
        report = await sms.status("194234")
    request = route.calls.last.request
    assert request.method == "GET"
    assert list(request.url.params.keys()) == ["apikey", "secretkey", "messageid"]
    assert dict(request.url.params) == {
        "apikey": API_KEY,
        "secretkey": SECRET_KEY,
        "messageid": "194234",
    }
    assert isinstance(report, DeliveryReport)
    assert (report.provider, report.message_id, report.state) == (
        "dinisoft",
        "194234",
        State.DELIVERED,
    )
    assert report.final and not report.failed
    assert report.done_at == datetime(2020, 4, 9, 8, 19, 56, 602000, tzinfo=UTC)
    assert report.done_at is not None and report.done_at.utcoffset() is not None
    assert report.done_at == datetime(2020, 4, 9, 14, 19, 56, 602000, tzinfo=ZoneInfo("Asia/Dhaka"))
    secret_free(report.raw, repr(report))


@respx.mock
async def test_getstatus_on_the_plain_port() -> None:
    route = respx.get(f"{HTTP}/getstatus").respond(json={"Status": "2", "Text": "PENDING"})
    async with provider(secure=False) as sms:
        report = await sms.status("55")
    assert route.called and report.state is State.PENDING


DELIVERY_TABLE = [
    ("2", "PENDING", State.PENDING),
    ("4", "SENT", State.SENT),
    ("0", "DELIVRD", State.DELIVERED),
    ("1", "REJECTD", State.REJECTED),
]


@pytest.mark.parametrize(("code", "text", "state"), DELIVERY_TABLE)
@pytest.mark.parametrize("spelling", [str.upper, str.lower, str.capitalize])
@pytest.mark.parametrize("typographic", [False, True])
@respx.mock
async def test_every_delivery_state(
    code: str, text: str, state: State, spelling: object, typographic: bool
) -> None:
    body = {"Status": code, "Text": spelling(text)}  # type: ignore[operator]
    respx.get(f"{HTTPS}/getstatus").respond(text=curly(body) if typographic else json.dumps(body))
    async with provider() as sms:
        report = await sms.status("900")
    assert report.state is state
    assert report.final is state.final
    assert report.retries_allowed == 0
    assert report.provider_status is not None and code in report.provider_status
    if state is State.REJECTED:
        assert report.failed and report.permanent is True


DELIVERY_ERRORS = [
    ("109", AuthenticationError),
    ("108", AuthenticationError),
    ("114", RequestRejectedError),
    ("101", ProviderUnavailableError),
    ("-42", AuthenticationError),
]


@pytest.mark.parametrize(("code", "cls"), DELIVERY_ERRORS)
@pytest.mark.parametrize("typographic", [False, True])
@respx.mock
async def test_every_delivery_error_code(
    code: str, cls: type[ProviderError], typographic: bool
) -> None:
    body = {"Status": code, "Text": "REJECTD"}
    respx.get(f"{HTTPS}/getstatus").respond(text=curly(body) if typographic else json.dumps(body))
    async with provider() as sms:
        with pytest.raises(cls) as info:
            await sms.status("900")
    assert info.value.code == code
    assert not isinstance(info.value, BadResponseError)
    secret_free(str(info.value), info.value.raw)


@pytest.mark.parametrize(
    ("first", "final"),
    [
        ({"Status": "0", "Text": "DELIVRD", "Delivery Time": "1586420396602"}, State.DELIVERED),
        ({"Status": "1", "Text": "REJECTD"}, State.REJECTED),
    ],
)
@respx.mock
async def test_a_final_status_read_once_is_not_lost_when_asked_again(
    first: dict[str, str], final: State
) -> None:
    route = respx.get(f"{HTTPS}/getstatus")
    route.side_effect = [
        httpx.Response(200, json={"Status": "2", "Text": "PENDING"}),
        httpx.Response(200, json={**first, "Message_ID": "194234"}),
        httpx.Response(200, json={"Status": "114", "Text": "REJECTD"}),
        httpx.Response(200, json={"Status": "114", "Text": "REJECTD"}),
    ]
    async with provider() as sms:
        states = [(await sms.status("194234")).state for _ in range(4)]
    assert states == [State.PENDING, final, final, final]
    assert route.call_count <= 3


@respx.mock
async def test_114_for_an_id_this_process_never_saw_final_is_not_a_delivery_failure() -> None:
    respx.get(f"{HTTPS}/getstatus").respond(text=curly({"Status": "114", "Text": "REJECTD"}))
    async with provider() as sms:
        with pytest.raises(RequestRejectedError) as info:
            await sms.status("31337")
    assert info.value.kind is ErrorKind.REQUEST_REJECTED and info.value.code == "114"


@pytest.mark.parametrize(
    ("body", "state"),
    [
        ({"Status": "3", "Text": "UNDELIV"}, State.UNDELIVERABLE),
        ({"Status": "7", "Text": "Expired"}, State.EXPIRED),
        ({"Status": "9", "Text": "Delivrd"}, State.DELIVERED),
        ({"Status": "9", "Text": "ACCEPTD"}, State.ACCEPTED),
        ({"Status": "9", "Text": "???"}, State.UNKNOWN),
        ({"Status": "9"}, State.UNKNOWN),
    ],
)
@respx.mock
async def test_unlisted_delivery_codes_fall_back_to_the_status_word(
    body: dict[str, str], state: State
) -> None:
    respx.get(f"{HTTPS}/getstatus").respond(json=body)
    async with provider() as sms:
        report = await sms.status("1")
    assert report.state is state
    assert report.raw is not None and body["Status"] in report.raw


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("1586420396602", datetime(2020, 4, 9, 8, 19, 56, 602000, tzinfo=UTC)),
        (1586420396602, datetime(2020, 4, 9, 8, 19, 56, 602000, tzinfo=UTC)),
        (" 1586420396602 ", datetime(2020, 4, 9, 8, 19, 56, 602000, tzinfo=UTC)),
        (1586420396602.0, datetime(2020, 4, 9, 8, 19, 56, 602000, tzinfo=UTC)),
        ("", None),
        ("not a time", None),
    ],
)
@respx.mock
async def test_delivery_time_is_epoch_milliseconds(when: object, expected: datetime | None) -> None:
    respx.get(f"{HTTPS}/getstatus").respond(
        json={"Status": "0", "Text": "DELIVRD", "Delivery Time": when}
    )
    async with provider() as sms:
        report = await sms.status("2")
    assert report.state is State.DELIVERED
    assert report.done_at == expected
    if expected is not None:
        assert report.done_at is not None and report.done_at.tzinfo is not None


async def test_the_read_once_gateway_through_the_simulator() -> None:
    sim = Simulator(seed=3)
    async with sim.client() as client:
        sms = sim.dinisoft.provider(client=client)
        receipt = await sms.send("01712345678", "simulated")
        assert (await sms.status(receipt.message_id)).state is State.PENDING
        sim.clock.advance(60)
        first = await sms.status(receipt.message_id)
        again = await sms.status(receipt.message_id)
    assert first.state is State.DELIVERED and again.state is State.DELIVERED
    assert first.done_at is not None


# -- balance page -----------------------------------------------------------------------------


@respx.mock
async def test_balance_page_sample() -> None:
    route = respx.get(BALANCE_HTTPS).respond(text="10.000000")
    async with provider() as sms:
        balance = await sms.balance()
    request = route.calls.last.request
    assert (request.url.scheme, request.url.host, request.url.port, request.url.path) == (
        "https",
        "sms.dinisoftbd.com",
        None,
        BALANCE_PATH,
    )
    assert dict(request.url.params) == {"client": "acme"}
    secret_free(str(request.url), dict(request.headers))
    assert balance.amount == Decimal("10.000000") and balance.amount == Decimal(10)
    assert isinstance(balance.amount, Decimal)
    assert balance.provider == "dinisoft"
    secret_free(balance.raw, repr(balance))


@respx.mock
async def test_balance_page_over_plain_http() -> None:
    route = respx.get(BALANCE_HTTP).respond(text="3.250000\n")
    async with provider(secure=False) as sms:
        balance = await sms.balance()
    assert route.called and balance.amount == Decimal("3.25")


async def test_balance_needs_a_client_name() -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route()
        async with provider(client_name=None) as sms:
            with pytest.raises(ConfigurationError) as info:
                await sms.balance()
    assert not route.called
    assert isinstance(info.value, ValueError)
    assert "client_name" in str(info.value)


@respx.mock
async def test_a_login_page_instead_of_a_balance_is_a_bad_response() -> None:
    respx.get(BALANCE_HTTPS).respond(text="<html><body>Login</body></html>")
    async with provider() as sms:
        with pytest.raises(BadResponseError) as info:
            await sms.balance()
    assert info.value.raw is not None and "Login" in info.value.raw


# -- surface and secrets ----------------------------------------------------------------------


async def test_capabilities_and_what_is_not_offered() -> None:
    sms = provider()
    caps = sms.capabilities
    assert (caps.send, caps.status, caps.balance) == (True, True, True)
    assert (caps.webhook, caps.batch, caps.schedule) == (False, False, False)
    with pytest.raises(UnsupportedOperationError):
        sms.parse_webhook(b'{"Status": "0"}', {})
    await sms.aclose()


@respx.mock
async def test_credentials_never_leak(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    respx.get(f"{HTTPS}/sendtext").mock(
        side_effect=[
            httpx.Response(200, json={"Status": "0", "Text": "ACCEPTD", "Message_ID": "9"}),
            httpx.Response(200, text=f"oops apikey={API_KEY}&secretkey={SECRET_KEY}"),
            httpx.ReadTimeout(f"timed out on /sendtext?apikey={API_KEY}"),
        ]
    )
    respx.get(f"{HTTPS}/getstatus").respond(json={"Status": "108", "Text": f"REJECTD {SECRET_KEY}"})
    sms = provider()
    receipt = await sms.send("01712345678", "hi")
    seen: list[object] = [receipt.raw, repr(receipt), repr(sms), str(sms)]
    for call in (
        sms.send("01712345678", "hi"),
        sms.send("01712345678", "hi"),
        sms.status("9"),
    ):
        with pytest.raises(ProviderError) as info:
            await call
        error = info.value
        seen += [str(error), repr(error), error.raw, error.detail, error.__cause__]
    await sms.aclose()
    seen.append(caplog.text)
    secret_free(*seen)
