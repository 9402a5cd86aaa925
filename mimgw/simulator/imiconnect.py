"""Emulation of the imiconnect gateway (being written: see its issue)."""

from __future__ import annotations

from typing import Any

from mimgw.providers.base import Provider
from mimgw.simulator.base import GatewaySim, Route


class IMIconnectSim(GatewaySim):
    key = "imiconnect"

    def routes(self) -> list[Route]:
        return []

    def provider_kwargs(self) -> dict[str, Any]:
        return {}

    def provider(self, **overrides: Any) -> Provider:
        raise RuntimeError("not written yet")
