"""Shared fixtures. Tests never touch the internet: respx or the in-process simulator only."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

# respx intercepts httpx's own transport only; the aiohttp transport's tests choose it
# explicitly (tests/test_http_transports.py), so the default client stays respx-mockable.
os.environ.setdefault("MIMGW_TRANSPORT", "httpx")

from mimgw.simulator import Simulator


@pytest.fixture
def sim() -> Simulator:
    return Simulator(seed=1)


@pytest.fixture
async def sim_client(sim: Simulator) -> AsyncIterator[object]:
    async with sim.client() as client:
        yield client
