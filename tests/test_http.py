from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

from mimgw import ErrorKind, ProviderError
from mimgw.http import HttpTransport, build_query, parse_retry_after
from mimgw.redact import Redactor

SECRET = "s3cr3t key/+=&"
URL = "https://gw.test/api/send"


def make(client: httpx.AsyncClient | None = None) -> HttpTransport:
    return HttpTransport(
        provider="gw",
        redactor=Redactor([SECRET]),
        timeout=httpx.Timeout(1.0),
        client=client,
    )


def test_build_query_encodes_spaces_as_percent_20_and_skips_none() -> None:
    q = build_query([("text", "hello world & more"), ("to", "880171,880181"), ("x", None)])
    assert q == "text=hello%20world%20%26%20more&to=880171,880181"
    assert "+" not in build_query({"a": "b c"})
    assert build_query({"bangla": "আমি"}) == "bangla=%E0%A6%86%E0%A6%AE%E0%A6%BF"


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), ("3", 3.0), ("0.5", 0.5), ("junk", None)]
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30)
    assert parse_retry_after(format_datetime(now, usegmt=True), now=now.timestamp() + 9) == 0


def test_redactor_covers_encoded_forms() -> None:
    r = Redactor([SECRET, None or ""])  # empty secrets are ignored
    assert r(f"key={SECRET}") == "key=***"
    assert r("key=s3cr3t%20key%2F%2B%3D%26") == "key=***"
    assert r("key=s3cr3t+key%2F%2B%3D%26") == "key=***"
    header = r.add_basic_auth("user", "pa55word")
    assert header.startswith("Basic ")
    assert r(header) == "Basic ***"
    assert "secrets" in repr(r) and SECRET not in repr(r)


@respx.mock
async def test_query_secrets_never_reach_logs_errors_or_raw(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    route = respx.get(url__startswith=URL).mock(
        return_value=httpx.Response(200, text=f"echo {SECRET}")
    )
    http = make()
    resp = await http.request("GET", URL, query={"key": SECRET, "text": "a b"}, submit=True)
    sent = route.calls.last.request
    assert sent.url.params["key"] == SECRET  # the gateway does get it
    assert b"text=a%20b" in sent.url.raw_path
    assert SECRET not in resp.text and "***" in resp.text
    assert SECRET not in resp.url

    respx.get(url__startswith=URL).mock(side_effect=httpx.ConnectError(f"boom {SECRET}"))
    with pytest.raises(ProviderError) as info:
        await http.request("GET", URL, query={"key": SECRET}, submit=True)
    err = info.value
    assert err.kind is ErrorKind.CONNECT_FAILED
    assert SECRET not in str(err) and SECRET not in repr(err)
    assert err.__cause__ is not None and SECRET not in str(err.__cause__)
    encoded = "s3cr3t%20key"
    for record in caplog.records:
        text = record.getMessage()
        assert SECRET not in text and encoded not in text, text
    assert any("httpx" in r.name for r in caplog.records)  # httpx did log the URL, redacted
    await http.aclose()


@pytest.mark.parametrize(
    ("exc", "submit", "kind"),
    [
        (httpx.ConnectError("refused"), True, ErrorKind.CONNECT_FAILED),
        (httpx.ConnectTimeout("slow"), True, ErrorKind.CONNECT_FAILED),
        (httpx.PoolTimeout("pool"), True, ErrorKind.CONNECT_FAILED),
        (httpx.ReadTimeout("read"), True, ErrorKind.OUTCOME_UNKNOWN),
        (httpx.WriteTimeout("write"), True, ErrorKind.OUTCOME_UNKNOWN),
        (httpx.RemoteProtocolError("reset"), True, ErrorKind.OUTCOME_UNKNOWN),
        (httpx.ReadError("reset"), True, ErrorKind.OUTCOME_UNKNOWN),
        (httpx.ReadTimeout("read"), False, ErrorKind.PROVIDER_UNAVAILABLE),
        (httpx.TooManyRedirects("loop"), True, ErrorKind.BAD_RESPONSE),
    ],
)
@respx.mock
async def test_transport_errors_are_mapped(exc: Exception, submit: bool, kind: ErrorKind) -> None:
    respx.post(URL).mock(side_effect=exc)
    http = make()
    with pytest.raises(ProviderError) as info:
        await http.request("POST", URL, json_body={"a": 1}, submit=submit)
    assert info.value.kind is kind
    await http.aclose()


@pytest.mark.parametrize(
    ("status", "body", "headers", "submit", "kind"),
    [
        (429, "", {"Retry-After": "7"}, True, ErrorKind.RATE_LIMITED),
        (500, "", {}, True, ErrorKind.OUTCOME_UNKNOWN),
        (502, "<html>Bad gateway</html>", {}, True, ErrorKind.OUTCOME_UNKNOWN),
        (502, "<!DOCTYPE html><p>nginx</p>", {}, True, ErrorKind.OUTCOME_UNKNOWN),
        (500, "\n <HEAD><TITLE>Error</TITLE></HEAD>", {}, False, ErrorKind.PROVIDER_UNAVAILABLE),
        (504, "", {}, False, ErrorKind.PROVIDER_UNAVAILABLE),
        (503, "", {"Retry-After": "5"}, True, ErrorKind.PROVIDER_UNAVAILABLE),
    ],
)
@respx.mock
async def test_transport_statuses(
    status: int, body: str, headers: dict[str, str], submit: bool, kind: ErrorKind
) -> None:
    respx.post(URL).mock(return_value=httpx.Response(status, text=body, headers=headers))
    http = make()
    resp = await http.request("POST", URL, submit=submit)
    with pytest.raises(ProviderError) as info:
        resp.check_transport_status(submit=submit)
    assert info.value.kind is kind
    assert info.value.http_status == status
    if "Retry-After" in headers:
        assert info.value.retry_after == float(headers["Retry-After"])
    await http.aclose()


@pytest.mark.parametrize(
    "body",
    [
        '{"statusCode": "500"}',
        "<?xml version='1.0'?><results/>",
        "<results><result><status>-2</status></result></results>",
    ],
)
@respx.mock
async def test_structured_5xx_is_left_to_the_provider(body: str) -> None:
    respx.post(URL).mock(return_value=httpx.Response(500, text=body))
    http = make()
    resp = await http.request("POST", URL, submit=True)
    resp.check_transport_status(submit=True)  # no error: the provider's table decides
    assert resp.body == body
    await http.aclose()


@pytest.mark.parametrize("body", ["", "<html>oops</html>", '{"a": ', "[1, 2]", "null"])
@respx.mock
async def test_json_object_rejects_other_shapes_keeping_raw(body: str) -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, text=body))
    http = make()
    resp = await http.request("POST", URL, submit=True)
    with pytest.raises(ProviderError) as info:
        resp.json_object()
    assert info.value.kind is ErrorKind.BAD_RESPONSE
    assert info.value.raw == body
    await http.aclose()


@respx.mock
async def test_json_body_is_compact_utf8_and_headers_set() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, json={}))
    http = make()
    await http.request("POST", URL, json_body={"text": "আমি"}, submit=True)
    req = route.calls.last.request
    assert req.content == '{"text":"আমি"}'.encode()
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "application/json"
    assert req.headers["user-agent"].startswith("mimgw/")
    await http.aclose()


async def test_shared_client_is_not_closed_by_us() -> None:
    async with httpx.AsyncClient() as shared:
        http = make(shared)
        assert http.client is shared
        await http.aclose()
        assert not shared.is_closed
    with pytest.raises(ProviderError) as info:
        _ = http.client
    assert info.value.kind is ErrorKind.CONNECT_FAILED


@respx.mock
async def test_response_keeps_the_received_body_for_parsing_only() -> None:
    respx.get(URL).respond(200, text=f'{{"id": "{SECRET}"}}')
    transport = make()
    response = await transport.request("GET", URL, submit=False)
    assert response.json() == {"id": SECRET}
    assert SECRET not in response.text
    assert SECRET not in repr(response)
    error = response.error(ErrorKind.BAD_RESPONSE, f"odd id {SECRET}")
    assert SECRET not in str(error)
    assert SECRET not in (error.raw or "")
    await transport.aclose()


def test_short_secrets_are_redacted_too() -> None:
    r = Redactor(["k9"])
    assert r("key=k9&x=1") == "key=***&x=1"


def test_log_filter_covers_provider_module_loggers(caplog: pytest.LogCaptureFixture) -> None:
    import mimgw.providers  # noqa: F401 - the provider modules create their loggers

    transport = make()  # installs the filter; its redactor knows SECRET
    logger = logging.getLogger("mimgw.providers.dinisoft")
    with caplog.at_level(logging.DEBUG, logger="mimgw"):
        logger.warning("leaking %s", SECRET)
    assert SECRET not in caplog.text
    assert "leaking ***" in caplog.text
    assert transport.redact(SECRET) == "***"


@respx.mock
async def test_a_users_client_headers_and_auth_apply_ours_win_for_ua_and_accept() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, json={}))
    async with httpx.AsyncClient(
        headers={"X-Team": "billing", "User-Agent": "theirs", "Accept": "text/html"},
        auth=("user", "pw"),
    ) as client:
        http = make(client)
        await http.request("POST", URL, json_body={}, headers={"X-Per-Call": "1"}, submit=True)
        client.headers["X-Team"] = "payments"  # changed afterwards: the next request sees it
        await http.request("POST", URL, json_body={}, submit=True)
    first, second = (call.request for call in route.calls)
    assert first.headers["x-team"] == "billing"
    assert first.headers["x-per-call"] == "1"
    assert first.headers["user-agent"].startswith("mimgw/")
    assert first.headers["accept"] == "application/json"
    assert first.headers["authorization"].startswith("Basic ")
    assert second.headers["x-team"] == "payments"
    assert "x-per-call" not in second.headers
    assert first.extensions["timeout"] == httpx.Timeout(1.0).as_dict()


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (None, "আমি".encode(), "আমি"),
        ("application/json", b'{"a":"\xc3\xa9"}', '{"a":"é"}'),
        ("text/plain; charset=ISO-8859-1", b"caf\xe9", "café"),
        ('text/plain; charset="utf-8"; x=1', "ok ✓".encode(), "ok ✓"),
        ("text/plain; charset=no-such-codec", b"plain", "plain"),
        ("application/json", b"\xff\xfe bad", "\ufffd\ufffd bad"),
    ],
)
def test_bodies_are_decoded_in_their_declared_charset(
    content_type: str | None, body: bytes, expected: str
) -> None:
    from mimgw.http import decode_body

    assert decode_body(body, content_type) == expected


async def test_an_invalid_url_is_connect_failed_and_nothing_is_sent() -> None:
    http = make()
    with pytest.raises(ProviderError) as info:
        await http.request("GET", f"http://[::1/send?key={SECRET}", submit=True)
    assert info.value.kind is ErrorKind.CONNECT_FAILED
    assert not info.value.may_have_been_sent
    assert SECRET not in str(info.value)
    await http.aclose()


def test_a_provider_refuses_an_invalid_base_url() -> None:
    from mimgw import ConfigurationError
    from mimgw.providers.mimsms_v4 import MimSmsV4

    with pytest.raises(ConfigurationError, match="base_url"):
        MimSmsV4(username="u@x.test", api_key="k", sender="S", base_url="http://[::1")
