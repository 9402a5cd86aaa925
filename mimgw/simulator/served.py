"""The simulator served over HTTP (``mimgw simulate``): control endpoints, faults, pushes.

An in-process test reaches the emulators directly (``sim.mimsms_v4.force(...)``,
``sim.fail(...)``). A served simulator is reached only over HTTP, so
:class:`ServedSimulator` adds what a test or a developer needs from outside:

- control endpoints under ``/_sim/`` (force a documented answer, pin a message's
  outcome, inject a transport fault, advance the clock, read the submission counts,
  push now), JSON in and out;
- transport faults applied inside the app, since no client transport of ours sits
  in front of it;
- delivery reports pushed over real HTTP to a configured URL, with its own
  ``httpx.AsyncClient``, every ``push_interval`` seconds while it is served.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, cast, get_args

import anyio
import httpx

from mimgw.errors import ConfigurationError, MimgwError
from mimgw.simulator._asgi import (
    Receive,
    Scope,
    Send,
    SimRequest,
    SimResponse,
    read_request,
    write_response,
)
from mimgw.simulator.base import GatewaySim, _wire_number
from mimgw.simulator.dinisoft import DiniSoftSim
from mimgw.simulator.faults import Fault, FaultAction
from mimgw.simulator.imiconnect import IMIconnectSim
from mimgw.simulator.mimsms_v3 import MimSmsV3Sim
from mimgw.simulator.mimsms_v3_json import MimSmsV3JsonSim
from mimgw.simulator.mimsms_v4 import MimSmsV4Sim

if TYPE_CHECKING:
    from mimgw.simulator import Simulator

__all__ = ["CONTROL_PREFIX", "ServedSimulator", "serve_app"]

log = logging.getLogger("mimgw.simulator")

CONTROL_PREFIX = "/_sim"
TOKEN_HEADER = "x-sim-token"  # noqa: S105 - a header name, not a secret
READ_TIMEOUT_HOLD = 60.0
"""How long a served ``read_timeout`` fault holds the answer back (unless ``seconds``)."""
_ACTIONS = frozenset(get_args(FaultAction))
_DINI_WORDS = ("DELIVRD", "REJECTD", "PENDING", "SENT")


def serve_app(
    push_url: str | None = None,
    *,
    seed: int = 0,
    push_interval: float = 1.0,
    control_token: str | None = None,
    simulator: Simulator | None = None,
    push_client: httpx.AsyncClient | None = None,
) -> ServedSimulator:
    """The ASGI app ``mimgw simulate`` serves.

    ``push_url`` is where gateways that push (IMIconnect, both MiMSMS v3 APIs) post
    their delivery reports; ``{kind}`` in it is replaced by the gateway's key, e.g.
    ``http://127.0.0.1:8000/mimgw/webhooks/{kind}?token=…``. While served (ASGI
    lifespan), due reports are pushed every ``push_interval`` seconds (0: only on
    ``POST /_sim/push``). ``control_token``, when set, must come in an
    ``X-Sim-Token`` header on every ``/_sim/`` request. ``push_client`` replaces the
    app's own HTTP client for pushes (tests).
    """
    from mimgw.simulator import Simulator

    return ServedSimulator(
        simulator or Simulator(seed=seed),
        push_url=push_url,
        push_interval=push_interval,
        control_token=control_token,
        push_client=push_client,
    )


class ServedSimulator:
    """A :class:`Simulator` as a served ASGI app; ``simulator`` is the one it serves."""

    def __init__(
        self,
        simulator: Simulator,
        *,
        push_url: str | None = None,
        push_interval: float = 1.0,
        control_token: str | None = None,
        push_client: httpx.AsyncClient | None = None,
    ) -> None:
        if push_interval < 0:
            raise ConfigurationError("push_interval must not be negative")
        self.simulator = simulator
        self.push_url = push_url
        self.push_interval = push_interval
        self._token = control_token
        self._own_client: httpx.AsyncClient | None = None
        if push_client is not None:
            simulator.push_client = push_client
        if push_url is not None:
            simulator.set_push_url(push_url)

    # -- lifecycle -----------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Push due reports in the background while the block runs (the served lifespan)."""
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self.aclose)
            async with anyio.create_task_group() as tg:
                if self.push_interval > 0:
                    tg.start_soon(self._push_loop)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()

    async def _push_loop(self) -> None:
        while True:
            await anyio.sleep(self.push_interval)
            await self.push_now()

    async def push_now(self) -> dict[str, int]:
        """Push every due report now; how many each gateway's receiver took."""
        if self.simulator.push_client is None:
            self._own_client = httpx.AsyncClient(timeout=10.0)
            self.simulator.push_client = self._own_client
        return await self.simulator.push_all()

    async def aclose(self) -> None:
        """Close the push client this app created (never one it was given)."""
        if self._own_client is not None:
            if self.simulator.push_client is self._own_client:
                self.simulator.push_client = None
            await self._own_client.aclose()
            self._own_client = None

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            request = await read_request(scope, receive)
            await write_response(send, await self._control(request))
            return
        gateway = self.simulator.gateway_for(path)
        fault = self.simulator.faults.take(gateway.key if gateway else None, path)
        if fault is None:
            await self.simulator(scope, receive, send)
        else:
            await self._faulted(fault, scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        event = await receive()
        if event["type"] != "lifespan.startup":
            return
        async with self.running():
            await send({"type": "lifespan.startup.complete"})
            while (await receive())["type"] != "lifespan.shutdown":
                pass
        await send({"type": "lifespan.shutdown.complete"})

    async def _faulted(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        """A transport fault as an HTTP server can produce it."""
        if fault.action == "connect_error":
            # a server cannot refuse a connection it accepted; the nearest is an explicit
            # "not processed, come back later", which mimgw reports as unavailable
            await write_response(send, SimResponse(503, b"", "text/plain", [("Retry-After", "1")]))
        elif fault.action == "status":
            headers = list(fault.headers.items())
            body = fault.body.encode("utf-8")
            await write_response(send, SimResponse(fault.status, body, fault.content_type, headers))
        elif fault.action == "delay":
            await anyio.sleep(fault.seconds)
            await self.simulator(scope, receive, send)
        else:
            held: list[MutableMapping[str, Any]] = []

            async def keep(message: MutableMapping[str, Any]) -> None:
                held.append(message)

            await self.simulator(scope, receive, keep)  # the gateway processes it
            if fault.action == "read_timeout":
                await anyio.sleep(fault.seconds or READ_TIMEOUT_HOLD)
                for message in held:
                    await send(message)
            else:  # reset_after_send: the head goes out, then the connection drops
                await send(held[0])

    # -- control endpoints -------------------------------------------------------------------

    async def _control(self, request: SimRequest) -> SimResponse:
        if self._token is not None and not hmac.compare_digest(
            request.headers.get(TOKEN_HEADER, ""), self._token
        ):
            return _error("missing or wrong X-Sim-Token", 401)
        action = request.path.removeprefix(CONTROL_PREFIX).strip("/")
        handlers = {
            ("GET", ""): self._overview,
            ("GET", "submissions"): self._submissions,
            ("POST", "force"): self._force,
            ("POST", "outcome"): self._outcome,
            ("POST", "fail"): self._fail,
            ("POST", "clear"): self._clear,
            ("POST", "advance"): self._advance,
            ("POST", "push"): self._push,
        }
        handler = handlers.get((request.method, action))
        if handler is None:
            known = ", ".join(f"{m} {CONTROL_PREFIX}/{a}" for m, a in handlers)
            return _error(f"no control endpoint {request.method} {request.path}; {known}", 404)
        data: dict[str, Any] = {}
        if request.method == "POST" and request.body.strip():
            parsed = request.json()
            if not isinstance(parsed, dict):
                return _error("the body must be a JSON object")
            data = parsed
        try:
            return await handler(request, data)
        except (MimgwError, KeyError, TypeError, ValueError) as exc:
            return _error(str(exc) or type(exc).__name__)

    def _gateway(self, name: object) -> GatewaySim:
        if not isinstance(name, str) or name not in self.simulator.gateways:
            raise ValueError(f"gateway must be one of {', '.join(self.simulator.gateways)}")
        return self.simulator.gateways[name]

    async def _overview(self, request: SimRequest, data: dict[str, Any]) -> SimResponse:
        gateways = {
            key: {
                "requests": g.requests,
                "sent": g.sent_count(),
                "pushes": g.pushes,
                "notify_url": g.notify_url,
            }
            for key, g in self.simulator.gateways.items()
        }
        return SimResponse.json(
            {"gateways": gateways, "faults": len(self.simulator.faults), "now": _now(self)}
        )

    async def _submissions(self, request: SimRequest, data: dict[str, Any]) -> SimResponse:
        q = request.q
        names = [q("gateway")] if q("gateway") else list(self.simulator.gateways)
        result: dict[str, Any] = {}
        for name in names:
            gateway = self._gateway(name)
            to = None if q("to") is None else _wire_number(q("to") or "")
            rows = [
                {"to": number, "text": text, "count": count}
                for (number, text), count in gateway.submissions.items()
                if (to is None or number == to) and (q("text") is None or text == q("text"))
            ]
            count = gateway.sent_count(q("to"), q("text"), reference=q("reference"))
            result[gateway.key] = {"count": count, "submissions": rows}
        return SimResponse.json(result)

    async def _force(self, request: SimRequest, data: dict[str, Any]) -> SimResponse:
        gateway = self._gateway(data.get("gateway"))
        code, times = data.get("code"), _int(data.get("times", 1), "times")
        if not isinstance(code, str | int) or isinstance(code, bool):
            raise ValueError("code must be a string or an integer")
        if data.get("text") is not None and gateway.key == "mimsms_v4":
            gateway.force(code, times, text=str(data["text"]))  # type: ignore[call-arg]
        else:
            gateway.force(code, times)
        return SimResponse.json({"ok": True})

    async def _outcome(self, request: SimRequest, data: dict[str, Any]) -> SimResponse:
        gateway = self._gateway(data.get("gateway"))
        number = _wire_number(str(data.get("to") or ""))
        status = data.get("status")
        if not number or status is None:
            raise ValueError("to and status are required")
        _set_outcome(gateway, number, status, data)
        return SimResponse.json({"ok": True})

    async def _fail(self, request: SimRequest, data: dict[str, Any]) -> SimResponse:
        action = data.get("action")
        if action not in _ACTIONS:
            raise ValueError(f"action must be one of {', '.join(sorted(_ACTIONS))}")
        assert isinstance(action, str)
        gateway = data.get("gateway")
        times = data.get("times", 1)
        headers = data.get("headers") or {}
        if not isinstance(headers, dict):
            raise ValueError("headers must be an object")
        self.simulator.fail(
            None if gateway is None else self._gateway(gateway).key,
            cast(FaultAction, action),
            times=None if times is None else _int(times, "times"),
            path=None if data.get("path") is None else str(data["path"]),
            status=_int(data.get("status", 503), "status"),
            body=str(data.get("body", "")),
            content_type=str(data.get("content_type", "text/html")),
            headers={str(k): str(v) for k, v in headers.items()},
            seconds=float(data.get("seconds", 0.0)),
        )
        return SimResponse.json({"ok": True, "faults": len(self.simulator.faults)})

    async def _clear(self, request: SimRequest, data: dict[str, Any]) -> SimResponse:
        self.simulator.faults.clear()
        for gateway in self.simulator.gateways.values():
            while gateway.take_forced() is not None:
                pass
        return SimResponse.json({"ok": True})

    async def _advance(self, request: SimRequest, data: dict[str, Any]) -> SimResponse:
        seconds = float(data.get("seconds", 0))
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self.simulator.clock.advance(seconds)
        return SimResponse.json({"ok": True, "now": _now(self)})

    async def _push(self, request: SimRequest, data: dict[str, Any]) -> SimResponse:
        return SimResponse.json({"pushed": await self.push_now()})


def _set_outcome(gateway: GatewaySim, number: str, status: Any, data: dict[str, Any]) -> None:
    """Pin the final outcome of ``number`` in each gateway's own terms."""
    if isinstance(gateway, MimSmsV3JsonSim):
        gateway.set_outcome(number, _int(status, "status"), _int(data.get("error", 0), "error"))
    elif isinstance(gateway, MimSmsV3Sim):
        gateway.set_outcome(number, str(status))
    elif isinstance(gateway, MimSmsV4Sim):
        description = data.get("description")
        gateway.outcomes[number] = (str(status), None if description is None else str(description))
    elif isinstance(gateway, DiniSoftSim):
        word = str(status).strip().upper()
        if word not in _DINI_WORDS:
            raise ValueError(f"status must be one of {', '.join(_DINI_WORDS)}")
        gateway.outcomes[number] = word
    elif isinstance(gateway, IMIconnectSim):
        gateway.outcomes[number] = str(status)
    else:  # pragma: no cover - every emulator is listed above
        raise ValueError(f"{gateway.key} has no outcomes to set")


def _int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{field} must be an integer")
    return int(value)


def _now(app: ServedSimulator) -> str:
    return app.simulator.clock.now().isoformat()


def _error(detail: str, status: int = 400) -> SimResponse:
    return SimResponse(status, json.dumps({"error": detail}).encode("utf-8"))
