# ruff: noqa: F811, S603, S607, ASYNC110, ASYNC221
"""RedisState against a real Redis: a rate limit for all processes together, a breaker
shared between processes, and a Redis outage that degrades to local state."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time

import pytest
from count_server import API_KEY, SENDER, USERNAME
from svc_support import (  # noqa: F401 - fixtures
    HERE,
    RESTART_REDIS,
    Served,
    prefix,
    server,
    worker_env,
)

from mimgw import Gateway
from mimgw.breaker import BreakerState, CircuitOpenError
from mimgw.errors import AllProvidersFailedError
from mimgw.limits import RateLimit
from mimgw.providers.mimsms_v4 import MimSmsV4

pytestmark = pytest.mark.services

RATE = 20


def _gateway(served: Served, state: object, **kwargs: object) -> Gateway:
    provider = MimSmsV4(
        username=USERNAME, api_key=API_KEY, sender=SENDER, base_url=served.url, name="count"
    )
    return Gateway([provider], state=state, **kwargs)  # type: ignore[arg-type]


def _senders(env: dict[str, str], count: int, each: int, start: float) -> list[dict[str, object]]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "svc_sender.py"), str(start), str(each), f"p{n}"],
            env=env,
            stdout=subprocess.PIPE,
        )
        for n in range(count)
    ]
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        outputs.append(json.loads(out.decode().strip().splitlines()[-1]))
    return outputs


def test_one_rate_limit_for_all_processes(server: Served, prefix: str, redis_url: str) -> None:
    env = worker_env(server, prefix, redis_url, MIMGW_LIMITS__RATE=str(RATE))
    processes, each = 3, 20  # 60 requests at 20/s (burst 20): at least two seconds
    outputs = _senders(env, processes, each, time.time() + 2.5)
    assert all(k is None for o in outputs for k in o["kinds"]), outputs  # type: ignore[attr-defined]
    times = sorted(server.stats(times=True)["times"])
    assert len(times) == processes * each
    # measured at the gateway: never more than rate * t + burst in any span t
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            span = times[j] - first
            # (0.1 s of slack: a request allowed at Redis may reach the server late,
            # bunching with the next ones on a loaded machine)
            assert j - i + 1 <= RATE * (span + 0.1) + RATE + 1, (j - i + 1, span)
    assert times[-1] - times[0] >= 1.8  # three local limits would have let all 60 go at once


async def test_breaker_opened_by_one_process_is_open_for_all(
    server: Served, prefix: str, redis_url: str
) -> None:
    from mimgw.shared import RedisState

    async with _gateway(server, RedisState(redis_url, prefix=prefix, poll_interval=0.5)) as here:
        breaker = here.breaker("count")
        assert breaker is not None and breaker.state is BreakerState.CLOSED
        server.control("auth")  # the other process is told "invalid credentials"
        env = worker_env(server, prefix, redis_url)
        [other] = await asyncio.to_thread(_senders, env, 1, 1, 0.0)
        assert other["kinds"] == ["auth"]
        assert other["health"]["count"]["state"] == "open"  # type: ignore[index]
        server.control("ok")
        deadline = time.monotonic() + 3
        while breaker.state is not BreakerState.OPEN and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert breaker.is_open and breaker.cause is not None and breaker.cause.value == "auth"
        assert breaker.reopens_in() > 500  # the account cool-down, not a short one
        with pytest.raises(AllProvidersFailedError) as caught:
            await here.send("01712345678", "not sent")
        assert isinstance(caught.value.last, CircuitOpenError)
        assert not caught.value.may_have_been_sent
        # a process that starts later reads the opening from its key
        async with _gateway(server, RedisState(redis_url, prefix=prefix)) as late:
            late_breaker = late.breaker("count")
            assert late_breaker is not None and late_breaker.is_open
    assert server.stats()["total"] == 0


async def test_a_probe_that_succeeds_closes_the_breaker_everywhere(
    server: Served, prefix: str, redis_url: str
) -> None:
    from mimgw.breaker import BreakerPolicy
    from mimgw.shared import RedisState

    policy = BreakerPolicy(account_cooldown=0.3)
    a_state = RedisState(redis_url, prefix=prefix, poll_interval=0.2)
    b_state = RedisState(redis_url, prefix=prefix, poll_interval=0.2)
    async with (
        _gateway(server, a_state, breaker=policy) as a,
        _gateway(server, b_state, breaker=policy) as b,
    ):
        server.control("auth")
        with pytest.raises(AllProvidersFailedError):
            await a.send("01712345678", "refused")
        server.control("ok")
        b_breaker = b.breaker("count")
        assert b_breaker is not None
        for _ in range(100):
            if b_breaker.state is BreakerState.OPEN:
                break
            await asyncio.sleep(0.01)
        assert b_breaker.state is BreakerState.OPEN
        await asyncio.sleep(0.35)
        await a.send("01712345678", "probe")  # half-open probe succeeds in A
        for _ in range(100):
            if b_breaker.state is BreakerState.CLOSED:
                break
            await asyncio.sleep(0.01)
        assert b_breaker.state is BreakerState.CLOSED


async def test_redis_restart_degrades_to_local_state_then_recovers(
    server: Served, prefix: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from mimgw.shared import RedisState

    caplog.set_level(logging.WARNING, logger="mimgw.shared")
    state = RedisState(redis_url, prefix=prefix, poll_interval=0.2, timeout=0.3)
    sent = 0
    try:
        async with _gateway(server, state, limits=RateLimit(rate=200)) as gateway:
            for i in range(20):
                await gateway.send("01712345678", f"before {i}")
                sent += 1
            subprocess.run(["redis-cli", "shutdown", "nosave"], check=False, capture_output=True)
            for i in range(40):  # every send still goes, none fails
                await gateway.send("01712345678", f"during {i}")
                sent += 1
            assert not state.link.up
            subprocess.run(RESTART_REDIS, check=True, capture_output=True)
            await _wait_for_redis()
            await asyncio.sleep(1.1)  # RETRY_AFTER: the next send tries Redis again
            for i in range(20):
                await gateway.send("01712345678", f"after {i}")
                sent += 1
            assert state.link.up
    finally:
        if subprocess.run(["redis-cli", "ping"], capture_output=True).returncode != 0:
            subprocess.run(RESTART_REDIS, check=False, capture_output=True)
            await _wait_for_redis()
    assert sent == 80 and server.stats()["total"] == 80
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per message
    assert any("answers again" in r.getMessage() for r in caplog.records)
    assert "secret" not in " ".join(warnings)


async def _wait_for_redis() -> None:
    for _ in range(100):
        done = subprocess.run(["redis-cli", "ping"], capture_output=True)
        if done.returncode == 0 and b"PONG" in done.stdout:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("redis did not come back")


def test_importing_mimgw_imports_no_driver() -> None:
    code = (
        "import sys, mimgw, mimgw.config; "
        "bad = [m for m in ('redis', 'limits', 'taskiq', 'asyncpg') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


def test_settings_build_a_redis_state(redis_url: str) -> None:
    from mimgw.config import GatewaySettings
    from mimgw.shared import RedisState, SharedLimiter

    settings = GatewaySettings.load(
        providers=[
            {"kind": "mimsms_v4", "username": USERNAME, "api_key": API_KEY, "sender": SENDER}
        ],
        state={"url": "redis://:hunter2@127.0.0.1:6379/0", "prefix": "p1"},
        limits={"rate": 5},
    )
    assert "hunter2" not in repr(settings)
    gateway = Gateway.from_settings(settings)
    assert isinstance(gateway.state, RedisState)
    assert gateway.state.prefix == "p1"
    assert "hunter2" not in repr(gateway.state)
    assert isinstance(gateway._limiters["mimsms_v4"], SharedLimiter)


def test_shared_window_never_exceeds_rate() -> None:
    from mimgw.shared import shared_window

    assert shared_window(RateLimit(rate=10)) == (10, 1)
    assert shared_window(RateLimit(rate=0.5)) == (1, 2)
    assert shared_window(RateLimit(rate=2.5, burst=5)) == (5, 2)
    amount, seconds = shared_window(RateLimit(rate=2.5, burst=3))
    assert amount / seconds <= 2.5
