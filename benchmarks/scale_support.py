# ruff: noqa: S603
"""Processes and services for bench_scale.py: the counting server, taskiq worker groups,
peak-RSS sampling, and cleaning up Redis keys and PostgreSQL tables afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

HERE = Path(__file__).resolve().parent


def reachable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if reachable("127.0.0.1", port):
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop_group(process)
    raise RuntimeError(f"{what} did not start")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    def _call(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback only
            self.url + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("/stats")
        return result

    def reset(self) -> None:
        self._call("/control/reset", "POST")


def start_server(latency: float) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "scale_server.py"),
            *("--port", str(port)),
            *("--latency", str(latency)),
        ],
        start_new_session=True,
    )
    _wait_port(port, process, "the counting server")
    return Server(f"http://127.0.0.1:{port}", process)


def start_workers(
    env: dict[str, str], workers: int, max_async_tasks: int
) -> subprocess.Popen[bytes]:
    """``taskiq worker scale_worker:broker --workers N``: a manager and N worker processes,
    in a process group of their own. ``--max-prefetch 1``: taskiq's default (0) lets one
    worker pull the whole queue into its own buffer while the others wait."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "taskiq", "worker", "scale_worker:broker"),
            *("--workers", str(workers), "--max-async-tasks", str(max_async_tasks)),
            *("--max-prefetch", "1", "--no-configure-logging", "--shutdown-timeout", "10"),
        ],
        env={
            **env,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
        },
        cwd=str(HERE),
        start_new_session=True,
    )


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group (workers finish their tasks), SIGKILL it if it lingers."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(20)
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def _high_water_mark(pid: int) -> int:
    """VmHWM (the kernel's peak RSS) in bytes, 0 where /proc does not have it."""
    with suppress(OSError, ValueError), open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class RssSampler:
    """Peak RSS of each child of ``manager``, sampled every ``every`` s, and VmHWM."""

    manager: int
    every: float = 0.25
    peaks: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        with suppress(psutil.Error):
            for child in psutil.Process(self.manager).children():
                with suppress(psutil.Error):
                    rss = max(child.memory_info().rss, _high_water_mark(child.pid))
                    self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), rss)

    def children(self) -> int:
        with suppress(psutil.Error):
            return len(psutil.Process(self.manager).children())
        return 0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def delete_redis_keys(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


async def drop_tables(conn: Any, table: str) -> None:
    for name in (table, f"{table}_intents", f"{table}_meta"):
        await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
