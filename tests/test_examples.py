"""Every file in examples/ works as its docstring says (loopback and in-process only)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from mimgw import Gateway
from mimgw.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TOKEN = "example-webhook-token-0123456789"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the annotations through it
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def no_mimgw_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in [k for k in os.environ if k.upper().startswith("MIMGW_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_example_test_file_passes() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-o",
            "addopts=",
            "-q",
            "-p",
            "no:cacheprovider",
            "examples/test_example.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout
    assert "warning" not in done.stdout.lower()


async def test_bulk_csv_writes_one_outcome_per_row(
    no_mimgw_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bulk = load("bulk_csv")
    source, target = no_mimgw_env / "customers.csv", no_mimgw_env / "outcomes.csv"
    source.write_text(
        "to,text,reference\n"
        "01712345678,Your parcel ships today,order-1\n"
        "12345,bad number,order-2\n"
        "01812345679,আপনার পার্সেল আজ পাঠানো হবে,\n"
    )
    assert await bulk.main([str(source), str(target), "--simulator"]) == 1
    rows = {r["line"]: r for r in bulk.csv.DictReader(target.open(encoding="utf-8"))}
    assert rows["2"]["outcome"] == rows["4"]["outcome"] == "accepted"
    assert rows["3"]["outcome"] == "failed" and "12345" in rows["3"]["error"]
    assert rows["3"]["reference"] == "order-2" and rows["4"]["reference"] == "customers-4"
    assert "accepted 2, failed 1" in capsys.readouterr().out


async def test_fastapi_example_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_TOKEN", TOKEN)
    example = load("fastapi_app")
    sim = Simulator(seed=2)

    app = example.create_app(
        lambda: example.add_hooks(Gateway([sim.provider("imiconnect"), sim.provider("mimsms_v4")]))
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://service.test") as client,
    ):
        sent = await client.post(
            "/otp", json={"to": "01712345678"}, headers={"Idempotency-Key": "k1"}
        )
        assert sent.status_code == 200, sent.text
        body = sent.json()
        assert body["provider"] == "imiconnect"
        again = await client.post(
            "/otp", json={"to": "01712345678"}, headers={"Idempotency-Key": "k1"}
        )
        assert again.json()["message_id"] == body["message_id"]  # no second SMS
        assert sim.imiconnect.requests == 1
        bad = await client.post("/otp", json={"to": "12345"})
        assert bad.status_code == 422
        # the simulated gateway pushes its delivery report to the mounted webhook
        sim.imiconnect.push_client = client
        sim.imiconnect.notify_url = f"http://service.test/mimgw/webhooks/imiconnect?token={TOKEN}"
        sim.clock.advance(120)
        await sim.imiconnect.push_reports()
        status = await client.get(f"/otp/{body['message_id']}")
        assert status.status_code == 200
        assert status.json()["state"] in {"delivered", "undeliverable", "sent"}
        assert example.DELIVERIES[body["message_id"]] == status.json()["state"]
        assert (await client.get("/otp/NOPE")).status_code == 404
        health = await client.get("/mimgw/health")
        assert set(health.json()) == {"imiconnect", "mimsms_v4"}


@pytest.fixture
def served_processes(no_mimgw_env: Path) -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def test_fastapi_example_against_mimgw_simulate(
    no_mimgw_env: Path, served_processes: list[subprocess.Popen[str]]
) -> None:
    """The newcomer's path: `mimgw simulate > .env`, a token, `uvicorn examples.fastapi_app:app`."""
    sim_port, app_port = free_port(), free_port()
    env_file = no_mimgw_env / ".env"
    with env_file.open("w") as handle:
        simulate = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "mimgw.cli", "simulate", "--port", str(sim_port)],
            stdout=handle,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    served_processes.append(simulate)
    wait_for(f"http://127.0.0.1:{sim_port}/", simulate)
    with env_file.open("a") as handle:
        handle.write(f"WEBHOOK_TOKEN={TOKEN}\n")
    assert "MIMGW_PROVIDERS__MIMSMS_V4__KIND=mimsms_v4" in env_file.read_text()
    service = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.fastapi_app:app",
            "--app-dir",
            str(ROOT),
            "--port",
            str(app_port),
            "--log-level",
            "warning",
        ],
        cwd=no_mimgw_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served_processes.append(service)
    wait_for(f"http://127.0.0.1:{app_port}/mimgw/health", service)
    sent = httpx.post(f"http://127.0.0.1:{app_port}/otp", json={"to": "01712345678"}, timeout=10)
    assert sent.status_code == 200, sent.text
    assert sent.json()["provider"] == "mimsms_v4"  # the first line simulate printed
    health = httpx.get(f"http://127.0.0.1:{app_port}/mimgw/health", timeout=10).json()
    assert list(health)[:2] == ["mimsms_v4", "mimsms_v3"]
