# ruff: noqa: S603
"""Fixtures and process helpers for the Redis / taskiq service tests.

Redis must answer on 127.0.0.1:6379: otherwise the tests skip with the reason, or fail
when ``CI=true`` (CI starts it). Each test gets its own key prefix and queue, deleted
afterwards. The counting gateway runs as its own uvicorn process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from count_server import provider_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REDIS_URL = os.environ.get("MIMGW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RESTART_REDIS = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def require_redis() -> None:
    if _reachable(6379):
        return
    reason = "Redis is not running on 127.0.0.1:6379 (start it, or run .ci/run)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get_json(url: str, method: str = "GET") -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        return json.loads(response.read() or b"null")


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]

    def stats(self, times: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = get_json(self.url + "/stats" + ("?times=1" if times else ""))
        return result

    def control(self, what: str) -> None:
        get_json(f"{self.url}/control/{what}", "POST")


def start_server(latency: float = 0.0) -> Served:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "count_server.py"),
            "--port",
            str(port),
            "--latency",
            str(latency),
        ]
    )
    served = Served(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _reachable(port):
            return served
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("count server did not start")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig) if sig == signal.SIGKILL else process.send_signal(sig)
    with suppress(subprocess.TimeoutExpired):
        process.wait(10)
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"mimgw-test-{uuid.uuid4().hex[:10]}"
    yield name
    import redis

    with suppress(Exception):
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
        keys = list(client.scan_iter(match=f"{name}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def server() -> Iterator[Served]:
    served = start_server()
    yield served
    stop(served.process)


def worker_env(served: Served, prefix: str, redis_url: str, **extra: str) -> dict[str, str]:
    """Environment of a worker process: the counting gateway, shared state, own queue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMGW_")}
    env.update(provider_env(served.url))
    env.update(
        {
            "MIMGW_STATE__URL": redis_url,
            "MIMGW_STATE__PREFIX": prefix,
            "MIMGW_RETRY__ATTEMPTS": "1",
            "MIMGW_TEST_BROKER_URL": redis_url,
            "MIMGW_TEST_QUEUE": f"{prefix}:queue",
            "PYTHONPATH": str(HERE),
        }
    )
    env.update(extra)
    return env


def start_worker(
    env: dict[str, str], *, app: str = "svc_worker_app:broker"
) -> subprocess.Popen[bytes]:
    """One taskiq worker (its manager and one worker process, in their own group)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskiq",
            "worker",
            app,
            "--workers",
            "1",
            "--max-async-tasks",
            "64",
            "--no-configure-logging",
            "--shutdown-timeout",
            "5",
        ],
        env=env,
        cwd=str(HERE),
        start_new_session=True,
    )
