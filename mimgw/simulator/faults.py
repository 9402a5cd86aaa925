"""Injectable transport faults: what the network and proxies do to a request."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Fault", "FaultAction", "FaultBook"]

FaultAction = Literal["connect_error", "read_timeout", "reset_after_send", "status", "delay"]
"""
- ``connect_error``: the request never reaches the gateway (``CONNECT_FAILED``).
- ``read_timeout``: the gateway processes the request, the answer is lost (``OUTCOME_UNKNOWN``).
- ``reset_after_send``: like ``read_timeout`` but a connection reset.
- ``status``: a proxy answers ``status`` with ``body`` and the gateway never sees it.
- ``delay``: the answer comes ``seconds`` late (to exercise client timeouts).
"""


@dataclass
class Fault:
    action: FaultAction
    gateway: str | None = None
    """Simulator key of the gateway (``"mimsms_v4"``…); ``None`` for every gateway."""
    path: str | None = None
    """Only requests whose path equals this (or, ending in ``*``, starts with it)."""
    times: int | None = 1
    """How many requests it hits; ``None`` for every one until cleared."""
    status: int = 503
    body: str = ""
    content_type: str = "text/html"
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    hits: int = 0

    def matches(self, gateway: str | None, path: str) -> bool:
        if self.gateway is not None and self.gateway != gateway:
            return False
        if self.path is None:
            return True
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


class FaultBook:
    """The faults waiting for requests, first added first used."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, gateway: str | None, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(gateway, path):
                    fault.hits += 1
                    if fault.times is not None and fault.hits >= fault.times:
                        self._faults.remove(fault)
                    return fault
        return None

    def __len__(self) -> int:
        return len(self._faults)
