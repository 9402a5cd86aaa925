"""IMIconnect: JSON wire format, batches of 1000, response mapping, pushed reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mimgw import (
    BadResponseError,
    ConfigurationError,
    DeliveryReport,
    ErrorKind,
    InboundMessage,
    InvalidMessageError,
    Message,
    MimgwError,
    ProviderError,
    Receipt,
    State,
    UnsupportedOperationError,
)
from mimgw.providers.imiconnect import IMIconnect

KEY = "svc-key-93f1c0"
URL = "https://api.imiconnect.io/resources/v1/messaging"
DHAKA = timezone(timedelta(hours=6))


def make(**kwargs: Any) -> IMIconnect:
    options: dict[str, Any] = {"service_key": KEY, "sender": "ShopBD"}
    options.update(kwargs)
    return IMIconnect(**options)


def queued(transid: str, cid: str | None = None) -> dict[str, str]:
    item = {"code": "1001", "description": "Queued", "transid": transid}
    return {**item, "correlationid": cid} if cid else item


def sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "  ", SecretStr("")])
def test_empty_service_key_is_refused(value: object) -> None:
    with pytest.raises(ConfigurationError, match="service_key"):
        make(service_key=value)


def test_hosts() -> None:
    assert make().base_url == "https://api.imiconnect.io"
    assert make(tld="com").base_url == "https://api.imiconnect.com"
    assert make(tld="in").base_url == "https://api.imiconnect.in"
    assert make(base_url="https://api.eu.example/").base_url == "https://api.eu.example"
    with pytest.raises(ConfigurationError, match="tld"):
        make(tld="com", base_url="https://api.eu.example")
    with pytest.raises(ConfigurationError, match="tld"):
        make(tld="xx")
    with pytest.raises(ConfigurationError, match="notify_url"):
        make(notify_url="mywebsite/dr")


def test_capabilities() -> None:
    caps = IMIconnect.capabilities
    assert (caps.send, caps.batch, caps.max_batch, caps.webhook) == (True, True, 1000, True)
    assert (caps.balance, caps.status, caps.schedule) == (False, False, False)
    assert IMIconnect.max_batch == 1000


async def test_balance_and_status_are_unsupported_without_a_request() -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route()
        sms = make(service_key=SecretStr(KEY))
        with pytest.raises(UnsupportedOperationError):
            await sms.balance()
        with pytest.raises(UnsupportedOperationError):
            await sms.status("abc")
    assert not route.called


# -- submit ------------------------------------------------------------------------------------


@respx.mock
async def test_send_wire_format() -> None:
    route = respx.post(URL).respond(json={"response": [queued("t-1", "ref-7")]})
    async with make() as sms:
        receipt = await sms.send("01712-345678", "Hello $(name), code 4411", reference="ref-7")
    request = route.calls.last.request
    assert request.headers["key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert sent_json(route) == {
        "correlationid": "ref-7",
        "deliverychannel": "sms",
        "channels": {"sms": {"text": "Hello $(name), code 4411", "senderid": "ShopBD"}},
        "destination": [{"msisdn": ["8801712345678"], "correlationid": "ref-7"}],
    }
    assert (receipt.message_id, receipt.to, receipt.reference) == ("t-1", "8801712345678", "ref-7")
    assert receipt.state is State.ACCEPTED


@respx.mock
async def test_optional_parameters_are_sent_with_every_message() -> None:
    route = respx.post("https://api.imiconnect.com/resources/v1/messaging").respond(
        json={"response": [queued("t-2")]}
    )
    async with make(
        tld="com", notify_url="https://hooks.example/dr", notify_data="shop-42", priority=1
    ) as sms:
        await sms.send("01712345678", "hi", reference="r2", sender="Other")
    body = sent_json(route)
    assert (body["notifyurl"], body["notifydata"], body["priority"]) == (
        "https://hooks.example/dr",
        "shop-42",
        "1",
    )
    assert body["channels"]["sms"]["senderid"] == "Other"


@respx.mock
async def test_send_template_wire_format() -> None:
    route = respx.post(URL).respond(json={"response": [queued("t-3", "r3")]})
    async with make() as sms:
        receipt = await sms.send_template("+8801712345678", " 7 ", reference="r3")
    assert sent_json(route) == {
        "correlationid": "r3",
        "deliverychannel": "sms",
        "message": {"template": "7"},
        "channels": {"sms": {"senderid": "ShopBD"}},
        "destination": [{"msisdn": ["8801712345678"], "correlationid": "r3"}],
    }
    assert (receipt.message_id, receipt.reference, receipt.to) == ("t-3", "r3", "8801712345678")


async def test_send_template_checks_input_before_any_request() -> None:
    sms = make(sender=None)
    with pytest.raises(InvalidMessageError):
        await sms.send_template("01712345678", "")
    with pytest.raises(InvalidMessageError):
        await sms.send_template("12", "1")


@respx.mock
async def test_send_template_rejection_and_missing_answer() -> None:
    route = respx.post(URL)
    route.side_effect = [
        httpx.Response(200, json={"response": [{"code": "4005", "description": "No template"}]}),
        httpx.Response(200, json={"response": []}),
    ]
    async with make(sender=None) as sms:
        with pytest.raises(ProviderError) as rejected:
            await sms.send_template("01712345678", "9")
        with pytest.raises(ProviderError) as missing:
            await sms.send_template("01712345678", "9")
    assert sent_json(route, 0)["channels"] == {"sms": {}}
    assert (rejected.value.kind, rejected.value.code) == (ErrorKind.REQUEST_REJECTED, "4005")
    assert missing.value.kind is ErrorKind.OUTCOME_UNKNOWN


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (
            200,
            {"response": [{"code": "4001", "description": "Invalid sender"}]},
            "request_rejected",
            "4001",
        ),
        (
            400,
            {"response": [{"code": 4002, "description": "Bad number"}]},
            "request_rejected",
            "4002",
        ),
        (401, {"description": "unauthorised"}, "auth", "401"),
        (403, "", "access_denied", "403"),
        (200, {"response": [{"code": "1001", "description": "Queued"}]}, "bad_response", "1001"),
        (200, {"response": [{"description": "Queued", "transid": "x"}]}, "bad_response", None),
        (200, {"response": [{"code": True, "transid": "x"}]}, "bad_response", None),
        (200, {"response": ["1001"]}, "bad_response", None),
        (200, {"response": []}, "outcome_unknown", None),
        (200, {"response": {"code": "1001"}}, "bad_response", None),
        (200, {"code": "1001"}, "bad_response", None),
        (200, [], "bad_response", None),
        (200, "", "bad_response", None),
        (404, "<html>not found</html>", "bad_response", None),
    ],
)
@respx.mock
async def test_submit_answers(status: int, body: object, kind: str, code: str | None) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    respx.post(URL).respond(status, text=text)
    async with make() as sms:
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "hi")
    assert (info.value.kind.value, info.value.code) == (kind, code)
    if kind == "request_rejected":
        assert "Invalid sender" in str(info.value) or "Bad number" in str(info.value)
    assert info.value.raw is not None or text == ""


@respx.mock
async def test_numeric_code_and_foreign_correlationid_on_a_single_send() -> None:
    respx.post(URL).respond(
        json={
            "response": [
                {"code": 1001, "description": "Queued", "transid": "t9", "correlationid": "zz"}
            ]
        }
    )
    async with make() as sms:
        receipt = await sms.send("01712345678", "hi", reference="mine")
    assert (receipt.message_id, receipt.reference) == ("t9", "mine")


# -- bulk --------------------------------------------------------------------------------------


def bulk(n: int) -> list[Message]:
    return [Message(to=f"0171{i:07d}", text=f"m{i}", reference=f"r{i}") for i in range(n)]


@respx.mock
async def test_bulk_is_split_into_arrays_of_1000_with_outcomes_in_order() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        objects = json.loads(request.content)
        items = [
            queued(
                f"t-{o['destination'][0]['correlationid']}", o["destination"][0]["correlationid"]
            )
            for o in objects
        ]
        return httpx.Response(200, json={"response": list(reversed(items))})

    route = respx.post(URL).mock(side_effect=answer)
    messages = bulk(2500)
    async with make() as sms:
        result = await sms.send_bulk(messages, concurrency=2)
    sizes = sorted(len(json.loads(c.request.content)) for c in route.calls)
    assert sizes == [500, 1000, 1000]
    assert all(isinstance(json.loads(c.request.content), list) for c in route.calls)
    assert result.ok and len(result) == 2500
    assert [o.message_id for o in result.receipts] == [f"t-r{i}" for i in range(2500)]
    first = sent_json(route, 0)[0]
    assert first["destination"][0]["msisdn"] == [messages[int(first["correlationid"][1:])].to]


@respx.mock
async def test_bulk_maps_by_position_when_no_correlationid_comes_back() -> None:
    items = [
        queued("t0"),
        {"code": "4001", "description": "Invalid sender"},
        queued("t2"),
    ]
    respx.post(URL).respond(json={"response": items})
    async with make() as sms:
        result = await sms.send_bulk(bulk(3))
    assert isinstance(result[0], Receipt) and result[0].message_id == "t0"
    assert isinstance(result[1], ProviderError) and result[1].code == "4001"
    assert isinstance(result[2], Receipt) and result[2].message_id == "t2"


@respx.mock
async def test_bulk_with_fewer_answers_never_reports_unknown_fates_as_safe() -> None:
    respx.post(URL).respond(json={"response": [queued("t2", "r2"), queued("tx")]})
    async with make() as sms:
        result = await sms.send_bulk(bulk(3))
    assert isinstance(result[2], Receipt) and result[2].message_id == "t2"
    for outcome in (result[0], result[1]):
        assert isinstance(outcome, ProviderError)
        assert outcome.kind is ErrorKind.OUTCOME_UNKNOWN
        assert outcome.may_have_been_sent and not outcome.retryable


@respx.mock
async def test_bulk_with_a_repeated_reference_gets_one_answer_each() -> None:
    respx.post(URL).respond(json={"response": [queued("a", "same"), queued("b", "same")]})
    messages = [Message(to="01712345678", text="x", reference="same")] * 2
    async with make() as sms:
        result = await sms.send_bulk(messages)
    assert [o.message_id for o in result.receipts] == ["a", "b"]


@respx.mock
async def test_a_failed_chunk_fails_only_its_own_messages() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        objects = json.loads(request.content)
        if objects[0]["correlationid"] == "r1000":
            return httpx.Response(401, text="bad key")
        return httpx.Response(
            200, json={"response": [queued(f"t{i}") for i in range(len(objects))]}
        )

    respx.post(URL).mock(side_effect=answer)
    async with make() as sms:
        result = await sms.send_bulk(bulk(1200), concurrency=1)
    assert calls == 2
    assert len(result.receipts) == 1000 and len(result.errors) == 200
    assert all(isinstance(e, ProviderError) and e.kind is ErrorKind.AUTH for e in result.errors)
    assert result[999] is not None and isinstance(result[999], Receipt)


@respx.mock
async def test_bulk_invalid_messages_do_not_reach_the_wire() -> None:
    route = respx.post(URL).respond(json={"response": [queued("t")]})
    messages = [Message(to="01712345678", text="x", send_at=datetime(2030, 1, 1, tzinfo=UTC))]
    messages.append(Message(to="01712345678", text="y"))
    async with make() as sms:
        result = await sms.send_bulk(messages)
    assert len(sent_json(route)) == 1
    assert isinstance(result[0], UnsupportedOperationError) and isinstance(result[1], Receipt)


# -- secrets -----------------------------------------------------------------------------------


@respx.mock
async def test_service_key_stays_out_of_logs_errors_and_raw(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    route = respx.post(URL)
    route.side_effect = [
        httpx.Response(401, text=f"key {KEY} is not valid"),
        httpx.Response(200, json={"response": [{"code": "4", "description": f"bad {KEY}"}]}),
        httpx.ConnectError(f"no route for key={KEY}"),
    ]
    sms = make()
    for kind in ("auth", "request_rejected", "connect_failed"):
        with pytest.raises(ProviderError) as info:
            await sms.send("01712345678", "hello")
        assert info.value.kind.value == kind
        for text in (str(info.value), repr(info.value), info.value.raw, info.value.__cause__):
            assert KEY not in str(text)
    await sms.aclose()
    assert KEY not in repr(sms)
    assert KEY not in caplog.text


# -- webhook -----------------------------------------------------------------------------------


def dr(**info: object) -> dict[str, Any]:
    delivery = {
        "deliveryChannel": "SMS",
        "Description": "Delivered",
        "destinationType": "msisdn",
        "timeStamp": "2024-03-05T10:20:30.125",
        "code": "7010",
        "deliveryStatus": "Delivered",
        "destination": "8801712345678",
    }
    delivery.update(info)  # type: ignore[arg-type]
    return {
        "deliveryInfoNotification": {
            "deliveryInfo": {k: v for k, v in delivery.items() if v is not None},
            "correlationid": "ref-1",
            "callbackData": "cb",
            "transid": "tr-1",
        }
    }


def test_delivery_report_payload() -> None:
    seen: list[object] = []
    sms = make()
    sms.add_listener(seen.append)
    [report] = sms.parse_webhook(json.dumps(dr()).encode(), {"content-type": "application/json"})
    assert isinstance(report, DeliveryReport)
    assert (report.message_id, report.reference, report.to) == ("tr-1", "ref-1", "8801712345678")
    assert (report.state, report.provider_status) == (State.DELIVERED, "Delivered")
    assert report.reason == "Delivered (code 7010)"
    assert report.done_at == datetime(2024, 3, 5, 10, 20, 30, 125000, tzinfo=DHAKA)
    assert report.done_at is not None and report.done_at.tzinfo == UTC
    assert report.raw is not None and "cb" in report.raw
    assert seen == [report]


def test_naive_report_times_follow_the_configured_zone() -> None:
    [report] = make(timezone="UTC").parse_webhook(json.dumps(dr()).encode())
    assert isinstance(report, DeliveryReport)
    assert report.done_at == datetime(2024, 3, 5, 10, 20, 30, 125000, tzinfo=UTC)
    [zoned] = make().parse_webhook(json.dumps(dr(timeStamp="2024-03-05T10:20:30Z")).encode())
    assert isinstance(zoned, DeliveryReport)
    assert zoned.done_at == datetime(2024, 3, 5, 10, 20, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Delivered", State.DELIVERED),
        ("DELIVERED", State.DELIVERED),
        ("Sent", State.SENT),
        ("Delivered to operator", State.SENT),
        ("Queued", State.PENDING),
        ("Failed", State.UNDELIVERABLE),
        ("Undelivered", State.UNDELIVERABLE),
        ("Expired", State.EXPIRED),
        ("Rejected", State.REJECTED),
        ("Mystery", State.UNKNOWN),
    ],
)
def test_delivery_status_words(status: str, state: State) -> None:
    [report] = make().parse_webhook(json.dumps(dr(deliveryStatus=status)).encode())
    assert isinstance(report, DeliveryReport)
    assert (report.state, report.provider_status) == (state, status)


def test_partial_reports_keep_what_they_have() -> None:
    body = dr(timeStamp="yesterday", Description=None, code=None, destination=None)
    del body["deliveryInfoNotification"]["correlationid"]
    [report] = make().parse_webhook(json.dumps(body).encode())
    assert isinstance(report, DeliveryReport)
    assert (report.done_at, report.reason, report.reference, report.to) == (None, None, None, None)
    assert report.state is State.DELIVERED


def test_inbound_message_and_lists() -> None:
    mo = {
        "userId": "u-5",
        "channel": "SMS",
        "da": "26969",
        "oa": "8801812345678",
        "message": "STOP",
        "tid": "x1",
        "datetime": "2024-03-05 10:20:30",
        "ts": "1709612430000",
    }
    no_ts = {**mo, "ts": ""}
    items = make().parse_webhook(json.dumps([dr(), mo, no_ts]).encode())
    assert [type(i).__name__ for i in items] == [
        "DeliveryReport",
        "InboundMessage",
        "InboundMessage",
    ]
    inbound = items[1]
    assert isinstance(inbound, InboundMessage)
    assert (inbound.sender, inbound.recipient, inbound.text) == ("8801812345678", "26969", "STOP")
    assert inbound.received_at == datetime(2024, 3, 5, 4, 20, 30, tzinfo=UTC)
    assert isinstance(items[2], InboundMessage)
    assert items[2].received_at == datetime(2024, 3, 5, 10, 20, 30, tzinfo=DHAKA)
    assert make().parse_webhook(b"[]") == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"42",
        b"[1]",
        b'{"hello": "world"}',
        b'{"deliveryInfoNotification": null}',
        b'{"deliveryInfoNotification": {"transid": "t"}}',
        b'{"deliveryInfoNotification": {"deliveryInfo": [], "transid": "t"}}',
        json.dumps(dr(deliveryStatus=None)).encode(),
        json.dumps(dr(deliveryStatus=5)).encode(),
        json.dumps(
            {"deliveryInfoNotification": {"deliveryInfo": {"deliveryStatus": "Sent"}}}
        ).encode(),
        b'{"oa": "", "message": "x"}',
        b'{"oa": "8801712345678", "message": null}',
        b'[{"oa": "8801712345678", "message": "ok"}, "junk"]',
    ],
)
def test_malformed_payloads_are_bad_responses(body: bytes) -> None:
    with pytest.raises(BadResponseError) as info:
        make().parse_webhook(body)
    assert info.value.raw is not None


# -- properties --------------------------------------------------------------------------------

_json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6)
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "response",
                    "code",
                    "transid",
                    "correlationid",
                    "deliveryInfoNotification",
                    "deliveryInfo",
                    "deliveryStatus",
                    "timeStamp",
                    "oa",
                    "message",
                    "ts",
                    "da",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(_json_values.map(json.dumps), st.text(max_size=40)))
def test_any_webhook_payload_gives_items_or_a_mimgw_error(payload: str) -> None:
    try:
        items = make().parse_webhook(payload.encode())
    except MimgwError:
        return
    assert all(isinstance(i, DeliveryReport | InboundMessage) for i in items)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.one_of(_json_values.map(json.dumps), st.text(max_size=40)),
    status=st.sampled_from([200, 400, 500]),
)
def test_any_submit_answer_gives_outcomes_or_a_mimgw_error(payload: str, status: int) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=payload)

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            sms = make(client=client)
            with contextlib.suppress(MimgwError):
                await sms.send("01712345678", "x")
            result = await sms.send_bulk(bulk(3))
            assert len(result) == 3
            assert all(isinstance(o, Receipt | MimgwError) for o in result)

    asyncio.run(run())
