"""MimSmsV3Json (legacy Basic-auth JSON API) on the wire, with respx."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimgw import (
    AuthenticationError,
    BadResponseError,
    DeliveryReport,
    ErrorKind,
    InvalidMessageError,
    Message,
    MimgwError,
    ProviderError,
    Receipt,
    RecipientRejectedError,
    State,
    UnsupportedOperationError,
)
from mimgw.providers._v3_codes import DEFAULT_RETRIES, GSM_ERRORS, STATUSES
from mimgw.providers.mimsms_v3_json import MimSmsV3Json, classify

BASE = "http://api.mimsms.com"
USER, PASSWORD = "acct-json", "open-sesame-42"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
NUMBER = "8801712345678"


def make(**overrides: Any) -> MimSmsV3Json:
    kwargs: dict[str, Any] = {"username": USER, "password": PASSWORD, "sender": "ACME"}
    return MimSmsV3Json(**(kwargs | overrides))


def status(sid: int) -> dict[str, Any]:
    row = STATUSES[sid]
    return {"groupId": row.group, "groupName": "X", "id": sid, "name": row.name}


def accepted(to: str = NUMBER, mid: str = "m-1", sid: int = 7, count: int = 1) -> dict[str, Any]:
    return {"to": to, "status": status(sid), "smsCount": count, "messageId": mid}


def row(
    mid: str = "m-1", sid: int = 5, error: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    base = {
        "bulkId": "b-1",
        "messageId": mid,
        "to": NUMBER,
        "sentAt": "2024-03-09T07:04:58.100+0600",
        "doneAt": "2024-03-09T07:05:00.250+0600",
        "smsCount": 1,
        "status": status(sid),
        "error": error
        or {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "permanent": False},
    }
    return base | extra


@pytest.fixture
def gw() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def last(route: respx.Route) -> httpx.Request:
    return route.calls.last.request


# -- submit ---------------------------------------------------------------------------------


async def test_send_posts_exact_json_with_basic_auth(gw: respx.MockRouter) -> None:
    route = gw.post("/sms/1/text/single").respond(200, json={"messages": [accepted(count=2)]})
    receipt = await make().send("01712345678", "hi there", reference="r-9")
    request = last(route)
    assert request.content == b'{"from":"ACME","to":"8801712345678","text":"hi there"}'
    assert request.headers["authorization"] == f"Basic {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.url.query == b""
    assert (receipt.message_id, receipt.to, receipt.segments, receipt.reference) == (
        "m-1",
        NUMBER,
        2,
        "r-9",
    )
    assert receipt.state is State.PENDING
    assert json.loads(receipt.raw or "")["messageId"] == "m-1"


async def test_unicode_text_goes_as_utf8_json(gw: respx.MockRouter) -> None:
    route = gw.post("/sms/1/text/single").respond(200, json={"messages": [accepted()]})
    receipt = await make().send(NUMBER, "আমি", sender="BRAND")
    assert json.loads(last(route).content) == {"from": "BRAND", "to": NUMBER, "text": "আমি"}
    assert receipt.encoding == "ucs2"


async def test_an_accepted_group_status_outside_the_table_is_accepted(gw: respx.MockRouter) -> None:
    entry = {
        "to": NUMBER,
        "status": {"groupId": 0, "id": 0, "name": "MESSAGE_ACCEPTED"},
        "messageId": 77,
    }
    gw.post("/sms/1/text/single").respond(200, json={"messages": [entry]})
    receipt = await make().send(NUMBER, "hi")
    assert (receipt.state, receipt.message_id, receipt.segments) == (State.ACCEPTED, "77", 1)


REJECTED = sorted(s.id for s in STATUSES.values() if s.group == 5)
NOT_REJECTED = sorted(s.id for s in STATUSES.values() if s.group != 5)


@pytest.mark.parametrize("sid", REJECTED)
async def test_every_rejected_status_at_submit_is_an_error(gw: respx.MockRouter, sid: int) -> None:
    entry = {"to": NUMBER, "status": status(sid) | {"description": "said no"}}
    gw.post("/sms/1/text/single").respond(200, json={"messages": [entry]})
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert (info.value.kind, info.value.code) == (STATUSES[sid].submit_error, str(sid))
    assert STATUSES[sid].name in str(info.value)
    assert json.loads(info.value.raw or "") == entry


@pytest.mark.parametrize(
    ("sid", "kind"),
    [
        (12, ErrorKind.INSUFFICIENT_BALANCE),
        (17, ErrorKind.INSUFFICIENT_BALANCE),
        (11, ErrorKind.SENDER_REJECTED),
        (13, ErrorKind.SENDER_REJECTED),
        (8, ErrorKind.RECIPIENT_REJECTED),
        (10, ErrorKind.RECIPIENT_REJECTED),
        (14, ErrorKind.RECIPIENT_REJECTED),
        (18, ErrorKind.RECIPIENT_REJECTED),
        (24, ErrorKind.CONTENT_REJECTED),
        (25, ErrorKind.CONTENT_REJECTED),
        (6, ErrorKind.ACCESS_DENIED),
        (19, ErrorKind.ACCESS_DENIED),
        (16, ErrorKind.PROVIDER_UNAVAILABLE),
        (21, ErrorKind.PROVIDER_UNAVAILABLE),
        (20, ErrorKind.REQUEST_REJECTED),
        (23, ErrorKind.REQUEST_REJECTED),
    ],
)
def test_the_submit_error_table(sid: int, kind: ErrorKind) -> None:
    assert STATUSES[sid].submit_error is kind


async def test_an_unlisted_rejection_keeps_its_code(gw: respx.MockRouter) -> None:
    entry = {
        "to": NUMBER,
        "status": {"groupId": 5, "groupName": "REJECTED", "id": 99, "name": "REJECTED_NEW"},
    }
    gw.post("/sms/1/text/single").respond(200, json={"messages": [entry]})
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert (info.value.kind, info.value.code) == (ErrorKind.REQUEST_REJECTED, "99")


@pytest.mark.parametrize("sid", NOT_REJECTED)
async def test_other_statuses_at_submit_give_a_receipt_in_that_state(
    gw: respx.MockRouter, sid: int
) -> None:
    gw.post("/sms/1/text/single").respond(200, json={"messages": [accepted(sid=sid)]})
    receipt = await make().send(NUMBER, "hi")
    assert receipt.state is STATUSES[sid].state


async def test_401_is_an_authentication_error(gw: respx.MockRouter) -> None:
    gw.post("/sms/1/text/single").respond(401, json={"requestError": {"text": "no"}})
    with pytest.raises(AuthenticationError) as info:
        await make().send(NUMBER, "hi")
    assert info.value.http_status == 401


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (200, "not json"),
        (200, "[]"),
        (200, "{}"),
        (200, '{"messages": []}'),
        (200, '{"messages": ["x"]}'),
        (200, '{"messages": [{"to": "8801712345678"}]}'),
        (200, '{"messages": [{"to": "8801712345678", "status": {"groupId": 1, "id": 7}}]}'),
        (200, '{"messages": [{"status": {"id": 7}, "messageId": " "}]}'),
        (400, '{"requestError": {}}'),
    ],
)
async def test_undocumented_submit_answers_are_bad_responses(
    gw: respx.MockRouter, code: int, body: str
) -> None:
    gw.post("/sms/1/text/single").respond(code, text=body)
    with pytest.raises(BadResponseError):
        await make().send(NUMBER, "hi")


async def test_unstructured_5xx_at_submit_is_outcome_unknown(gw: respx.MockRouter) -> None:
    gw.post("/sms/1/text/single").respond(502, text="<html>proxy</html>")
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert info.value.kind is ErrorKind.OUTCOME_UNKNOWN


# -- bulk -----------------------------------------------------------------------------------


def answer_each(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    to = body["to"]
    if not isinstance(to, str):  # the document shows a single string only
        return httpx.Response(400, json={"requestError": {"text": "to must be a string"}})
    if to.endswith("9"):
        return httpx.Response(200, json={"messages": [{"to": to, "status": status(14)}]})
    return httpx.Response(200, json={"messages": [accepted(to=to, mid=f"id-{to}")]})


async def test_bulk_sends_one_documented_single_per_message(gw: respx.MockRouter) -> None:
    route = gw.post("/sms/1/text/single").mock(side_effect=answer_each)
    messages = [
        Message(to="01712345670", text="same"),
        Message(to="01712345671", text="other"),
        Message(to="01712345679", text="same"),
        Message(to="01712345672", text="same"),
        Message(to="01712345673", text="same", sender="ELSE"),
    ]
    result = await make().send_bulk(messages)
    bodies = sorted((json.loads(c.request.content) for c in route.calls), key=str)
    assert bodies == sorted(
        [
            {"from": "ACME", "to": "8801712345670", "text": "same"},
            {"from": "ACME", "to": "8801712345671", "text": "other"},
            {"from": "ACME", "to": "8801712345679", "text": "same"},
            {"from": "ACME", "to": "8801712345672", "text": "same"},
            {"from": "ELSE", "to": "8801712345673", "text": "same"},
        ],
        key=str,
    )
    outcomes = list(result)
    assert isinstance(outcomes[0], Receipt) and outcomes[0].message_id == "id-8801712345670"
    assert isinstance(outcomes[1], Receipt) and outcomes[1].message_id == "id-8801712345671"
    assert isinstance(outcomes[2], RecipientRejectedError)
    assert isinstance(outcomes[3], Receipt) and outcomes[3].reference == messages[3].reference
    assert isinstance(outcomes[4], Receipt) and outcomes[4].to == "8801712345673"
    assert make().capabilities.batch is False


async def test_bulk_concurrency_is_bounded(gw: respx.MockRouter) -> None:
    running, peak = 0, 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return answer_each(request)

    route = gw.post("/sms/1/text/single").mock(side_effect=answer)
    numbers = [f"0171{i:06d}0" for i in range(12)]
    result = await make().send_bulk([Message(to=n, text="hello") for n in numbers], concurrency=3)
    assert route.call_count == 12 and len(result.receipts) == 12
    assert peak == 3


async def test_bulk_with_the_same_number_twice_sends_twice(gw: respx.MockRouter) -> None:
    route = gw.post("/sms/1/text/single")
    route.side_effect = [
        httpx.Response(200, json={"messages": [accepted(mid="first")]}),
        httpx.Response(200, json={"messages": [accepted(mid="second")]}),
    ]
    result = await make().send_bulk(
        [Message(to=NUMBER, text="x"), Message(to=NUMBER, text="x")], concurrency=1
    )
    assert [r.message_id for r in result.receipts] == ["first", "second"]
    assert [json.loads(c.request.content)["to"] for c in route.calls] == [NUMBER, NUMBER]


# -- reports, logs, status ------------------------------------------------------------------


async def test_reports_query_and_listeners(gw: respx.MockRouter) -> None:
    route = gw.get("/sms/1/reports").respond(200, json={"results": [row("a"), row("b", 9)]})
    provider = make()
    heard: list[object] = []
    provider.add_listener(heard.append)
    found = await provider.reports(bulk_id="bk 1", message_id="a", limit=5)
    assert last(route).url.query == b"bulkId=bk%201&messageId=a&limit=5"
    assert last(route).headers["authorization"] == f"Basic {TOKEN}"
    assert [r.state for r in found] == [State.DELIVERED, State.UNDELIVERABLE]
    assert heard == found
    await provider.fetch_reports(limit=3)
    assert last(route).url.query == b"limit=3"
    await provider.fetch_reports()
    assert last(route).url.query == b""
    assert len(heard) == 6


@pytest.mark.parametrize(
    "kwargs", [{"limit": 0}, {"limit": -1}, {"bulk_id": " "}, {"message_id": ""}]
)
async def test_reports_arguments_are_checked(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessageError):
        await make().reports(**kwargs)


async def test_logs_sends_every_filter(gw: respx.MockRouter) -> None:
    route = gw.get("/sms/1/logs").respond(200, json={"results": [row("a")]})
    provider = make()
    heard: list[object] = []
    provider.add_listener(heard.append)
    found = await provider.logs(
        sender="ACME",
        to="01712345678",
        bulk_id=["b1", "b2"],
        message_id="m1",
        general_status="delivered",
        sent_since=datetime(2024, 3, 9, 7, 5, tzinfo=timezone(timedelta(hours=6))),
        sent_until=datetime(2024, 3, 9, 12, 0, 0, 123456),  # naive: Dhaka
        limit=10,
        mcc="470",
        mnc="01",
    )
    assert last(route).url.query.decode() == (
        "from=ACME&to=8801712345678&bulkId=b1,b2&messageId=m1&generalStatus=DELIVERED"
        "&sentSince=2024-03-09T01%3A05%3A00.000%2B0000"
        "&sentUntil=2024-03-09T06%3A00%3A00.123%2B0000"
        "&limit=10&mcc=470&mnc=01"
    )
    assert [r.message_id for r in found] == ["a"] and heard == found


@pytest.mark.parametrize(
    "kwargs",
    [
        {"general_status": "DONE"},
        {"limit": 0},
        {"to": "12"},
        {"message_id": []},
        {"bulk_id": ["a,b"]},
        {"sent_since": "yesterday"},
        {"mcc": ""},
    ],
)
async def test_logs_arguments_are_checked(gw: respx.MockRouter, kwargs: dict[str, Any]) -> None:
    route = gw.get("/sms/1/logs").respond(200, json={"results": []})
    with pytest.raises(InvalidMessageError):
        await make().logs(**kwargs)
    assert not route.called


async def test_status_reads_the_logs(gw: respx.MockRouter) -> None:
    route = gw.get("/sms/1/logs").respond(200, json={"results": [row("m-2", 2)]})
    report = await make().status("m-2")
    assert last(route).url.query == b"messageId=m-2"
    assert (report.state, report.provider_status, report.to) == (
        State.SENT,
        "DELIVERED_TO_OPERATOR",
        NUMBER,
    )
    assert report.done_at == datetime(2024, 3, 9, 1, 5, 0, 250000, tzinfo=UTC)


async def test_status_not_in_the_logs_is_unknown(gw: respx.MockRouter) -> None:
    gw.get("/sms/1/logs").respond(200, json={"results": [row("someone-else")]})
    report = await make().status("m-3")
    assert (report.message_id, report.state) == ("m-3", State.UNKNOWN)


@pytest.mark.parametrize("sid", sorted(STATUSES))
def test_every_status_maps_by_id(sid: int) -> None:
    state, found, code, label = classify(status(sid))
    assert (state, found, code, label) == (
        STATUSES[sid].state,
        STATUSES[sid],
        sid,
        STATUSES[sid].name,
    )


def test_the_state_of_each_status_row() -> None:
    expected = {
        1: State.PENDING, 2: State.SENT, 3: State.PENDING, 4: State.UNDELIVERABLE,
        5: State.DELIVERED, 7: State.PENDING, 9: State.UNDELIVERABLE, 15: State.EXPIRED,
        22: State.EXPIRED,
    }  # fmt: skip
    for sid, row_ in STATUSES.items():
        assert row_.state is expected.get(sid, State.REJECTED), sid
        assert (row_.group == 5) is (row_.state is State.REJECTED)


@pytest.mark.parametrize(
    ("obj", "state"),
    [
        ({"groupId": 3, "name": "DELIVERED_TO_OPERATOR"}, State.SENT),  # name before group
        ({"groupId": 3}, State.DELIVERED),
        ({"groupId": "4"}, State.EXPIRED),
        ({"groupName": "pending"}, State.PENDING),
        ({"name": "rejected_dnd"}, State.REJECTED),
        ({"id": 5, "groupId": 1, "name": "OTHER"}, State.DELIVERED),  # id first
        ({"id": 77, "groupId": 9, "name": "NEW"}, State.UNKNOWN),
        ({}, State.UNKNOWN),
        ({"id": True, "groupId": None}, State.UNKNOWN),
    ],
)
def test_status_fallbacks(obj: dict[str, Any], state: State) -> None:
    assert classify(obj)[0] is state


def gsm_error(eid: int, **extra: Any) -> dict[str, Any]:
    return {
        "groupId": 1,
        "groupName": "HANDSET_ERRORS",
        "id": eid,
        "name": GSM_ERRORS[eid].name,
    } | extra


@pytest.mark.parametrize("eid", sorted(e for e in GSM_ERRORS if e))
def test_every_gsm_error_row_sets_reason_and_permanence(eid: int) -> None:
    entry = row("g", 9, gsm_error(eid))
    [report] = make().parse_webhook(json.dumps({"results": [entry]}).encode())
    assert isinstance(report, DeliveryReport)
    expected = GSM_ERRORS[eid].permanent
    assert (report.reason, report.permanent) == (GSM_ERRORS[eid].name, expected)
    assert report.retries_allowed == (0 if expected else DEFAULT_RETRIES)


@pytest.mark.parametrize(
    ("eid", "flag", "retries"),
    [(1, False, DEFAULT_RETRIES), (6, True, 0), (6, "yes", DEFAULT_RETRIES)],
)
def test_the_error_objects_own_flag_wins(eid: int, flag: object, retries: int) -> None:
    entry = row("g", 9, gsm_error(eid, permanent=flag))
    [report] = make().parse_webhook(json.dumps({"results": [entry]}).encode())
    assert isinstance(report, DeliveryReport)
    assert report.retries_allowed == retries


@pytest.mark.parametrize(
    ("sid", "error", "reason", "permanent", "retries"),
    [
        (5, None, None, None, 0),
        (2, None, None, None, 0),
        (14, None, "REJECTED_DESTINATION", True, 0),
        (21, None, "REJECTED_SYSTEM_ERROR", False, DEFAULT_RETRIES),
        (15, None, "EXPIRED_EXPIRED", False, DEFAULT_RETRIES),
        (9, {"id": 4242, "permanent": True}, "GSM error 4242", True, 0),
        (9, {"id": 4242}, "GSM error 4242", None, 0),
        (4, "nonsense", "UNDELIVERABLE_REJECTED_OPERATOR", False, DEFAULT_RETRIES),
    ],
)
def test_failures_without_a_gsm_error_use_the_status(
    sid: int, error: Any, reason: str | None, permanent: bool | None, retries: int
) -> None:
    entry = row("g", sid) | {"error": error}
    [report] = make().parse_webhook(json.dumps({"results": [entry]}).encode())
    assert isinstance(report, DeliveryReport)
    assert (report.reason, report.permanent, report.retries_allowed) == (reason, permanent, retries)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2015-02-12T09:51:43.123+0100", datetime(2015, 2, 12, 8, 51, 43, 123000, tzinfo=UTC)),
        ("2015-02-12T09:51:43+01:00", datetime(2015, 2, 12, 8, 51, 43, tzinfo=UTC)),
        ("2015-02-12T09:51:43Z", datetime(2015, 2, 12, 9, 51, 43, tzinfo=UTC)),
        ("2015-02-12T09:51:43", datetime(2015, 2, 12, 3, 51, 43, tzinfo=UTC)),
        ("12/02/2015", None),
        (1423734703, None),
        (None, None),
    ],
)
def test_timestamps(value: object, expected: datetime | None) -> None:
    [report] = make().parse_webhook(json.dumps({"results": [row(doneAt=value)]}).encode())
    assert isinstance(report, DeliveryReport)
    assert report.done_at == expected


def test_webhook_reports_go_to_listeners_and_skip_unusable_rows() -> None:
    provider = make()
    heard: list[object] = []
    provider.add_listener(heard.append)
    body = {
        "results": [row("a"), "junk", {"status": status(5)}, row("b", 15), row("c", status=None)]
    }
    found = provider.parse_webhook(json.dumps(body).encode(), {"content-type": "application/json"})
    assert [(r.message_id, r.state) for r in found if isinstance(r, DeliveryReport)] == [
        ("a", State.DELIVERED),
        ("b", State.EXPIRED),
        ("c", State.UNKNOWN),
    ]
    assert heard == found


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'{"results": {}}', b"\xff\xfe", b"{" * 5000]
)
def test_bad_webhook_bodies_are_bad_responses(body: bytes) -> None:
    with pytest.raises(BadResponseError):
        make().parse_webhook(body)


@pytest.mark.parametrize("path", ["/sms/1/reports", "/sms/1/logs"])
async def test_read_errors(gw: respx.MockRouter, path: str) -> None:
    gw.get(path).respond(401, text="")
    with pytest.raises(AuthenticationError):
        await make().fetch_reports() if path.endswith("reports") else await make().logs()
    gw.get(path).respond(200, json={"results": "none"})
    with pytest.raises(BadResponseError):
        await make().fetch_reports() if path.endswith("reports") else await make().logs()


async def test_balance_is_unsupported() -> None:
    provider = make()
    assert not provider.capabilities.balance
    assert provider.capabilities.status and provider.capabilities.reports
    assert provider.capabilities.webhook and not provider.capabilities.batch
    with pytest.raises(UnsupportedOperationError):
        await provider.balance()
    with pytest.raises(UnsupportedOperationError):
        await provider.send(NUMBER, "hi", send_at=datetime.now(UTC) + timedelta(hours=1))


# -- secrets --------------------------------------------------------------------------------


async def test_basic_auth_never_leaks(
    gw: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    echo = f'{{"echo": "Basic {TOKEN}", "password": "{PASSWORD}"}}'
    gw.post("/sms/1/text/single").respond(500, text=echo)
    gw.get("/sms/1/logs").mock(side_effect=httpx.ReadTimeout(f"timeout Basic {TOKEN}"))
    provider = make()
    texts: list[str] = [repr(provider)]
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(ProviderError) as first:
            await provider.send(NUMBER, "hi")
        with pytest.raises(ProviderError) as second:
            await provider.status("m-1")
        with pytest.raises(ProviderError) as third:
            provider.parse_webhook(f"Basic {TOKEN} {PASSWORD}".encode())
    for error in (first.value, second.value, third.value):
        texts += [str(error), repr(error), error.raw or "", error.detail]
        cause = error.__cause__
        texts += [str(cause), repr(cause)] if cause else []
    texts += [r.getMessage() for r in caplog.records]
    assert any("sms/1/text/single" in r.getMessage() for r in caplog.records)
    assert first.value.raw and "***" in first.value.raw
    for text in texts:
        assert TOKEN not in text
        assert PASSWORD not in text


# -- any body -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["messages", "results", "to", "status", "id", "groupId", "name", "messageId",
         "smsCount", "error", "permanent", "doneAt"]), inner, max_size=5),
    max_leaves=25,
)  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(st.text(max_size=100), json_values.map(json.dumps)),
    code=st.sampled_from([200, 401, 500]),
    which=st.integers(0, 2),
)
def test_any_body_gives_a_result_or_a_mimgw_error(body: str, code: int, which: int) -> None:
    async def run() -> object:
        with respx.mock(base_url=BASE, assert_all_called=False) as router:
            router.post("/sms/1/text/single").respond(code, text=body)
            router.get("/sms/1/reports").respond(code, text=body)
            provider = make()
            try:
                if which == 0:
                    return await provider.send(NUMBER, "hi")
                if which == 1:
                    return await provider.fetch_reports()
                return provider.parse_webhook(body.encode())
            except MimgwError as exc:
                return exc
            finally:
                await provider.aclose()

    outcome = asyncio.run(run())
    assert isinstance(outcome, Receipt | MimgwError | list)
