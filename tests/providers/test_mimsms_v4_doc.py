"""MiMSMS v4 checked against the vendor document, row by row, through the public API only.

Endpoints and exact bodies, GET parameter names, the statusCode map, the operator DLR
table with its retry policy, transaction types, campaign handling, balance forms,
bulk order and chunking, number normalisation, Bangla text and credential hygiene.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from mimgw import (
    AccessDeniedError,
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    ContentRejectedError,
    DeliveryReport,
    ErrorKind,
    InsufficientBalanceError,
    InvalidMessageError,
    Message,
    MimgwError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    Receipt,
    RecipientRejectedError,
    RequestRejectedError,
    SenderRejectedError,
    State,
    UnsupportedOperationError,
)
from mimgw.providers import MimSmsV4

HOST = "https://api.mimsms.com"
API = f"{HOST}/api/SmsSending"
USER = "dispatch@bazaar.example"
KEY = "K7PQ2ZLMN4RT8VWX"
SENDER = "BazaarBD"
CAMPAIGN = "CMP-2024-118"


def make(**kwargs: Any) -> MimSmsV4:
    options: dict[str, Any] = {"username": USER, "api_key": KEY, "sender": SENDER}
    options.update(kwargs)
    return MimSmsV4(**options)


def ok(trxn_id: str = "QW3ER7TY9UI0OPA", result: str = "SMS Send Successfuly") -> dict[str, Any]:
    return {"statusCode": "200", "status": "Success", "trxnId": trxn_id, "responseResult": result}


def fail(code: str | int, result: str, status: str = "Failed") -> dict[str, Any]:
    return {
        "statusCode": code,
        "status": status,
        "trxnId": "ZX8CV6BN4M_C",
        "responseResult": result,
    }


def body_of(call: Any) -> Any:
    return json.loads(call.request.content.decode("utf-8"))


def query_of(call: Any) -> list[tuple[str, str]]:
    return list(call.request.url.params.multi_items())


def no_key(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text), text


# -- endpoints and exact request bodies --------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "01844909020",
        "8801844909020",
        "+8801844909020",
        "008801844909020",
        "01844-909020",
        "+880 1844 909020",
        " 0184 4909 020 ",
    ],
)
@respx.mock
async def test_single_send_posts_the_documented_body(number: str) -> None:
    route = respx.post(f"{API}/SMS").respond(json=ok("1AB2CD3EF4GH5IJ"))
    async with make() as sms:
        receipt = await sms.send(number, "Your parcel is on its way")
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == f"{API}/SMS"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert body_of(route.calls.last) == {
        "UserName": USER,
        "Apikey": KEY,
        "MobileNumber": "8801844909020",
        "CampaignId": "null",
        "SenderName": SENDER,
        "TransactionType": "T",
        "Message": "Your parcel is on its way",
    }
    assert isinstance(receipt, Receipt)
    assert (receipt.message_id, receipt.to, receipt.state) == (
        "1AB2CD3EF4GH5IJ",
        "8801844909020",
        State.ACCEPTED,
    )
    assert receipt.provider == "mimsms_v4"


@respx.mock
async def test_body_field_names_keep_the_documented_casing() -> None:
    route = respx.post(f"{API}/SMS").respond(json=ok())
    async with make() as sms:
        await sms.send("01712345678", "x")
    keys = list(body_of(route.calls.last))
    assert keys == [
        "UserName",
        "Apikey",
        "MobileNumber",
        "CampaignId",
        "SenderName",
        "TransactionType",
        "Message",
    ]


@respx.mock
async def test_credentials_with_stray_spaces_are_sent_trimmed() -> None:
    route = respx.post(f"{API}/SMS").respond(json=ok())
    async with make(username=f" {USER} ", api_key=f" {KEY}") as sms:
        await sms.send("01712345678", "x")
    body = body_of(route.calls.last)
    assert (body["UserName"], body["Apikey"]) == (USER, KEY)


@respx.mock
async def test_sender_per_message_and_sender_with_a_space() -> None:
    route = respx.post(f"{API}/SMS").respond(json=ok())
    async with make(sender="Bazaar Digital") as sms:
        await sms.send("01712345678", "a")
        await sms.send("01712345678", "b", sender="Other Co")
    assert [body_of(c)["SenderName"] for c in route.calls] == ["Bazaar Digital", "Other Co"]


@respx.mock
async def test_a_custom_base_url_keeps_the_documented_paths() -> None:
    route = respx.post("https://sms.internal.example/api/SmsSending/SMS").respond(json=ok())
    async with make(base_url="https://sms.internal.example/") as sms:
        await sms.send("01712345678", "x")
    assert route.call_count == 1


# -- transaction types and campaign ids --------------------------------------------------------


@respx.mock
async def test_promotional_is_p_with_the_campaign_and_transactional_is_t_with_null() -> None:
    route = respx.post(f"{API}/SMS").respond(json=ok())
    async with make(campaign_id=CAMPAIGN) as sms:
        await sms.send("01812345678", "Eid sale: 20% off", category="promotional")
        await sms.send("01812345678", "Your OTP is 5521")
        await sms.send("01812345678", "Your OTP is 5521", category="transactional")
    promo, plain, explicit = (body_of(c) for c in route.calls)
    assert (promo["TransactionType"], promo["CampaignId"]) == ("P", CAMPAIGN)
    assert (plain["TransactionType"], plain["CampaignId"]) == ("T", "null")
    assert (explicit["TransactionType"], explicit["CampaignId"]) == ("T", "null")


async def test_promotional_without_a_campaign_fails_before_any_request() -> None:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        route = router.post(f"{API}/SMS").respond(json=ok())
        async with make() as sms:
            with pytest.raises(MimgwError) as info:
                await sms.send("01812345678", "Sale", category="promotional")
    assert route.call_count == 0
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, InvalidMessageError)
    assert isinstance(info.value, ValueError)
    assert "campaign_id" in str(info.value)


@respx.mock
async def test_bulk_promotional_one_to_many_carries_p_and_the_campaign() -> None:
    route = respx.post(f"{API}/OneToMany").respond(json=ok("PRM1"))
    messages = [
        Message(to=n, text="Flash sale today", category="promotional")
        for n in ("01712345678", "01812345678")
    ]
    async with make(campaign_id=CAMPAIGN) as sms:
        result = await sms.send_bulk(messages)
    body = body_of(route.calls.last)
    assert (body["TransactionType"], body["CampaignId"]) == ("P", CAMPAIGN)
    assert body["MobileNumber"] == "8801712345678,8801812345678"
    assert [r.message_id for r in result.receipts] == ["PRM1", "PRM1"]


async def test_bulk_promotional_without_campaign_fails_each_message_without_a_request() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        messages = [
            Message(to="01712345678", text="Sale", category="promotional"),
            Message(to="01812345678", text="Sale", category="promotional"),
        ]
        async with make() as sms:
            result = await sms.send_bulk(messages)
    assert not router.calls
    assert len(result) == 2
    assert all(isinstance(o, ConfigurationError) for o in result)


# -- one-to-many and dynamic (DSMS) ------------------------------------------------------------


@respx.mock
async def test_same_text_bulk_posts_one_to_many_with_comma_separated_numbers() -> None:
    route = respx.post(f"{API}/OneToMany").respond(json=ok("133585142700000001"))
    numbers = ["01844909020", "+8801712345678", "008801912345678"]
    async with make() as sms:
        result = await sms.send_bulk([Message(to=n, text="Shop closed Friday") for n in numbers])
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert body_of(route.calls.last) == {
        "UserName": USER,
        "Apikey": KEY,
        "MobileNumber": "8801844909020,8801712345678,8801912345678",
        "CampaignId": "null",
        "SenderName": SENDER,
        "TransactionType": "T",
        "Message": "Shop closed Friday",
    }
    assert [r.message_id for r in result.receipts] == ["133585142700000001"] * 3
    assert [r.to for r in result.receipts] == [
        "8801844909020",
        "8801712345678",
        "8801912345678",
    ]


@respx.mock
async def test_personalised_bulk_posts_dsms_with_smsdata() -> None:
    route = respx.post(f"{API}/DSMS").respond(json=ok("ZICU7TMXV9B6ZG8_C28"))
    messages = [
        Message(to="01844909020", text="Hello Karim, your order 17 shipped"),
        Message(to="01844909021", text="Hello Nasrin, your order 18 shipped"),
        Message(to="01712345678", text="Hello Tanvir, your order 19 shipped"),
    ]
    async with make(campaign_id=CAMPAIGN) as sms:
        result = await sms.send_bulk(messages)
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert body_of(route.calls.last) == {
        "UserName": USER,
        "Apikey": KEY,
        "SenderName": SENDER,
        "TransactionType": "D",
        "SmsData": [
            {"MobNumber": "8801844909020", "Message": "Hello Karim, your order 17 shipped"},
            {"MobNumber": "8801844909021", "Message": "Hello Nasrin, your order 18 shipped"},
            {"MobNumber": "8801712345678", "Message": "Hello Tanvir, your order 19 shipped"},
        ],
    }
    assert result.ok
    assert [(r.message_id, r.to) for r in result.receipts] == [
        ("ZICU7TMXV9B6ZG8_C28", "8801844909020"),
        ("ZICU7TMXV9B6ZG8_C28", "8801844909021"),
        ("ZICU7TMXV9B6ZG8_C28", "8801712345678"),
    ]


@respx.mock
async def test_single_message_bulk_uses_the_single_endpoint() -> None:
    single = respx.post(f"{API}/SMS").respond(json=ok("ONE1"))
    async with make() as sms:
        result = await sms.send_bulk([Message(to="01712345678", text="only one")])
    assert single.call_count == 1
    assert [r.message_id for r in result.receipts] == ["ONE1"]


async def test_empty_bulk_makes_no_request() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        async with make() as sms:
            result = await sms.send_bulk([])
    assert len(result) == 0 and not router.calls


@respx.mock
async def test_bulk_keeps_input_order_with_invalid_and_failed_messages_in_place() -> None:
    def dsms(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=fail("206", "Invalid Mobile Number"))

    many = respx.post(f"{API}/OneToMany").respond(json=ok("GRP"))
    dynamic = respx.post(f"{API}/DSMS").mock(side_effect=dsms)
    messages = [
        Message(to="01712345678", text="Same for all"),
        Message(to="01812345678", text="Personal A"),
        Message(to="01912345678", text="Same for all"),
        Message(to="01612345678", text="Personal B"),
        Message(to="01512345678", text="Same for all"),
    ]
    async with make() as sms:
        result = await sms.send_bulk(messages)
    assert many.call_count == 1 and dynamic.call_count == 1
    outcomes = list(result)
    assert len(outcomes) == len(messages)
    assert [type(o).__name__ for o in outcomes] == [
        "Receipt",
        "RecipientRejectedError",
        "Receipt",
        "RecipientRejectedError",
        "Receipt",
    ]
    assert [m.to for m, _ in result.items()] == [m.to for m in messages]
    receipts = [o for o in outcomes if isinstance(o, Receipt)]
    assert [r.to for r in receipts] == ["8801712345678", "8801912345678", "8801512345678"]


def test_an_invalid_number_is_refused_before_any_request() -> None:
    with pytest.raises(InvalidMessageError):
        Message(to="12345", text="x")


async def test_send_with_an_invalid_number_makes_no_request() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        async with make() as sms:
            for bad in ("12345", "01212345678", "8801712345678,8801812345678", ""):
                with pytest.raises(InvalidMessageError):
                    await sms.send(bad, "x")
    assert not router.calls


@pytest.mark.parametrize(("count", "sizes"), [(100, [100]), (101, [100, 1]), (250, [100, 100, 50])])
@respx.mock
async def test_one_to_many_is_chunked_to_max_batch(count: int, sizes: list[int]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        numbers = json.loads(request.content)["MobileNumber"].split(",")
        return httpx.Response(200, json=ok(f"T{numbers[0][-4:]}"))

    route = respx.post(f"{API}/OneToMany").mock(side_effect=answer)
    messages = [Message(to=f"0171{i:07d}", text="Same text") for i in range(count)]
    async with make() as sms:
        assert sms.capabilities.max_batch == 100
        result = await sms.send_bulk(messages, concurrency=3)
    bodies = [body_of(c) for c in route.calls]
    assert sorted((len(b["MobileNumber"].split(",")) for b in bodies), reverse=True) == sizes
    sent = sorted(n for b in bodies for n in b["MobileNumber"].split(","))
    assert sent == sorted(m.to for m in messages)
    assert result.ok and len(result) == count
    # every receipt carries the id of the request its number travelled in
    assert [r.to for r in result.receipts] == [m.to for m in messages]
    for start in range(0, count, 100):
        chunk = result.receipts[start : start + 100]
        assert {r.message_id for r in chunk} == {f"T{chunk[0].to[-4:]}"}


@respx.mock
async def test_dsms_is_chunked_to_max_batch() -> None:
    route = respx.post(f"{API}/DSMS").respond(json=ok("DYN"))
    messages = [Message(to=f"0181{i:07d}", text=f"Hi number {i}") for i in range(205)]
    async with make() as sms:
        result = await sms.send_bulk(messages)
    sizes = sorted((len(body_of(c)["SmsData"]) for c in route.calls), reverse=True)
    assert sizes == [100, 100, 5]
    assert result.ok and len(result) == 205
    sent = [row for c in route.calls for row in body_of(c)["SmsData"]]
    assert sorted((r["MobNumber"], r["Message"]) for r in sent) == sorted(
        (m.to, m.text) for m in messages
    )


# -- Bangla ------------------------------------------------------------------------------------

BANGLA = "আপনার অর্ডার পাঠানো হয়েছে"


@respx.mock
async def test_bangla_goes_out_as_utf8_in_every_json_body() -> None:
    single = respx.post(f"{API}/SMS").respond(json=ok())
    many = respx.post(f"{API}/OneToMany").respond(json=ok())
    dsms = respx.post(f"{API}/DSMS").respond(json=ok())
    async with make() as sms:
        receipt = await sms.send("01712345678", BANGLA)
        await sms.send_bulk([Message(to=n, text=BANGLA) for n in ("01712345678", "01812345678")])
        await sms.send_bulk(
            [Message(to="01712345678", text=BANGLA + " ১"), Message(to="01812345678", text="২")]
        )
    assert body_of(single.calls.last)["Message"] == BANGLA
    assert body_of(many.calls.last)["Message"] == BANGLA
    assert [r["Message"] for r in body_of(dsms.calls.last)["SmsData"]] == [BANGLA + " ১", "২"]
    for route in (single, many, dsms):
        content = route.calls.last.request.content
        assert b"\\u09" not in content  # real UTF-8, not \u escapes
    assert BANGLA.encode("utf-8") in single.calls.last.request.content
    assert (receipt.encoding, receipt.segments) == ("ucs2", 1)


@respx.mock
async def test_long_bangla_counts_ucs2_segments() -> None:
    respx.post(f"{API}/SMS").respond(json=ok())
    text = "ধন্যবাদ " * 20  # 160 UCS-2 characters: 3 segments of 67
    async with make() as sms:
        receipt = await sms.send("01712345678", text)
    assert (receipt.encoding, receipt.segments) == ("ucs2", 3)


# -- balance -----------------------------------------------------------------------------------


@respx.mock
async def test_balance_posts_the_documented_body() -> None:
    route = respx.post(f"{API}/Balance").respond(
        json={"statusCode": "200", "status": "Ok", "trxnId": "", "responseResult": "999.54"}
    )
    async with make() as sms:
        balance = await sms.balance()
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert body_of(route.calls.last) == {"UserName": USER, "Apikey": KEY}
    assert isinstance(balance.amount, Decimal)
    assert balance.amount == Decimal("999.54")
    assert str(balance.amount) == "999.54"
    assert (balance.provider, balance.currency) == ("mimsms_v4", None)


@pytest.mark.parametrize(
    ("value", "amount"),
    [
        ("999.54", "999.54"),
        ("999.08", "999.08"),
        ("0", "0"),
        ("0.00", "0.00"),
        (" 12.50 ", "12.50"),
        ("1,234.50", "1234.50"),
        ("-3.25", "-3.25"),
        (999.54, "999.54"),
        (1000, "1000"),
        (0, "0"),
    ],
)
@respx.mock
async def test_balance_forms_are_exact_decimals(value: object, amount: str) -> None:
    respx.post(f"{API}/Balance").respond(
        json={"statusCode": 200, "status": "Ok", "responseResult": value}
    )
    async with make() as sms:
        balance = await sms.balance()
    assert balance.amount == Decimal(amount)
    assert isinstance(balance.amount, Decimal)


@respx.mock
async def test_balance_query_form_uses_balancecheck_with_lowercase_username() -> None:
    route = respx.get(f"{API}/balanceCheck").respond(
        json={"statusCode": "200", "status": "Ok", "responseResult": "999.08"}
    )
    async with make(method="query") as sms:
        balance = await sms.balance()
    call = route.calls.last
    assert call.request.method == "GET" and call.request.content == b""
    assert query_of(call) == [("userName", USER), ("Apikey", KEY)]
    assert balance.amount == Decimal("999.08")


@respx.mock
async def test_balance_error_codes_are_mapped_too() -> None:
    respx.post(f"{API}/Balance").respond(json=fail("401", "Invalid UserName & Password"))
    async with make() as sms:
        with pytest.raises(AuthenticationError) as info:
            await sms.balance()
    assert info.value.code == "401"


# -- GET query variants ------------------------------------------------------------------------


@respx.mock
async def test_get_send_uses_the_documented_parameter_names() -> None:
    route = respx.get(f"{API}/Send").respond(
        json={
            "statusCode": "200",
            "status": "Success",
            "responseResult": "SMS Send Successfuly",
            "trxnId": "J4Y3RQ6Z5QIL7H2",
        }
    )
    async with make(method="query") as sms:
        receipt = await sms.send("01844909020", "Test message here")
    call = route.calls.last
    assert call.request.method == "GET" and call.request.content == b""
    assert query_of(call) == [
        ("UserName", USER),
        ("Apikey", KEY),
        ("MobileNumber", "8801844909020"),
        ("SenderName", SENDER),
        ("TransactionType", "T"),
        ("Message", "Test message here"),
    ]
    assert "Message=Test%20message%20here" in call.request.url.query.decode()
    assert receipt.message_id == "J4Y3RQ6Z5QIL7H2"


@respx.mock
async def test_get_send_one_to_many_uses_the_documented_parameter_names() -> None:
    route = respx.get(f"{API}/SendOneToMany").respond(json=ok("J4Y3RQ6Z5QIL7H2"))
    messages = [Message(to=n, text="One to many check") for n in ("01844909020", "01713000000")]
    async with make(method="query") as sms:
        result = await sms.send_bulk(messages)
    call = route.calls.last
    assert call.request.method == "GET"
    assert query_of(call) == [
        ("UserName", USER),
        ("Apikey", KEY),
        ("MobileNumber", "8801844909020,8801713000000"),
        ("CampaignId", "null"),
        ("SenderName", SENDER),
        ("TransactionType", "T"),
        ("Message", "One to many check"),
    ]
    assert "MobileNumber=8801844909020,8801713000000" in call.request.url.query.decode()
    assert [r.message_id for r in result.receipts] == ["J4Y3RQ6Z5QIL7H2"] * 2


@respx.mock
async def test_get_bangla_is_percent_encoded_utf8() -> None:
    route = respx.get(f"{API}/Send").respond(json=ok())
    async with make(method="query") as sms:
        await sms.send("01712345678", BANGLA)
    assert dict(query_of(route.calls.last))["Message"] == BANGLA
    assert "+" not in route.calls.last.request.url.query.decode()


# -- the statusCode map ------------------------------------------------------------------------

CODE_ROWS = [
    ("401", "IP Black List", AccessDeniedError, ErrorKind.ACCESS_DENIED, False, True),
    (
        "401",
        "Invalid UserName & Password",
        AuthenticationError,
        ErrorKind.AUTH,
        False,
        True,
    ),
    ("208", "Invalid Sender ID", SenderRejectedError, ErrorKind.SENDER_REJECTED, False, True),
    (
        "205",
        "Invalid Message Content",
        ContentRejectedError,
        ErrorKind.CONTENT_REJECTED,
        False,
        False,
    ),
    (
        "206",
        "Invalid Mobile Number",
        RecipientRejectedError,
        ErrorKind.RECIPIENT_REJECTED,
        False,
        False,
    ),
    (
        "209",
        "SMS Length cross the Max level",
        ContentRejectedError,
        ErrorKind.CONTENT_REJECTED,
        False,
        False,
    ),
    (
        "221",
        "SMS Sending Failed",
        ProviderUnavailableError,
        ErrorKind.PROVIDER_UNAVAILABLE,
        True,
        True,
    ),
    (
        "500",
        "Internal Server Error",
        ProviderUnavailableError,
        ErrorKind.PROVIDER_UNAVAILABLE,
        True,
        True,
    ),
    (
        "213",
        "Parameter Mismatch",
        RequestRejectedError,
        ErrorKind.REQUEST_REJECTED,
        False,
        False,
    ),
    (
        "216",
        "Insufficient Balance",
        InsufficientBalanceError,
        ErrorKind.INSUFFICIENT_BALANCE,
        False,
        True,
    ),
    ("210", "Invalid CampaignId", RequestRejectedError, ErrorKind.REQUEST_REJECTED, False, False),
]


@pytest.mark.parametrize(
    ("code", "result", "error_type", "kind", "retryable", "failover"), CODE_ROWS
)
@pytest.mark.parametrize("http_status", [200, 400, 500])
@pytest.mark.parametrize("code_as_int", [False, True])
@respx.mock
async def test_every_code_map_row_on_send(
    code: str,
    result: str,
    error_type: type[ProviderError],
    kind: ErrorKind,
    retryable: bool,
    failover: bool,
    http_status: int,
    code_as_int: bool,
) -> None:
    status_word = "UNAUTHORIZED" if code == "401" else "Failed"
    respx.post(f"{API}/SMS").respond(
        http_status, json=fail(int(code) if code_as_int else code, result, status_word)
    )
    async with make() as sms:
        with pytest.raises(error_type) as info:
            await sms.send("01712345678", "hello")
    error = info.value
    assert type(error) is error_type
    assert (error.kind, error.code, error.provider) == (kind, code, "mimsms_v4")
    assert (error.retryable, error.failover) == (retryable, failover)
    assert error.raw is not None and result in error.raw
    assert result in str(error)


@pytest.mark.parametrize(("code", "result", "error_type", "kind", "_r", "_f"), CODE_ROWS)
@respx.mock
async def test_every_code_map_row_fails_every_message_of_a_batch(
    code: str, result: str, error_type: type[ProviderError], kind: ErrorKind, _r: bool, _f: bool
) -> None:
    respx.post(f"{API}/OneToMany").respond(json=fail(code, result))
    respx.post(f"{API}/DSMS").respond(json=fail(code, result))
    messages = [
        Message(to="01712345678", text="same"),
        Message(to="01812345678", text="own text 1"),
        Message(to="01912345678", text="same"),
        Message(to="01612345678", text="own text 2"),
    ]
    async with make() as sms:
        result_ = await sms.send_bulk(messages)
    assert len(result_) == 4
    for outcome in result_:
        assert isinstance(outcome, error_type)
        assert (outcome.kind, outcome.code) == (kind, code)


@pytest.mark.parametrize(("code", "result", "error_type", "kind", "_r", "_f"), CODE_ROWS)
@respx.mock
async def test_every_code_map_row_on_balance(
    code: str, result: str, error_type: type[ProviderError], kind: ErrorKind, _r: bool, _f: bool
) -> None:
    respx.post(f"{API}/Balance").respond(json=fail(code, result))
    async with make() as sms:
        with pytest.raises(error_type) as info:
            await sms.balance()
    assert (info.value.kind, info.value.code) == (kind, code)


@respx.mock
async def test_the_documented_error_object_is_an_error_despite_its_trxnid() -> None:
    respx.post(f"{API}/SMS").respond(
        json={
            "statusCode": "208",
            "status": "Failed",
            "trxnId": "KC5EBJ9XG0HKJY5_C",
            "responseResult": "Invalid Sender ID",
        }
    )
    async with make() as sms:
        with pytest.raises(SenderRejectedError) as info:
            await sms.send("01712345678", "hello")
    assert info.value.code == "208"
    assert not info.value.may_have_been_sent


@pytest.mark.parametrize(
    ("status_word", "result", "error_type"),
    [
        ("UNAUTHORIZED", "IP BLACK LIST", AccessDeniedError),
        ("Unauthorized", "  ip black list  ", AccessDeniedError),
        ("IP Black List", "", AccessDeniedError),
        ("Unauthorized", "Invalid UserName & Password", AuthenticationError),
        ("Unauthorized", "invalid username & password", AuthenticationError),
        ("Unauthorized", "", AuthenticationError),
    ],
)
@respx.mock
async def test_the_two_401_rows(
    status_word: str, result: str, error_type: type[ProviderError]
) -> None:
    respx.post(f"{API}/SMS").respond(json=fail("401", result, status_word))
    async with make() as sms:
        with pytest.raises(error_type) as info:
            await sms.send("01712345678", "hello")
    assert info.value.code == "401"
    if error_type is AccessDeniedError:
        assert "account manager" in info.value.detail


@respx.mock
async def test_216_detail_says_to_recharge() -> None:
    respx.post(f"{API}/SMS").respond(json=fail("216", "Insufficient Balance"))
    async with make() as sms:
        with pytest.raises(InsufficientBalanceError) as info:
            await sms.send("01712345678", "hello")
    assert "recharge" in info.value.detail.lower()


# -- the body's statusCode decides, not the HTTP status ----------------------------------------


@pytest.mark.parametrize("http_status", [200, 201, 202, 400, 401, 403, 404, 429, 500, 502, 503])
@pytest.mark.parametrize("code", ["200", 200])
@respx.mock
async def test_statuscode_200_is_success_whatever_the_http_status(
    http_status: int, code: str | int
) -> None:
    respx.post(f"{API}/SMS").respond(
        http_status, json={"statusCode": code, "status": "Success", "trxnId": "BODYWINS"}
    )
    respx.post(f"{API}/Balance").respond(
        http_status, json={"statusCode": code, "status": "Ok", "responseResult": "5.5"}
    )
    async with make() as sms:
        assert (await sms.send("01712345678", "x")).message_id == "BODYWINS"
        assert (await sms.balance()).amount == Decimal("5.5")


@pytest.mark.parametrize("http_status", [200, 429, 503])
@respx.mock
async def test_a_documented_error_code_wins_over_the_http_status(http_status: int) -> None:
    respx.post(f"{API}/SMS").respond(http_status, json=fail("216", "Insufficient Balance"))
    async with make() as sms:
        with pytest.raises(InsufficientBalanceError):
            await sms.send("01712345678", "x")


@respx.mock
async def test_a_bare_429_is_still_rate_limited() -> None:
    respx.post(f"{API}/SMS").respond(429, text="Too Many Requests", headers={"Retry-After": "3"})
    async with make() as sms:
        with pytest.raises(RateLimitedError) as info:
            await sms.send("01712345678", "x")
    assert info.value.retry_after == 3.0


@respx.mock
async def test_status_word_does_not_override_statuscode() -> None:
    respx.post(f"{API}/SMS").respond(
        json={"statusCode": "200", "status": "Failed", "trxnId": "T1", "responseResult": ""}
    )
    async with make() as sms:
        assert (await sms.send("01712345678", "x")).message_id == "T1"
    respx.post(f"{API}/Balance").respond(json=fail("216", "Insufficient Balance", "Ok"))
    async with make() as sms:
        with pytest.raises(InsufficientBalanceError):
            await sms.balance()


@respx.mock
async def test_unknown_code_is_bad_response_with_code_kept() -> None:
    respx.post(f"{API}/SMS").respond(json=fail("777", "New thing"))
    async with make() as sms:
        with pytest.raises(BadResponseError) as info:
            await sms.send("01712345678", "x")
    assert info.value.code == "777"


# -- the operator DLR table --------------------------------------------------------------------

SENDER_BLOCK = "Sender ID Block by operators for Illegal SMS Traffic"
LINK_FAILURE = "Network failure in SMSC Link"

DLR = [
    # name, description, state, permanent, retries_allowed
    ("Delivered", "Delivered in Handset", State.DELIVERED, False, 0),
    ("Absent subscriber for SM", None, State.UNDELIVERABLE, False, 3),
    ("Undelivered", None, State.UNDELIVERABLE, True, 0),
    ("Subscriber Busy", None, State.UNDELIVERABLE, False, 3),
    ("Unidentified subscriber", None, State.UNDELIVERABLE, True, 0),
    ("Barred subscriber", None, State.UNDELIVERABLE, True, 0),
    ("Illegal subscriber", SENDER_BLOCK, State.REJECTED, True, 0),
    ("SMS Failed", SENDER_BLOCK, State.REJECTED, True, 0),
    (
        "System failure",
        "Rejection due to SS7 protocol or network failure",
        State.UNDELIVERABLE,
        False,
        3,
    ),
    ("SMS Failed", LINK_FAILURE, State.UNDELIVERABLE, False, 3),
    ("SMSC Timeout-abort", "SMSC timeout", State.UNDELIVERABLE, False, 3),
]


def _variants(text: str) -> list[str]:
    return [text, text.upper(), text.lower(), f"  {text}\t", f"\n{text.title()} "]


@pytest.mark.parametrize(("name", "description", "state", "permanent", "retries"), DLR)
@pytest.mark.parametrize("variant", range(5))
def test_every_dlr_row_with_odd_casing_and_spacing(
    name: str,
    description: str | None,
    state: State,
    permanent: bool,
    retries: int,
    variant: int,
) -> None:
    status = _variants(name)[variant]
    desc = None if description is None else _variants(description)[variant]
    report = make().parse_dlr("TRX-77", status, desc)
    assert isinstance(report, DeliveryReport)
    assert report.state is state
    assert report.permanent is permanent
    assert report.retries_allowed == retries
    assert report.reason
    assert report.message_id == "TRX-77"
    assert report.provider == "mimsms_v4"
    assert report.provider_status == status.strip()
    assert report.final


@pytest.mark.parametrize(
    ("name", "description", "state", "permanent", "retries"),
    [row for row in DLR if row[0] != "SMS Failed"],  # those two need their description
)
def test_dlr_rows_other_than_sms_failed_need_no_description(
    name: str, description: str | None, state: State, permanent: bool, retries: int
) -> None:
    report = make().parse_dlr("1", name)
    assert (report.state, report.permanent, report.retries_allowed) == (state, permanent, retries)


def test_the_two_sms_failed_rows_are_distinct() -> None:
    sms = make()
    blocked = sms.parse_dlr("1", "SMS Failed", SENDER_BLOCK)
    link = sms.parse_dlr("1", "SMS Failed", LINK_FAILURE)
    assert (blocked.state, blocked.permanent, blocked.retries_allowed) == (
        State.REJECTED,
        True,
        0,
    )
    assert (link.state, link.permanent, link.retries_allowed) == (State.UNDELIVERABLE, False, 3)
    assert blocked.reason != link.reason


@pytest.mark.parametrize(
    ("status", "state", "retries"),
    [
        (f"SMS Failed - {SENDER_BLOCK}", State.REJECTED, 0),
        (f"SMS Failed: {LINK_FAILURE}", State.UNDELIVERABLE, 3),
        ("sms_failed", State.UNDELIVERABLE, 0),
        ("SMSFailed", State.UNDELIVERABLE, 0),
    ],
)
def test_sms_failed_with_the_description_in_the_name(
    status: str, state: State, retries: int
) -> None:
    report = make().parse_dlr("1", status)
    assert (report.state, report.retries_allowed) == (state, retries)


def test_sms_failed_without_a_description_is_not_resent() -> None:
    report = make().parse_dlr("1", "SMS Failed")
    assert (report.state, report.retries_allowed, report.permanent) == (
        State.UNDELIVERABLE,
        0,
        None,
    )


def test_undelivered_is_not_confused_with_delivered() -> None:
    sms = make()
    assert sms.parse_dlr("1", "UNDELIVERED").state is State.UNDELIVERABLE
    assert sms.parse_dlr("1", "delivered").state is State.DELIVERED


def test_unknown_dlr_name_is_unknown_with_the_name_kept() -> None:
    report = make().parse_dlr("1", "  Teleported  ")
    assert (report.state, report.provider_status, report.retries_allowed) == (
        State.UNKNOWN,
        "Teleported",
        0,
    )
    assert report.permanent is None


def test_parse_dlr_is_a_plain_function_and_fills_to() -> None:
    report = make().parse_dlr("1", "Delivered", to="+880 1712-345678")
    assert not hasattr(report, "__await__")
    assert report.to == "8801712345678"


def test_dlr_retry_policy_is_what_the_table_says() -> None:
    sms = make()
    three = ["Absent subscriber for SM", "Subscriber Busy", "System failure", "SMSC Timeout-abort"]
    zero = [
        "Delivered",
        "Undelivered",
        "Unidentified subscriber",
        "Barred subscriber",
        "Illegal subscriber",
    ]
    assert {sms.parse_dlr("1", n).retries_allowed for n in three} == {3}
    assert {sms.parse_dlr("1", n).retries_allowed for n in zero} == {0}


# -- capabilities and unsupported calls --------------------------------------------------------


async def test_status_is_unsupported_and_sends_nothing() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        async with make() as sms:
            assert not sms.capabilities.status
            assert sms.capabilities.parse_dlr and sms.capabilities.batch
            assert sms.capabilities.balance and sms.capabilities.send
            with pytest.raises(UnsupportedOperationError):
                await sms.status("1OSY3FSZ7H4IHOU")
    assert not router.calls


async def test_scheduled_send_is_unsupported_before_any_request() -> None:
    from datetime import UTC, datetime, timedelta

    with respx.mock(assert_all_mocked=True) as router:
        async with make() as sms:
            with pytest.raises(UnsupportedOperationError):
                await sms.send("01712345678", "x", send_at=datetime.now(UTC) + timedelta(hours=1))
    assert not router.calls


# -- credentials -------------------------------------------------------------------------------


async def test_the_api_key_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "mimgw"):
        caplog.set_level(logging.DEBUG, logger=name)
    texts: list[object] = []
    with respx.mock:
        respx.post(f"{API}/SMS").mock(
            side_effect=[
                httpx.Response(200, json={**ok(), "responseResult": f"sent with {KEY}"}),
                httpx.Response(200, json=fail("401", f"Invalid UserName & Password {KEY}")),
                httpx.Response(200, text=f"not json {KEY}"),
                httpx.ConnectError(f"refused {KEY}"),
            ]
        )
        respx.post(f"{API}/Balance").respond(
            json={"statusCode": "200", "status": "Ok", "responseResult": "1.00", "k": KEY}
        )
        respx.get(f"{API}/Send").mock(side_effect=httpx.ReadTimeout(f"{API}/Send?Apikey={KEY}"))
        async with make(api_key=SecretStr(KEY)) as sms:
            receipt = await sms.send("01712345678", "x")
            texts += [receipt.raw, repr(receipt), receipt.model_dump_json()]
            for _ in range(3):
                with pytest.raises(MimgwError) as info:
                    await sms.send("01712345678", "x")
                texts += [str(info.value), repr(info.value), getattr(info.value, "raw", None)]
                texts += [str(info.value.__cause__), repr(info.value.__cause__)]
            balance = await sms.balance()
            texts += [balance.raw, repr(balance)]
            texts += [repr(sms), str(sms)]
            report = sms.parse_dlr("1", "Delivered")
            texts += [report.raw, repr(report)]
        async with make(api_key=KEY, method="query") as sms:
            with pytest.raises(MimgwError) as info:
                await sms.send("01712345678", "x")
            texts += [str(info.value), repr(info.value), info.value.__cause__]
            texts += [repr(sms)]
    texts += [r.getMessage() for r in caplog.records]
    no_key(*texts, caplog.text)
