"""The served simulator (``serve_app``): control endpoints, in-app faults and HTTP pushes,
exercised over ``httpx.ASGITransport`` exactly as a client of ``mimgw simulate`` would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from mimgw import (
    DeliveryReport,
    Gateway,
    InsufficientBalanceError,
    ProviderUnavailableError,
    Receipt,
    State,
)
from mimgw.providers import PROVIDER_CLASSES
from mimgw.providers.base import Provider
from mimgw.simulator import ServedSimulator, Simulator, serve_app

BASE = "http://sim.test"
PUSH = "http://receiver.test/hooks/{kind}?token=t0k"
TO = "01712345678"


class Receiver:
    """Records every push; answers 200 unless told otherwise."""

    def __init__(self) -> None:
        self.calls: list[httpx.Request] = []
        self.status = 200
        self.got = anyio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        self.got.set()
        return httpx.Response(self.status)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def app(receiver: Receiver) -> AsyncIterator[ServedSimulator]:
    async with receiver.client() as pushes:
        yield serve_app(PUSH, seed=3, push_client=pushes, push_interval=0)


@pytest.fixture
async def http(app: ServedSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def served(app: ServedSimulator, http: httpx.AsyncClient, kind: str, **extra: Any) -> Provider:
    """A provider configured as from ``mimgw simulate``'s settings: base URL and client."""
    kwargs = app.simulator.gateways[kind].provider_kwargs() | {"base_url": BASE, "client": http}
    provider = PROVIDER_CLASSES[kind](**(kwargs | extra))
    assert isinstance(provider, Provider)
    return provider


async def control(http: httpx.AsyncClient, path: str, **body: Any) -> dict[str, Any]:
    response = await http.post(f"/_sim/{path}", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert isinstance(result, dict)
    return result


# -- signature the CLI relies on -----------------------------------------------------------------


def test_serve_app_builds_a_served_simulator() -> None:
    app = serve_app("http://hook.test/{kind}", seed=5)
    assert isinstance(app.simulator, Simulator) and app.simulator.seed == 5
    assert app.simulator.imiconnect.notify_url == "http://hook.test/imiconnect"
    assert app.simulator.mimsms_v3_json.notify_url == "http://hook.test/mimsms_v3_json"
    assert app.simulator.mimsms_v3.notify_url == "http://hook.test/mimsms_v3"
    # gateways that document no push get no URL
    assert app.simulator.mimsms_v4.notify_url is None and app.simulator.dinisoft.notify_url is None
    assert serve_app().simulator.imiconnect.notify_url is None


# -- pushes over HTTP ---------------------------------------------------------------------------


async def test_due_reports_are_pushed_to_the_configured_url(
    app: ServedSimulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    kinds = ("imiconnect", "mimsms_v3_json", "mimsms_v3")
    providers = {k: served(app, http, k) for k in kinds}
    receipts = {k: await p.send(TO, f"via {k}") for k, p in providers.items()}
    assert (await control(http, "push"))["pushed"] == dict.fromkeys(kinds, 0)  # nothing due yet
    await control(http, "advance", seconds=30)
    assert (await control(http, "push"))["pushed"] == dict.fromkeys(kinds, 1)
    by_url = {str(r.url): r for r in receiver.calls}
    for kind, provider in providers.items():
        request = by_url[f"http://receiver.test/hooks/{kind}?token=t0k"]
        assert request.method == "POST"
        [report] = provider.parse_webhook(request.content, dict(request.headers))
        assert isinstance(report, DeliveryReport)
        assert report.message_id == receipts[kind].message_id
        assert report.state is State.DELIVERED
    # handed over once: neither pushed again nor pulled afterwards
    assert (await control(http, "push"))["pushed"] == dict.fromkeys(kinds, 0)
    assert await providers["mimsms_v3_json"].fetch_reports() == []
    assert len(receiver.calls) == 3


async def test_a_refused_push_is_tried_again(
    app: ServedSimulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await served(app, http, "mimsms_v3_json").send(TO, "x")
    await control(http, "advance", seconds=30)
    receiver.status = 503
    assert (await control(http, "push"))["pushed"]["mimsms_v3_json"] == 0
    receiver.status = 200
    assert (await control(http, "push"))["pushed"]["mimsms_v3_json"] == 1


async def test_an_unreachable_receiver_does_not_stop_the_simulator() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as pushes:
        app = serve_app(PUSH, push_client=pushes, push_interval=0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
            await served(app, c, "imiconnect").send(TO, "x")
            await control(c, "advance", seconds=30)
            assert (await control(c, "push"))["pushed"]["imiconnect"] == 0


async def test_while_running_reports_are_pushed_in_the_background(receiver: Receiver) -> None:
    async with receiver.client() as pushes:
        app = serve_app(PUSH, push_client=pushes, push_interval=0.01)
        async with (
            app.running(),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c,
        ):
            await served(app, c, "imiconnect").send(TO, "x")
            app.simulator.clock.advance(30)
            with anyio.fail_after(5):
                await receiver.got.wait()
    assert str(receiver.calls[0].url) == "http://receiver.test/hooks/imiconnect?token=t0k"


async def test_the_asgi_lifespan_runs_the_push_loop_and_closes_its_own_client() -> None:
    app = serve_app("http://127.0.0.1:9/{kind}", push_interval=0.01)
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []
    started = anyio.Event()

    async def receive() -> dict[str, Any]:
        if len(sent) == 1:
            await anyio.sleep(0.05)  # let the loop run (and fail to connect) a few times
        return events.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        started.set()

    await app({"type": "lifespan"}, receive, send)  # type: ignore[arg-type]
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert app.simulator.push_client is None  # created for the loop, closed at shutdown


# -- control endpoints ----------------------------------------------------------------------------


async def test_force_a_documented_answer_over_http(
    app: ServedSimulator, http: httpx.AsyncClient
) -> None:
    await control(http, "force", gateway="mimsms_v4", code="216")
    with pytest.raises(InsufficientBalanceError):
        await served(app, http, "mimsms_v4").send(TO, "x")
    assert isinstance(await served(app, http, "mimsms_v4").send(TO, "x"), Receipt)


async def test_a_fault_injected_over_http_forces_a_failover(
    app: ServedSimulator, http: httpx.AsyncClient
) -> None:
    await control(
        http,
        "fail",
        gateway="mimsms_v4",
        action="status",
        status=503,
        headers={"Retry-After": "1"},
        times=None,
    )
    primary = served(app, http, "mimsms_v4", name="primary")
    backup = served(app, http, "dinisoft", name="backup")
    async with Gateway([primary, backup]) as gateway:
        receipt = await gateway.send(TO, "hello")
    assert receipt.provider == "backup"
    await control(http, "clear")
    counts = (await http.get("/_sim/submissions", params={"to": TO})).json()
    assert (counts["mimsms_v4"]["count"], counts["dinisoft"]["count"]) == (0, 1)


async def test_connect_error_served_is_an_explicit_not_processed(
    app: ServedSimulator, http: httpx.AsyncClient
) -> None:
    await control(http, "fail", gateway="dinisoft", action="connect_error")
    with pytest.raises(ProviderUnavailableError) as info:
        await served(app, http, "dinisoft").send(TO, "x")
    assert not info.value.may_have_been_sent
    assert app.simulator.dinisoft.sent_count() == 0


async def test_read_timeout_served_processes_and_holds_the_answer(
    app: ServedSimulator, http: httpx.AsyncClient
) -> None:
    await control(http, "fail", gateway="mimsms_v4", action="read_timeout", seconds=2)
    provider = served(app, http, "mimsms_v4")
    with anyio.move_on_after(0.2):
        await provider.send(TO, "x")
        pytest.fail("the answer should have been held back")
    assert app.simulator.mimsms_v4.sent_count(TO, "x") == 1


async def test_reset_after_send_served_processes_and_drops_the_body(
    app: ServedSimulator, http: httpx.AsyncClient
) -> None:
    # driven at the ASGI level: a server that returns after the head closes the connection
    # (uvicorn), which a client sees as a reset; httpx.ASGITransport cannot show that
    await control(http, "fail", gateway="dinisoft", action="reset_after_send")
    dini = app.simulator.dinisoft
    query = (
        f"apikey={dini.api_key}&secretkey={dini.secret_key}&callerID=X&toUser=8801712345678"
        "&messageContent=x"
    )
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/sendtext",
        "query_string": query.encode(),
        "headers": [],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert dini.sent_count("8801712345678", "x") == 1


async def test_outcome_and_clock_over_http(app: ServedSimulator, http: httpx.AsyncClient) -> None:
    await control(http, "outcome", gateway="dinisoft", to=TO, status="REJECTD")
    provider = served(app, http, "dinisoft")
    receipt = await provider.send(TO, "x")
    await control(http, "advance", seconds=60)
    report = await provider.status(receipt.message_id)
    assert report.state is State.REJECTED


@pytest.mark.parametrize(
    ("gateway", "body"),
    [
        ("mimsms_v4", {"status": "Absent subscriber for SM"}),
        ("mimsms_v3", {"status": "NOT_SENT"}),
        ("mimsms_v3_json", {"status": 9, "error": 27}),
        ("imiconnect", {"status": "Failed"}),
    ],
)
async def test_every_gateway_takes_an_outcome(
    app: ServedSimulator, http: httpx.AsyncClient, gateway: str, body: dict[str, Any]
) -> None:
    await control(http, "outcome", gateway=gateway, to="+8801712345678", **body)
    outcomes: Any = getattr(app.simulator.gateways[gateway], "outcomes", {})
    assert "8801712345678" in outcomes


async def test_submission_counts_over_http(app: ServedSimulator, http: httpx.AsyncClient) -> None:
    provider = served(app, http, "mimsms_v3_json")
    await provider.send(TO, "one")
    await provider.send(TO, "one")
    await provider.send("01812345678", "two")
    data = (await http.get("/_sim/submissions", params={"gateway": "mimsms_v3_json"})).json()
    assert data["mimsms_v3_json"]["count"] == 3
    assert {"to": "8801712345678", "text": "one", "count": 2} in data["mimsms_v3_json"][
        "submissions"
    ]
    one = (await http.get("/_sim/submissions", params={"to": TO, "text": "one"})).json()
    assert one["mimsms_v3_json"]["count"] == 2 and one["mimsms_v4"]["count"] == 0
    overview = (await http.get("/_sim/")).json()
    assert overview["gateways"]["mimsms_v3_json"]["sent"] == 3


async def test_clear_removes_faults_and_forced_answers(
    app: ServedSimulator, http: httpx.AsyncClient
) -> None:
    await control(http, "fail", action="status", status=500, times=None)
    await control(http, "force", gateway="mimsms_v4", code="216", times=3)
    assert (await http.get("/_sim")).json()["faults"] == 1
    await control(http, "clear")
    assert isinstance(await served(app, http, "mimsms_v4").send(TO, "x"), Receipt)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_sim/force", {"gateway": "nope", "code": "1"}, 400),
        ("POST", "/_sim/force", {"gateway": "mimsms_v4"}, 400),
        ("POST", "/_sim/fail", {"action": "explode"}, 400),
        ("POST", "/_sim/fail", {"action": "status", "times": "many"}, 400),
        ("POST", "/_sim/outcome", {"gateway": "dinisoft", "to": TO, "status": "MAYBE"}, 400),
        ("POST", "/_sim/outcome", {"gateway": "mimsms_v3_json", "to": TO, "status": 999}, 400),
        ("POST", "/_sim/advance", {"seconds": -5}, 400),
        ("POST", "/_sim/advance", [1, 2], 400),
        ("GET", "/_sim/submissions?gateway=nope", None, 400),
        ("GET", "/_sim/unknown", None, 404),
        ("DELETE", "/_sim/force", None, 404),
    ],
)
async def test_bad_control_requests_get_a_json_error(
    http: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    response = await http.request(method, path, json=body)
    assert response.status_code == status
    assert response.json()["error"]


async def test_a_control_token_guards_every_control_endpoint() -> None:
    app = serve_app(control_token="s3cret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        assert (await c.get("/_sim/")).status_code == 401
        assert (await c.post("/_sim/clear", headers={"X-Sim-Token": "wrong"})).status_code == 401
        response = await c.post("/_sim/clear", headers={"X-Sim-Token": "s3cret"})
        assert response.status_code == 200
        # the gateways themselves need no token
        assert isinstance(await served(app, c, "mimsms_v4").send(TO, "x"), Receipt)


async def test_gateway_paths_are_served_unchanged(http: httpx.AsyncClient) -> None:
    response = await http.get("/nowhere")
    assert response.status_code == 404
    assert json.loads((await http.get("/_sim/")).text)["faults"] == 0
