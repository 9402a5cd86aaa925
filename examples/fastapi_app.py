"""A FastAPI service that sends one-time codes through mimgw.

It has an ``/otp`` endpoint, the webhook router (gateways push delivery reports and
inbound messages to ``/mimgw/webhooks/<provider name>``) and the health route, and
it reacts to delivery reports with an async hook. Try it against the simulator::

    uv run mimgw simulate > .env        # keeps serving the simulator on 127.0.0.1:8765
    # in a second terminal:
    echo "WEBHOOK_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(24))')" >> .env
    uv run uvicorn examples.fastapi_app:app
    curl -X POST http://127.0.0.1:8000/otp -H 'content-type: application/json' \\
         -d '{"to": "01712345678"}'

The gateways come from ``MIMGW_…`` variables (here, the lines ``mimgw simulate``
printed); ``WEBHOOK_TOKEN`` protects the webhook (at least 16 characters).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mimgw import (
    DeliveryReport,
    Gateway,
    InboundMessage,
    InvalidMessageError,
    MimgwError,
    OutcomeUnknownError,
)
from mimgw.fastapi import GatewayDep, health_router, lifespan, webhook_router

log = logging.getLogger("otp_service")


class AppSettings(BaseSettings):
    """This service's own settings (mimgw reads its ``MIMGW_…`` ones by itself)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    webhook_token: SecretStr
    """``WEBHOOK_TOKEN``: the secret gateways must present when they push."""


class OtpRequest(BaseModel):
    to: str


class OtpResponse(BaseModel):
    provider: str
    message_id: str
    segments: int


DELIVERIES: dict[str, str] = {}
"""message id -> last delivery state; a real service would write to its database."""


def add_hooks(gateway: Gateway) -> Gateway:
    """React to what gateways push: each hook runs after the report is in the ledger."""

    @gateway.on_report
    async def remember(report: DeliveryReport) -> None:
        DELIVERIES[report.message_id] = report.state.value
        log.info("%s %s is %s", report.provider, report.message_id, report.state.value)

    @gateway.on_inbound
    async def reply_received(message: InboundMessage) -> None:
        log.info("inbound from %s: %r", message.sender, message.text)

    return gateway


def build_gateway() -> Gateway:
    """The gateway from configuration (``MIMGW_…`` variables, ``.env``), with the hooks."""
    return add_hooks(Gateway.from_settings())


def create_app(
    gateway_factory: Callable[[], Gateway] = build_gateway,
    settings: AppSettings | None = None,
) -> FastAPI:
    settings = settings or AppSettings()
    app = FastAPI(title="OTP service", lifespan=lifespan(gateway_factory))
    app.include_router(webhook_router(token=settings.webhook_token))
    app.include_router(health_router())

    @app.post("/otp")
    async def send_otp(
        body: OtpRequest,
        sms: GatewayDep,
        idempotency_key: str | None = Header(default=None),
    ) -> OtpResponse:
        """Send a fresh code. A client that retries with the same ``Idempotency-Key``
        header gets the first receipt back, and no second SMS."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        try:
            receipt = await sms.send(
                body.to, f"Your verification code is {code}", idempotency_key=idempotency_key
            )
        except InvalidMessageError as exc:
            raise HTTPException(422, str(exc)) from None
        except OutcomeUnknownError:
            # it may have been sent: tell the client to wait rather than ask again
            raise HTTPException(409, "the outcome of an earlier try is unknown") from None
        except MimgwError as exc:
            log.warning("otp not sent: %s", exc)
            raise HTTPException(503, "no SMS gateway took the message") from None
        return OtpResponse(
            provider=receipt.provider, message_id=receipt.message_id, segments=receipt.segments
        )

    @app.get("/otp/{message_id}")
    async def otp_status(message_id: str, sms: GatewayDep) -> dict[str, str]:
        """What the ledger (or the gateway) knows about a message."""
        if message_id in DELIVERIES:
            return {"message_id": message_id, "state": DELIVERIES[message_id]}
        try:
            report = await sms.status(message_id)
        except MimgwError as exc:
            raise HTTPException(404, f"no status for {message_id}: {exc}") from None
        return {"message_id": message_id, "state": report.state.value}

    return app


app = create_app()
