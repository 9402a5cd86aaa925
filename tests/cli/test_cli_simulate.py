"""``mimgw simulate`` served on loopback: its printed lines, pasted into .env, just work."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from mimgw.cli.common import SIMULATED_KINDS
from mimgw.cli.simulate import env_lines
from mimgw.gateway import Gateway
from mimgw.simulator import Simulator


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(seed=5)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(sim, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the simulator did not start"
        time.sleep(0.02)
    try:
        yield sim, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def test_pasted_env_lines_reach_every_simulated_gateway(
    served: tuple[Simulator, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.upper().startswith("MIMGW_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    sim, base_url = served
    env = tmp_path / ".env"
    env.write_text("# from mimgw simulate\n" + "\n".join(env_lines(sim, base_url)) + "\n")
    async with Gateway.from_settings(env_file=env) as gateway:
        assert list(gateway.providers) == list(SIMULATED_KINDS)
        for name in gateway.providers:
            receipt = await gateway.send("01712345678", f"hello via {name}", provider=name)
            assert receipt.provider == name
        balance = await gateway.balance(provider="mimsms_v4")
        assert balance.amount > 0
