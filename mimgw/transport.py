"""The default HTTP client: httpx on the aiohttp transport when the extra is installed.

httpx stays the API everywhere. With the ``aiohttp`` extra (``httpx-aiohttp``)
installed, the client a provider creates for itself sends through aiohttp, several
times faster on the same server; without it, or with ``MIMGW_TRANSPORT=httpx``, it is
plain httpx. A client passed as ``client=`` is always used as given.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal

import httpx

__all__ = [
    "DEFAULT_LIMITS",
    "TRANSPORT_ENV",
    "GatewayClient",
    "TransportName",
    "aiohttp_available",
    "default_client",
    "is_connect_failure",
    "resolve_transport",
]

TransportName = Literal["aiohttp", "httpx"]
TRANSPORT_ENV = "MIMGW_TRANSPORT"
"""``httpx`` forces plain httpx; ``aiohttp`` requires the extra; unset or ``auto`` picks."""

DEFAULT_LIMITS = httpx.Limits(
    max_connections=64, max_keepalive_connections=64, keepalive_expiry=4.0
)
"""Connections per provider client.

64 in flight and 64 kept alive: enough for the Gateway's bulk concurrency against one
gateway host without churning connections (httpx's own default keeps only 20 alive, so
at 64 concurrent sends most requests paid for a new connection). Idle connections are
dropped after 4 s, before the 5 s keep-alive of common server defaults: a request written
to a connection the server is just closing may or may not have been processed, which for a
submit is an unknown outcome, so reusing a connection near the server's timeout is avoided.
"""


def aiohttp_available() -> bool:
    """Whether the ``aiohttp`` extra (httpx-aiohttp) can be imported."""
    try:
        import httpx_aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_transport(name: str | None = None) -> TransportName:
    """The transport a default client uses: ``name``, else ``$MIMGW_TRANSPORT``, else auto."""
    from mimgw.errors import ConfigurationError

    choice = (name or os.environ.get(TRANSPORT_ENV) or "auto").strip().lower()
    if choice == "httpx":
        return "httpx"
    if choice == "aiohttp":
        if not aiohttp_available():
            raise ConfigurationError(
                f"{TRANSPORT_ENV}=aiohttp needs the aiohttp extra: pip install 'mimgw[aiohttp]'"
            )
        return "aiohttp"
    if choice != "auto":
        raise ConfigurationError(f"{TRANSPORT_ENV} must be auto, httpx or aiohttp, not {choice!r}")
    return "aiohttp" if aiohttp_available() else "httpx"


class _Cookieless(httpx.Cookies):
    """A cookie jar that keeps nothing a response sets."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class GatewayClient(httpx.AsyncClient):
    """The client mimgw creates for a provider: an :class:`httpx.AsyncClient` that keeps
    no cookies. No gateway API uses them, and httpx's bookkeeping of every response's
    cookies cost about a tenth of a request's CPU. A client passed as ``client=`` is
    used as it is."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._jar: httpx.Cookies = _Cookieless()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._jar = _Cookieless(cookies)


def default_client(
    timeout: httpx.Timeout,
    *,
    transport: str | None = None,
    limits: httpx.Limits = DEFAULT_LIMITS,
) -> httpx.AsyncClient:
    """A new client for one provider, on the transport :func:`resolve_transport` picks."""
    if resolve_transport(transport) == "httpx":
        return GatewayClient(timeout=timeout, limits=limits, follow_redirects=False)
    from mimgw._aiohttp import WholeBodyTransport

    return GatewayClient(
        transport=WholeBodyTransport(limits),
        timeout=timeout,
        limits=limits,
        follow_redirects=False,
    )


def is_connect_failure(exc: BaseException) -> bool | None:
    """For an error from the aiohttp transport: did nothing reach the server?

    httpx-aiohttp turns every dropped connection into ``httpx.ConnectTimeout``, a reset
    after the request went out included; the aiohttp error it chains says what happened.
    ``None`` when ``exc`` does not come from aiohttp.
    """
    if "aiohttp" not in sys.modules:
        return None
    import aiohttp

    cause = exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__
    if not isinstance(cause, aiohttp.ClientError):
        return None
    connect_errors: tuple[type[BaseException], ...] = (
        aiohttp.ClientConnectorError,  # refused, DNS, TLS handshake
        aiohttp.ConnectionTimeoutError,  # connect or pool wait timed out
        aiohttp.InvalidURL,
    )
    return isinstance(cause, connect_errors)
