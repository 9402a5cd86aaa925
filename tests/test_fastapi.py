"""mimgw.fastapi: lifespan, dependency, webhook router — in-process only."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mimgw import ConfigurationError, State
from mimgw.fastapi import (
    TOKEN_HEADER,
    GatewayDep,
    get_gateway,
    health_router,
    lifespan,
    webhook_router,
)
from mimgw.gateway import Gateway
from mimgw.simulator import Simulator

TOKEN = "s3cret-webhook-token-0123456789"
URL = "/mimgw/webhooks"


def dr_body(transid: str, *, status: str = "Delivered", to: str = "8801712345678") -> bytes:
    """An IMIconnect delivery notification (shape from its documentation, our values)."""
    return json.dumps(
        {
            "deliveryInfoNotification": {
                "deliveryInfo": {
                    "deliveryChannel": "SMS",
                    "Description": status,
                    "destinationType": "msisdn",
                    "timeStamp": "2024-03-05T14:22:09.412",
                    "code": "7500",
                    "deliveryStatus": status,
                    "destination": to,
                },
                "correlationid": "order-77",
                "callbackData": "cb-1",
                "transid": transid,
            }
        }
    ).encode()


def mo_body() -> bytes:
    """An IMIconnect inbound (MO) notification."""
    return json.dumps(
        {
            "userId": "cust-42",
            "channel": "SMS",
            "da": "16123",
            "oa": "8801812345678",
            "message": "STOP promos",
            "tid": "7f3c2a10b5e44c0e9a1d",
            "datetime": "2024-03-05 14:30:00",
            "ts": "1709627400000",
        }
    ).encode()


def v3_reports_body(message_id: str) -> bytes:
    """A MiMSMS v3 (JSON API) delivery-reports body."""
    return json.dumps(
        {
            "results": [
                {
                    "bulkId": "b6f1c3de-0a55-4f0e-9d55-2a7f1f0b9e11",
                    "messageId": message_id,
                    "to": "8801712345678",
                    "sentAt": "2024-03-05T10:00:01.100+0600",
                    "doneAt": "2024-03-05T10:00:04.900+0600",
                    "smsCount": 1,
                    "price": {"pricePerMessage": 0.25, "currency": "BDT"},
                    "status": {
                        "groupId": 3,
                        "groupName": "DELIVERED",
                        "id": 5,
                        "name": "DELIVERED_TO_HANDSET",
                        "description": "Message delivered to handset",
                    },
                    "error": {
                        "groupId": 0,
                        "groupName": "OK",
                        "id": 0,
                        "name": "NO_ERROR",
                        "description": "No Error",
                        "permanent": False,
                    },
                }
            ]
        }
    ).encode()


def make_app(gateway: Gateway | Callable[[], Any], **router_kwargs: Any) -> FastAPI:
    app = FastAPI(lifespan=lifespan(gateway))
    router_kwargs.setdefault("token", TOKEN)
    app.include_router(webhook_router(**router_kwargs))
    app.include_router(health_router())

    @app.post("/send")
    async def send(to: str, text: str, sms: GatewayDep) -> dict[str, str]:
        receipt = await sms.send(to, text)
        return {"message_id": receipt.message_id, "provider": receipt.provider}

    return app


@pytest.fixture
def gateway(sim: Simulator) -> Gateway:
    return Gateway([sim.provider("imiconnect"), sim.provider("dinisoft")])


@pytest.fixture
def client(gateway: Gateway) -> Any:
    with TestClient(make_app(gateway)) as client:
        yield client


# -- lifespan and dependency --------------------------------------------------------------


def test_lifespan_puts_gateway_on_state_and_removes_it(gateway: Gateway) -> None:
    app = make_app(gateway)
    with TestClient(app):
        assert app.state.mimgw is gateway
    assert not hasattr(app.state, "mimgw")


def test_lifespan_closes_the_gateway(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Gateway([sim.provider("dinisoft")])
    events: list[str] = []
    original_enter, original_exit = type(gateway).__aenter__, type(gateway).__aexit__

    async def enter(self: Gateway) -> Gateway:
        events.append("open")
        return await original_enter(self)

    async def exit_(self: Gateway, *exc: object) -> None:
        events.append("close")
        await original_exit(self, *exc)  # type: ignore[arg-type]

    monkeypatch.setattr(type(gateway), "__aenter__", enter)
    monkeypatch.setattr(type(gateway), "__aexit__", exit_)
    with TestClient(make_app(gateway)):
        assert events == ["open"]
    assert events == ["open", "close"]


def test_lifespan_accepts_sync_and_async_factories(sim: Simulator) -> None:
    def sync_factory() -> Gateway:
        return Gateway([sim.provider("dinisoft")])

    async def async_factory() -> Gateway:
        return Gateway([sim.provider("dinisoft")])

    for factory in (sync_factory, async_factory):
        app = make_app(factory)
        with TestClient(app):
            assert isinstance(app.state.mimgw, Gateway)


def test_lifespan_refuses_a_factory_returning_something_else() -> None:
    app = make_app(lambda: "not a gateway")
    with pytest.raises(ConfigurationError, match="not a mimgw Gateway"), TestClient(app):
        pass


def test_dependency_hands_the_gateway_to_routes(client: TestClient) -> None:
    response = client.post("/send", params={"to": "01712345678", "text": "hello"})
    assert response.status_code == 200
    assert response.json()["provider"] == "imiconnect"
    assert response.json()["message_id"]


def test_dependency_without_lifespan_says_what_to_do(gateway: Gateway) -> None:
    app = FastAPI()

    @app.get("/x")
    async def route(sms: GatewayDep) -> dict[str, str]:
        return {}

    @app.get("/y")
    async def route_depends(sms: Gateway = Depends(get_gateway)) -> dict[str, str]:  # noqa: B008
        return {}

    for path in ("/x", "/y"):
        with pytest.raises(ConfigurationError, match="lifespan"):
            TestClient(app).get(path)


def test_health_router(client: TestClient) -> None:
    response = client.get("/mimgw/health")
    assert response.status_code == 200
    assert isinstance(response.json(), dict)


# -- webhook: happy paths --------------------------------------------------------------------


def test_imiconnect_delivery_report_is_recorded(client: TestClient, gateway: Gateway) -> None:
    sent = client.post("/send", params={"to": "01712345678", "text": "hi"}).json()
    response = client.post(
        f"{URL}/imiconnect", params={"token": TOKEN}, content=dr_body(sent["message_id"])
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": True,
        "provider": "imiconnect",
        "received": 1,
        "reports": 1,
        "inbound": 0,
    }
    report = client.portal.call(gateway.status, sent["message_id"])  # type: ignore[union-attr]
    assert report.state is State.DELIVERED


def test_imiconnect_inbound_message_with_header_token(client: TestClient) -> None:
    response = client.post(f"{URL}/imiconnect", headers={TOKEN_HEADER: TOKEN}, content=mo_body())
    assert response.status_code == 200, response.text
    assert response.json()["inbound"] == 1
    assert response.json()["reports"] == 0


def test_mimsms_v3_json_reports_pushed(sim: Simulator) -> None:
    gateway = Gateway([sim.provider("mimsms_v3_json")])
    with TestClient(make_app(gateway)) as client:
        sent = client.post("/send", params={"to": "01712345678", "text": "hello"}).json()
        response = client.post(
            f"{URL}/mimsms_v3_json",
            headers={TOKEN_HEADER: TOKEN},
            content=v3_reports_body(sent["message_id"]),
        )
        assert response.status_code == 200, response.text
        assert response.json()["reports"] == 1
        report = client.portal.call(gateway.status, sent["message_id"])  # type: ignore[union-attr]
    assert report.state is State.DELIVERED
    assert report.provider_status == "DELIVERED_TO_HANDSET"


def test_secretstr_token_is_accepted(gateway: Gateway) -> None:
    with TestClient(make_app(gateway, token=SecretStr(TOKEN))) as client:
        response = client.post(f"{URL}/imiconnect", params={"token": TOKEN}, content=mo_body())
    assert response.status_code == 200


def test_provider_name_is_the_configured_name(sim: Simulator) -> None:
    gateway = Gateway([sim.provider("imiconnect", name="imi_backup")])
    with TestClient(make_app(gateway)) as client:
        ok = client.post(f"{URL}/imi_backup", params={"token": TOKEN}, content=mo_body())
        missing = client.post(f"{URL}/imiconnect", params={"token": TOKEN}, content=mo_body())
    assert ok.status_code == 200
    assert missing.status_code == 404


async def test_simulator_pushes_reports_through_the_router(sim: Simulator) -> None:
    """The whole loop: send, the simulated IMIconnect pushes its DR and an MO to our app."""
    gateway = Gateway([sim.provider("imiconnect")])
    app = make_app(gateway)
    async with (
        lifespan(gateway)(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://service.test"
        ) as pushes,
    ):
        receipt = await gateway.send("01712345678", "Your table is ready")
        sim.imiconnect.push_client = pushes
        sim.imiconnect.notify_url = f"http://service.test{URL}/imiconnect?token={TOKEN}"
        sim.clock.advance(30)
        assert await sim.imiconnect.push_reports() == 1
        mo = await sim.imiconnect.generate_mo("8801812345678", "YES")
        assert mo.status_code == 200
        assert mo.json()["inbound"] == 1
        report = await gateway.status(receipt.message_id)
    assert report.state is State.DELIVERED


# -- webhook: refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({}, {}),
        ({"token": "wrong-token-wrong-token"}, {}),
        ({}, {TOKEN_HEADER: "wrong-token-wrong-token"}),
        ({"token": TOKEN[:-1]}, {}),
        ({"token": TOKEN + "x"}, {}),
    ],
)
def test_bad_or_missing_token_is_401(
    client: TestClient, params: dict[str, str], headers: dict[str, str]
) -> None:
    response = client.post(f"{URL}/imiconnect", params=params, headers=headers, content=mo_body())
    assert response.status_code == 401
    assert TOKEN not in response.text


def test_auth_is_checked_before_provider_lookup(client: TestClient) -> None:
    assert client.post(f"{URL}/nope", content=b"{}").status_code == 401


def test_unknown_provider_is_404(client: TestClient) -> None:
    response = client.post(f"{URL}/nope", params={"token": TOKEN}, content=mo_body())
    assert response.status_code == 404


def test_provider_that_does_not_push_is_404(client: TestClient) -> None:
    response = client.post(f"{URL}/dinisoft", params={"token": TOKEN}, content=mo_body())
    assert response.status_code == 404
    assert "does not push" in response.json()["detail"]


def test_get_is_405(client: TestClient) -> None:
    assert client.get(f"{URL}/imiconnect", params={"token": TOKEN}).status_code == 405


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"null", b'{"deliveryInfoNotification": 5}', b"\xff\xfe\x00"],
)
def test_malformed_body_is_400(client: TestClient, body: bytes) -> None:
    response = client.post(f"{URL}/imiconnect", params={"token": TOKEN}, content=body)
    assert response.status_code == 400, response.text
    assert response.json()["ok"] is False
    assert response.json()["detail"]


def test_oversized_body_is_413(gateway: Gateway) -> None:
    with TestClient(make_app(gateway, max_body=64)) as client:
        response = client.post(f"{URL}/imiconnect", params={"token": TOKEN}, content=mo_body())
    assert response.status_code == 413


def test_oversized_streamed_body_without_length_is_413(gateway: Gateway) -> None:
    def chunks() -> Any:
        yield b"[" + b" " * 50
        yield b" " * 50 + b"]"

    with TestClient(make_app(gateway, max_body=64)) as client:
        response = client.post(f"{URL}/imiconnect", params={"token": TOKEN}, content=chunks())
    assert response.status_code == 413


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "deliveryInfoNotification",
                            "deliveryInfo",
                            "transid",
                            "deliveryStatus",
                            "destination",
                            "timeStamp",
                            "oa",
                            "da",
                            "message",
                            "ts",
                            "datetime",
                            "results",
                        ]
                    )
                    | st.text(max_size=8),
                    inner,
                    max_size=6,
                )
            ),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_no_body_ever_gets_a_5xx(body: bytes) -> None:
    sim = Simulator(seed=3)
    gateway = Gateway([sim.provider("imiconnect")])
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("mimgw")
    logger.addHandler(handler)
    try:
        with TestClient(make_app(gateway)) as client:
            response = client.post(f"{URL}/imiconnect", params={"token": TOKEN}, content=body)
    finally:
        logger.removeHandler(handler)
    assert response.status_code in (200, 400), response.text
    # a parser that raised something other than MimgwError is a bug even if we answered 400
    assert not records, [r.getMessage() for r in records]


# -- IP allow-list -------------------------------------------------------------------------------


async def post_from(
    app: FastAPI, gateway: Gateway, peer: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with (
        lifespan(gateway)(app),
        httpx.AsyncClient(transport=transport, base_url="http://service.test") as client,
    ):
        return await client.post(
            f"{URL}/imiconnect",
            params={"token": TOKEN},
            headers=headers or {},
            content=mo_body(),
        )


async def test_allowed_ip_passes_and_others_get_403(gateway: Gateway) -> None:
    app = make_app(gateway, allowed_ips=["10.0.0.0/8", "2001:db8::1"])
    assert (await post_from(app, gateway, "10.20.30.40")).status_code == 200
    assert (await post_from(app, gateway, "2001:db8::1")).status_code == 200
    denied = await post_from(app, gateway, "192.0.2.1")
    assert denied.status_code == 403
    assert denied.json()["detail"] == "address not allowed"


async def test_allow_list_checked_before_token(gateway: Gateway) -> None:
    app = make_app(gateway, allowed_ips=["10.0.0.0/8"])
    transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 1))
    async with (
        lifespan(gateway)(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        response = await client.post(f"{URL}/imiconnect", content=mo_body())
    assert response.status_code == 403


async def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(gateway: Gateway) -> None:
    spoofed = {"X-Forwarded-For": "10.1.1.1"}
    app = make_app(gateway, allowed_ips=["10.0.0.0/8"])
    assert (await post_from(app, gateway, "192.0.2.1", spoofed)).status_code == 403


async def test_forwarded_for_through_a_trusted_proxy(gateway: Gateway) -> None:
    app = make_app(gateway, allowed_ips=["203.0.113.0/24"], trusted_proxies=["172.16.0.0/12"])
    # client -> edge proxy 172.16.0.9 -> app proxy 172.16.0.2 -> app
    through = {"X-Forwarded-For": "203.0.113.50, 172.16.0.9"}
    assert (await post_from(app, gateway, "172.16.0.2", through)).status_code == 200
    # the client prepended an allowed address itself: the first untrusted hop is its own
    forged = {"X-Forwarded-For": "203.0.113.50, 198.51.100.7"}
    assert (await post_from(app, gateway, "172.16.0.2", forged)).status_code == 403
    garbled = {"X-Forwarded-For": "203.0.113.50, not-an-ip"}
    assert (await post_from(app, gateway, "172.16.0.2", garbled)).status_code == 403


def test_allow_list_only_without_token_is_allowed(gateway: Gateway) -> None:
    router = webhook_router(token=None, allowed_ips=["127.0.0.1"])
    assert router.routes


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"token": None}, "unauthenticated"),
        ({"token": "short"}, "at least 16"),
        ({"token": TOKEN, "allowed_ips": ["10.0.0.300"]}, "not an IP"),
        ({"token": TOKEN, "allowed_ips": []}, "empty"),
        ({"token": TOKEN, "trusted_proxies": ["proxy.local"]}, "not an IP"),
        ({"token": TOKEN, "max_body": 0}, "max_body"),
    ],
)
def test_router_configuration_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        webhook_router(**kwargs)


def test_token_is_kept_out_of_access_logs(caplog: pytest.LogCaptureFixture) -> None:
    webhook_router(token=TOKEN)
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "203.0.113.5:5000",
            "POST",
            f"{URL}/imiconnect?token={TOKEN}",
            "1.1",
            200,
        )
    assert caplog.records
    text = caplog.records[-1].getMessage()
    assert TOKEN not in text
    assert "token=***" in text
    assert isinstance(caplog.records[-1].args, tuple)  # uvicorn's formatter unpacks them


def test_router_repr_and_errors_do_not_leak_the_token(client: TestClient) -> None:
    response = client.post(f"{URL}/imiconnect", params={"token": "x" * 20}, content=b"{}")
    assert TOKEN not in response.text


async def test_lifespan_yields_state_for_request_state(gateway: Gateway) -> None:
    app = FastAPI()
    async with lifespan(gateway)(app) as state:
        assert state == {"mimgw": gateway}


def test_import_without_fastapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.delitem(sys.modules, "mimgw.fastapi")
    with pytest.raises(ImportError, match=r'pip install "mimgw\[fastapi\]"'):
        importlib.import_module("mimgw.fastapi")
