"""MiMSMS v4: wire format of every endpoint, the code map, the DLR table, bulk, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mimgw import (
    AccessDeniedError,
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    ConnectFailedError,
    ContentRejectedError,
    ErrorKind,
    InsufficientBalanceError,
    Message,
    MimgwError,
    OutcomeUnknownError,
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
from mimgw.providers.mimsms_v4 import MimSmsV4

USER = "ops@shop.example"
KEY = "v4-key-Zq81xW"
BASE = "https://api.mimsms.com/api/SmsSending"
OK = {"statusCode": "200", "status": "Success", "trxnId": "TRX0001", "responseResult": "sent"}


def make(**kwargs: Any) -> MimSmsV4:
    options: dict[str, Any] = {"username": USER, "api_key": KEY, "sender": "ShopBD"}
    options.update(kwargs)
    return MimSmsV4(**options)


def failed(code: str | int, result: str) -> dict[str, Any]:
    return {"statusCode": code, "status": "Failed", "trxnId": "", "responseResult": result}


def sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content.decode("utf-8"))


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["username", "api_key"])
@pytest.mark.parametrize("value", ["", "  ", None, SecretStr("")])
def test_missing_credentials_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        make(**{field: value})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"method": "xml"}, "method"), ({"campaign_id": " "}, "campaign_id")],
)
def test_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        make(**kwargs)


def test_secretstr_key_and_repr() -> None:
    provider = make(api_key=SecretStr(KEY))
    assert_no_secret(repr(provider), str(provider))
    assert provider.base_url == "https://api.mimsms.com"
    assert provider.method == "json"


def test_capabilities() -> None:
    caps = MimSmsV4.capabilities
    assert (caps.send, caps.batch, caps.balance, caps.parse_dlr) == (True, True, True, True)
    assert (caps.status, caps.reports, caps.webhook, caps.schedule) == (False,) * 4
    assert caps.max_batch == MimSmsV4.batch_size == 100
    assert "delivery-status" in caps.notes


async def test_status_is_unsupported_without_a_request() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        async with make() as sms:
            with pytest.raises(UnsupportedOperationError, match="delivery-status"):
                await sms.status("TRX0001")
    assert not router.calls


# -- wire format: JSON method ------------------------------------------------------------------


@respx.mock
async def test_single_send_json_wire_format() -> None:
    route = respx.post(f"{BASE}/SMS").respond(json=OK)
    async with make() as sms:
        receipt = await sms.send("01812-345678", "Order 81 shipped", reference="ref-1")
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/SMS"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert sent_json(route) == {
        "UserName": USER,
        "Apikey": KEY,
        "MobileNumber": "8801812345678",
        "CampaignId": "null",
        "SenderName": "ShopBD",
        "TransactionType": "T",
        "Message": "Order 81 shipped",
    }
    assert (receipt.message_id, receipt.to, receipt.reference) == (
        "TRX0001",
        "8801812345678",
        "ref-1",
    )
    assert (receipt.state, receipt.segments, receipt.encoding) == (State.ACCEPTED, 1, "gsm7")
    assert receipt.raw is not None and "TRX0001" in receipt.raw


@respx.mock
async def test_promotional_send_carries_the_campaign() -> None:
    route = respx.post(f"{BASE}/SMS").respond(json=OK)
    async with make(campaign_id="CMP-77") as sms:
        await sms.send("01712345678", "Eid offer", sender="Other", category="promotional")
        await sms.send("01712345678", "Your OTP is 4411")
    promo, plain = sent_json(route, 0), sent_json(route, 1)
    assert (promo["TransactionType"], promo["CampaignId"], promo["SenderName"]) == (
        "P",
        "CMP-77",
        "Other",
    )
    assert (plain["TransactionType"], plain["CampaignId"]) == ("T", "null")


async def test_promotional_without_campaign_is_refused_before_any_request() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        async with make() as sms:
            with pytest.raises(ConfigurationError, match="campaign_id"):
                await sms.send("01712345678", "Sale", category="promotional")
    assert not router.calls


@respx.mock
async def test_bangla_text_is_sent_as_utf8_and_counted_as_ucs2() -> None:
    text = "আপনার অর্ডার পাঠানো হয়েছে। ধন্যবাদ! " * 3
    route = respx.post(f"{BASE}/SMS").respond(json=OK)
    async with make() as sms:
        receipt = await sms.send("01712345678", text)
    content = route.calls.last.request.content
    assert text.encode("utf-8") in content  # not \u-escaped
    assert sent_json(route)["Message"] == text
    assert (receipt.encoding, receipt.segments) == ("ucs2", 2)


@respx.mock
async def test_balance_json_wire_format() -> None:
    route = respx.post(f"{BASE}/Balance").respond(
        json={"statusCode": "200", "status": "Ok", "trxnId": "", "responseResult": "812.40"}
    )
    async with make() as sms:
        balance = await sms.balance()
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert sent_json(route) == {"UserName": USER, "Apikey": KEY}
    assert (balance.amount, balance.currency, balance.provider) == (
        Decimal("812.40"),
        None,
        "mimsms_v4",
    )


@pytest.mark.parametrize(("value", "amount"), [(" 17.5 ", "17.5"), (250, "250"), (3.25, "3.25")])
@respx.mock
async def test_balance_value_forms(value: object, amount: str) -> None:
    respx.post(f"{BASE}/Balance").respond(json={"statusCode": 200, "responseResult": value})
    async with make() as sms:
        assert (await sms.balance()).amount == Decimal(amount)


# -- wire format: query method -----------------------------------------------------------------


@respx.mock
async def test_single_send_query_wire_format() -> None:
    route = respx.get(f"{BASE}/Send").respond(json=OK)
    async with make(method="query") as sms:
        receipt = await sms.send("01712345678", "Hello there, pay 5%")
    request = route.calls.last.request
    assert request.method == "GET"
    assert request.content == b""
    assert request.url.query.decode() == (
        "UserName=ops%40shop.example&Apikey=v4-key-Zq81xW&MobileNumber=8801712345678"
        "&SenderName=ShopBD&TransactionType=T&Message=Hello%20there,%20pay%205%25"
    )
    assert request.headers["accept"] == "application/json"
    assert receipt.message_id == "TRX0001"


@respx.mock
async def test_promotional_query_send_carries_the_campaign() -> None:
    route = respx.get(f"{BASE}/Send").respond(json=OK)
    async with make(method="query", campaign_id="CMP 9") as sms:
        await sms.send("01712345678", "Sale", category="promotional")
    assert route.calls.last.request.url.query.decode() == (
        "UserName=ops%40shop.example&Apikey=v4-key-Zq81xW&MobileNumber=8801712345678"
        "&CampaignId=CMP%209&SenderName=ShopBD&TransactionType=P&Message=Sale"
    )


@respx.mock
async def test_one_to_many_query_wire_format_and_personalised_singles() -> None:
    many = respx.get(f"{BASE}/SendOneToMany").respond(json=OK)
    single = respx.get(f"{BASE}/Send").respond(json={**OK, "trxnId": "ONE"})
    messages = [
        Message(to="01712345678", text="Store opens at 9"),
        Message(to="01812345678", text="Store opens at 9"),
        Message(to="01912345678", text="Hi Rana"),
    ]
    async with make(method="query") as sms:
        result = await sms.send_bulk(messages)
    assert many.call_count == 1
    assert many.calls.last.request.url.query.decode() == (
        "UserName=ops%40shop.example&Apikey=v4-key-Zq81xW"
        "&MobileNumber=8801712345678,8801812345678&CampaignId=null&SenderName=ShopBD"
        "&TransactionType=T&Message=Store%20opens%20at%209"
    )
    assert single.call_count == 1  # no GET form of DSMS: personalised texts go one by one
    assert [r.message_id for r in result.receipts] == ["TRX0001", "TRX0001", "ONE"]


@respx.mock
async def test_balance_query_uses_the_documented_lowercase_username() -> None:
    route = respx.get(f"{BASE}/balanceCheck").respond(
        json={"statusCode": "200", "status": "Ok", "responseResult": "99.08"}
    )
    async with make(method="query") as sms:
        balance = await sms.balance()
    assert route.calls.last.request.url.query.decode() == (
        "userName=ops%40shop.example&Apikey=v4-key-Zq81xW"
    )
    assert balance.amount == Decimal("99.08")


# -- bulk ------------------------------------------------------------------------------------


@respx.mock
async def test_bulk_groups_identical_texts_and_sends_the_rest_as_dsms() -> None:
    many = respx.post(f"{BASE}/OneToMany").respond(json={**OK, "trxnId": "MANY1"})
    dsms = respx.post(f"{BASE}/DSMS").respond(json={**OK, "trxnId": "DYN1"})
    messages = [
        Message(to="01712345678", text="Holiday closure on Friday"),
        Message(to="01812345678", text="Dear Rana, your parcel is ready"),
        Message(to="01912345678", text="Holiday closure on Friday"),
        Message(to="01612345678", text="Sale", category="promotional"),  # no campaign: invalid
        Message(to="01512345678", text="Dear Mita, your parcel is ready"),
        Message(to="01312345678", text="Holiday closure on Friday"),
    ]
    async with make() as sms:
        result = await sms.send_bulk(messages)
    assert many.call_count == 1 and dsms.call_count == 1
    assert sent_json(many) == {
        "UserName": USER,
        "Apikey": KEY,
        "MobileNumber": "8801712345678,8801912345678,8801312345678",
        "CampaignId": "null",
        "SenderName": "ShopBD",
        "TransactionType": "T",
        "Message": "Holiday closure on Friday",
    }
    assert dsms.calls.last.request.headers["content-type"] == "application/json"
    assert sent_json(dsms) == {
        "UserName": USER,
        "Apikey": KEY,
        "SenderName": "ShopBD",
        "TransactionType": "D",
        "SmsData": [
            {"MobNumber": "8801812345678", "Message": "Dear Rana, your parcel is ready"},
            {"MobNumber": "8801512345678", "Message": "Dear Mita, your parcel is ready"},
        ],
    }
    outcomes = list(result)
    assert len(outcomes) == 6
    assert isinstance(outcomes[3], ConfigurationError)
    ids = [o.message_id if isinstance(o, Receipt) else None for o in outcomes]
    assert ids == ["MANY1", "DYN1", "MANY1", None, "DYN1", "MANY1"]
    assert [o.to for o in result.receipts] == [
        "8801712345678",
        "8801812345678",
        "8801912345678",
        "8801512345678",
        "8801312345678",
    ]


@respx.mock
async def test_bulk_chunks_and_a_failed_chunk_fails_only_its_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(MimSmsV4, "batch_size", 2)

    def answer(request: httpx.Request) -> httpx.Response:
        numbers = json.loads(request.content)["MobileNumber"]
        if "8801712345673" in numbers:
            return httpx.Response(200, json=failed("216", "Insufficient Balance"))
        return httpx.Response(200, json={**OK, "trxnId": f"T-{numbers[-2:]}"})

    route = respx.post(f"{BASE}/OneToMany").mock(side_effect=answer)
    messages = [Message(to=f"0171234567{i}", text="Same text") for i in range(5)]
    async with make() as sms:
        result = await sms.send_bulk(messages, concurrency=2)
    sizes = sorted(len(sent_json(route, i)["MobileNumber"].split(",")) for i in range(3))
    assert (route.call_count, sizes) == (3, [1, 2, 2])
    kinds = [type(o).__name__ for o in result]
    bad = "InsufficientBalanceError"
    assert kinds == ["Receipt", "Receipt", bad, bad, "Receipt"]
    assert [o.message_id for o in result.receipts] == ["T-71", "T-71", "T-74"]
    assert result.errors[0] is result.errors[1]


@respx.mock
async def test_bulk_splits_dsms_by_sender_and_sends_lone_messages_singly() -> None:
    dsms = respx.post(f"{BASE}/DSMS").respond(json={**OK, "trxnId": "DYN"})
    single = respx.post(f"{BASE}/SMS").respond(json={**OK, "trxnId": "ONE"})
    messages = [
        Message(to="01712345678", text="a1"),
        Message(to="01812345678", text="a2"),
        Message(to="01912345678", text="b1", sender="Other"),
        Message(to="01512345678", text="promo", category="promotional"),
    ]
    async with make(campaign_id="CMP-1") as sms:
        result = await sms.send_bulk(messages)
    assert dsms.call_count == 1 and single.call_count == 2
    singles = sorted(
        (b["SenderName"], b["TransactionType"]) for b in map(sent_json_of, single.calls)
    )
    assert singles == [("Other", "T"), ("ShopBD", "P")]
    assert [o.message_id for o in result.receipts] == ["DYN", "DYN", "ONE", "ONE"]


def sent_json_of(call: Any) -> Any:
    return json.loads(call.request.content)


@respx.mock
async def test_bulk_transport_failure_marks_the_whole_chunk() -> None:
    respx.post(f"{BASE}/OneToMany").mock(side_effect=httpx.ReadTimeout("slow"))
    messages = [Message(to=f"0171234567{i}", text="Same") for i in range(3)]
    async with make() as sms:
        result = await sms.send_bulk(messages)
    assert [type(o) for o in result] == [OutcomeUnknownError] * 3


# -- the error code map ------------------------------------------------------------------------

CODE_MAP = [
    ("401", "IP Black List", ErrorKind.ACCESS_DENIED, AccessDeniedError),
    ("401", "Invalid UserName & Password", ErrorKind.AUTH, AuthenticationError),
    ("208", "Invalid Sender ID", ErrorKind.SENDER_REJECTED, SenderRejectedError),
    ("205", "Invalid Message Content", ErrorKind.CONTENT_REJECTED, ContentRejectedError),
    ("206", "Invalid Mobile Number", ErrorKind.RECIPIENT_REJECTED, RecipientRejectedError),
    ("209", "SMS Length cross the Max level", ErrorKind.CONTENT_REJECTED, ContentRejectedError),
    ("221", "SMS Sending Failed", ErrorKind.PROVIDER_UNAVAILABLE, ProviderUnavailableError),
    ("500", "Internal Server Error", ErrorKind.PROVIDER_UNAVAILABLE, ProviderUnavailableError),
    ("213", "Parameter Mismatch", ErrorKind.REQUEST_REJECTED, RequestRejectedError),
    ("216", "Insufficient Balance", ErrorKind.INSUFFICIENT_BALANCE, InsufficientBalanceError),
    ("210", "Invalid CampaignId", ErrorKind.REQUEST_REJECTED, RequestRejectedError),
]


@pytest.mark.parametrize(("code", "result", "kind", "error_type"), CODE_MAP)
@pytest.mark.parametrize("as_int", [False, True])
@respx.mock
async def test_code_map_on_submit(
    code: str, result: str, kind: ErrorKind, error_type: type[ProviderError], as_int: bool
) -> None:
    respx.post(f"{BASE}/SMS").respond(json=failed(int(code) if as_int else code, result))
    async with make() as sms:
        with pytest.raises(error_type) as info:
            await sms.send("01712345678", "hello")
    error = info.value
    assert (error.kind, error.code, error.provider) == (kind, code, "mimsms_v4")
    assert error.raw is not None and result in error.raw
    assert result in str(error)


@pytest.mark.parametrize(("code", "result", "kind", "error_type"), CODE_MAP)
@respx.mock
async def test_code_map_on_balance(
    code: str, result: str, kind: ErrorKind, error_type: type[ProviderError]
) -> None:
    respx.get(f"{BASE}/balanceCheck").respond(json=failed(code, result))
    async with make(method="query") as sms:
        with pytest.raises(error_type) as info:
            await sms.balance()
    assert (info.value.kind, info.value.code) == (kind, code)


@pytest.mark.parametrize(
    ("result", "kind"),
    [
        ("ip black list", ErrorKind.ACCESS_DENIED),
        ("  IP Black-List ", ErrorKind.ACCESS_DENIED),
        ("IP blacklisted", ErrorKind.ACCESS_DENIED),
        ("INVALID USERNAME & PASSWORD", ErrorKind.AUTH),
        ("Unauthorized", ErrorKind.AUTH),
        (None, ErrorKind.AUTH),
    ],
)
@respx.mock
async def test_the_two_401s_are_told_apart_by_text(result: str | None, kind: ErrorKind) -> None:
    body: dict[str, Any] = {"statusCode": "401", "status": "Unauthorized"}
    if result is not None:
        body["responseResult"] = result
    respx.post(f"{BASE}/SMS").respond(401, json=body)
    async with make() as sms:
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "hello")
    assert (info.value.kind, info.value.code, info.value.http_status) == (kind, "401", 401)


@respx.mock
async def test_unknown_code_is_a_bad_response_with_the_code_kept() -> None:
    respx.post(f"{BASE}/SMS").respond(json=failed(" 299 ", "Something new"))
    async with make() as sms:
        with pytest.raises(BadResponseError) as info:
            await sms.send("01712345678", "hello")
    assert (info.value.code, info.value.may_have_been_sent) == ("299", True)
    assert "Something new" in str(info.value)


@respx.mock
async def test_the_body_not_the_http_status_decides() -> None:
    route = respx.post(f"{BASE}/SMS")
    route.side_effect = [
        httpx.Response(200, json=failed("500", "Internal Server Error")),
        httpx.Response(500, json=failed("500", "Internal Server Error")),
        httpx.Response(202, json={**OK, "statusCode": 200}),
    ]
    async with make() as sms:
        for _ in range(2):
            with pytest.raises(ProviderUnavailableError):
                await sms.send("01712345678", "hello")
        assert (await sms.send("01712345678", "hello")).message_id == "TRX0001"


# -- bodies that match no documented shape ------------------------------------------------------

BAD_SUBMIT_BODIES = [
    (200, "", BadResponseError),
    (500, "<html><body><h1>500 Internal Server Error</h1></body></html>", OutcomeUnknownError),
    (200, '{"statusCode": "200", "trxnId": "AB', BadResponseError),
    (200, '[{"statusCode": "200", "trxnId": "AB"}]', BadResponseError),
    (200, '{"status": "Success", "trxnId": "AB"}', BadResponseError),
    (200, '{"statusCode": "OK", "trxnId": "AB"}', BadResponseError),
    (200, '{"statusCode": true, "trxnId": "AB"}', BadResponseError),
    (200, '{"statusCode": 200.0, "trxnId": "AB"}', BadResponseError),
    (200, '{"statusCode": "200", "status": "Success"}', BadResponseError),
    (200, '{"statusCode": "200", "trxnId": "  "}', BadResponseError),
    (200, '{"statusCode": "200", "trxnId": null}', BadResponseError),
    (200, '{"statusCode": "200", "trxnId": ["A", "B"]}', BadResponseError),
]


@pytest.mark.parametrize(("status", "body", "error_type"), BAD_SUBMIT_BODIES)
@respx.mock
async def test_undocumented_submit_bodies(
    status: int, body: str, error_type: type[ProviderError]
) -> None:
    respx.post(f"{BASE}/SMS").respond(status, text=body)
    async with make() as sms:
        with pytest.raises(error_type) as info:
            await sms.send("01712345678", "hello")
    assert info.value.raw == body
    assert info.value.may_have_been_sent


@pytest.mark.parametrize(
    "body",
    [
        '{"statusCode": "200", "status": "Ok", "responseResult": "n/a"}',
        '{"statusCode": "200", "status": "Ok", "responseResult": ""}',
        '{"statusCode": "200", "status": "Ok", "responseResult": true}',
        '{"statusCode": "200", "status": "Ok", "responseResult": "1e5"}',
        '{"statusCode": "200", "status": "Ok"}',
        "999.54",
    ],
)
@respx.mock
async def test_non_numeric_balance_is_a_bad_response(body: str) -> None:
    respx.post(f"{BASE}/Balance").respond(text=body)
    async with make() as sms:
        with pytest.raises(BadResponseError) as info:
            await sms.balance()
    assert info.value.raw == body


@respx.mock
async def test_secret_echoed_by_the_gateway_is_redacted_from_raw() -> None:
    respx.post(f"{BASE}/SMS").respond(
        json=failed("401", f"Invalid UserName & Password for key {KEY}")
    )
    async with make() as sms:
        with pytest.raises(AuthenticationError) as info:
            await sms.send("01712345678", "hello")
    assert info.value.raw is not None and "***" in info.value.raw
    assert_no_secret(info.value.raw, str(info.value), repr(info.value))


# -- transport ------------------------------------------------------------------------------------


@respx.mock
async def test_connect_error_is_connect_failed() -> None:
    respx.post(f"{BASE}/SMS").mock(side_effect=httpx.ConnectError("refused"))
    async with make() as sms:
        with pytest.raises(ConnectFailedError) as info:
            await sms.send("01712345678", "hello")
    assert not info.value.may_have_been_sent


@respx.mock
async def test_read_timeout_on_submit_is_outcome_unknown_but_on_balance_unavailable() -> None:
    respx.post(f"{BASE}/SMS").mock(side_effect=httpx.ReadTimeout("slow"))
    respx.post(f"{BASE}/Balance").mock(side_effect=httpx.ReadTimeout("slow"))
    async with make() as sms:
        with pytest.raises(OutcomeUnknownError):
            await sms.send("01712345678", "hello")
        with pytest.raises(ProviderUnavailableError):
            await sms.balance()


@respx.mock
async def test_429_is_rate_limited_with_retry_after() -> None:
    respx.get(f"{BASE}/Send").respond(429, text="slow down", headers={"Retry-After": "7"})
    async with make(method="query") as sms:
        with pytest.raises(RateLimitedError) as info:
            await sms.send("01712345678", "hello")
    assert (info.value.retry_after, info.value.code) == (7.0, "429")


# -- the operator DLR table ------------------------------------------------------------------------

DLR_ROWS = [
    ("Delivered", None, State.DELIVERED, False, 0),
    ("Absent subscriber for SM", None, State.UNDELIVERABLE, False, 3),
    ("Undelivered", None, State.UNDELIVERABLE, True, 0),
    ("Subscriber Busy", None, State.UNDELIVERABLE, False, 3),
    ("Unidentified subscriber", None, State.UNDELIVERABLE, True, 0),
    ("Barred subscriber", None, State.UNDELIVERABLE, True, 0),
    ("Illegal subscriber", None, State.REJECTED, True, 0),
    ("SMS Failed", "Sender ID Block by operators for Illegal SMS Traffic", State.REJECTED, True, 0),
    ("System failure", None, State.UNDELIVERABLE, False, 3),
    ("SMS Failed", "Network failure in SMSC Link", State.UNDELIVERABLE, False, 3),
    ("SMSC Timeout-abort", None, State.UNDELIVERABLE, False, 3),
]


@pytest.mark.parametrize(("status", "description", "state", "permanent", "retries"), DLR_ROWS)
def test_every_dlr_row(
    status: str, description: str | None, state: State, permanent: bool, retries: int
) -> None:
    report = make().parse_dlr(" TRX9 ", status, description)
    assert (report.state, report.permanent, report.retries_allowed) == (state, permanent, retries)
    assert (report.message_id, report.provider_status, report.provider) == (
        "TRX9",
        status,
        "mimsms_v4",
    )
    assert report.reason


@pytest.mark.parametrize(
    ("status", "state", "retries"),
    [
        ("  delivered ", State.DELIVERED, 0),
        ("ABSENT SUBSCRIBER FOR SM", State.UNDELIVERABLE, 3),
        ("smsc timeout - abort", State.UNDELIVERABLE, 3),
        ("SMSC_Timeout_Abort", State.UNDELIVERABLE, 3),
        ("subscriber   busy", State.UNDELIVERABLE, 3),
        ("SMSC-Timeout-Abort", State.UNDELIVERABLE, 3),
        ("SubscriberBusy", State.UNDELIVERABLE, 3),
        ("ABSENT_SUBSCRIBER_FOR_SM", State.UNDELIVERABLE, 3),
        ("Absent Subscriber", State.UNDELIVERABLE, 3),
        ("System-Failure", State.UNDELIVERABLE, 3),
    ],
)
def test_dlr_names_are_case_and_space_tolerant(status: str, state: State, retries: int) -> None:
    report = make().parse_dlr("1", status)
    assert (report.state, report.retries_allowed) == (state, retries)


@pytest.mark.parametrize(
    ("description", "state", "permanent", "retries"),
    [
        ("sender id blocked by operator", State.REJECTED, True, 0),
        ("ILLEGAL traffic", State.REJECTED, True, 0),
        ("network failure", State.UNDELIVERABLE, False, 3),
        ("smsc link down", State.UNDELIVERABLE, False, 3),
        (None, State.UNDELIVERABLE, None, 0),
        ("", State.UNDELIVERABLE, None, 0),
        ("something else", State.UNDELIVERABLE, None, 0),
        ("sender blocked after network failure", State.UNDELIVERABLE, None, 0),
    ],
)
def test_the_two_sms_failed_rows_are_never_merged(
    description: str | None, state: State, permanent: bool | None, retries: int
) -> None:
    report = make().parse_dlr("1", "sms  failed", description)
    assert (report.state, report.permanent, report.retries_allowed) == (state, permanent, retries)


def test_unknown_dlr_name_is_unknown_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mimgw")
    sms = make()
    first = sms.parse_dlr("1", "Teleported")
    sms.parse_dlr("2", "Teleported")
    sms.parse_dlr("3", "Vanished", "odd")
    assert (first.state, first.provider_status, first.permanent) == (
        State.UNKNOWN,
        "Teleported",
        None,
    )
    assert first.retries_allowed == 0
    messages = [r.getMessage() for r in caplog.records if "unmapped DLR" in r.getMessage()]
    assert len(messages) == 2


def test_parse_dlr_input_checks_and_listeners() -> None:
    sms = make()
    seen: list[object] = []
    sms.add_listener(seen.append)
    report = sms.parse_dlr("7", "Delivered", to="01712345678")
    assert seen == [report] and report.to == "8801712345678"
    for bad in (("", "Delivered"), ("7", ""), ("7", None)):
        with pytest.raises(MimgwError):
            sms.parse_dlr(*bad)  # type: ignore[arg-type]


# -- secrets ---------------------------------------------------------------------------------------


async def test_api_key_never_leaks_with_the_query_method(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "mimgw"):
        caplog.set_level(logging.DEBUG, logger=name)
    with respx.mock:
        send = respx.get(f"{BASE}/Send")
        send.side_effect = [
            httpx.Response(200, json=OK),
            httpx.Response(200, json=failed("401", f"bad key {KEY}")),
            httpx.ConnectError(f"cannot reach {BASE}/Send?Apikey={KEY}"),
            httpx.ReadTimeout(f"timed out on {BASE}/Send?Apikey={KEY}"),
            httpx.Response(502, text=f"<html>upstream {KEY}</html>"),
        ]
        respx.get(f"{BASE}/balanceCheck").respond(text=f"nonsense {KEY}")
        errors: list[MimgwError] = []
        async with make(method="query", api_key=SecretStr(KEY)) as sms:
            receipt = await sms.send("01712345678", "hello")
            for _ in range(4):
                with pytest.raises(MimgwError) as info:
                    await sms.send("01712345678", "hello")
                errors.append(info.value)
            with pytest.raises(BadResponseError) as balance_info:
                await sms.balance()
            errors.append(balance_info.value)
            texts: list[object] = [repr(sms), str(sms), receipt.raw, repr(receipt)]
    assert [getattr(e, "kind", None) for e in errors] == [
        ErrorKind.AUTH,
        ErrorKind.CONNECT_FAILED,
        ErrorKind.OUTCOME_UNKNOWN,
        ErrorKind.OUTCOME_UNKNOWN,
        ErrorKind.BAD_RESPONSE,
    ]
    for error in errors:
        texts += [
            str(error),
            repr(error),
            getattr(error, "raw", None),
            getattr(error, "detail", ""),
        ]
        cause = error.__cause__
        while cause is not None:
            texts += [str(cause), repr(cause)]
            cause = cause.__cause__
    assert any("Send" in r.getMessage() for r in caplog.records)  # the URLs were logged...
    texts += [r.getMessage() for r in caplog.records]
    assert_no_secret(*texts, caplog.text)  # ...without the key


# -- any body --------------------------------------------------------------------------------------

_FIELDS = st.sampled_from(["statusCode", "status", "trxnId", "responseResult", "StatusCode", "x"])
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["200", "401", "216", "999", " 200 "]),
    st.lists(st.integers(), max_size=2),
)
_BODIES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("utf-8", errors="replace")),
    st.dictionaries(_FIELDS, _VALUES).map(json.dumps),
    st.recursive(st.none() | st.integers() | st.text(max_size=4), st.lists, max_leaves=5).map(
        json.dumps
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=_BODIES,
    status=st.sampled_from([200, 200, 401, 500, 502]),
    method=st.sampled_from(["json", "query"]),
)
def test_any_body_gives_a_result_or_a_mimgw_error(body: str, status: int, method: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=body)

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            sms = make(client=client, method=method)
            for call in (sms.send("01712345678", "x"), sms.balance()):
                try:
                    result = await call
                except MimgwError as exc:
                    assert_no_secret(str(exc), getattr(exc, "raw", None))
                else:
                    assert result.provider == "mimsms_v4"

    asyncio.run(run())


@respx.mock
async def test_a_credential_inside_a_value_does_not_change_what_is_parsed() -> None:
    # a short key that also occurs in the gateway's answer: parsed as sent, redacted in raw
    respx.post(f"{BASE}/SMS").respond(json={**OK, "trxnId": "TRX4242"})
    respx.post(f"{BASE}/Balance").respond(json={"statusCode": "200", "responseResult": "4242"})
    async with make(api_key="4242") as sms:
        receipt = await sms.send("01712345678", "hello")
        balance = await sms.balance()
    assert receipt.message_id == "TRX4242"
    assert balance.amount == Decimal("4242")
    assert "4242" not in str(receipt.raw)
    assert "4242" not in str(balance.raw)
