"""MimSmsV3 (legacy plain query API) on the wire, with respx."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mimgw import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    DeliveryReport,
    ErrorKind,
    InvalidMessageError,
    Message,
    MimgwError,
    ProviderError,
    Receipt,
    State,
)
from mimgw.providers._v3_codes import DEFAULT_RETRIES, DR_STATES, LEGACY_CODES
from mimgw.providers.mimsms_v3 import MimSmsV3, ucs2_hex

BASE = "http://api.mimsms.com"
PASSWORD = "pa ss&w0rd"
CREDS = "user=acct-one&password=pa%20ss%26w0rd"
NUMBER = "8801712345678"
NOW = datetime(2024, 3, 9, 6, 0, 0, tzinfo=UTC)


def ok(message_id: str = "9000111", destination: str = NUMBER) -> str:
    return (
        f"<results><result><status>0</status><messageid>{message_id}</messageid>"
        f"<destination>{destination}</destination></result></results>"
    )


def coded(status: int) -> str:
    return f"<results><result><status>{status}</status><messageid></messageid></result></results>"


def make(**overrides: object) -> MimSmsV3:
    kwargs: dict[str, object] = {"username": "acct-one", "password": PASSWORD, "sender": "ACME"}
    kwargs.update(overrides)
    provider = MimSmsV3(**kwargs)  # type: ignore[arg-type]
    provider._now = lambda: NOW
    return provider


@pytest.fixture
def gw() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def query_of(route: respx.Route) -> str:
    return route.calls.last.request.url.query.decode()


# -- submit ---------------------------------------------------------------------------------


async def test_short_gsm_text_uses_the_short_path(gw: respx.MockRouter) -> None:
    route = gw.get("/api/sendsms/plain").respond(200, text=ok())
    receipt = await make().send("01712-345678", "hello world", reference="r-1")
    assert query_of(route) == f"{CREDS}&sender=ACME&SMSText=hello%20world&GSM={NUMBER}"
    assert route.calls.last.request.method == "GET"
    assert (receipt.message_id, receipt.to, receipt.reference) == ("9000111", NUMBER, "r-1")
    assert (receipt.segments, receipt.encoding, receipt.state) == (1, "gsm7", State.ACCEPTED)
    assert receipt.raw == ok()


async def test_long_gsm_text_uses_the_v3_path_with_long_type(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=ok())
    receipt = await make().send(NUMBER, "x" * 161)
    assert query_of(route) == f"{CREDS}&sender=ACME&SMSText={'x' * 161}&GSM={NUMBER}&type=longSMS"
    assert receipt.segments == 2


async def test_unicode_text_sets_datacoding(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=ok())
    receipt = await make().send(NUMBER, "অ আ")
    encoded = "%E0%A6%85%20%E0%A6%86"
    assert query_of(route) == f"{CREDS}&sender=ACME&SMSText={encoded}&GSM={NUMBER}&datacoding=8"
    assert receipt.encoding == "ucs2"


async def test_long_unicode_text_sets_both_flags(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=ok())
    await make().send(NUMBER, "অ" * 71)
    assert query_of(route).endswith(f"&GSM={NUMBER}&type=longSMS&datacoding=8")


async def test_unicode_parameter_name_is_a_class_constant(gw: respx.MockRouter) -> None:
    class TextParam(MimSmsV3):
        UNICODE_TEXT_PARAM = "text"

    route = gw.get("/api/v3/sendsms/plain").respond(200, text=ok())
    await TextParam(username="acct-one", password=PASSWORD, sender="ACME").send(NUMBER, "অ")
    assert "&text=%E0%A6%85&" in query_of(route)
    gsm = gw.get("/api/sendsms/plain").respond(200, text=ok())
    await TextParam(username="acct-one", password=PASSWORD, sender="ACME").send(NUMBER, "plain")
    assert "&SMSText=plain&" in query_of(gsm)


async def test_binary_unicode_sends_ucs2_hex_with_bom(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=ok())
    await make(binary_unicode=True).send(NUMBER, "অa")
    assert query_of(route) == (f"{CREDS}&sender=ACME&binary=FEFF09850061&GSM={NUMBER}&datacoding=8")
    assert ucs2_hex("😀") == "FEFFD83DDE00"


async def test_binary_unicode_leaves_gsm_texts_alone(gw: respx.MockRouter) -> None:
    route = gw.get("/api/sendsms/plain").respond(200, text=ok())
    await make(binary_unicode=True).send(NUMBER, "plain")
    assert "SMSText=plain" in query_of(route)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(days=1, hours=2, minutes=5, seconds=3), "1d2h5m3s"),
        (timedelta(minutes=30), "0d0h30m0s"),
        (timedelta(days=3, seconds=1), "3d0h0m1s"),
        (timedelta(seconds=1.4), "0d0h0m1s"),
    ],
)
async def test_send_at_becomes_a_relative_send_date_time(
    gw: respx.MockRouter, delta: timedelta, expected: str
) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=ok())
    await make().send(NUMBER, "later", send_at=NOW + delta)
    assert query_of(route) == (
        f"{CREDS}&sender=ACME&SMSText=later&SendDateTime={expected}&GSM={NUMBER}"
    )


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(seconds=0.4)])
async def test_imminent_send_at_sends_now(gw: respx.MockRouter, delta: timedelta) -> None:
    route = gw.get("/api/sendsms/plain").respond(200, text=ok())
    await make().send(NUMBER, "now", send_at=NOW + delta)
    assert "SendDateTime" not in query_of(route)


@pytest.mark.parametrize(
    "delta", [timedelta(microseconds=-1), timedelta(seconds=-60), timedelta(days=-3)]
)
async def test_send_at_in_the_past_is_refused_before_any_request(
    gw: respx.MockRouter, delta: timedelta
) -> None:
    route = gw.get(url__regex=r".*").respond(200, text=ok())
    with pytest.raises(InvalidMessageError, match="in the past"):
        await make().send(NUMBER, "late", send_at=NOW + delta)
    result = await make().send_bulk([Message(to=NUMBER, text="late", send_at=NOW + delta)])
    assert isinstance(result.outcomes[0], InvalidMessageError)
    assert not route.called


async def test_length_limit_is_checked_before_any_request(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/sendsms/plain").respond(200, text=ok())
    with pytest.raises(InvalidMessageError, match="1080"):
        await make().send(NUMBER, "y" * 1081)
    assert not route.called
    await make().send(NUMBER, "y" * 1080)
    assert route.called


async def test_sender_longer_than_eleven_is_refused_before_sending(gw: respx.MockRouter) -> None:
    route = gw.get("/api/sendsms/plain").respond(200, text=ok())
    with pytest.raises(InvalidMessageError, match="11"):
        await make().send(NUMBER, "hi", sender="TWELVE-CHARS")
    assert not route.called
    await make().send(NUMBER, "hi", sender="ELEVEN-CHAR")
    assert "sender=ELEVEN-CHAR" in query_of(route)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"username": ""},
        {"username": "   "},
        {"password": ""},
        {"password": SecretStr(" ")},
        {"sender": "TWELVE-CHARS"},
        {"sender": " "},
        {"base_url": "ftp://api.mimsms.com"},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        make(**kwargs)


async def test_secret_str_credentials_and_https_base(gw: respx.MockRouter) -> None:
    with respx.mock(base_url="https://secure.example", assert_all_called=False) as tls:
        route = tls.get("/api/sendsms/plain").respond(200, text=ok())
        provider = make(password=SecretStr(PASSWORD), base_url="https://secure.example/")
        await provider.send(NUMBER, "hi")
    assert query_of(route).startswith(CREDS)


@pytest.mark.parametrize(("code", "expected"), sorted(LEGACY_CODES.items()))
async def test_every_legacy_code_maps_to_its_kind(
    gw: respx.MockRouter, code: int, expected: tuple[ErrorKind, str]
) -> None:
    gw.get("/api/sendsms/plain").respond(200, text=coded(code))
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert (info.value.kind, info.value.code) == (expected[0], str(code))
    assert info.value.raw == coded(code)


@pytest.mark.parametrize(
    ("code", "kind"), [(-99, ErrorKind.REQUEST_REJECTED), (7, ErrorKind.BAD_RESPONSE)]
)
async def test_unlisted_codes_keep_the_code(
    gw: respx.MockRouter, code: int, kind: ErrorKind
) -> None:
    gw.get("/api/sendsms/plain").respond(200, text=coded(code))
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert (info.value.kind, info.value.code) == (kind, str(code))


async def test_documented_codes_in_detail(gw: respx.MockRouter) -> None:
    gw.get("/api/sendsms/plain").respond(200, text=coded(-2))
    with pytest.raises(ProviderError) as info:
        await make().send(NUMBER, "hi")
    assert info.value.kind is ErrorKind.INSUFFICIENT_BALANCE
    assert not info.value.may_have_been_sent


async def test_a_bare_code_body_is_read_as_the_code(gw: respx.MockRouter) -> None:
    gw.get("/api/sendsms/plain").respond(200, text=" -5\n")
    with pytest.raises(AuthenticationError):
        await make().send(NUMBER, "hi")


async def test_the_result_for_our_number_is_used(gw: respx.MockRouter) -> None:
    body = (
        "<results><result><status>0</status><messageid>A1</messageid>"
        "<destination>8801999999999</destination></result><result><status>0</status>"
        f"<messageid>B2</messageid><destination>+{NUMBER}</destination></result></results>"
    )
    gw.get("/api/sendsms/plain").respond(200, text=body)
    assert (await make().send(NUMBER, "hi")).message_id == "B2"


XML_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    "<results><result><status>0</status><messageid>&lol2;</messageid></result></results>"
)
EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<results><result><status>0</status><messageid>&x;</messageid></result></results>"
)


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ("<results><result><status>0</status>", 200, "well-formed"),
        (XML_BOMB, 200, "DTD"),
        (EXTERNAL, 200, "DTD"),
        ("<html><body>gateway error</body></html>", 200, "results document"),
        ("<results></results>", 200, "no result"),
        ("<results><result><status>ok</status></result></results>", 200, "numeric status"),
        (ok(message_id=""), 200, "message id"),
        ("0", 200, "without an id"),
        ("Service temporarily down", 200, "neither XML"),
        ("", 200, "neither XML"),
        ("Bad Request", 400, "neither XML"),
    ],
)
async def test_undocumented_send_answers_are_bad_responses(
    gw: respx.MockRouter, body: str, status: int, match: str
) -> None:
    gw.get("/api/sendsms/plain").respond(status, text=body)
    with pytest.raises(BadResponseError, match=match) as info:
        await make().send(NUMBER, "hi")
    assert info.value.raw == body
    assert info.value.may_have_been_sent


# -- balance --------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "amount"), [("1234.50", "1234.50"), ("  87\r\n", "87")])
async def test_credits_is_read_as_a_decimal(gw: respx.MockRouter, body: str, amount: str) -> None:
    route = gw.get("/api/command").respond(200, text=body)
    balance = await make().balance()
    assert query_of(route) == "username=acct-one&password=pa%20ss%26w0rd&cmd=Credits"
    assert (balance.amount, balance.provider, balance.currency) == (
        Decimal(amount),
        "mimsms_v3",
        None,
    )


@pytest.mark.parametrize(
    ("body", "kind", "code"),
    [
        ("-5", ErrorKind.AUTH, "-5"),
        ("-10", ErrorKind.AUTH, "-10"),
        ("-2", ErrorKind.INSUFFICIENT_BALANCE, "-2"),
        ("-77", ErrorKind.REQUEST_REJECTED, "-77"),
        (coded(-11), ErrorKind.AUTH, "-11"),
    ],
)
async def test_credits_error_codes(
    gw: respx.MockRouter, body: str, kind: ErrorKind, code: str
) -> None:
    gw.get("/api/command").respond(200, text=body)
    with pytest.raises(ProviderError) as info:
        await make().balance()
    assert (info.value.kind, info.value.code) == (kind, code)


@pytest.mark.parametrize(
    ("body", "status"),
    [("", 200), ("12,5", 200), ("1.2.3", 200), ("balance: 5", 200), ("42", 403), (ok(), 200)],
)
async def test_credits_in_any_other_shape_is_a_bad_response(
    gw: respx.MockRouter, body: str, status: int
) -> None:
    gw.get("/api/command").respond(status, text=body)
    with pytest.raises(BadResponseError):
        await make().balance()


# -- delivery reports -----------------------------------------------------------------------


def dr(*messages: str) -> str:
    return "<DeliveryReport>" + "".join(messages) + "</DeliveryReport>"


def msg(mid: str, status: str, done: str = "2024/3/9 7:5:0") -> str:
    return f'<message id="{mid}" sentdate="2024/3/9 7:4:58" donedate="{done}" status="{status}" />'


async def test_status_pulls_one_id_and_reads_unpadded_local_dates(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/dr/pull").respond(200, text=dr(msg("555", "DELIVRD")))
    report = await make().status("555")
    assert query_of(route) == f"{CREDS}&messageid=555"
    assert (report.message_id, report.state, report.provider_status) == (
        "555",
        State.DELIVERED,
        "DELIVRD",
    )
    assert report.done_at == datetime(2024, 3, 9, 1, 5, 0, tzinfo=UTC)  # Dhaka is UTC+6
    assert (report.permanent, report.retries_allowed, report.reason) == (None, 0, None)
    assert report.raw is not None and 'id="555"' in report.raw


async def test_dates_follow_the_configured_timezone_and_tolerate_a_line_break(
    gw: respx.MockRouter,
) -> None:
    body = dr('<message id="1" donedate="2024/12/31\n23:59:9" status="NOT_SENT" />')
    gw.get("/api/v3/dr/pull").respond(200, text=body)
    report = await make(timezone="UTC").status("1")
    assert report.done_at == datetime(2024, 12, 31, 23, 59, 9, tzinfo=UTC)


@pytest.mark.parametrize("done", ["", "2024/13/40 7:5:0", "yesterday", "2024/3/9"])
async def test_unusable_dates_do_not_cost_the_report(gw: respx.MockRouter, done: str) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=dr(msg("9", "DELIVERED", done)))
    report = await make().status("9")
    assert (report.state, report.done_at) == (State.DELIVERED, None)


async def test_not_sent_is_a_retryable_rejection(gw: respx.MockRouter) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=dr(msg("7", "NOT_SENT")))
    report = await make().status("7")
    assert (report.state, report.permanent, report.retries_allowed, report.reason) == (
        State.REJECTED,
        False,
        DEFAULT_RETRIES,
        "NOT_SENT",
    )


@pytest.mark.parametrize(("word", "expected"), sorted(DR_STATES.items()))
async def test_every_status_word_is_classified(
    gw: respx.MockRouter, word: str, expected: tuple[State, bool | None]
) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=dr(msg("1", word.lower().replace("_", " "))))
    report = await make().status("1")
    assert (report.state, report.permanent) == tuple(expected)
    failed = report.failed and expected[1] is False
    assert report.retries_allowed == (DEFAULT_RETRIES if failed else 0)


async def test_unknown_status_word_is_kept(
    gw: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=dr(msg("1", "WEIRD"), msg("2", "WEIRD")))
    provider = make()
    with caplog.at_level(logging.WARNING, "mimgw"):
        reports = await provider.fetch_reports()
    assert [(r.state, r.provider_status) for r in reports] == [(State.UNKNOWN, "WEIRD")] * 2
    assert sum("WEIRD" in r.getMessage() for r in caplog.records) == 1


async def test_status_of_a_message_without_an_unread_report_is_unknown(
    gw: respx.MockRouter,
) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text="<DeliveryReport />")
    report = await make().status("404")
    assert (report.message_id, report.state) == ("404", State.UNKNOWN)


async def test_status_keeps_other_reports_the_gateway_handed_over(gw: respx.MockRouter) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=dr(msg("1", "DELIVERED"), msg("2", "EXPIRED")))
    provider = make()
    heard: list[object] = []
    provider.add_listener(heard.append)
    report = await provider.status("1")
    assert report.state is State.DELIVERED
    assert sorted(r.message_id for r in heard if isinstance(r, DeliveryReport)) == ["1", "2"]


async def test_fetch_reports_pulls_everything_and_never_drops(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/dr/pull").respond(
        200,
        text=dr(msg("1", "DELIVERED"), "<other />", msg("2", "EXPIRED"), msg("3", "REJECTD")),
    )
    provider = make()
    heard: list[object] = []
    provider.add_listener(heard.append)
    reports = await provider.fetch_reports(limit=2)
    assert query_of(route) == CREDS
    assert [r.message_id for r in reports] == ["1", "2"]
    assert sorted(r.message_id for r in heard if isinstance(r, DeliveryReport)) == ["1", "2", "3"]


async def test_reports_for_several_ids_are_comma_separated(gw: respx.MockRouter) -> None:
    route = gw.get("/api/v3/dr/pull").respond(200, text=dr())
    assert await make().reports(["11", "12"]) == []
    assert query_of(route) == f"{CREDS}&messageid=11,12"
    with pytest.raises(InvalidMessageError):
        await make().reports(["1,2"])
    with pytest.raises(InvalidMessageError):
        await make().status("1,2")


async def test_a_report_without_an_id_is_skipped_not_fatal(gw: respx.MockRouter) -> None:
    gw.get("/api/v3/dr/pull").respond(
        200, text=dr('<message status="DELIVERED" />', msg("2", "DELIVERED"))
    )
    assert [r.message_id for r in await make().fetch_reports()] == ["2"]


@pytest.mark.parametrize(("body", "code"), [("5", "5"), ("10", "10"), ("11\n", "11"), ("-5", "-5")])
async def test_dr_pull_return_values_are_auth_errors(
    gw: respx.MockRouter, body: str, code: str
) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=body)
    with pytest.raises(AuthenticationError) as info:
        await make().fetch_reports()
    assert info.value.code == code


@pytest.mark.parametrize(
    "body",
    [
        "<DeliveryReport><message id='1'",
        XML_BOMB,
        '<!DOCTYPE d [<!ENTITY e "x">]><DeliveryReport />',
        ok(),
        "0",
        "",
        "not xml",
    ],
)
async def test_malformed_reports_are_bad_responses(gw: respx.MockRouter, body: str) -> None:
    gw.get("/api/v3/dr/pull").respond(200, text=body)
    with pytest.raises(BadResponseError):
        await make().fetch_reports()


async def test_unstructured_5xx_on_reads_is_provider_unavailable(gw: respx.MockRouter) -> None:
    gw.get("/api/v3/dr/pull").respond(502, text="<html>bad gateway</html>")
    with pytest.raises(ProviderError) as info:
        await make().fetch_reports()
    assert info.value.kind is ErrorKind.PROVIDER_UNAVAILABLE


# -- secrets --------------------------------------------------------------------------------


async def test_password_never_leaks(gw: respx.MockRouter, caplog: pytest.LogCaptureFixture) -> None:
    echo = (
        f"<results><result><status>-5</status><messageid>{PASSWORD}</messageid></result></results>"
    )
    gw.get("/api/sendsms/plain").respond(200, text=echo)
    gw.get("/api/command").mock(side_effect=httpx.ConnectError("refused"))
    provider = make()
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(ProviderError) as first:
            await provider.send(NUMBER, "hi")
        with pytest.raises(ProviderError) as second:
            await provider.balance()
    for error in (first.value, second.value):
        seen += [str(error), repr(error), error.raw or "", error.detail]
    seen += [r.getMessage() for r in caplog.records] + [repr(provider)]
    assert any("api/command" in r.getMessage() for r in caplog.records)
    for text in seen:
        assert PASSWORD not in text
        assert "pa%20ss%26w0rd" not in text
        assert "pa+ss%26w0rd" not in text


# -- any body -------------------------------------------------------------------------------

PATHS = ["/api/sendsms/plain", "/api/command", "/api/v3/dr/pull"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.text(max_size=200),
        st.from_regex(r"\A<(results|DeliveryReport)>.{0,80}\Z"),
        st.builds(
            lambda s, m, d: dr(f'<message id="{m}" donedate="{d}" status="{s}" />'),
            st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), max_size=12),
            st.text(alphabet="0123456789", max_size=6),
            st.text(alphabet="0123456789/: ", max_size=20),
        ),
    ),
    status=st.sampled_from([200, 201, 400, 401, 404, 500, 503]),
    which=st.integers(0, 2),
)
def test_any_body_gives_a_result_or_a_mimgw_error(body: str, status: int, which: int) -> None:
    async def run() -> object:
        with respx.mock(base_url=BASE) as router:
            router.get(PATHS[which]).respond(status, text=body)
            provider = make()
            try:
                if which == 0:
                    return await provider.send(NUMBER, "hi")
                if which == 1:
                    return await provider.balance()
                return await provider.fetch_reports()
            except MimgwError as exc:
                return exc
            finally:
                await provider.aclose()

    outcome = asyncio.run(run())
    assert isinstance(outcome, Receipt | MimgwError | list)
    if isinstance(outcome, ProviderError):
        assert PASSWORD not in str(outcome)
