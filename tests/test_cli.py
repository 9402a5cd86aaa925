"""The mimgw command line, run in-process against the simulator."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from mimgw import cli
from mimgw.cli import main


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_demo_runs_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo")
    assert code == 0, out + err
    assert "failed:" not in out
    for needle in (
        "mimsms_v4: send",
        "mimsms_v3: send",
        "mimsms_v3_json: send",
        "dinisoft: send",
        "imiconnect: send",
        "one-to-many: 4/4 accepted",
        "personalised: 4/4 accepted",
        "Absent subscriber for SM",
        "second pull: 0 report(s)",
        "pushed imiconnect",
        "inbound from",
        "failed over",
        "demo complete",
    ):
        assert needle in out, needle
    assert "Traceback" not in out + err


def test_demo_exit_code_reports_a_failed_section(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        async def run() -> None:
            raise RuntimeError("boom")

        return run

    monkeypatch.setattr(cli, "_demo_parse_dlr", broken)
    code, out, _ = run(capsys, "demo")
    assert code == 1
    assert "mimsms_v4: DLR classification failed: RuntimeError" in out
    assert "failover" in out  # the sections after it still ran
    assert "Traceback" not in out


def test_providers_lists_every_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "providers")
    assert code == 0
    for needle in (
        "mimsms_v4",
        "mimsms_v3",
        "mimsms_v3_json",
        "dinisoft",
        "imiconnect",
        "webhook push",
        "balance",
    ):
        assert needle in out, needle


def test_provider_classes_come_from_the_package() -> None:
    kinds = [c.kind for c in cli.provider_classes()]
    assert kinds[:5] == list(cli.SIMULATED_KINDS)


def test_send_with_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "send", "01712-345678", "আপনার কোড 4711", "--simulator")
    assert code == 0, err
    assert "mimsms_v4 accepted" in out
    assert "8801712345678" in out
    assert "ucs2" in out


def test_send_json_and_provider_pin(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "send", "01712345678", "hello", "--simulator", "--provider", "dinisoft", "--json"
    )
    assert code == 0, err
    receipt = json.loads(out)
    assert receipt["provider"] == "dinisoft"
    assert receipt["to"] == "8801712345678"
    assert "raw" not in receipt


def test_send_bulk_with_outcome_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "to,text,reference\n"
        "01712345678,Your parcel ships today,order-1\n"
        "01812345679,আপনার পার্সেল আজ পাঠানো হবে,order-2\n"
        "01912345670,Sale ends tonight,\n",
        encoding="utf-8-sig",
    )
    target = tmp_path / "out.csv"
    code, out, err = run(
        capsys,
        "send-bulk",
        str(source),
        "--simulator",
        "--output",
        str(target),
        "--chunk-size",
        "2",
    )
    assert code == 0, out + err
    assert "accepted" in out
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["outcome"] for r in rows] == ["accepted"] * 3
    assert [r["reference"] for r in rows][:2] == ["order-1", "order-2"]
    assert all(r["message_id"] for r in rows)


def test_send_bulk_bad_rows_fail_alone(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("to,text\n01712345678,ok\n12345,bad number\n01812345679,\n")
    target = tmp_path / "out.csv"
    code, out, _ = run(capsys, "send-bulk", str(source), "--simulator", "-o", str(target))
    assert code == 1
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["outcome"] for r in rows] == ["accepted", "failed", "failed"]
    assert rows[1]["error_kind"] == "InvalidMessageError"
    assert "line 3" in out


def test_send_bulk_needs_the_columns(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("number,message\n01712345678,hi\n")
    code, _, err = run(capsys, "send-bulk", str(source), "--simulator")
    assert code == 1
    assert "to,text" in err


def test_balance_with_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "balance", "--simulator")
    assert code == 0, err
    assert "mimsms_v4" in out
    assert "no balance endpoint" in out  # IMIconnect documents none


def test_balance_json_pinned(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "balance", "--simulator", "--provider", "dinisoft", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["dinisoft"]
    assert float(data["dinisoft"]["amount"]) > 0


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["send"],
        ["send", "01712345678"],
        ["frobnicate"],
        ["send-bulk", "x.csv", "--concurrency", "0"],
        ["simulate", "--port", "70000"],
    ],
)
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "usage:" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith("mimgw ")


def test_unknown_message_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "12345", "--simulator", "--provider", "dinisoft")
    assert code == 1
    assert err.startswith("error request_rejected: dinisoft")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_invalid_number_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "send", "12", "hi", "--simulator")
    assert code == 1
    assert "InvalidMessageError" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2


def test_unknown_provider_pin(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "balance", "--simulator", "--provider", "nope")
    assert code == 1
    assert "no provider named 'nope'" in err


def test_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "balance", "--config", str(tmp_path / "missing.toml"))
    assert code == 1
    assert "not found" in err


def test_unexpected_errors_have_no_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(*args: Any) -> int:
        raise KeyError("internal")

    monkeypatch.setitem(cli._COMMANDS, "providers", crash)
    code, out, err = run(capsys, "providers")
    assert code == 1
    assert "unexpected error" in err
    assert "Traceback" not in out + err


def test_simulate_prints_base_urls(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[Any, str, int]] = []
    monkeypatch.setattr(cli, "_serve", lambda app, host, port: served.append((app, host, port)))
    code, out, _ = run(capsys, "simulate", "--port", "9999")
    assert code == 0
    assert served and served[0][1:] == ("127.0.0.1", 9999)
    assert "http://127.0.0.1:9999" in out
    assert "sim.invalid" not in out
    for kind in cli.SIMULATED_KINDS:
        assert kind in out


def test_config_file_errors_never_print_credentials(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real configuration whose gateway refuses the connection (a closed loopback port)."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in [k for k in os.environ if k.startswith("MIMGW_")]:
        monkeypatch.delenv(name)
    secret = "Sup3r-Secret-ApiKey-771"
    config = tmp_path / "mimgw.toml"
    config.write_text(
        "[retry]\nattempts = 1\n\n"
        "[[providers]]\n"
        'kind = "mimsms_v4"\n'
        'username = "ops@example.com"\n'
        f'api_key = "{secret}"\n'
        'sender = "MyBrand"\n'
        'base_url = "http://127.0.0.1:9"\n'
        "timeout = 2\n"
    )
    code, out, err = run(capsys, "send", "01712345678", "hi", "--config", str(config))
    assert code == 1
    assert "connect_failed" in err or "all providers failed" in err
    assert secret not in out + err
    assert "Traceback" not in out + err


def test_invalid_config_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "mimgw.toml"
    config.write_text('[[providers]]\nkind = "mimsms_v4"\napi_key = "k-123456789"\n')
    code, _, err = run(capsys, "balance", "--config", str(config))
    assert code == 1
    assert "ConfigurationError" in err
    assert "k-123456789" not in err
