"""Shared fixtures. Tests never touch the internet: respx or the in-process simulator only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mimgw.simulator import Simulator


@pytest.fixture
def sim() -> Simulator:
    return Simulator(seed=1)


@pytest.fixture
async def sim_client(sim: Simulator) -> AsyncIterator[object]:
    async with sim.client() as client:
        yield client
