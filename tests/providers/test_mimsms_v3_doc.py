"""Legacy MiMSMS v3 (plain query API and Basic-auth JSON API) checked against the vendor
document, row by row, through the public API only.

Plain API: the exact query strings of each documented request (short, long, scheduled,
unicode, binary unicode, Credits, DR pull), the 1080-character limit, the numeric result
codes and DR-pull return values, the XML report with unpadded local dates, safe XML,
several or no messages, pushed XML reports. JSON API: the Basic header and body, one or
many recipients, reports and logs with their parameters, every status row, every status
group, every GSM error row with its permanent flag, timestamps, pushed reports. Both:
credentials never in errors, logs, reprs or ``raw``.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from mimgw import (
    AccessDeniedError,
    AuthenticationError,
    BadResponseError,
    ContentRejectedError,
    DeliveryReport,
    ErrorKind,
    InsufficientBalanceError,
    InvalidMessageError,
    Message,
    MimgwError,
    ProviderError,
    ProviderUnavailableError,
    Receipt,
    RecipientRejectedError,
    RequestRejectedError,
    SenderRejectedError,
    State,
    UnsupportedOperationError,
)
from mimgw.providers import MimSmsV3, MimSmsV3Json

BASE = "http://api.mimsms.com"
DOC_NUMBER = "8801613537347"
SECRET = "Zq8-v3#pw 77"  # a password with a space, a hash and a dash


@pytest.fixture
def gw() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def query(route: respx.Route) -> str:
    return route.calls.last.request.url.query.decode()


def plain(**kwargs: Any) -> MimSmsV3:
    options: dict[str, Any] = {"username": "test", "password": "test", "sender": "Friend"}
    return MimSmsV3(**(options | kwargs))


def accepted_xml(message_id: str = "253021713103442623", to: str = DOC_NUMBER) -> str:
    return (
        f"<results><result><status>0</status><messageid>{message_id}</messageid>"
        f"<destination>{to}</destination></result></results>"
    )


# ======================================================================================
# plain query API
# ======================================================================================


async def test_short_sms_request_is_the_documented_query(gw: respx.MockRouter) -> None:
    route = gw.get("/api/sendsms/plain").respond(200, text=accepted_xml())
    receipt = await plain().send(DOC_NUMBER, "messagesagetext")
    assert route.calls.last.request.method == "GET"
    assert query(route) == (
        "user=test&password=test&sender=Friend&SMSText=messagesagetext&GSM=8801613537347"
    )
    assert (receipt.message_id, receipt.to, receipt.state) == (
        "253021713103442623",
        DOC_NUMBER,
        State.ACCEPTED,
    )
    assert (receipt.segments, receipt.encoding, receipt.provider) == (1, "gsm7", "mimsms_v3")


@pytest.mark.parametrize("number", ["+8801613537347", "01613537347", "008801613537347"])
async def test_gsm_parameter_has_no_leading_plus(gw: respx.MockRouter, number: str) -> None:
    route = gw.get("/api/sendsms/plain").respond(200, text=accepted_xml())
    await plain().send(number, "hi")
    assert query(route).endswith("&GSM=8801613537347")


async def test_exactly_160_gsm_characters_stay_on_the_short_path(gw: respx.MockRouter) -> None:
    short = gw.get("/api/sendsms/plain").respond(200, text=accepted_xml())
    receipt = await plain().send(DOC_NUMBER, "a" * 160)
    assert short.called and "type=" not in query(short)
    assert receipt.segments == 1


async def test_long_sms_uses_the_v3_path_with_long_type(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=accepted_xml())
    text = "Testinglong " * 14  # 168 characters: two segments
    receipt = await plain().send(DOC_NUMBER, text)
    encoded = text.replace(" ", "%20")
    assert query(route) == (
        f"user=test&password=test&sender=Friend&SMSText={encoded}&GSM=8801613537347&type=longSMS"
    )
    assert (receipt.segments, receipt.encoding) == (2, "gsm7")


async def test_1080_characters_is_the_most_a_long_sms_takes(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=accepted_xml())
    with pytest.raises(InvalidMessageError):
        await plain().send(DOC_NUMBER, "x" * 1081)
    with pytest.raises(InvalidMessageError):
        await plain().send(DOC_NUMBER, "আ" * 1081)
    assert not route.called
    await plain().send(DOC_NUMBER, "x" * 1080)
    assert "type=longSMS" in query(route)
    await plain().send(DOC_NUMBER, "আ" * 1080)
    assert query(route).endswith("&type=longSMS&datacoding=8")


async def test_scheduled_sms_sends_the_relative_form_in_the_documented_place(
    gw: respx.MockRouter,
) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=accepted_xml())
    later = datetime.now(UTC) + timedelta(days=1, hours=2, minutes=5, seconds=3.25)
    await plain().send(DOC_NUMBER, "messagesagetext", send_at=later)
    assert query(route) == (
        "user=test&password=test&sender=Friend&SMSText=messagesagetext"
        "&SendDateTime=1d2h5m3s&GSM=8801613537347"
    )


async def test_scheduled_sms_in_another_zone_is_relative_to_now(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=accepted_xml())
    dhaka = datetime.now(UTC).astimezone(ZoneInfo("Asia/Dhaka"))
    await plain().send(DOC_NUMBER, "x", send_at=dhaka + timedelta(minutes=30, seconds=0.25))
    assert "&SendDateTime=0d0h30m0s&" in query(route)


async def test_unicode_sms_sets_datacoding_8(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=accepted_xml(to="38598514674"))
    receipt = await plain().send("+38598514674", "ccš")
    # the parameter list names SMSText for the body (the example's text= is a known typo)
    assert query(route) == (
        "user=test&password=test&sender=Friend&SMSText=cc%C5%A1&GSM=38598514674&datacoding=8"
    )
    assert (receipt.encoding, receipt.segments, receipt.to) == ("ucs2", 1, "38598514674")


async def test_bangla_text_is_unicode_on_the_v3_path(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=accepted_xml())
    await plain().send(DOC_NUMBER, "আপনার কোড ৪৭১১")
    params = route.calls.last.request.url.params
    assert params["SMSText"] == "আপনার কোড ৪৭১১"
    assert params["datacoding"] == "8"
    assert "type" not in params
    assert "+" not in query(route) and "%20" in query(route)


async def test_binary_unicode_is_the_documented_ucs2_hex_with_bom(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=accepted_xml(to="38598514674"))
    await plain(binary_unicode=True).send("+38598514674", "šđčć")
    assert query(route) == (
        "user=test&password=test&sender=Friend&binary=FEFF01610111010D0107"
        "&GSM=38598514674&datacoding=8"
    )


async def test_spaces_are_percent_20_never_plus(gw: respx.MockRouter) -> None:
    route = gw.get("/api/sendsms/plain").respond(200, text=accepted_xml())
    await plain(password="open sesame").send(DOC_NUMBER, "a b+c", sender="My Shop")
    assert query(route) == (
        "user=test&password=open%20sesame&sender=My%20Shop&SMSText=a%20b%2Bc&GSM=8801613537347"
    )


async def test_sender_is_at_most_eleven_characters(gw: respx.MockRouter) -> None:
    route = gw.get("/api/sendsms/plain").respond(200, text=accepted_xml())
    await plain().send(DOC_NUMBER, "hi", sender="ElevenChars")
    with pytest.raises(InvalidMessageError):
        await plain().send(DOC_NUMBER, "hi", sender="TwelveCharsX")
    assert route.call_count == 1


# -- result codes ----------------------------------------------------------------------------


def code_xml(code: int) -> str:
    return f"<results><result><status>{code}</status><messageid></messageid></result></results>"


@pytest.mark.parametrize(
    ("code", "cls", "kind"),
    [
        (-2, InsufficientBalanceError, ErrorKind.INSUFFICIENT_BALANCE),
        (-5, AuthenticationError, ErrorKind.AUTH),
        (-10, AuthenticationError, ErrorKind.AUTH),
        (-11, AuthenticationError, ErrorKind.AUTH),
        (-13, RecipientRejectedError, ErrorKind.RECIPIENT_REJECTED),
        (-1, RequestRejectedError, ErrorKind.REQUEST_REJECTED),
        (-99, RequestRejectedError, ErrorKind.REQUEST_REJECTED),
    ],
)
@pytest.mark.parametrize("bare", [False, True])
async def test_send_codes_raise_their_class_with_the_code(
    gw: respx.MockRouter, code: int, cls: type[ProviderError], kind: ErrorKind, bare: bool
) -> None:
    gw.get("/api/sendsms/plain").respond(200, text=str(code) if bare else code_xml(code))
    with pytest.raises(cls) as info:
        await plain().send(DOC_NUMBER, "hi")
    assert (info.value.kind, info.value.code, info.value.provider) == (kind, str(code), "mimsms_v3")
    assert not info.value.may_have_been_sent


async def test_errors_are_not_retried_blindly(gw: respx.MockRouter) -> None:
    gw.get("/api/sendsms/plain").respond(200, text=code_xml(-2))
    with pytest.raises(InsufficientBalanceError) as info:
        await plain().send(DOC_NUMBER, "hi")
    assert (info.value.retryable, info.value.failover) == (False, True)


async def test_only_our_result_among_several_counts(gw: respx.MockRouter) -> None:
    body = (
        "<results>"
        "<result><status>-13</status><messageid></messageid>"
        "<destination>8801000000000</destination></result>"
        "<result><status>0</status><messageid>77</messageid>"
        f"<destination>{DOC_NUMBER}</destination></result>"
        "</results>"
    )
    gw.get("/api/sendsms/plain").respond(200, text=body)
    assert (await plain().send(DOC_NUMBER, "hi")).message_id == "77"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        "<results/>",
        "<results><result><status>0</status></result></results>",
        "<results><result><messageid>1</messageid></result></results>",
        "<html><body>oops</body></html>",
        "<results><result>",
        "OK",
    ],
)
async def test_undocumented_send_answers_are_bad_responses(gw: respx.MockRouter, body: str) -> None:
    gw.get("/api/sendsms/plain").respond(200, text=body)
    with pytest.raises(BadResponseError) as info:
        await plain().send(DOC_NUMBER, "hi")
    assert info.value.may_have_been_sent  # a submit with an unreadable answer may have gone out


async def test_xml_declaration_namespace_and_bom_are_tolerated(gw: respx.MockRouter) -> None:
    body = (
        '\ufeff<?xml version="1.0" encoding="utf-8"?>'
        '<Results xmlns="urn:x"><Result><Status>0</Status><MessageId>5</MessageId>'
        f"<Destination>{DOC_NUMBER}</Destination></Result></Results>"
    )
    gw.get("/api/sendsms/plain").respond(200, text=body)
    assert (await plain().send(DOC_NUMBER, "hi")).message_id == "5"


# -- Credits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "amount"), [("1523.75", "1523.75"), ("0", "0"), ("42\n", "42"), ("0.10", "0.10")]
)
async def test_credits_is_the_documented_command_and_a_decimal(
    gw: respx.MockRouter, body: str, amount: str
) -> None:
    route = gw.get("/api/command").respond(200, text=body)
    balance = await plain().balance()
    assert query(route) == "username=test&password=test&cmd=Credits"
    assert isinstance(balance.amount, Decimal)
    assert balance.amount == Decimal(amount)
    assert str(balance.amount) == amount.strip()
    assert balance.provider == "mimsms_v3"


@pytest.mark.parametrize(
    ("body", "cls"),
    [("-5", AuthenticationError), ("-2", InsufficientBalanceError), ("abc", BadResponseError)],
)
async def test_credits_errors(gw: respx.MockRouter, body: str, cls: type[MimgwError]) -> None:
    gw.get("/api/command").respond(200, text=body)
    with pytest.raises(cls):
        await plain().balance()


# -- DR pull ----------------------------------------------------------------------------------

DOC_REPORT = (
    "<DeliveryReport>\n"
    '<message id="1023012301" sentdate="2005/7/19 22:0:0" donedate="2005/7/19\n22:0:0"\n'
    'status="NOT_SENT" />\n'
    "</DeliveryReport>"
)


def dr(*rows: str) -> str:
    return "<DeliveryReport>" + "".join(rows) + "</DeliveryReport>"


def dr_row(mid: str, status: str, done: str = "2024/3/9 7:5:0") -> str:
    return f'<message id="{mid}" sentdate="2024/3/9 7:4:0" donedate="{done}" status="{status}" />'


async def test_status_pulls_the_documented_query_and_reads_the_example(
    gw: respx.MockRouter,
) -> None:
    route = gw.get("/api/v3/dr/pull").respond(200, text=DOC_REPORT)
    report = await plain().status("1023012301")
    assert query(route) == "user=test&password=test&messageid=1023012301"
    assert isinstance(report, DeliveryReport)
    assert (report.message_id, report.provider, report.provider_status) == (
        "1023012301",
        "mimsms_v3",
        "NOT_SENT",
    )
    assert report.state is State.REJECTED and report.state.final
    assert report.reason
    # unpadded local time, read in Asia/Dhaka (UTC+6), stored as aware UTC
    assert report.done_at == datetime(2005, 7, 19, 16, 0, tzinfo=UTC)
    assert report.done_at is not None and report.done_at.utcoffset() == timedelta(0)
    assert report.raw and "1023012301" in report.raw


async def test_several_ids_are_comma_separated(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/dr/pull").respond(
        200, text=dr(dr_row("253021713103442623", "DELIVERED"), dr_row("99", "NOT_SENT"))
    )
    reports = await plain().reports(["253021713103442623", "99"])
    assert query(route) == "user=test&password=test&messageid=253021713103442623,99"
    assert [(r.message_id, r.state) for r in reports] == [
        ("253021713103442623", State.DELIVERED),
        ("99", State.REJECTED),
    ]


async def test_reports_take_one_id_or_a_comma_separated_string(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/dr/pull").respond(200, text=dr(dr_row("42", "DELIVERED")))
    provider = plain()
    assert [r.message_id for r in await provider.reports("253021713103442623")] == ["42"]
    assert query(route) == "user=test&password=test&messageid=253021713103442623"
    await provider.reports("1, 2")
    assert query(route) == "user=test&password=test&messageid=1,2"
    assert await provider.reports([]) == []  # never a pull of everything
    assert route.call_count == 2


async def test_fetch_reports_without_ids_and_every_message_is_kept(gw: respx.MockRouter) -> None:
    rows = [dr_row(str(i), "DELIVERED", f"2024/12/{i} 23:59:{i}") for i in range(1, 6)]
    route = gw.get("/api/v3/dr/pull").respond(200, text=dr(*rows))
    reports = await plain().fetch_reports()
    assert query(route) == "user=test&password=test"
    assert [r.message_id for r in reports] == ["1", "2", "3", "4", "5"]
    assert reports[0].done_at == datetime(2024, 12, 1, 17, 59, 1, tzinfo=UTC)


@pytest.mark.parametrize("body", ["<DeliveryReport/>", "<DeliveryReport></DeliveryReport>"])
async def test_no_unread_reports(gw: respx.MockRouter, body: str) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=body)
    assert await plain().fetch_reports() == []
    report = await plain().status("1")
    assert (report.message_id, report.state) == ("1", State.UNKNOWN)


@pytest.mark.parametrize("code", ["5", "10", "11"])
async def test_dr_pull_return_values(gw: respx.MockRouter, code: str) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=code)
    for call in (plain().fetch_reports(), plain().status("1")):
        with pytest.raises(AuthenticationError) as info:
            await call
        assert (info.value.kind, info.value.code) == (ErrorKind.AUTH, code)


XXE = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<DeliveryReport><message id="1" status="&x;" /></DeliveryReport>'
)
BOMB = (
    '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    '<DeliveryReport><message id="1" status="&c;" /></DeliveryReport>'
)


@pytest.mark.parametrize(
    "body", [XXE, BOMB, "<DeliveryReport><message", "<results/>", "nope", "", "0"]
)
async def test_unsafe_or_malformed_reports_are_bad_responses(
    gw: respx.MockRouter, body: str
) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=body)
    with pytest.raises(BadResponseError):
        await plain().fetch_reports()


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("NOT_SENT", State.REJECTED),
        ("DELIVERED", State.DELIVERED),
        ("delivered", State.DELIVERED),
        ("EXPIRED", State.EXPIRED),
        ("UNDELIVERABLE", State.UNDELIVERABLE),
    ],
)
async def test_status_words(gw: respx.MockRouter, word: str, state: State) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=dr(dr_row("7", word)))
    [report] = await plain().fetch_reports()
    assert report.state is state
    assert report.provider_status == word
    if state is State.DELIVERED:
        assert (report.reason, report.retries_allowed) == (None, 0)


async def test_unknown_status_word_is_unknown_but_kept(gw: respx.MockRouter) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=dr(dr_row("7", "WEIRD_NEW_WORD")))
    [report] = await plain().fetch_reports()
    assert (report.state, report.provider_status) == (State.UNKNOWN, "WEIRD_NEW_WORD")
    assert report.raw and "WEIRD_NEW_WORD" in report.raw


async def test_unreadable_dates_keep_the_report(gw: respx.MockRouter) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=dr(dr_row("7", "DELIVERED", "yesterday")))
    [report] = await plain().fetch_reports()
    assert (report.state, report.done_at) == (State.DELIVERED, None)


# -- pushed XML reports --------------------------------------------------------------------------


def test_pushed_reports_are_parsed_like_pulled_ones() -> None:
    provider = plain()
    assert provider.capabilities.webhook
    [report] = provider.parse_webhook(DOC_REPORT.encode(), {"content-type": "text/xml"})
    assert isinstance(report, DeliveryReport)
    assert (report.message_id, report.state) == ("1023012301", State.REJECTED)
    assert report.done_at == datetime(2005, 7, 19, 16, 0, tzinfo=UTC)
    several = dr(dr_row("1", "DELIVERED"), dr_row("2", "EXPIRED")).encode()
    states = [r.state for r in provider.parse_webhook(several) if isinstance(r, DeliveryReport)]
    assert states == [State.DELIVERED, State.EXPIRED]


@pytest.mark.parametrize("body", [b"", b"5", b"{}", b"<x/>", XXE.encode(), b"<DeliveryReport>"])
def test_bad_pushed_bodies_are_bad_responses(body: bytes) -> None:
    with pytest.raises(BadResponseError):
        plain().parse_webhook(body)


# ======================================================================================
# JSON API
# ======================================================================================

USER = "Aladdin"


def js(**kwargs: Any) -> MimSmsV3Json:
    options: dict[str, Any] = {"username": USER, "password": "open sesame", "sender": "InfoSMS"}
    return MimSmsV3Json(**(options | kwargs))


ACCEPTED_ANSWER: dict[str, Any] = {
    "messages": [
        {
            "to": DOC_NUMBER,
            "status": {
                "id": 0,
                "groupId": 0,
                "groupName": "ACCEPTED",
                "name": "MESSAGE_ACCEPTED",
                "description": "Message accepted",
            },
            "smsCount": 1,
            "messageId": "2250be2d4219-3af1-78856-aabe-1362af1edfd2",
        }
    ]
}


async def test_send_is_a_basic_auth_json_post(gw: respx.MockRouter) -> None:
    route = gw.post("/sms/1/text/single").respond(200, json=ACCEPTED_ANSWER)
    receipt = await js().send(DOC_NUMBER, "My first 'MiM SMS' SMS")
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["authorization"] == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert json.loads(request.content) == {
        "from": "InfoSMS",
        "to": DOC_NUMBER,
        "text": "My first 'MiM SMS' SMS",
    }
    assert isinstance(receipt, Receipt)
    assert (receipt.message_id, receipt.to, receipt.state, receipt.segments) == (
        "2250be2d4219-3af1-78856-aabe-1362af1edfd2",
        DOC_NUMBER,
        State.ACCEPTED,
        1,
    )
    assert receipt.provider == "mimsms_v3_json"


async def test_sms_count_is_the_number_of_segments(gw: respx.MockRouter) -> None:
    answer = json.loads(json.dumps(ACCEPTED_ANSWER))
    answer["messages"][0]["smsCount"] = 3
    gw.post("/sms/1/text/single").respond(200, json=answer)
    receipt = await js().send(DOC_NUMBER, "x" * 400)
    assert receipt.segments == 3


def entry(number: str, mid: str | None, sid: int, group: int) -> dict[str, Any]:
    item: dict[str, Any] = {"to": number, "status": {"id": sid, "groupId": group}}
    if mid is not None:
        item |= {"messageId": mid, "smsCount": 1}
    return item


async def test_many_recipients_go_as_documented_singles(gw: respx.MockRouter) -> None:
    # the document shows only a single string ``to``: never a list
    numbers = ["8801711111111", "8801822222222", "8801933333333"]
    answers = {
        numbers[0]: entry(numbers[0], "m-1", 0, 0),
        numbers[1]: entry(numbers[1], None, 14, 5),
        numbers[2]: entry(numbers[2], "m-3", 0, 0),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        to = json.loads(request.content)["to"]
        assert isinstance(to, str)
        return httpx.Response(200, json={"messages": [answers[to]]})

    route = gw.post("/sms/1/text/single").mock(side_effect=answer)
    result = await js().send_bulk([Message(to=n, text="sale today") for n in numbers])
    assert route.call_count == 3
    bodies = sorted(json.loads(c.request.content)["to"] for c in route.calls)
    assert bodies == sorted(numbers)
    assert all(
        json.loads(c.request.content) == {"from": "InfoSMS", "to": t, "text": "sale today"}
        for c, t in ((c, json.loads(c.request.content)["to"]) for c in route.calls)
    )
    first, second, third = result.outcomes
    assert isinstance(first, Receipt) and first.message_id == "m-1" and first.to == numbers[0]
    assert isinstance(second, RecipientRejectedError)
    assert isinstance(third, Receipt) and third.message_id == "m-3"


@pytest.mark.parametrize(
    ("sid", "cls"),
    [
        (6, AccessDeniedError),
        (8, RecipientRejectedError),
        (10, RecipientRejectedError),
        (11, SenderRejectedError),
        (12, InsufficientBalanceError),
        (13, SenderRejectedError),
        (14, RecipientRejectedError),
        (16, ProviderUnavailableError),
        (17, InsufficientBalanceError),
        (18, RecipientRejectedError),
        (19, AccessDeniedError),
        (20, RequestRejectedError),  # STOP SPAMMING: neither retried nor failed over
        (21, ProviderUnavailableError),
        (23, RequestRejectedError),
        (24, ContentRejectedError),
        (25, ContentRejectedError),
        (99, RequestRejectedError),  # an unlisted rejection keeps its id
    ],
)
async def test_rejected_at_submit_raises_its_class(
    gw: respx.MockRouter, sid: int, cls: type[ProviderError]
) -> None:
    gw.post("/sms/1/text/single").respond(200, json={"messages": [entry(DOC_NUMBER, None, sid, 5)]})
    with pytest.raises(cls) as info:
        await js().send(DOC_NUMBER, "hi")
    assert info.value.code == str(sid)
    assert not info.value.may_have_been_sent


async def test_401_is_authentication(gw: respx.MockRouter) -> None:
    gw.post("/sms/1/text/single").respond(401, json={"requestError": {}})
    with pytest.raises(AuthenticationError):
        await js().send(DOC_NUMBER, "hi")


async def test_json_api_documents_no_balance_and_no_schedule(gw: respx.MockRouter) -> None:
    provider = js()
    with pytest.raises(UnsupportedOperationError):
        await provider.balance()
    with pytest.raises(UnsupportedOperationError):
        await provider.send(DOC_NUMBER, "x", send_at=datetime.now(UTC) + timedelta(hours=1))
    assert not provider.capabilities.balance
    assert not gw.calls


# -- reports ------------------------------------------------------------------------------------

NO_ERROR = {
    "groupId": 0,
    "groupName": "OK",
    "id": 0,
    "name": "NO_ERROR",
    "description": "No Error",
    "permanent": False,
}
DELIVERED = {
    "groupId": 3,
    "groupName": "DELIVERED",
    "id": 5,
    "name": "DELIVERED_TO_HANDSET",
    "description": "Message delivered to handset",
}


def report_row(mid: str, done: str, **extra: Any) -> dict[str, Any]:
    return {
        "bulkId": "80664c0c-e1ca-414d-806a-5caf146463df",
        "messageId": mid,
        "to": DOC_NUMBER,
        "sentAt": done,
        "doneAt": done,
        "smsCount": 1,
        "price": {"pricePerMessage": 0.01, "currency": "EUR"},
        "status": DELIVERED,
        "error": NO_ERROR,
    } | extra


DOC_REPORTS = {
    "results": [
        report_row("bcfb828b-7df9-4e7b-8715-f34f5c61271a", "2015-02-12T09:51:43.127+0100"),
        report_row("12db39c3-7822-4e72-a3ec-c87442c0ffc5", "2015-02-12T09:50:22.232+0100"),
    ]
}


async def test_reports_without_parameters(gw: respx.MockRouter) -> None:
    route = gw.get("/sms/1/reports").respond(200, json=DOC_REPORTS)
    reports = await js().fetch_reports()
    request = route.calls.last.request
    assert query(route) == ""
    assert request.headers["authorization"] == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/json"  # asked for on every request
    assert [r.message_id for r in reports] == [
        "bcfb828b-7df9-4e7b-8715-f34f5c61271a",
        "12db39c3-7822-4e72-a3ec-c87442c0ffc5",
    ]
    first = reports[0]
    assert (first.state, first.to, first.provider_status) == (
        State.DELIVERED,
        DOC_NUMBER,
        "DELIVERED_TO_HANDSET",
    )
    assert (first.reason, first.permanent, first.retries_allowed) == (None, None, 0)
    assert first.done_at == datetime(2015, 2, 12, 8, 51, 43, 127000, tzinfo=UTC)
    assert first.done_at is not None and first.done_at.utcoffset() == timedelta(0)


async def test_reports_read_twice_give_an_empty_set(gw: respx.MockRouter) -> None:
    gw.get("/sms/1/reports").mock(
        side_effect=[
            httpx.Response(200, json=DOC_REPORTS),
            httpx.Response(200, json={"results": []}),
        ]
    )
    provider = js()
    assert len(await provider.fetch_reports()) == 2
    assert await provider.fetch_reports() == []


async def test_reports_parameters(gw: respx.MockRouter) -> None:
    route = gw.get("/sms/1/reports").respond(200, json={"results": []})
    provider = js()
    await provider.fetch_reports(limit=10)
    assert query(route) == "limit=10"
    await provider.reports(message_id="ff4804ef-6ab6-4abd-984d-ab3b1387e852")
    assert query(route) == "messageId=ff4804ef-6ab6-4abd-984d-ab3b1387e852"
    await provider.reports(bulk_id="b-1", message_id="m-1", limit=2)
    assert query(route) == "bulkId=b-1&messageId=m-1&limit=2"


async def test_fetched_reports_reach_the_gateway_ledger(gw: respx.MockRouter) -> None:
    from mimgw import Gateway

    gw.get("/sms/1/reports").respond(200, json=DOC_REPORTS)
    gw.get("/sms/1/logs").respond(200, json={"results": []})
    async with Gateway([js()]) as gateway:
        fetched = await gateway.fetch_reports()
        assert len(fetched) == 2
        report = await gateway.status("12db39c3-7822-4e72-a3ec-c87442c0ffc5")
    assert report.state is State.DELIVERED


# -- logs ---------------------------------------------------------------------------------------

REJECTED_LOG = {
    "results": [
        {
            "bulkId": "82d1d36e-e4fb-4194-8b93-caeb053bd327",
            "messageId": "fc0cbfb8-7a72-40da-a76d-e2c2d9400835",
            "to": DOC_NUMBER,
            "from": "InfoSMS",
            "text": "Test SMS.",
            "sentAt": "2015-02-23T17:42:05.390+0100",
            "doneAt": "2015-02-23T17:42:05.390+0100",
            "smsCount": 1,
            "mccmnc": "22801",
            "price": {"pricePerMessage": 0, "currency": "EUR"},
            "status": {
                "groupId": 5,
                "groupName": "REJECTED",
                "id": 6,
                "name": "REJECTED_NETWORK",
                "description": "Network is forbidden",
                "action": "Contact account manager",
            },
            "error": NO_ERROR,
        }
    ]
}


async def test_logs_with_from_to_and_limit(gw: respx.MockRouter) -> None:
    route = gw.get("/sms/1/logs").respond(200, json=REJECTED_LOG)
    [report] = await js().logs(sender="InfoSMS", to=DOC_NUMBER, limit=1)
    assert query(route) == "from=InfoSMS&to=8801613537347&limit=1"
    assert (report.state, report.provider_status) == (State.REJECTED, "REJECTED_NETWORK")
    assert report.reason == "REJECTED_NETWORK"
    assert (report.permanent, report.retries_allowed) == (True, 0)
    assert report.done_at == datetime(2015, 2, 23, 16, 42, 5, 390000, tzinfo=UTC)


async def test_logs_take_every_documented_filter(gw: respx.MockRouter) -> None:
    route = gw.get("/sms/1/logs").respond(200, json={"results": []})
    await js().logs(
        sender="InfoSMS",
        to="01613537347",
        bulk_id=["b-1", "b-2"],
        message_id="m-1",
        general_status="DELIVERED",
        sent_since=datetime(2015, 2, 22, 17, 42, 5, tzinfo=UTC),
        sent_until=datetime(2015, 2, 23, 17, 42, 5, tzinfo=UTC),
        limit=5,
        mcc="470",
        mnc="01",
    )
    params = route.calls.last.request.url.params
    assert list(params.keys()) == [
        "from",
        "to",
        "bulkId",
        "messageId",
        "generalStatus",
        "sentSince",
        "sentUntil",
        "limit",
        "mcc",
        "mnc",
    ]
    assert params["to"] == DOC_NUMBER
    assert params["bulkId"] == "b-1,b-2"
    assert params["generalStatus"] == "DELIVERED"
    assert datetime.fromisoformat(params["sentSince"]) == datetime(
        2015, 2, 22, 17, 42, 5, tzinfo=UTC
    )
    assert (params["limit"], params["mcc"], params["mnc"]) == ("5", "470", "01")


async def test_status_reads_the_repeatable_logs(gw: respx.MockRouter) -> None:
    route = gw.get("/sms/1/logs").respond(200, json=REJECTED_LOG)
    for _ in range(2):
        report = await js().status("fc0cbfb8-7a72-40da-a76d-e2c2d9400835")
        assert report.state is State.REJECTED
    assert query(route) == "messageId=fc0cbfb8-7a72-40da-a76d-e2c2d9400835"


# -- status table -----------------------------------------------------------------------------

DOC_STATUSES = """
1 1 PENDING_TIME_VIOLATION
2 3 DELIVERED_TO_OPERATOR
3 1 PENDING_WAITING_DELIVERY
4 2 UNDELIVERABLE_REJECTED_OPERATOR
5 3 DELIVERED_TO_HANDSET
6 5 REJECTED_NETWORK
7 1 PENDING_ENROUTE
8 5 REJECTED_PREFIX_MISSING
9 2 UNDELIVERABLE_NOT_DELIVERED
10 5 REJECTED_DND
11 5 REJECTED_SOURCE
12 5 REJECTED_NOT_ENOUGH_CREDITS
13 5 REJECTED_SENDER
14 5 REJECTED_DESTINATION
15 4 EXPIRED_EXPIRED
16 5 REJECTED_NOT_REACHABLE
17 5 REJECTED_PREPAID_PACKAGE_EXPIRED
18 5 REJECTED_DESTINATION_NOT_REGISTERED
19 5 REJECTED_ROUTE_NOT_AVAILABLE
20 5 REJECTED_FLOODING_FILTER
21 5 REJECTED_SYSTEM_ERROR
22 4 EXPIRED_UNKNOWN
23 5 REJECTED_DUPLICATE_MESSAGE_ID
24 5 REJECTED_INVALID_UDH
25 5 REJECTED_MESSAGE_TOO_LONG
"""
STATUS_ROWS = [tuple(line.split()) for line in DOC_STATUSES.strip().splitlines()]
GROUP_STATE = {
    0: State.ACCEPTED,
    1: State.PENDING,
    2: State.UNDELIVERABLE,
    3: State.DELIVERED,
    4: State.EXPIRED,
    5: State.REJECTED,
}
GROUP_NAME = {0: "ACCEPTED", 1: "PENDING", 2: "UNDELIVERABLE", 3: "DELIVERED"}
GROUP_NAME |= {4: "EXPIRED", 5: "REJECTED"}


def pushed(*rows: dict[str, Any]) -> bytes:
    return json.dumps({"results": list(rows)}).encode()


def status_obj(sid: int, group: int, name: str) -> dict[str, Any]:
    return {"groupId": group, "groupName": GROUP_NAME[group], "id": sid, "name": name}


@pytest.mark.parametrize(("sid", "group", "name"), STATUS_ROWS)
def test_every_status_row_has_its_state(sid: str, group: str, name: str) -> None:
    obj = status_obj(int(sid), int(group), name)
    [report] = js().parse_webhook(
        pushed(report_row("m", "2015-02-12T09:51:43.127+0100", status=obj))
    )
    assert isinstance(report, DeliveryReport)
    # the group decides, except that delivered to the operator is not yet on the handset
    expected = State.SENT if name == "DELIVERED_TO_OPERATOR" else GROUP_STATE[int(group)]
    assert report.state is expected
    assert report.provider_status == name
    if expected.final and expected is not State.DELIVERED:
        assert report.reason
    else:
        assert (report.reason, report.retries_allowed) == (None, 0)


def test_delivered_to_operator_is_not_final_delivery() -> None:
    obj = status_obj(2, 3, "DELIVERED_TO_OPERATOR")
    [report] = js().parse_webhook(pushed(report_row("m", "2015-02-12T09:51:43+0100", status=obj)))
    assert isinstance(report, DeliveryReport)
    assert report.state is not State.DELIVERED and not report.state.final


@pytest.mark.parametrize("group", sorted(GROUP_STATE))
def test_status_groups_classify_unlisted_statuses(group: int) -> None:
    obj = {"groupId": group, "groupName": GROUP_NAME[group], "id": 900 + group, "name": "NEW"}
    [report] = js().parse_webhook(pushed(report_row("m", "2015-02-12T09:51:43+0100", status=obj)))
    assert isinstance(report, DeliveryReport)
    assert report.state is GROUP_STATE[group]


def test_a_status_nobody_knows_is_unknown_and_kept() -> None:
    obj = {"groupId": 42, "groupName": "MARS", "id": 4242, "name": "ON_MARS"}
    [report] = js().parse_webhook(pushed(report_row("m", "2015-02-12T09:51:43+0100", status=obj)))
    assert isinstance(report, DeliveryReport)
    assert report.state is State.UNKNOWN
    assert report.raw and "ON_MARS" in report.raw


# -- GSM errors -------------------------------------------------------------------------------

GSM_TABLE = """
0 NO_ERROR NULL|1 EC_UNKNOWN_SUBSCRIBER 1|5 EC_UNIDENTIFIED_SUBSCRIBER 0
6 EC_ABSENT_SUBSCRIBER_SM 0|9 EC_ILLEGAL_SUBSCRIBER 1|10 EC_BEARER_SERVICE_NOT_PROVISIONED 0
11 EC_TELESERVICE_NOT_PROVISIONED 1|12 EC_ILLEGAL_EQUIPMENT 1|13 EC_CALL_BARRED 0
20 EC_SS_INCOMPATIBILITY 0|21 EC_FACILITY_NOT_SUPPORTED 0|27 EC_ABSENT_SUBSCRIBER 0
31 EC_SUBSCRIBER_BUSY_FOR_MT_SMS 0|32 EC_SM_DELIVERY_FAILURE 0|33 EC_MESSAGE_WAITING_LIST_FULL 0
34 EC_SYSTEM_FAILURE 0|35 EC_DATA_MISSING 1|36 EC_UNEXPECTED_DATA_VALUE 1
51 EC_RESOURCE_LIMITATION 0|71 EC_UNKNOWN_ALPHABET 1|72 EC_USSD_BUSY 1|255 EC_UNKNOWN_ERROR 1
256 EC_SM_DF_memoryCapacityExceeded 0|257 EC_SM_DF_equipmentProtocolError 0
258 EC_SM_DF_equipmentNotSM_Equipped 0|259 EC_SM_DF_unknownServiceCentre 0
260 EC_SM_DF_sc_Congestion 0|261 EC_SM_DF_invalidSME_Address 0
262 EC_SM_DF_subscriberNotSC_Subscriber 0|500 EC_PROVIDER_GENERAL_ERROR 0|502 EC_NO_RESPONSE 0
503 EC_SERVICE_COMPLETION_FAILURE 0|504 EC_UNEXPECTED_RESPONSE_FROM_PEER 0
507 EC_MISTYPED_PARAMETER 0|508 EC_NOT_SUPPORTED_SERVICE 0|509 EC_DUPLICATED_INVOKE_ID 0
511 EC_INITIATING_RELEASE 0|1024 EC_OR_appContextNotSupported 0
1025 EC_OR_invalidDestinationReference 0|1026 EC_OR_invalidOriginatingReference 0
1027 EC_OR_encapsulatedAC_NotSupported 0|1028 EC_OR_transportProtectionNotAdequate 0
1029 EC_OR_noReasonGiven 0|1030 EC_OR_potentialVersionIncompatibility 0
1031 EC_OR_remoteNodeNotReachable 0|1152 EC_NNR_noTranslationForAnAddressOfSuchNature 0
1153 EC_NNR_noTranslationForThisSpecificAddress 0|1154 EC_NNR_subsystemCongestion 0
1155 EC_NNR_subsystemFailure 0|1156 EC_NNR_unequippedUser 0|1157 EC_NNR_MTPfailure 0
1158 EC_NNR_networkCongestion 0|1159 EC_NNR_unqualified 0
1160 EC_NNR_errorInMessageTransportXUDT 0|1161 EC_NNR_errorInLocalProcessingXUDT 0
1162 EC_NNR_destinationCannotPerformReassemblyXUDT 0|1163 EC_NNR_SCCPfailure 0
1164 EC_NNR_hopCounterViolation 0|1165 EC_NNR_segmentationNotSupported 0
1166 EC_NNR_segmentationFailure 0|1281 EC_UA_userSpecificReason 0
1282 EC_UA_userResourceLimitation 0|1283 EC_UA_resourceUnavailable 0
1284 EC_UA_applicationProcedureCancellation 0|1536 EC_PA_providerMalfunction 0
1537 EC_PA_supportingDialogOrTransactionReleased 0|1538 EC_PA_ressourceLimitation 0
1539 EC_PA_maintenanceActivity 0|1540 EC_PA_versionIncompatibility 0
1541 EC_PA_abnormalMapDialog 0|1792 EC_NC_abnormalEventDetectedByPeer 0
1793 EC_NC_responseRejectedByPeer 0|1794 EC_NC_abnormalEventReceivedFromPeer 0
1795 EC_NC_messageCannotBeDeliveredToPeer 0|1796 EC_NC_providerOutOfInvoke 0|2048 EC_TIME_OUT 0
2049 EC_IMSI_BLACKLISTED 1|2050 EC_DEST_ADDRESS_BLACKLISTED 1|2051 EC_InvalidMscAddress 0
4096 EC_invalidPduFurmat 1|4097 EC_NotSubmittedToGMSC 1|4100 EC_Cancelled 1
4101 EC_ValidityExpired 1|4102 EC_NotSubmittedToSmppChannel 0
"""
GSM_ROWS = [
    tuple(cell.split())
    for line in GSM_TABLE.strip().splitlines()
    for cell in line.split("|")
    if cell.strip()
]
UNDELIVERED = {
    "groupId": 2,
    "groupName": "UNDELIVERABLE",
    "id": 9,
    "name": "UNDELIVERABLE_NOT_DELIVERED",
}


def test_the_gsm_table_is_complete() -> None:
    assert len(GSM_ROWS) == 84
    assert len({row[0] for row in GSM_ROWS}) == 84


@pytest.mark.parametrize(("eid", "name", "flag"), [r for r in GSM_ROWS if r[0] != "0"])
@pytest.mark.parametrize("with_flag", [True, False])
def test_every_gsm_error_sets_reason_permanent_and_retries(
    eid: str, name: str, flag: str, with_flag: bool
) -> None:
    error: dict[str, Any] = {"groupId": 1, "groupName": "HANDSET_ERRORS", "id": int(eid)}
    error["name"] = name
    if with_flag:
        error["permanent"] = flag == "1"
    row = report_row("m", "2015-02-12T09:51:43+0100", status=UNDELIVERED, error=error)
    [report] = js().parse_webhook(pushed(row))
    assert isinstance(report, DeliveryReport)
    assert report.state is State.UNDELIVERABLE
    assert report.reason == name
    assert report.permanent is (flag == "1")
    if flag == "1":
        assert report.retries_allowed == 0
    else:
        assert report.retries_allowed >= 1


def test_no_error_on_a_delivered_report() -> None:
    [report] = js().parse_webhook(pushed(report_row("m", "2015-02-12T09:51:43+0100")))
    assert isinstance(report, DeliveryReport)
    assert (report.state, report.reason, report.permanent, report.retries_allowed) == (
        State.DELIVERED,
        None,
        None,
        0,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2015-02-12T09:51:43.123+0100", datetime(2015, 2, 12, 8, 51, 43, 123000, tzinfo=UTC)),
        ("2015-02-23T17:41:11.833+0100", datetime(2015, 2, 23, 16, 41, 11, 833000, tzinfo=UTC)),
        ("2015-02-12T09:51:43.123+01:00", datetime(2015, 2, 12, 8, 51, 43, 123000, tzinfo=UTC)),
        ("2015-02-12T09:51:43Z", datetime(2015, 2, 12, 9, 51, 43, tzinfo=UTC)),
        ("2015-02-12T09:51:43.123", datetime(2015, 2, 12, 3, 51, 43, 123000, tzinfo=UTC)),
        ("not a time", None),
    ],
)
def test_timestamps_become_aware_utc(value: str, expected: datetime | None) -> None:
    [report] = js().parse_webhook(pushed(report_row("m", value)))
    assert isinstance(report, DeliveryReport)
    assert report.done_at == expected
    if expected is not None:
        assert report.done_at is not None and report.done_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("body", [b"", b"[]", b"{}", b"{not json", b'{"results": 5}', b"\xff\xfe"])
def test_bad_pushed_json_is_a_bad_response(body: bytes) -> None:
    with pytest.raises(BadResponseError):
        js().parse_webhook(body)


def test_pushed_rows_without_a_message_id_are_skipped() -> None:
    rows = [report_row("m-1", "2015-02-12T09:51:43+0100"), {"status": DELIVERED}, "junk"]
    found = js().parse_webhook(json.dumps({"results": rows}).encode())
    assert [r.message_id for r in found if isinstance(r, DeliveryReport)] == ["m-1"]


# ======================================================================================
# credentials
# ======================================================================================


def _scan(texts: list[str], *secrets: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, (secret, text)


async def test_plain_api_password_never_escapes(
    gw: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    encoded = "Zq8-v3%23pw%2077"
    gw.get("/api/sendsms/plain").respond(200, text=f"<results><x>{SECRET}</x></results>")
    gw.get("/api/command").mock(side_effect=httpx.ReadTimeout("timed out"))
    gw.get("/api/v3/dr/pull").respond(
        200, text=dr(f'<message id="1" status="DELIVERED" note="{SECRET}" />', "<message />")
    )
    provider = plain(password=SECRET)
    seen: list[str] = [repr(provider), str(provider)]
    with caplog.at_level(logging.DEBUG):
        for call in (provider.send(DOC_NUMBER, "hi"), provider.balance()):
            with pytest.raises(ProviderError) as info:
                await call
            seen += [str(info.value), repr(info.value), info.value.raw or "", info.value.detail]
            cause = info.value.__cause__
            seen += [str(cause), repr(cause)] if cause else []
        reports = await provider.fetch_reports()
        assert len(reports) == 1
        seen += [r.raw or "" for r in reports] + [repr(r) for r in reports]
    seen += [record.getMessage() for record in caplog.records]
    assert any("api/command" in record.getMessage() for record in caplog.records)
    _scan(seen, SECRET, encoded)


async def test_json_api_password_and_token_never_escape(
    gw: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    token = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    echo = {"results": [report_row("m-1", "2015-02-12T09:51:43+0100", text=SECRET)]}
    gw.get("/sms/1/logs").respond(200, json=echo)
    gw.get("/sms/1/reports").respond(500, text=f"Basic {token}")
    gw.post("/sms/1/text/single").respond(
        200,
        json={"messages": [entry(DOC_NUMBER, "m-9", 7, 1) | {"note": SECRET}]},
    )
    provider = js(password=SECRET)
    seen: list[str] = [repr(provider)]
    with caplog.at_level(logging.DEBUG):
        receipt = await provider.send(DOC_NUMBER, "hi")
        seen += [receipt.raw or "", repr(receipt)]
        [report] = await provider.logs()
        seen += [report.raw or "", repr(report)]
        with pytest.raises(ProviderError) as info:
            await provider.fetch_reports()
        seen += [str(info.value), repr(info.value), info.value.raw or ""]
        with pytest.raises(BadResponseError) as bad:
            provider.parse_webhook(f"{SECRET} {token}".encode())
        seen += [str(bad.value), bad.value.raw or ""]
    seen += [record.getMessage() for record in caplog.records]
    _scan(seen, SECRET, token)


def test_docs_page_names_every_plain_endpoint() -> None:
    page = Path(__file__).parents[2] / "docs" / "providers" / "mimsms-v3.md"
    text = page.read_text(encoding="utf-8")
    for needle in (
        "/api/sendsms/plain",
        "/api/v3/sendsms/plain",
        "/api/command",
        "cmd=Credits",
        "/api/v3/dr/pull",
        "/sms/1/text/single",
        "/sms/1/reports",
        "/sms/1/logs",
        "longSMS",
        "datacoding=8",
    ):
        assert needle in text, needle
    assert re.search(r"DELIVERED_TO_OPERATOR \| \*\*SENT\*\*", text)
