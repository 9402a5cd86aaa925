"""MimSmsV3Json against the document's status table: Action column, flooding, account
failures that no resend through the same account can cure, and structured 5xx answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
import respx

from mimgw import DeliveryReport, ErrorKind, ProviderError, State
from mimgw.providers._v3_codes import DEFAULT_RETRIES, STATUSES, retries_for
from mimgw.providers.mimsms_v3_json import MimSmsV3Json

BASE = "http://api.mimsms.com"
NUMBER = "8801613537347"  # the document's number


def make() -> MimSmsV3Json:
    return MimSmsV3Json(username="Aladdin", password="open sesame", sender="InfoSMS")


@pytest.fixture
def gw() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def rejected(sid: int, **extra: Any) -> dict[str, Any]:
    row = STATUSES[sid]
    status = {"groupId": 5, "groupName": "REJECTED", "id": sid, "name": row.name} | extra
    return {"messages": [{"to": NUMBER, "status": status}]}


# -- the Action column ------------------------------------------------------------------------

ACTIONS = {
    6: "Contact account manager",
    13: "Remove sender from blacklist",
    14: "Remove destination from blacklist",
    17: "Top-Up your account to extend the validity period",
    19: "Contact account manager",
    20: "STOP SPAMMING",
}


@pytest.mark.parametrize(("sid", "action"), sorted(ACTIONS.items()))
async def test_a_rejection_names_the_tables_action(
    gw: respx.MockRouter, sid: int, action: str
) -> None:
    gw.post("/sms/1/text/single").respond(200, json=rejected(sid))
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert action in str(info.value)
    assert STATUSES[sid].name in str(info.value)


@pytest.mark.parametrize("sid", sorted(s.id for s in STATUSES.values() if s.group == 5))
def test_the_action_column_is_kept_exactly(sid: int) -> None:
    assert STATUSES[sid].action == ACTIONS.get(sid)


async def test_a_rejection_without_an_action_says_none(gw: respx.MockRouter) -> None:
    gw.post("/sms/1/text/single").respond(200, json=rejected(12, description="Not enough credits"))
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert "REJECTED_NOT_ENOUGH_CREDITS: Not enough credits" in str(info.value)
    assert "action" not in str(info.value)


async def test_the_status_objects_own_action_wins(gw: respx.MockRouter) -> None:
    # the document's log example carries "action" inside the status object
    body = rejected(6, description="Network is forbidden", action="Call us")
    gw.post("/sms/1/text/single").respond(200, json=body)
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert "Network is forbidden (action: Call us)" in str(info.value)


# -- status 20: flooding ----------------------------------------------------------------------


async def test_flooding_is_a_rejection_neither_retried_nor_failed_over(
    gw: respx.MockRouter,
) -> None:
    route = gw.post("/sms/1/text/single").respond(200, json=rejected(20))
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    error = info.value
    assert error.kind is ErrorKind.REQUEST_REJECTED
    assert not error.kind.retryable and not error.kind.failover
    assert error.code == "20" and not error.may_have_been_sent
    assert route.call_count == 1


# -- reports: what a resend can cure ------------------------------------------------------------


def report_of(sid: int, error: dict[str, Any] | None = None) -> DeliveryReport:
    row = STATUSES[sid]
    entry = {
        "bulkId": "b",
        "messageId": f"m-{sid}",
        "to": NUMBER,
        "status": {"groupId": row.group, "id": sid, "name": row.name},
        "error": error or {"groupId": 0, "id": 0, "name": "NO_ERROR", "permanent": False},
    }
    [report] = make().parse_webhook(json.dumps({"results": [entry]}).encode())
    assert isinstance(report, DeliveryReport)
    return report


# absent subscriber: a GSM error that on its own would allow resending
ABSENT = {"groupId": 1, "id": 27, "name": "EC_ABSENT_SUBSCRIBER", "permanent": False}


@pytest.mark.parametrize("sid", [12, 17, 19, 20])
@pytest.mark.parametrize("error", [None, ABSENT])
def test_account_and_flood_rejections_allow_no_automatic_redelivery(
    sid: int, error: dict[str, Any] | None
) -> None:
    report = report_of(sid, error)
    assert report.state is State.REJECTED
    assert report.retries_allowed == 0
    assert report.permanent is not True  # the message itself could go out elsewhere


@pytest.mark.parametrize("sid", [4, 9, 15, 16, 21, 22])
def test_other_temporary_failures_still_allow_redelivery(sid: int) -> None:
    assert report_of(sid).retries_allowed == DEFAULT_RETRIES


def test_retries_for_honours_the_row() -> None:
    assert retries_for(State.REJECTED, False, STATUSES[17]) == 0
    assert retries_for(State.REJECTED, False, STATUSES[16]) == DEFAULT_RETRIES
    assert retries_for(State.REJECTED, False) == DEFAULT_RETRIES


# -- structured 5xx ---------------------------------------------------------------------------

SERVICE_ERROR = {"requestError": {"serviceException": {"text": "temporarily unavailable"}}}


@pytest.mark.parametrize("code", [500, 502, 503, 504])
async def test_a_json_5xx_on_submit_is_outcome_unknown(gw: respx.MockRouter, code: int) -> None:
    gw.post("/sms/1/text/single").respond(code, json=SERVICE_ERROR)
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert info.value.kind is ErrorKind.OUTCOME_UNKNOWN
    assert info.value.may_have_been_sent
    assert "temporarily unavailable" in str(info.value)


async def test_a_json_503_with_retry_after_on_submit_says_nothing_was_done(
    gw: respx.MockRouter,
) -> None:
    gw.post("/sms/1/text/single").respond(503, json=SERVICE_ERROR, headers={"Retry-After": "7"})
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert info.value.kind is ErrorKind.PROVIDER_UNAVAILABLE
    assert info.value.retry_after == 7


@pytest.mark.parametrize("path", ["/sms/1/reports", "/sms/1/logs"])
@pytest.mark.parametrize("code", [500, 503])
async def test_a_json_5xx_on_a_read_is_provider_unavailable(
    gw: respx.MockRouter, path: str, code: int
) -> None:
    gw.get(path).respond(code, json={"error": "boom"})
    provider = make()
    read = provider.fetch_reports() if path.endswith("reports") else provider.status("some-id")
    with pytest.raises(ProviderError) as info:
        await read
    assert info.value.kind is ErrorKind.PROVIDER_UNAVAILABLE
    assert info.value.http_status == code
