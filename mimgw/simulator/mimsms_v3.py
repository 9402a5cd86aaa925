"""Emulation of the legacy MiMSMS v3 gateways (being written: see its issue)."""

from __future__ import annotations

from typing import Any

from mimgw.providers.base import Provider
from mimgw.simulator.base import GatewaySim, Route


class MimSmsV3Sim(GatewaySim):
    key = "mimsms_v3"

    def routes(self) -> list[Route]:
        return []

    def provider_kwargs(self) -> dict[str, Any]:
        return {}

    def provider(self, **overrides: Any) -> Provider:
        raise RuntimeError("not written yet")


class MimSmsV3JsonSim(GatewaySim):
    key = "mimsms_v3_json"

    def routes(self) -> list[Route]:
        return []

    def provider_kwargs(self) -> dict[str, Any]:
        return {}

    def provider(self, **overrides: Any) -> Provider:
        raise RuntimeError("not written yet")
