"""IMIconnect checked against the vendor document, through the public API only.

Request bodies are compared as parsed JSON with respx; the pushed payloads are the
document's delivery-report and inbound-message shapes, whole, partial and broken.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from mimgw import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    DeliveryReport,
    ErrorKind,
    InboundMessage,
    Message,
    MimgwError,
    OutcomeUnknownError,
    ProviderError,
    Receipt,
    RequestRejectedError,
    State,
    UnsupportedOperationError,
)
from mimgw.providers import IMIconnect
from mimgw.simulator import Simulator

SERVICE_KEY = "imi-svc-4c2d9e71"
PATH = "/resources/v1/messaging"
IO = f"https://api.imiconnect.io{PATH}"
DHAKA = ZoneInfo("Asia/Dhaka")


def provider(**kwargs: Any) -> IMIconnect:
    options: dict[str, Any] = {"service_key": SERVICE_KEY, "sender": "DEMOBK"}
    options.update(kwargs)
    return IMIconnect(**options)


def queued(transid: str, correlationid: str | None = None) -> dict[str, str]:
    item = {"code": "1001", "description": "Queued", "transid": transid}
    if correlationid is not None:
        item["correlationid"] = correlationid
    return item


def body_of(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


def secret_free(*texts: object) -> None:
    for text in texts:
        assert SERVICE_KEY not in str(text)


# -- where and how ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "url"),
    [
        ({}, "https://api.imiconnect.io"),
        ({"tld": "com"}, "https://api.imiconnect.com"),
        ({"tld": "in"}, "https://api.imiconnect.in"),
        ({"base_url": "https://api.imiconnect.com"}, "https://api.imiconnect.com"),
        ({"base_url": "https://api-eu.example.test/"}, "https://api-eu.example.test"),
    ],
)
@respx.mock
async def test_messaging_endpoint_per_tenant_host(kwargs: dict[str, Any], url: str) -> None:
    route = respx.post(f"{url}{PATH}").respond(json={"response": [queued("t")]})
    async with provider(**kwargs) as sms:
        await sms.send("01712345678", "hi")
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["key"] == SERVICE_KEY
    assert request.headers["content-type"].lower().startswith("application/json")
    assert "authorization" not in request.headers
    assert SERVICE_KEY.encode() not in request.content
    assert not request.url.query


@respx.mock
async def test_simple_sms_body_shape() -> None:
    route = respx.post(IO).respond(
        json={
            "response": [
                {
                    "code": "1001",
                    "description": "Queued",
                    "transid": "f9793c83-f0b7-4200-99d9-20111c507baf",
                    "correlationid": "cid",
                }
            ]
        }
    )
    async with provider() as sms:
        receipt = await sms.send("01712345678", "Sending first SMS", reference="cid")
    body = body_of(route)
    assert isinstance(body, dict)
    assert body["deliverychannel"] == "sms"
    assert body["channels"] == {"sms": {"text": "Sending first SMS", "senderid": "DEMOBK"}}
    assert body["destination"] == [{"msisdn": ["8801712345678"], "correlationid": "cid"}]
    assert set(body) <= {"deliverychannel", "channels", "destination", "correlationid"}
    assert isinstance(receipt, Receipt)
    assert (receipt.provider, receipt.message_id, receipt.state) == (
        "imiconnect",
        "f9793c83-f0b7-4200-99d9-20111c507baf",
        State.ACCEPTED,
    )
    assert (receipt.to, receipt.reference) == ("8801712345678", "cid")


@respx.mock
async def test_every_message_carries_a_correlation_id_even_without_a_reference() -> None:
    route = respx.post(IO).respond(json={"response": [queued("t")]})
    async with provider() as sms:
        receipt = await sms.send("01712345678", "hi")
    [destination] = body_of(route)["destination"]
    assert receipt.reference and destination["correlationid"] == receipt.reference


@respx.mock
async def test_optional_parameters() -> None:
    route = respx.post(IO).respond(json={"response": [queued("t")]})
    options = {
        "notify_url": "https://mywebsite.example/record/transactions",
        "notify_data": "kopwest4kfr",
        "priority": "2",
        "validity": timedelta(hours=2),
    }
    async with provider(**options) as sms:
        before = datetime.now(DHAKA).replace(tzinfo=None, microsecond=0)
        await sms.send("01712345678", "hi", sender="OTHERID", reference="sgh3tvkpert")
        after = datetime.now(DHAKA).replace(tzinfo=None)
    body = body_of(route)
    assert body["notifyurl"] == "https://mywebsite.example/record/transactions"
    assert body["notifydata"] == "kopwest4kfr"
    assert body["priority"] == "2"
    assert body["channels"]["sms"]["senderid"] == "OTHERID"
    assert body["destination"][0]["correlationid"] == "sgh3tvkpert"
    expiry = datetime.strptime(body["expiry"], "%Y-%m-%dT%H:%M:%S")
    assert before + timedelta(hours=2) <= expiry <= after + timedelta(hours=2)


def test_validity_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="validity"):
        provider(validity=timedelta(0))


@respx.mock
async def test_variables_and_unicode_are_sent_untouched() -> None:
    route = respx.post(IO).respond(json={"response": [queued("t")]})
    async with provider() as sms:
        first = await sms.send("01712345678", "$(name) $(email)")
        second = await sms.send("01712345678", "ধন্যবাদ $(name)")
    assert body_of(route, 0)["channels"]["sms"]["text"] == "$(name) $(email)"
    assert body_of(route, 1)["channels"]["sms"]["text"] == "ধন্যবাদ $(name)"
    assert (first.encoding, second.encoding) == ("gsm7", "ucs2")


@respx.mock
async def test_template_message() -> None:
    route = respx.post(IO).respond(json={"response": [queued("tt", "ref-t")]})
    async with provider() as sms:
        receipt = await sms.send_template("01712345678", "1", reference="ref-t")
    body = body_of(route)
    assert body["message"] == {"template": "1"}
    assert body["deliverychannel"] == "sms"
    assert body["destination"][0]["msisdn"] == ["8801712345678"]
    assert "text" not in body["channels"]["sms"]
    assert receipt.message_id == "tt"


# -- answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["1001", 1001])
@respx.mock
async def test_queued_is_the_one_accepted_code(code: object) -> None:
    respx.post(IO).respond(
        json={"response": [{"code": code, "description": "Queued", "transid": "abc"}]}
    )
    async with provider() as sms:
        receipt = await sms.send("01712345678", "hi")
    assert receipt.message_id == "abc" and receipt.state is State.ACCEPTED


@pytest.mark.parametrize(
    ("code", "description"),
    [("1002", "Invalid msisdn"), ("4001", "Invalid sender id"), ("9999", "Something odd")],
)
@pytest.mark.parametrize("http_status", [200, 400])
@respx.mock
async def test_any_other_code_is_an_error_keeping_code_and_description(
    code: str, description: str, http_status: int
) -> None:
    respx.post(IO).respond(
        http_status,
        json={"response": [{"code": code, "description": description, "correlationid": "r"}]},
    )
    async with provider() as sms:
        with pytest.raises(RequestRejectedError) as info:
            await sms.send("01712345678", "hi", reference="r")
    error = info.value
    assert (error.kind, error.code, error.provider) == (
        ErrorKind.REQUEST_REJECTED,
        code,
        "imiconnect",
    )
    assert description in str(error) and description in error.detail
    assert error.raw is not None and code in error.raw and description in error.raw


@pytest.mark.parametrize(
    "body",
    [
        {"response": {"code": "1002", "description": "Invalid request"}},
        {"code": "1002", "description": "Invalid request"},
    ],
)
@respx.mock
async def test_a_refusal_not_wrapped_in_a_list_keeps_its_code(body: dict[str, Any]) -> None:
    respx.post(IO).respond(400, json=body)
    async with provider() as sms:
        with pytest.raises(RequestRejectedError) as info:
            await sms.send("01712345678", "hi")
    assert info.value.code == "1002" and "Invalid request" in str(info.value)


@respx.mock
async def test_a_refused_service_key_keeps_the_gateway_code() -> None:
    respx.post(IO).respond(
        401, json={"response": [{"code": "6001", "description": "Invalid service key"}]}
    )
    async with provider() as sms:
        with pytest.raises(AuthenticationError) as info:
            await sms.send("01712345678", "hi")
    assert info.value.code == "6001"
    assert "Invalid service key" in str(info.value)
    assert info.value.failover and not info.value.retryable


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"response": []}),
        httpx.Response(502, text=""),
        httpx.ReadTimeout("read timed out"),
    ],
)
@respx.mock
async def test_answers_that_leave_the_fate_open_are_outcome_unknown(
    answer: httpx.Response | Exception,
) -> None:
    respx.post(IO).mock(side_effect=[answer])
    async with provider() as sms:
        with pytest.raises(OutcomeUnknownError) as info:
            await sms.send("01712345678", "hi")
    assert info.value.may_have_been_sent and not info.value.retryable


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"status": "ok"}',
        '{"response": [{"code": "1001", "description": "Queued"}]}',
    ],
)
@respx.mock
async def test_undocumented_answers_are_bad_responses(text: str) -> None:
    respx.post(IO).respond(200, text=text)
    async with provider() as sms:
        with pytest.raises(BadResponseError):
            await sms.send("01712345678", "hi")


# -- bulk -------------------------------------------------------------------------------------


def messages(count: int) -> list[Message]:
    return [
        Message(to=f"0171{i:07d}", text=f"Hi {i}, greetings", reference=f"m{i}")
        for i in range(count)
    ]


@respx.mock
async def test_bulk_is_one_json_array_with_one_outcome_per_message() -> None:
    route = respx.post(IO).respond(
        json={
            "response": [
                queued("t0"),
                {"code": "1002", "description": "Invalid msisdn"},
                queued("t2"),
            ]
        }
    )
    batch = messages(3)
    async with provider() as sms:
        result = await sms.send_bulk(batch)
    assert route.call_count == 1
    sent = body_of(route)
    assert isinstance(sent, list) and len(sent) == 3
    for obj, message in zip(sent, batch, strict=True):
        assert obj["deliverychannel"] == "sms"
        assert obj["channels"]["sms"]["text"] == message.text
        assert obj["destination"] == [{"msisdn": [message.to], "correlationid": message.reference}]
    assert len(result) == 3
    assert isinstance(result[0], Receipt) and result[0].message_id == "t0"
    assert isinstance(result[1], RequestRejectedError) and result[1].code == "1002"
    assert isinstance(result[2], Receipt) and result[2].message_id == "t2"
    assert [m.reference for m, _ in result.items()] == ["m0", "m1", "m2"]


@respx.mock
async def test_bulk_answers_matched_by_correlation_id_in_any_order() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        objects = json.loads(request.content)
        items = [
            queued("T" + o["destination"][0]["correlationid"], o["destination"][0]["correlationid"])
            for o in objects
        ]
        return httpx.Response(200, json={"response": items[::-1]})

    route = respx.post(IO).mock(side_effect=answer)
    async with provider() as sms:
        result = await sms.send_bulk(messages(2001))
    assert sorted(len(body_of(route, i)) for i in range(route.call_count)) == [1, 1000, 1000]
    assert result.ok and len(result) == 2001
    assert [r.message_id for r in result.receipts] == [f"Tm{i}" for i in range(2001)]


@respx.mock
async def test_exactly_1000_is_one_request() -> None:
    route = respx.post(IO).mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={"response": [queued(str(i)) for i in range(len(json.loads(request.content)))]},
        )
    )
    async with provider() as sms:
        result = await sms.send_bulk(messages(1000))
    assert route.call_count == 1 and result.ok


@respx.mock
async def test_bulk_never_raises_for_a_request_that_failed() -> None:
    respx.post(IO).respond(401, text="unauthorised")
    async with provider() as sms:
        result = await sms.send_bulk(messages(3))
    assert len(result) == 3 and not result.ok
    assert all(isinstance(e, AuthenticationError) for e in result)


# -- pushed notifications ---------------------------------------------------------------------

DR_SAMPLE = {
    "deliveryInfoNotification": {
        "deliveryInfo": {
            "deliveryChannel": "SMS",
            "Description": "Delivered",
            "destinationType": "msisdn",
            "timeStamp": "2016-07-20T17:13:17.908",
            "code": "7500",
            "deliveryStatus": "Delivered",
            "destination": "911111111111",
        },
        "correlationid": "4eef-92ca-79fd0250c4a3-262895e4-2217",
        "callbackData": "return callbackdata",
        "transid": "262895e4-2217-4eef-92ca-79fd0250c4a3",
    }
}

MO_SAMPLE = {
    "userId": "cust-1",
    "channel": "SMS",
    "da": "16123",
    "oa": "8801712345678",
    "message": "STOP promo",
    "tid": "5b1c",
    "datetime": "2024-02-01 09:30:00",
    "ts": "1706758200000",
}


def test_delivery_report_sample() -> None:
    seen: list[object] = []
    sms = provider()
    sms.add_listener(seen.append)
    items = sms.parse_webhook(json.dumps(DR_SAMPLE).encode(), {"content-type": "application/json"})
    [report] = items
    assert isinstance(report, DeliveryReport)
    assert report.provider == "imiconnect"
    assert report.message_id == "262895e4-2217-4eef-92ca-79fd0250c4a3"
    assert report.reference == "4eef-92ca-79fd0250c4a3-262895e4-2217"
    assert report.state is State.DELIVERED and report.final and not report.failed
    assert report.to == "911111111111"
    assert report.provider_status == "Delivered"
    assert report.reason is not None and "Delivered" in report.reason
    assert report.done_at == datetime(2016, 7, 20, 17, 13, 17, 908000, tzinfo=DHAKA)
    assert report.done_at is not None and report.done_at.tzinfo is not None
    assert report.raw is not None and "return callbackdata" in report.raw
    assert seen == [report]


def test_report_times_in_another_configured_zone() -> None:
    [report] = provider(timezone="UTC").parse_webhook(json.dumps(DR_SAMPLE).encode(), {})
    assert isinstance(report, DeliveryReport)
    assert report.done_at == datetime(2016, 7, 20, 17, 13, 17, 908000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Delivered", State.DELIVERED),
        ("delivered", State.DELIVERED),
        ("DELIVRD", State.DELIVERED),
        ("UNDELIV", State.UNDELIVERABLE),
        ("Failed", State.UNDELIVERABLE),
        ("Expired", State.EXPIRED),
        ("Rejected", State.REJECTED),
        ("Sent", State.SENT),
        ("Queued", State.PENDING),
        ("Something new", State.UNKNOWN),
    ],
)
def test_delivery_status_words(status: str, state: State) -> None:
    payload = json.loads(json.dumps(DR_SAMPLE))
    payload["deliveryInfoNotification"]["deliveryInfo"]["deliveryStatus"] = status
    [report] = provider().parse_webhook(json.dumps(payload).encode(), {})
    assert isinstance(report, DeliveryReport)
    assert (report.state, report.provider_status) == (state, status)


def test_partial_delivery_report() -> None:
    payload = {
        "deliveryInfoNotification": {
            "deliveryInfo": {"deliveryStatus": "Delivered"},
            "transid": "only-id",
        }
    }
    [report] = provider().parse_webhook(json.dumps(payload).encode(), {})
    assert isinstance(report, DeliveryReport)
    assert (report.message_id, report.state) == ("only-id", State.DELIVERED)
    assert (report.to, report.reference, report.done_at) == (None, None, None)


def test_inbound_message() -> None:
    [inbound] = provider().parse_webhook(json.dumps(MO_SAMPLE).encode(), {})
    assert isinstance(inbound, InboundMessage)
    assert inbound.provider == "imiconnect"
    assert (inbound.sender, inbound.recipient, inbound.text) == (
        "8801712345678",
        "16123",
        "STOP promo",
    )
    assert inbound.received_at == datetime(2024, 2, 1, 3, 30, tzinfo=UTC)
    assert inbound.raw is not None and "cust-1" in inbound.raw


def test_inbound_message_with_only_a_local_datetime() -> None:
    payload = {k: v for k, v in MO_SAMPLE.items() if k != "ts"}
    [inbound] = provider().parse_webhook(json.dumps(payload).encode(), {})
    assert isinstance(inbound, InboundMessage)
    assert inbound.received_at == datetime(2024, 2, 1, 9, 30, tzinfo=DHAKA)


def test_inbound_message_with_unfilled_placeholders_is_kept() -> None:
    payload = {
        "userId": "$(customerId)",
        "channel": "SMS",
        "da": "$(service_code)",
        "oa": "$(msisdn)",
        "message": "$(actual_message)",
        "tid": "$(tid)",
        "datetime": "$(datetime)",
        "ts": "$(ts)",
    }
    [inbound] = provider().parse_webhook(json.dumps(payload).encode(), {})
    assert isinstance(inbound, InboundMessage)
    assert inbound.text == "$(actual_message)" and inbound.received_at is None


def test_a_list_of_pushes_and_a_byte_order_mark() -> None:
    body = "\ufeff" + json.dumps([DR_SAMPLE, MO_SAMPLE])
    items = provider().parse_webhook(body.encode("utf-8"), {})
    assert [type(i) for i in items] == [DeliveryReport, InboundMessage]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<xml/>",
        b"null",
        b'"Delivered"',
        b'{"deliveryInfoNotification": "Delivered"}',
        b'{"deliveryInfoNotification": {"deliveryInfo": {"deliveryStatus": "Delivered"}}}',
        b'{"deliveryInfoNotification": {"transid": "t", "deliveryInfo": {}}}',
        b'{"userId": "u", "channel": "SMS"}',
        b'{"oa": null, "message": "hi"}',
        b'{"oa": "8801712345678", "message": 5}',
    ],
)
def test_malformed_pushes_are_bad_responses(body: bytes) -> None:
    with pytest.raises(BadResponseError) as info:
        provider().parse_webhook(body, {})
    assert isinstance(info.value, MimgwError)
    assert info.value.kind is ErrorKind.BAD_RESPONSE


def test_parse_webhook_is_a_plain_function() -> None:
    result = provider().parse_webhook(json.dumps(MO_SAMPLE).encode(), {})
    assert isinstance(result, list)


async def test_pushed_reports_from_the_simulator_parse() -> None:
    sim = Simulator(seed=5)
    pushed: list[bytes] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        pushed.append(request.content)
        return httpx.Response(200)

    sim.imiconnect.notify_url = "https://hooks.example.test/imiconnect"
    sim.imiconnect.push_client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
    async with sim.client() as client:
        sms = sim.imiconnect.provider(client=client)
        receipt = await sms.send("01712345678", "hello", reference="sim-ref")
        sim.clock.advance(5)
        assert await sim.imiconnect.push_reports() == 1
        await sim.imiconnect.generate_mo("8801812345678", "YES")
    await sim.imiconnect.push_client.aclose()
    [report] = sms.parse_webhook(pushed[0], {})
    [inbound] = sms.parse_webhook(pushed[1], {})
    assert isinstance(report, DeliveryReport) and isinstance(inbound, InboundMessage)
    assert (report.message_id, report.reference, report.state) == (
        receipt.message_id,
        "sim-ref",
        State.DELIVERED,
    )
    assert report.reason is not None and "7500" in report.reason
    assert (inbound.sender, inbound.text) == ("8801812345678", "YES")


# -- what is not offered, and secrets ---------------------------------------------------------


async def test_no_balance_and_no_status_pull() -> None:
    sms = provider()
    caps = sms.capabilities
    assert (caps.balance, caps.status, caps.webhook, caps.batch) == (False, False, True, True)
    assert caps.max_batch == 1000
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route()
        with pytest.raises(UnsupportedOperationError) as balance:
            await sms.balance()
        with pytest.raises(UnsupportedOperationError) as status:
            await sms.status("262895e4")
    assert not route.called
    for error in (balance.value, status.value):
        assert error.kind is ErrorKind.UNSUPPORTED and error.provider == "imiconnect"
    await sms.aclose()


def test_empty_service_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="service_key"):
        IMIconnect(service_key="", sender="X")


@respx.mock
async def test_service_key_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    respx.post(IO).mock(
        side_effect=[
            httpx.Response(200, json={"response": [queued("t1")]}),
            httpx.Response(
                200,
                json={"response": [{"code": "1002", "description": f"bad key {SERVICE_KEY}"}]},
            ),
            httpx.Response(401, json={"response": [{"code": "6001", "description": SERVICE_KEY}]}),
            httpx.ConnectError(f"cannot connect (key={SERVICE_KEY})"),
        ]
    )
    sms = provider()
    receipt = await sms.send("01712345678", "hi")
    seen: list[object] = [receipt.raw, repr(receipt), repr(sms)]
    for _ in range(3):
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "hi")
        error = info.value
        seen += [str(error), repr(error), error.raw, error.detail, error.__cause__]
    push = json.loads(json.dumps(DR_SAMPLE))
    push["deliveryInfoNotification"]["callbackData"] = SERVICE_KEY
    [report] = sms.parse_webhook(json.dumps(push).encode(), {})
    seen += [report.raw, repr(report)]
    await sms.aclose()
    seen.append(caplog.text)
    secret_free(*seen)
