"""DiniSoft: wire format, code tables, read-once statuses, balance page, secrets."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal

import anyio
import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mimgw import (
    AuthenticationError,
    ConfigurationError,
    ErrorKind,
    Message,
    MimgwError,
    ProviderError,
    Receipt,
    RequestRejectedError,
    State,
    UnsupportedOperationError,
)
from mimgw.providers.dinisoft import DiniSoft

KEY = "k3y-alpha-77"
SECRET = "s3cret-beta-42"
BASE = "https://sms.dinisoftbd.com:7790"
BALANCE = "https://sms.dinisoftbd.com/login/sms/smsConfiguration/smsClientBalance.jsp"


def make(**kwargs: object) -> DiniSoft:
    options: dict[str, object] = {
        "api_key": KEY,
        "secret_key": SECRET,
        "sender": "ShopBD",
        "client_name": "shopbd",
    }
    options.update(kwargs)
    return DiniSoft(**options)  # type: ignore[arg-type]


def assert_no_secrets(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)
        assert SECRET not in str(text)


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["api_key", "secret_key"])
@pytest.mark.parametrize("value", ["", "   ", SecretStr("")])
def test_empty_credentials_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        make(**{field: value})


def test_secretstr_credentials_and_repr_without_secrets() -> None:
    provider = make(api_key=SecretStr(KEY), secret_key=SecretStr(SECRET))
    assert_no_secrets(repr(provider))
    assert provider.base_url == BASE
    assert provider.balance_url == BALANCE


def test_insecure_selects_the_plain_http_port() -> None:
    provider = make(secure=False)
    assert provider.base_url == "http://sms.dinisoftbd.com:7788"
    assert provider.balance_url.startswith("http://sms.dinisoftbd.com/login/")


@pytest.mark.parametrize(
    ("base_url", "balance_url"),
    [
        # the documented API ports are dropped: the page is on the web server's own port
        ("https://sms.dinisoftbd.com:7790", "https://sms.dinisoftbd.com"),
        ("http://sms.dinisoftbd.com:7788", "http://sms.dinisoftbd.com"),
        ("https://sms2.dinisoft.example:7790", "https://sms2.dinisoft.example"),
        ("http://10.0.0.5:7788/", "http://10.0.0.5"),
        # any other port is the proxy's (or a simulator's) and stays
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("https://gw.example/dinisoft", "https://gw.example"),
    ],
)
def test_balance_url_follows_a_custom_base_urls_host(base_url: str, balance_url: str) -> None:
    provider = make(base_url=base_url)
    assert provider.balance_url == balance_url + "/login/sms/smsConfiguration/smsClientBalance.jsp"


def test_an_explicit_balance_url_wins_over_the_base_url() -> None:
    provider = make(base_url="http://127.0.0.1:8765", balance_url="https://b.example/page.jsp")
    assert provider.balance_url == "https://b.example/page.jsp"


async def test_balance_is_read_from_the_custom_host() -> None:
    async with respx.mock(assert_all_called=True) as router:
        route = router.get("http://127.0.0.1:8765/login/sms/smsConfiguration/smsClientBalance.jsp")
        route.respond(200, text="10.000000")
        provider = make(base_url="http://127.0.0.1:8765", client_name="acme")
        assert (await provider.balance()).amount == Decimal("10.000000")
    assert route.calls.last.request.url.query == b"client=acme"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"client_name": "  "}, "client_name"),
        ({"balance_url": "ftp://x"}, "balance_url"),
        ({"report_cache_size": 0}, "report_cache_size"),
    ],
)
def test_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        make(**kwargs)


def test_capabilities() -> None:
    caps = DiniSoft.capabilities
    assert (caps.send, caps.balance, caps.status) == (True, True, True)
    assert (caps.batch, caps.webhook, caps.schedule) == (False, False, False)


# -- submit ------------------------------------------------------------------------------------


@respx.mock
async def test_send_wire_format() -> None:
    route = respx.get(f"{BASE}/sendtext").respond(
        json={"Status": "0", "Text": "ACCEPTD", "Message_ID": "5512"}
    )
    async with make() as sms:
        receipt = await sms.send("01812-345678", "Order 81 is on the way", reference="r-1")
    request = route.calls.last.request
    assert request.method == "GET"
    assert (request.url.scheme, request.url.host, request.url.port) == (
        "https",
        "sms.dinisoftbd.com",
        7790,
    )
    assert request.url.query.decode() == (
        f"apikey={KEY}&secretkey={SECRET}&callerID=ShopBD&toUser=8801812345678"
        "&messageContent=Order%2081%20is%20on%20the%20way"
    )
    assert (receipt.message_id, receipt.to, receipt.reference) == ("5512", "8801812345678", "r-1")
    assert receipt.state is State.ACCEPTED
    assert_no_secrets(receipt.raw)


@respx.mock
async def test_send_plain_port_and_unicode_text() -> None:
    route = respx.get("http://sms.dinisoftbd.com:7788/sendtext").respond(
        json={"Status": 0, "Text": "Acceptd", "Message_ID": 99}
    )
    async with make(secure=False) as sms:
        receipt = await sms.send("01712345678", "ধন্যবাদ", sender="Other")
    query = route.calls.last.request.url.query.decode()
    assert "callerID=Other" in query
    assert "messageContent=%E0%A6%A7%E0%A6%A8" in query
    assert (receipt.message_id, receipt.encoding) == ("99", "ucs2")


SUBMIT_ROWS = [
    ("109", ErrorKind.AUTH),
    ("108", ErrorKind.AUTH),
    ("-42", ErrorKind.AUTH),
    ("114", ErrorKind.REQUEST_REJECTED),
    ("101", ErrorKind.PROVIDER_UNAVAILABLE),
    ("1", ErrorKind.REQUEST_REJECTED),
    ("5400", ErrorKind.ACCESS_DENIED),
]


@pytest.mark.parametrize(("code", "kind"), SUBMIT_ROWS)
@pytest.mark.parametrize("as_int", [False, True])
@respx.mock
async def test_submit_code_table(code: str, kind: ErrorKind, as_int: bool) -> None:
    status: str | int = int(code) if as_int else code
    respx.get(f"{BASE}/sendtext").respond(json={"Status": status, "Text": "REJECTD"})
    async with make() as sms:
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "hi")
    assert (info.value.kind, info.value.code) == (kind, code)
    assert info.value.raw is not None and "REJECTD" in info.value.raw


@pytest.mark.parametrize(
    "body",
    [
        "{\u201cStatus\u201d:\u201c0\u201d,\u201cText\u201d:\u201cAcceptd\u201d,"
        "\u201cMessage_ID\u201d:\u201c31\u201d}",
        '{\u201cStatus\u201d:"0",\u201cText\u201d:"ACCEPTD",\u201cMessage_ID\u201d:"31"}',
        ' {"status": " 0 ", "text": "accepted", "message_id": " 31 "}\n',
    ],
)
@respx.mock
async def test_tolerated_accept_bodies(body: str) -> None:
    respx.get(f"{BASE}/sendtext").respond(text=body)
    async with make() as sms:
        receipt = await sms.send("01712345678", "hi")
    assert receipt.message_id == "31"


@respx.mock
async def test_curly_quoted_rejection_keeps_its_code() -> None:
    respx.get(f"{BASE}/sendtext").respond(
        text='{\u201cStatus\u201d:"5400",\u201cText\u201d:"REJECTD",\u201cMessage_ID\u201d:""}'
    )
    async with make() as sms:
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "hi")
    assert (info.value.kind, info.value.code) == (ErrorKind.ACCESS_DENIED, "5400")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<html><body>Service Unavailable</body></html>",
        "[]",
        '"0"',
        '{"Text": "ACCEPTD"}',
        '{"Status": "zero"}',
        '{"Status": true}',
        '{"Status": 0.5, "Message_ID": "1"}',
        '{"Status": "0", "Text": "ACCEPTD", "Message_ID": ["1"]}',
        '{"Status": "0", "Text": "REJECTD", "Message_ID": "7"}',
    ],
)
@respx.mock
async def test_undocumented_submit_bodies_are_bad_responses(body: str) -> None:
    respx.get(f"{BASE}/sendtext").respond(200, text=body)
    async with make() as sms:
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "hi")
    assert info.value.kind is ErrorKind.BAD_RESPONSE
    assert info.value.may_have_been_sent
    assert info.value.raw == body


@pytest.mark.parametrize(
    "body",
    [
        '{"Status": "0", "Text": "Acceptd"}',
        '{"Status": "0", "Text": "ACCEPTD", "Message_ID": ""}',
        '{"Status": "0", "Text": "ACCEPTD", "Message_ID": null}',
    ],
)
@respx.mock
async def test_accepted_without_an_id_is_a_receipt_without_an_id(body: str) -> None:
    # the submit code table's success row has no Message_ID: the message was taken
    respx.get(f"{BASE}/sendtext").respond(200, text=body)
    async with make() as sms:
        receipt = await sms.send("01712345678", "hi")
    assert (receipt.state, receipt.message_id, receipt.to) == (State.ACCEPTED, "", "8801712345678")
    assert receipt.raw == body


@respx.mock
async def test_unlisted_codes_keep_the_code() -> None:
    route = respx.get(f"{BASE}/sendtext")
    route.side_effect = [
        httpx.Response(200, json={"Status": "777", "Text": "REJECTD"}),
        httpx.Response(200, json={"Status": "778"}),
    ]
    async with make() as sms:
        with pytest.raises(ProviderError) as first:
            await sms.send("01712345678", "hi")
        with pytest.raises(ProviderError) as second:
            await sms.send("01712345678", "hi")
    assert (first.value.kind, first.value.code) == (ErrorKind.REQUEST_REJECTED, "777")
    assert (second.value.kind, second.value.code) == (ErrorKind.BAD_RESPONSE, "778")


@respx.mock
async def test_send_bulk_uses_concurrent_singles_in_order() -> None:
    counter = iter(range(100, 200))

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["toUser"].endswith("9"):
            return httpx.Response(200, json={"Status": "1", "Text": "REJECTD"})
        return httpx.Response(
            200, json={"Status": "0", "Text": "ACCEPTD", "Message_ID": str(next(counter))}
        )

    route = respx.get(f"{BASE}/sendtext").mock(side_effect=answer)
    numbers = ["01712345671", "01712345679", "01712345672"]
    async with make() as sms:
        result = await sms.send_bulk([Message(to=n, text="x") for n in numbers], concurrency=2)
    assert route.call_count == 3
    assert [type(o).__name__ for o in result] == [
        "Receipt",
        "RequestRejectedError",
        "Receipt",
    ]


# -- delivery status ---------------------------------------------------------------------------

DELIVERY_ROWS = [
    ("0", "DELIVRD", State.DELIVERED, True),
    ("2", "PENDING", State.PENDING, False),
    ("4", "SENT", State.SENT, False),
    ("1", "REJECTD", State.REJECTED, True),
]


@pytest.mark.parametrize(("code", "text", "state", "final"), DELIVERY_ROWS)
@respx.mock
async def test_delivery_code_table(code: str, text: str, state: State, final: bool) -> None:
    route = respx.get(f"{BASE}/getstatus").respond(
        json={"Status": code, "Text": text, "Message_ID": "5512", "Delivery Time": "1700000000250"}
    )
    async with make() as sms:
        report = await sms.status("5512")
    assert route.calls.last.request.url.query.decode() == (
        f"apikey={KEY}&secretkey={SECRET}&messageid=5512"
    )
    assert (report.message_id, report.state, report.final) == ("5512", state, final)
    assert report.provider_status == f"{code} {text}"
    assert report.done_at == datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)
    assert report.retries_allowed == 0
    assert report.permanent is (True if state is State.REJECTED else None)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("109", ErrorKind.AUTH),
        ("108", ErrorKind.AUTH),
        ("-42", ErrorKind.AUTH),
        ("101", ErrorKind.PROVIDER_UNAVAILABLE),
    ],
)
@respx.mock
async def test_delivery_error_codes(code: str, kind: ErrorKind) -> None:
    respx.get(f"{BASE}/getstatus").respond(json={"Status": code, "Text": "REJECTD"})
    async with make() as sms:
        with pytest.raises(ProviderError) as info:
            await sms.status("5512")
    assert (info.value.kind, info.value.code) == (kind, code)


@pytest.mark.parametrize("when", [None, "", "soon", "0", "-5", 10**30, True])
@respx.mock
async def test_a_bad_delivery_time_never_costs_the_report(when: object) -> None:
    body: dict[str, object] = {"Status": "0", "Text": "DELIVRD", "Message_ID": "5"}
    if when is not None:
        body["Delivery Time"] = when
    respx.get(f"{BASE}/getstatus").respond(json=body)
    async with make() as sms:
        report = await sms.status("5")
    assert (report.state, report.done_at) == (State.DELIVERED, None)


@respx.mock
async def test_final_status_is_kept_and_answered_again_without_asking() -> None:
    route = respx.get(f"{BASE}/getstatus")
    route.side_effect = [
        httpx.Response(200, json={"Status": "4", "Text": "SENT", "Message_ID": "8"}),
        httpx.Response(200, json={"Status": "0", "Text": "DELIVRD", "Message_ID": "8"}),
        httpx.Response(200, json={"Status": "114", "Text": "REJECTD"}),
    ]
    seen: list[object] = []
    async with make() as sms:
        sms.add_listener(seen.append)
        assert (await sms.status("8")).state is State.SENT
        first = await sms.status("8")
        again = await sms.status(" 8 ")
    assert route.call_count == 2
    assert first.state is State.DELIVERED and again == first
    assert len(seen) == 3


@respx.mock
async def test_114_for_an_id_never_seen_final_is_a_request_rejection() -> None:
    respx.get(f"{BASE}/getstatus").respond(json={"Status": "114", "Text": "REJECTD"})
    async with make() as sms:
        with pytest.raises(RequestRejectedError) as info:
            await sms.status("123")
    assert info.value.code == "114"
    assert "already read" in str(info.value) and "unknown" in str(info.value)


@respx.mock
async def test_concurrent_reads_of_one_id_share_the_single_final_answer() -> None:
    answers = iter(
        [
            httpx.Response(200, json={"Status": "0", "Text": "DELIVRD", "Message_ID": "8"}),
            httpx.Response(200, json={"Status": "114", "Text": "REJECTD"}),
        ]
    )

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return next(answers)

    route = respx.get(f"{BASE}/getstatus").mock(side_effect=slow)
    results: list[State] = []
    async with make() as sms:

        async def read() -> None:
            results.append((await sms.status("8")).state)

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(read)
        assert sms._locks == {}
    assert results == [State.DELIVERED] * 4
    assert route.call_count == 1


@respx.mock
async def test_the_final_report_cache_is_bounded() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        mid = request.url.params["messageid"]
        return httpx.Response(200, json={"Status": "0", "Text": "DELIVRD", "Message_ID": mid})

    route = respx.get(f"{BASE}/getstatus").mock(side_effect=answer)
    async with make(report_cache_size=2) as sms:
        for mid in ("a1", "b2", "a1", "c3", "a1", "b2"):
            await sms.status(mid)
    # a1 stays (recently used); b2 was evicted by c3 and is asked for again
    assert [c.request.url.params["messageid"] for c in route.calls] == ["a1", "b2", "c3", "b2"]


@respx.mock
async def test_unmapped_delivery_code_is_unknown_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    respx.get(f"{BASE}/getstatus").respond(json={"Status": "9", "Text": "ODD"})
    caplog.set_level(logging.WARNING, logger="mimgw")
    async with make() as sms:
        first = await sms.status("1")
        await sms.status("2")
    assert (first.state, first.provider_status) == (State.UNKNOWN, "9 ODD")
    assert first.raw is not None and "ODD" in first.raw
    assert sum("unmapped getstatus code" in r.getMessage() for r in caplog.records) == 1


async def test_status_needs_an_id() -> None:
    with pytest.raises(MimgwError):
        await make().status("  ")


# -- balance -----------------------------------------------------------------------------------


@respx.mock
async def test_balance_reads_the_page_without_credentials() -> None:
    route = respx.get(BALANCE).respond(
        text="  42.500000\r\n", headers={"content-type": "text/html"}
    )
    async with make(client_name="shop bd") as sms:
        balance = await sms.balance()
    request = route.calls.last.request
    assert (request.url.host, request.url.port) == ("sms.dinisoftbd.com", None)
    assert request.url.query.decode() == "client=shop%20bd"
    assert_no_secrets(str(request.url), request.headers)
    assert (balance.amount, balance.currency) == (Decimal("42.500000"), None)


async def test_balance_without_client_name_is_a_configuration_error() -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(BALANCE)
        async with make(client_name=None) as sms:
            with pytest.raises(ConfigurationError, match="client_name"):
                await sms.balance()
    assert not route.called


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "<html><form>login</form></html>"),
        (200, ""),
        (200, "NaN"),
        (200, "1e5"),
        (404, "10.0"),
    ],
)
@respx.mock
async def test_balance_page_that_is_not_a_decimal(status: int, body: str) -> None:
    respx.get("http://balance.example/page.jsp").respond(status, text=body)
    async with make(balance_url="http://balance.example/page.jsp") as sms:
        with pytest.raises(ProviderError) as info:
            await sms.balance()
    assert info.value.kind is ErrorKind.BAD_RESPONSE


# -- secrets and transport ---------------------------------------------------------------------


@respx.mock
async def test_secrets_stay_out_of_logs_errors_and_raw(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    route = respx.get(f"{BASE}/sendtext")
    route.side_effect = [
        httpx.Response(200, text=f'{{"Status":"108","Text":"bad key {SECRET} for {KEY}"}}'),
        httpx.ConnectError(f"cannot reach {BASE}/sendtext?apikey={KEY}&secretkey={SECRET}"),
        httpx.ReadTimeout("read timed out"),
    ]
    errors: list[ProviderError] = []
    async with make() as sms:
        for _ in range(3):
            with pytest.raises(ProviderError) as info:
                await sms.send("01712345678", "hello")
            errors.append(info.value)
    assert [e.kind for e in errors] == [
        ErrorKind.AUTH,
        ErrorKind.CONNECT_FAILED,
        ErrorKind.OUTCOME_UNKNOWN,
    ]
    for error in errors:
        assert_no_secrets(str(error), repr(error), error.raw, error.detail, error.__cause__)
    assert any("sendtext" in r.getMessage() for r in caplog.records)
    assert_no_secrets(caplog.text, *(r.getMessage() for r in caplog.records))


@respx.mock
async def test_proxy_error_page_on_submit_is_outcome_unknown() -> None:
    respx.get(f"{BASE}/sendtext").respond(502, text="<html>Bad Gateway</html>")
    async with make() as sms:
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "hello")
    assert info.value.kind is ErrorKind.OUTCOME_UNKNOWN


async def test_no_webhook_or_schedule() -> None:
    sms = make()
    with pytest.raises(UnsupportedOperationError):
        sms.parse_webhook(b"{}")
    with pytest.raises(UnsupportedOperationError):
        await sms.send("01712345678", "x", send_at=datetime(2030, 1, 1, tzinfo=UTC))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.text(max_size=80),
        st.dictionaries(
            st.sampled_from(["Status", "Text", "Message_ID", "Delivery Time", "x"]),
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
        ).map(lambda d: __import__("json").dumps(d)),
    ),
    status=st.sampled_from([200, 200, 400, 500]),
)
def test_any_body_gives_a_result_or_a_mimgw_error(body: str, status: int) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=body)

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            sms = make(client=client)
            for call in (sms.send("01712345678", "x"), sms.status("1"), sms.balance()):
                try:
                    result = await call
                except MimgwError as exc:
                    assert_no_secrets(str(exc))
                else:
                    assert isinstance(result, Receipt) or result.provider == "dinisoft"

    asyncio.run(run())


async def test_wrong_credentials_error_type() -> None:
    respx_router = respx.mock(assert_all_called=True)
    with respx_router:
        respx_router.get(f"{BASE}/sendtext").respond(json={"Status": "109", "Text": "REJECTD"})
        async with make() as sms:
            with pytest.raises(AuthenticationError):
                await sms.send("01712345678", "hello")
