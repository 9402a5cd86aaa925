"""The default client's aiohttp transport (imported only with the ``aiohttp`` extra).

httpx-aiohttp's :class:`~httpx_aiohttp.AiohttpTransport`, with two things decided here:

- the aiohttp session: connection limits from :data:`mimgw.transport.DEFAULT_LIMITS`,
  proxy settings from the environment only when it names a proxy, and no silent
  repeat of a request whose connection dropped (aiohttp repeats idempotent methods
  once; several gateways submit by GET, so that could send a message twice);
- each answer is read whole inside the transport and handed to httpx as bytes.
  Gateway answers are a few hundred bytes; streaming them chunk by chunk through two
  libraries' iterators cost more than the request itself at high concurrency.

Errors are mapped exactly as httpx-aiohttp maps them (its own mapping is reused).
"""

from __future__ import annotations

import urllib.request
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from multidict import CIMultiDict

__all__ = ["WholeBodyTransport", "new_session"]

_HTTP11 = {"http_version": b"HTTP/1.1"}


def new_session(limits: httpx.Limits) -> aiohttp.ClientSession:
    """An aiohttp session for one provider; call it inside the running event loop."""
    connector = aiohttp.TCPConnector(
        limit=limits.max_connections or 0,
        limit_per_host=limits.max_connections or 0,
        keepalive_timeout=limits.keepalive_expiry or 0.0,
        ssl=httpx.create_ssl_context(),
    )
    # Proxy settings in the environment are honoured as httpx honours them. Without
    # any, trust_env stays off: aiohttp would look them up (and read ~/.netrc) on every
    # request, which halved its throughput.
    trust_env = bool(urllib.request.getproxies())
    session = aiohttp.ClientSession(connector=connector, trust_env=trust_env)
    session._retry_connection = False  # see the module doc: never repeat a submit
    return session


class WholeBodyTransport(AiohttpTransport):
    """httpx-aiohttp's transport, reading each answer whole (see the module doc)."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, client=lambda: new_session(limits))
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout", {})
        key = (given.get("connect"), given.get("read"), given.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:  # one per distinct setting (in practice one per provider)
            timeout = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1], connect=key[2])
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        session = self.client
        content = request.content  # mimgw's requests are built from bytes, never streamed
        with map_aiohttp_exceptions():
            async with session.request(
                request.method,
                str(request.url),
                headers=CIMultiDict(request.headers.multi_items()),
                data=content or None,
                allow_redirects=False,
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                compress=False,
                timeout=self._timeout(request),
                server_hostname=request.extensions.get("sni_hostname"),
                proxy=str(self.proxy.url) if self.proxy else None,
            ) as response:
                body = await response.read()
        extensions: dict[str, Any] = dict(_HTTP11)
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            content=body,
            request=request,
            extensions=extensions,
        )
