"""The simulator served over real HTTP on 127.0.0.1 (uvicorn in a thread), with a gate
that can hold submits open until told, so another process can be killed mid-submit.
Used by the crash and cross-process tests and by benchmarks/bench_intents.py."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mimgw.simulator import Simulator

SUBMIT_PATHS = ("/api/SmsSending/", "/sendtext")


class Gate:
    """ASGI middleware: while ``hold`` is set, submits wait (``arrived`` counts them)
    until :meth:`release`; with ``drop`` they then end without reaching the gateway.
    With ``after`` the gateway handles each one first and only its answer is held."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hold = False
        self.drop = False
        self.after = False
        self.arrived = 0
        self._open = threading.Event()
        self._lock = threading.Lock()

    def release(self, *, drop: bool = False) -> None:
        self.drop = drop
        self._open.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if self.hold and any(p in path for p in SUBMIT_PATHS) and "alance" not in path:
            answer: list[Any] = []
            if self.after:

                async def keep(message: Any) -> None:
                    answer.append(message)

                await self.app(scope, receive, keep)
            with self._lock:
                self.arrived += 1
            await asyncio.to_thread(self._open.wait)  # a threading.Event: set from the test
            if self.after:
                for message in answer:
                    await send(message)
                return
            if self.drop:
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)

    def wait_arrived(self, n: int, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while self.arrived < n:
            if time.monotonic() > end:
                raise TimeoutError(f"only {self.arrived} of {n} submits arrived")
            time.sleep(0.01)


@contextmanager
def serve(sim: Simulator) -> Iterator[tuple[str, Gate]]:
    """Serve ``sim`` on 127.0.0.1 (a free port); yields its base URL and the gate."""
    import uvicorn

    gate = Gate(sim)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(gate, log_level="critical", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > end or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", gate
    finally:
        gate.release(drop=True)
        server.should_exit = True
        thread.join(10)
        sock.close()
