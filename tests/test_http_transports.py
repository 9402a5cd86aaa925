"""Error mapping and wire behaviour over real loopback sockets, on both transports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from loopback_server import Loopback, loopback_server, refused_port

from mimgw import ConfigurationError, ErrorKind, ProviderError
from mimgw.http import HttpTransport
from mimgw.redact import Redactor
from mimgw.transport import (
    DEFAULT_LIMITS,
    TRANSPORT_ENV,
    aiohttp_available,
    default_client,
    resolve_transport,
)

pytestmark = pytest.mark.skipif(
    not aiohttp_available(), reason="the aiohttp extra is not installed"
)

TRANSPORTS = ["httpx", "aiohttp"]
SECRET = "k,e/y+ =&#%ব"


@pytest.fixture
async def server() -> AsyncIterator[Loopback]:
    async with loopback_server() as state:
        yield state


def make(transport: str, *, read: float = 2.0, **kwargs: object) -> HttpTransport:
    return HttpTransport(
        provider="gw",
        redactor=Redactor([SECRET]),
        timeout=httpx.Timeout(read, connect=2.0, pool=0.5),
        transport=transport,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_chosen_transport_is_used(transport: str) -> None:
    http = make(transport)
    inner = http.client._transport  # which transport httpx holds
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        assert isinstance(inner, AiohttpTransport)  # httpx-aiohttp's, answers read whole
    else:
        assert type(inner) is httpx.AsyncHTTPTransport
    await http.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_query_secret_arrives_intact(transport: str, server: Loopback) -> None:
    http = make(transport)
    response = await http.request(
        "GET", f"{server.url}/send", query={"key": SECRET, "text": "a b,c"}, submit=True
    )
    target = json.loads(response.body)["target"]
    assert httpx.URL(target).params["key"] == SECRET
    assert httpx.URL(target).params["text"] == "a b,c"
    assert SECRET not in response.text and "***" in response.text
    await http.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refused_connection_is_connect_failed(transport: str) -> None:
    http = make(transport)
    with pytest.raises(ProviderError) as info:
        await http.request("POST", f"http://127.0.0.1:{refused_port()}/send", submit=True)
    assert info.value.kind is ErrorKind.CONNECT_FAILED
    assert info.value.may_have_been_sent is False
    await http.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("path", "submit", "kind"),
    [
        ("/hang", True, ErrorKind.OUTCOME_UNKNOWN),
        ("/hang", False, ErrorKind.PROVIDER_UNAVAILABLE),
        ("/close", True, ErrorKind.OUTCOME_UNKNOWN),
        ("/close", False, ErrorKind.PROVIDER_UNAVAILABLE),
        ("/garbage", True, ErrorKind.OUTCOME_UNKNOWN),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_failures_after_the_send_are_unknown_and_never_repeated(
    transport: str, path: str, submit: bool, kind: ErrorKind, method: str, server: Loopback
) -> None:
    http = make(transport, read=0.5)
    with pytest.raises(ProviderError) as info:
        await http.request(method, f"{server.url}{path}", query={"key": SECRET}, submit=submit)
    assert info.value.kind is kind, info.value
    assert SECRET not in str(info.value)
    # aiohttp repeats an idempotent GET once on a dropped connection: a GET submit would
    # reach the gateway twice; the default client turns that off
    assert server.hits[path] == 1
    await http.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_full_pool_is_connect_failed(transport: str, server: Loopback) -> None:
    client = default_client(
        httpx.Timeout(2.0, pool=0.3),
        transport=transport,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )
    hanging = make(transport, read=1.5, client=client)
    waiting = make(transport, client=client)

    import anyio

    errors: list[ProviderError] = []

    async def hang() -> None:
        with pytest.raises(ProviderError):
            await hanging.request("POST", f"{server.url}/hang", submit=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(hang)
        await anyio.sleep(0.2)
        try:
            await waiting.request("POST", f"{server.url}/send", submit=True)
        except ProviderError as exc:
            errors.append(exc)
    assert [e.kind for e in errors] == [ErrorKind.CONNECT_FAILED]
    assert server.hits["/send"] == 0
    await client.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connections_are_reused(transport: str, server: Loopback) -> None:
    http = make(transport)
    for _ in range(5):
        await http.request("GET", f"{server.url}/send", submit=False)
    assert server.hits["/send"] == 5
    await http.aclose()


def test_auto_prefers_aiohttp_and_the_environment_can_force_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TRANSPORT_ENV, raising=False)
    assert resolve_transport() == "aiohttp"
    monkeypatch.setenv(TRANSPORT_ENV, "httpx")
    assert resolve_transport() == "httpx"
    assert resolve_transport("aiohttp") == "aiohttp"  # an explicit choice wins
    monkeypatch.setenv(TRANSPORT_ENV, "curl")
    with pytest.raises(ConfigurationError):
        resolve_transport()


async def test_a_users_client_always_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRANSPORT_ENV, "aiohttp")
    own = httpx.AsyncClient()
    http = make("aiohttp", client=own)
    assert http.client is own
    await http.aclose()
    assert not own.is_closed
    await own.aclose()


def test_default_limits_are_deliberate() -> None:
    assert DEFAULT_LIMITS.max_connections == DEFAULT_LIMITS.max_keepalive_connections == 64
    assert DEFAULT_LIMITS.keepalive_expiry is not None and DEFAULT_LIMITS.keepalive_expiry < 5


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_proxy_named_in_the_environment_is_used(
    transport: str, server: Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)  # the loopback server plays the proxy
    http = make(transport)
    response = await http.request("GET", "http://gateway.invalid/send?x=1", submit=False)
    assert response.status_code == 200
    assert server.requests[-1]["target"] == "http://gateway.invalid/send?x=1"  # absolute form
    await http.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_answers_arrive_whole_decoded_with_status_and_headers(transport: str) -> None:
    import asyncio
    import gzip

    big = {"statusCode": "503", "pad": "x" * 50_000}  # larger than one read chunk
    payload = gzip.compress(json.dumps(big).encode())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 503 Busy Now\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: gzip\r\nRetry-After: 7\r\nSet-Cookie: a=1\r\n"
            b"Set-Cookie: b=2\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = make(transport)
    try:
        response = await http.request("GET", f"http://127.0.0.1:{port}/x", submit=False)
    finally:
        await http.aclose()
        server.close()
    assert response.status_code == 503
    assert response.json() == big
    assert response.headers["retry-after"] == "7"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


async def test_our_clients_keep_no_cookies_a_users_client_does() -> None:
    import respx

    with respx.mock(assert_all_called=False) as mock:
        mock.get("https://gw.test/x").respond(200, json={}, headers={"Set-Cookie": "s=1; Path=/"})
        ours = default_client(httpx.Timeout(1.0), transport="httpx")  # respx mocks httpx's
        theirs = httpx.AsyncClient()
        for client in (ours, theirs):
            await make("httpx", client=client).request("GET", "https://gw.test/x", submit=False)
        assert len(ours.cookies.jar) == 0
        assert [c.name for c in theirs.cookies.jar] == ["s"]
        ours.cookies = {"a": "1"}  # what a caller sets is kept, still never extended
        assert dict(ours.cookies) == {"a": "1"}
        await ours.aclose()
        await theirs.aclose()


async def test_endpoint_urls_are_parsed_once_message_queries_every_time(server: Loopback) -> None:
    http = make("httpx")
    for i in range(3):
        await http.request("GET", f"{server.url}/send", submit=False)
        await http.request("GET", f"{server.url}/send", query={"n": i}, submit=False)
    assert list(http._urls) == [f"{server.url}/send"]
    expected = [target for i in range(3) for target in ("/send", f"/send?n={i}")]
    assert [r["target"] for r in server.requests] == expected
    await http.aclose()
