"""An in-process emulation of every supported gateway, as one ASGI app.

Used by the tests, by ``mimgw demo`` and by the benchmarks; ``mimgw simulate``
serves it over HTTP. Each gateway keeps its documented endpoints, credentials,
balance, delivery lifecycle and read-once semantics; faults can be injected.

    sim = Simulator()
    async with sim.provider("mimsms_v4") as sms:
        receipt = await sms.send("01712345678", "hello")
"""

from __future__ import annotations

import logging

import anyio
import httpx

from mimgw.errors import ConfigurationError
from mimgw.providers.base import Provider
from mimgw.simulator._asgi import (
    Handler,
    Receive,
    Scope,
    Send,
    SimRequest,
    SimResponse,
    read_request,
    write_response,
)
from mimgw.simulator.base import Clock, GatewaySim
from mimgw.simulator.dinisoft import DiniSoftSim
from mimgw.simulator.faults import Fault, FaultAction, FaultBook
from mimgw.simulator.imiconnect import IMIconnectSim
from mimgw.simulator.mimsms_v3 import MimSmsV3Sim
from mimgw.simulator.mimsms_v3_json import MimSmsV3JsonSim
from mimgw.simulator.mimsms_v4 import MimSmsV4Sim
from mimgw.simulator.served import ServedSimulator, serve_app

__all__ = [
    "Clock",
    "DiniSoftSim",
    "Fault",
    "FaultBook",
    "GatewaySim",
    "IMIconnectSim",
    "MimSmsV3JsonSim",
    "MimSmsV3Sim",
    "MimSmsV4Sim",
    "ServedSimulator",
    "SimRequest",
    "SimResponse",
    "SimTransport",
    "Simulator",
    "serve_app",
]


log = logging.getLogger("mimgw.simulator")


class Simulator:
    """Every gateway emulator behind one ASGI app, plus injectable transport faults."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self.clock = Clock()
        self.faults = FaultBook()
        self.mimsms_v4 = MimSmsV4Sim(self)
        self.mimsms_v3 = MimSmsV3Sim(self)
        self.mimsms_v3_json = MimSmsV3JsonSim(self)
        self.dinisoft = DiniSoftSim(self)
        self.imiconnect = IMIconnectSim(self)
        self.gateways: dict[str, GatewaySim] = {
            g.key: g
            for g in (
                self.mimsms_v4,
                self.mimsms_v3,
                self.mimsms_v3_json,
                self.dinisoft,
                self.imiconnect,
            )
        }
        self._routes: dict[tuple[str, str], tuple[GatewaySim, Handler]] = {}
        for gateway in self.gateways.values():
            for method, path, handler in gateway.routes():
                key = (method.upper(), path)
                if key in self._routes:
                    raise RuntimeError(f"two simulated gateways serve {method} {path}")
                self._routes[key] = (gateway, handler)
        self._client: httpx.AsyncClient | None = None
        self.push_client: httpx.AsyncClient | None = None
        """Client every gateway's pushes go through unless it has its own ``push_client``."""

    # -- routing -----------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[GatewaySim, Handler] | None:
        return self._routes.get((method.upper(), path))

    def gateway_for(self, path: str) -> GatewaySim | None:
        for (_, route_path), (gateway, _) in self._routes.items():
            if route_path == path:
                return gateway
        return None

    async def handle(self, request: SimRequest) -> SimResponse:
        found = self.route(request.method, request.path)
        if found is None:
            if self.gateway_for(request.path) is not None:
                return SimResponse.text("Method Not Allowed", 405, "text/html")
            return SimResponse.text("<html><body>404 Not Found</body></html>", 404, "text/html")
        gateway, handler = found
        gateway.requests += 1
        return await handler(request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = await read_request(scope, receive)
        await write_response(send, await self.handle(request))

    # -- faults --------------------------------------------------------------------------

    def fail(
        self,
        gateway: str | None,
        action: FaultAction,
        *,
        times: int | None = 1,
        path: str | None = None,
        status: int = 503,
        body: str = "",
        content_type: str = "text/html",
        headers: dict[str, str] | None = None,
        seconds: float = 0.0,
    ) -> Fault:
        """Inject a transport fault for the next ``times`` requests to ``gateway``."""
        if gateway is not None and gateway not in self.gateways:
            raise ConfigurationError(f"unknown simulated gateway {gateway!r}")
        return self.faults.add(
            Fault(
                action=action,
                gateway=gateway,
                path=path,
                times=times,
                status=status,
                body=body,
                content_type=content_type,
                headers=dict(headers or {}),
                seconds=seconds,
            )
        )

    # -- pushes --------------------------------------------------------------------------

    def set_push_url(self, url: str | None) -> None:
        """Point every gateway that pushes at ``url``; ``{kind}`` in it becomes the
        gateway's key (``…/mimgw/webhooks/{kind}?token=…`` reaches mimgw's webhook router)."""
        for gateway in self.gateways.values():
            if gateway.pushes:
                gateway.notify_url = None if url is None else url.replace("{kind}", gateway.key)

    async def push_all(self) -> dict[str, int]:
        """Push every due delivery report of every gateway that pushes; counts per gateway.
        A receiver that cannot be reached is logged and tried again on the next call."""
        pushed: dict[str, int] = {}
        for gateway in self.gateways.values():
            if not gateway.pushes:
                continue
            try:
                pushed[gateway.key] = await gateway.push_reports()
            except httpx.HTTPError as exc:
                log.warning("simulator: pushing %s reports failed: %s", gateway.key, exc)
                pushed[gateway.key] = 0
        return pushed

    # -- clients -------------------------------------------------------------------------

    def transport(self) -> SimTransport:
        return SimTransport(self)

    def client(self) -> httpx.AsyncClient:
        """A new httpx client whose requests all land in this simulator."""
        return httpx.AsyncClient(transport=self.transport())

    @property
    def shared_client(self) -> httpx.AsyncClient:
        """One client reused by every provider built through :meth:`provider`."""
        if self._client is None or self._client.is_closed:
            self._client = self.client()
        return self._client

    def provider(self, key: str, **overrides: object) -> Provider:
        """A provider of kind ``key`` with the simulator's credentials, in-process."""
        try:
            gateway = self.gateways[key]
        except KeyError:
            raise ConfigurationError(f"unknown simulated gateway {key!r}") from None
        return gateway.provider(**overrides)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class SimTransport(httpx.AsyncBaseTransport):
    """Sends requests into the simulator, applying injected faults on the way."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._app = httpx.ASGITransport(app=sim)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        gateway = self.sim.gateway_for(path)
        fault = self.sim.faults.take(gateway.key if gateway else None, path)
        if fault is None:
            return await self._app.handle_async_request(request)
        if fault.action == "connect_error":
            raise httpx.ConnectError("simulated: connection refused", request=request)
        if fault.action == "status":
            return httpx.Response(
                fault.status,
                headers={"content-type": fault.content_type, **fault.headers},
                content=fault.body.encode("utf-8"),
                request=request,
            )
        if fault.action == "delay":
            await anyio.sleep(fault.seconds)
            return await self._app.handle_async_request(request)
        response = await self._app.handle_async_request(request)
        await response.aread()
        if fault.action == "read_timeout":
            raise httpx.ReadTimeout("simulated: read timed out", request=request)
        raise httpx.RemoteProtocolError("simulated: connection reset after send", request=request)

    async def aclose(self) -> None:
        await self._app.aclose()
