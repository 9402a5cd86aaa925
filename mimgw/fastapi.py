"""FastAPI integration: a lifespan that owns the gateway, a dependency, and a webhook router.

    from fastapi import FastAPI
    from mimgw import Gateway
    from mimgw.fastapi import GatewayDep, lifespan, webhook_router

    app = FastAPI(lifespan=lifespan(Gateway.from_settings))
    app.include_router(webhook_router(token=settings.webhook_token))

    @app.post("/otp")
    async def otp(to: str, sms: GatewayDep) -> dict[str, str]:
        receipt = await sms.send(to, "Your code is 4711")
        return {"message_id": receipt.message_id}

Gateways push delivery reports and inbound messages to
``POST {prefix}/webhooks/{provider_name}?token=…`` (or with an ``X-Mimgw-Token``
header). Needs the ``fastapi`` extra: ``pip install "mimgw[fastapi]"``.
"""

from __future__ import annotations

try:
    from fastapi import APIRouter, Depends, FastAPI, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'mimgw.fastapi needs FastAPI, which is not installed: pip install "mimgw[fastapi]"'
    ) from _exc

import hmac
import inspect
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Annotated, Any, Final

from pydantic import SecretStr

from mimgw.errors import (
    ConfigurationError,
    MimgwError,
    ProviderError,
    UnsupportedOperationError,
    WebhookAuthError,
)
from mimgw.gateway import Gateway
from mimgw.models import DeliveryReport, InboundMessage
from mimgw.redact import Redactor

__all__ = [
    "DEFAULT_MAX_BODY",
    "STATE_KEY",
    "TOKEN_HEADER",
    "GatewayDep",
    "GatewayFactory",
    "get_gateway",
    "health_router",
    "lifespan",
    "webhook_router",
]

log = logging.getLogger("mimgw.fastapi")

STATE_KEY: Final = "mimgw"
"""The gateway lives at ``app.state.mimgw`` while the app runs."""
TOKEN_HEADER: Final = "X-Mimgw-Token"  # noqa: S105 - a header name, not a secret
TOKEN_QUERY: Final = "token"  # noqa: S105 - a parameter name, not a secret
DEFAULT_MAX_BODY: Final = 1024 * 1024
"""Largest webhook body accepted (1 MiB); larger ones get 413."""
MIN_TOKEN_LENGTH: Final = 16

GatewayFactory = Callable[[], Gateway | Awaitable[Gateway]]
"""A zero-argument callable returning a gateway (or an awaitable of one)."""

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- lifespan and dependency -----------------------------------------------------------


def lifespan(
    gateway_or_factory: Gateway | GatewayFactory,
) -> Callable[[FastAPI], AbstractAsyncContextManager[dict[str, Any]]]:
    """A FastAPI lifespan that opens the gateway at startup and closes it at shutdown.

    Pass a :class:`~mimgw.Gateway`, or a factory such as ``Gateway.from_settings`` so
    that configuration is read when the app starts rather than at import. While the
    app runs the gateway is ``app.state.mimgw`` (and ``request.state.mimgw``).

    To combine it with a lifespan of your own, enter it inside yours::

        @asynccontextmanager
        async def my_lifespan(app: FastAPI):
            async with mimgw_lifespan(app):
                yield
    """

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        gateway = await _resolve(gateway_or_factory)
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(gateway)
            setattr(app.state, STATE_KEY, gateway)
            stack.callback(_forget, app)
            log.debug("mimgw gateway opened: %s", ", ".join(gateway.providers))
            yield {STATE_KEY: gateway}
        log.debug("mimgw gateway closed")

    return _lifespan


async def _resolve(gateway_or_factory: Gateway | GatewayFactory) -> Gateway:
    if isinstance(gateway_or_factory, Gateway):
        return gateway_or_factory
    if not callable(gateway_or_factory):
        raise ConfigurationError(
            "lifespan() takes a Gateway or a zero-argument callable returning one, "
            f"not {type(gateway_or_factory).__name__}"
        )
    made = gateway_or_factory()
    if inspect.isawaitable(made):
        made = await made
    if not isinstance(made, Gateway):
        raise ConfigurationError(
            f"the gateway factory returned {type(made).__name__}, not a mimgw Gateway"
        )
    return made


def _forget(app: FastAPI) -> None:
    if hasattr(app.state, STATE_KEY):
        delattr(app.state, STATE_KEY)


def get_gateway(request: Request) -> Gateway:
    """FastAPI dependency: the gateway the lifespan opened (``Depends(get_gateway)``)."""
    gateway = getattr(request.app.state, STATE_KEY, None)
    if gateway is None:
        gateway = getattr(request.state, STATE_KEY, None)
    if not isinstance(gateway, Gateway):
        raise ConfigurationError(
            "no mimgw gateway is running: create the app with "
            "FastAPI(lifespan=mimgw.fastapi.lifespan(...)) and, in tests, "
            "enter the TestClient as a context manager so the lifespan runs"
        )
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
"""Route parameter type for the running gateway: ``async def route(sms: GatewayDep)``."""


# -- webhooks ----------------------------------------------------------------------------


def webhook_router(
    *,
    token: str | SecretStr | None,
    allowed_ips: Iterable[str] | None = None,
    trusted_proxies: Iterable[str] | None = None,
    prefix: str = "/mimgw",
    max_body: int = DEFAULT_MAX_BODY,
    include_in_schema: bool = False,
) -> APIRouter:
    """A router receiving delivery reports and inbound messages at
    ``POST {prefix}/webhooks/{provider_name}``.

    ``provider_name`` is the name the provider has in the gateway. A request must
    carry ``token`` (query parameter ``token`` or header ``X-Mimgw-Token``; compared
    in constant time) and, when ``allowed_ips`` is given, come from one of those
    addresses or networks (``"10.0.0.0/8"``, ``"203.0.113.7"``). Behind a reverse
    proxy, list the proxy in ``trusted_proxies``: only then is ``X-Forwarded-For``
    read, and only the hops those proxies added.

    At least one of ``token`` and ``allowed_ips`` is required. Responses: 200 with a
    count of what was recorded; 400 for a body the gateway's parser refuses; 401 bad
    token; 403 address not allowed; 404 unknown provider or one that does not push;
    413 body over ``max_body`` bytes. Never 500 for anything a caller sends.
    """
    secret = _token_bytes(token)
    networks = _networks(allowed_ips, "allowed_ips")
    proxies = _networks(trusted_proxies, "trusted_proxies")
    if secret is None and networks is None:
        raise ConfigurationError(
            "webhook_router needs a token, an allowed_ips list, or both: "
            "an unauthenticated webhook would let anyone forge delivery reports"
        )
    if max_body < 1:
        raise ConfigurationError("max_body must be a positive number of bytes")
    if secret is not None:
        _protect_access_log(secret.decode("utf-8"))

    router = APIRouter(prefix=prefix.rstrip("/"), include_in_schema=include_in_schema)

    @router.post("/webhooks/{provider_name}", name="mimgw_webhook")
    async def receive_webhook(provider_name: str, request: Request) -> JSONResponse:
        client = _client_address(request, proxies)
        if networks is not None and (client is None or not any(client in n for n in networks)):
            log.warning("mimgw webhook %r refused: address %s not allowed", provider_name, client)
            return _problem(403, "address not allowed")
        if secret is not None and not _token_ok(request, secret):
            log.warning("mimgw webhook %r refused: bad or missing token", provider_name)
            return _problem(401, "bad or missing token")

        gateway = get_gateway(request)
        provider = gateway.providers.get(provider_name)
        if provider is None:
            return _problem(404, "unknown provider")
        if not provider.capabilities.webhook:
            return _problem(404, f"provider {provider_name!r} does not push reports")

        body = await _read_body(request, max_body)
        if body is None:
            return _problem(413, f"body larger than {max_body} bytes")

        try:
            items = await gateway.ingest_webhook(provider_name, body, request.headers)
        except WebhookAuthError:
            log.warning("mimgw webhook %r refused by the provider's own check", provider_name)
            return _problem(401, "authentication failed")
        except UnsupportedOperationError:
            return _problem(404, f"provider {provider_name!r} does not push reports")
        except MimgwError as exc:
            log.info("mimgw webhook %r: unreadable body: %s", provider_name, _short(exc))
            return _problem(400, _short(exc))
        except Exception:
            # The contract says parsers raise only MimgwError; a body that trips a bug
            # is still the caller's to fix or resend, never a 500 with our internals.
            log.exception("mimgw webhook %r: unexpected error while reading body", provider_name)
            return _problem(400, "body could not be read")

        reports = sum(isinstance(i, DeliveryReport) for i in items)
        inbound = sum(isinstance(i, InboundMessage) for i in items)
        log.info(
            "mimgw webhook %r: %d delivery report(s), %d inbound message(s)",
            provider_name,
            reports,
            inbound,
        )
        return JSONResponse(
            {
                "ok": True,
                "provider": provider_name,
                "received": len(items),
                "reports": reports,
                "inbound": inbound,
            }
        )

    return router


def health_router(*, prefix: str = "/mimgw", include_in_schema: bool = False) -> APIRouter:
    """``GET {prefix}/health``: the gateway's :meth:`~mimgw.Gateway.health` as JSON.

    It reveals provider names and breaker states, so mount it where only your own
    monitoring reaches it.
    """
    router = APIRouter(prefix=prefix.rstrip("/"), include_in_schema=include_in_schema)

    @router.get("/health", name="mimgw_health")
    async def health(request: Request) -> JSONResponse:
        gateway = get_gateway(request)
        return JSONResponse(jsonable_encoder(gateway.health()))

    return router


# -- helpers -------------------------------------------------------------------------------


def _token_bytes(token: str | SecretStr | None) -> bytes | None:
    if token is None:
        return None
    value = token.get_secret_value() if isinstance(token, SecretStr) else token
    if not isinstance(value, str):
        raise ConfigurationError("webhook token must be a string")
    value = value.strip()
    if len(value) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(
            f"webhook token must be at least {MIN_TOKEN_LENGTH} characters "
            "(e.g. secrets.token_urlsafe(32))"
        )
    return value.encode("utf-8")


def _networks(values: Iterable[str] | None, what: str) -> list[IPNetwork] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    networks: list[IPNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ConfigurationError(f"{what}: {value!r} is not an IP address or network") from None
    if not networks:
        raise ConfigurationError(f"{what} is empty: nobody could reach the webhook")
    return networks


def _parse_ip(value: str | None) -> IPAddress | None:
    if not value:
        return None
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _client_address(request: Request, proxies: list[IPNetwork] | None) -> IPAddress | None:
    """The caller's address; ``X-Forwarded-For`` is read only through trusted proxies."""
    peer = _parse_ip(request.client.host if request.client else None)
    if peer is None or proxies is None or not any(peer in n for n in proxies):
        return peer
    hops = [h for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    current = peer
    for hop in reversed(hops):
        address = _parse_ip(hop)
        if address is None:
            return None  # a garbled chain is not trusted
        current = address
        if not any(address in n for n in proxies):
            return address
    return current


def _token_ok(request: Request, secret: bytes) -> bool:
    given = request.headers.get(TOKEN_HEADER) or request.query_params.get(TOKEN_QUERY) or ""
    return hmac.compare_digest(given.encode("utf-8"), secret)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                return None
        except ValueError:
            pass
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _short(exc: MimgwError, limit: int = 200) -> str:
    text = f"{exc.kind.value}: {exc.detail}" if isinstance(exc, ProviderError) else str(exc)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"ok": False, "detail": detail}, status_code=status)


class _AccessLogRedactor(logging.Filter):
    """Keeps webhook tokens (sent in query strings) out of server access logs."""

    def __init__(self) -> None:
        super().__init__()
        self.redactor = Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.redactor(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.redactor(a) if isinstance(a, str) else a for a in record.args)
        return True


_access_filter = _AccessLogRedactor()
_ACCESS_LOGGERS = ("uvicorn.access", "uvicorn.error", "hypercorn.access", "gunicorn.access")


def _protect_access_log(token: str) -> None:
    _access_filter.redactor.add(token)
    for name in _ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if _access_filter not in logger.filters:
            logger.addFilter(_access_filter)
